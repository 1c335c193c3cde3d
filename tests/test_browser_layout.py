"""Real-browser layout checks at 1400 px (Debian chromium + playwright): what must be visible without scrolling.

Dataframes draw on a canvas: a column is fully visible when its right border line is drawn inside the frame (found in a
screenshot of the frame); the column titles come from the grid's accessibility table, in order.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import write_crafted_dumps
from test_browser import TIMEOUT_MS, settle

pytestmark = pytest.mark.browser

WIDTH = 1400
LONG_NAME = "an-unusually-long-daemon-name-from-a-vendor-package-that-names-its-binaries-after-the-product-line"


def fully_visible_columns(frame) -> list[str]:
    """Titles of the dataframe's columns whose whole width is on screen (left to right, no scrolling)."""
    from PIL import Image

    frame.locator("canvas").first.wait_for(timeout=TIMEOUT_MS)
    titles = [t.strip() for t in frame.locator("th[role=columnheader]").all_text_contents()]
    img = Image.open(io.BytesIO(frame.screenshot())).convert("RGB")
    width = img.size[0]
    border = img.getpixel((0, 17))  # the frame's own left border: the colour of the grid lines
    rows = (17, 52, 87)  # the middle of the header and of the first two data rows (35 px each)
    xs = [x for x in range(1, width - 2) if all(img.getpixel((x, y)) == border for y in rows)]
    edges = [x for i, x in enumerate(xs) if i == 0 or x != xs[i - 1] + 1]  # one per line
    # edges[0] closes the selection-checkbox column; edges[i + 1] closes titles[i]
    return titles[: max(len(edges) - 1, 0)]


def test_the_level_tables_key_columns_fit_1400_px_with_long_names(browser, fresh_server, tmp_path: Path) -> None:
    dumps = write_crafted_dumps(tmp_path / "long")
    for csv_file in (dumps / "time").glob("process_mem_*.csv"):  # pid 100 gets a long name and command line
        text = csv_file.read_text().replace(
            "/usr/bin/python3 /srv/app.py --serve",
            f"/opt/vendor/bin/{LONG_NAME} --config /etc/vendor/{LONG_NAME}.conf --log-level debug --workers 16",
        )
        csv_file.write_text(text)
    server = fresh_server(dumps)
    context = browser.new_context(viewport={"width": WIDTH, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{server.url}/level?level=1")
        settle(page)
        frame = page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').first
        frame.locator("th[role=columnheader]", has_text="Peak subtree").wait_for(state="attached")
        page.wait_for_timeout(500)  # the grid paints its canvas on the next frames
        visible = fully_visible_columns(frame)
        for title in ("PID", "Name", "Own RSS", "Subtree RSS", "Peak subtree", "Lifetime"):
            seen = any(v.startswith(title) for v in visible)
            assert seen, f"{title!r} needs horizontal scrolling at {WIDTH} px; fully visible: {visible}"
    finally:
        context.close()
    assert "Traceback" not in server.log_text()
