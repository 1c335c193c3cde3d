"""``python -m memlib COMMAND --dumps DIR ...``: see memlib.cli."""

import sys

from memlib.cli import main

sys.exit(main())
