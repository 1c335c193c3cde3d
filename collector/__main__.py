"""`python -m collector ...`: see collector.run."""

import sys

from collector.run import main

if __name__ == "__main__":
    sys.exit(main())
