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


ORANGE, BLUE = (0xFF, 0x7F, 0x0E), (0x1F, 0x77, 0xB4)  # ui.charts.COLORS: subtree, own


def _near(pixel: tuple[int, ...], colour: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, colour, strict=False))


def legend_gap_px(png: bytes) -> int:
    """Exported process chart -> white pixels between the end of the first legend entry's text ("subtree RSS") and
    the second entry's line symbol (the own series, blue)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    w, h = img.size
    legend_rows = [
        y for y in range(int(h * 0.75), h) if any(_near(img.getpixel((x, y)), ORANGE) for x in range(w // 2))
    ]
    y = legend_rows[len(legend_rows) // 2]
    orange_end = max(x for x in range(w) if _near(img.getpixel((x, y)), ORANGE))
    blue_start = min(x for x in range(orange_end, w) if _near(img.getpixel((x, y)), BLUE))
    ink = [
        x
        for x in range(orange_end + 1, blue_start)
        if any(sum(img.getpixel((x, yy))) < 600 for yy in range(y - 12, y + 12))
    ]
    return blue_start - max(ink) - 1


def test_the_exported_process_chart_names_the_process_and_its_legend_entries_stand_apart(
    browser, streamlit_server
) -> None:
    context = browser.new_context(viewport={"width": WIDTH, "height": 1000}, accept_downloads=True)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{streamlit_server.url}/pid?pid=22958")  # the seed recording's leaker (no children)
        settle(page)
        chart = page.locator(".js-plotly-plot").first
        chart.wait_for()
        assert "python3 (PID 22958): own and subtree RSS" in chart.locator(".gtitle").text_content()
        chart.hover()
        with page.expect_download() as download:
            page.locator('[data-title="Download plot as a PNG"]').first.click()
        assert download.value.suggested_filename.startswith("pid22958_rss_")
        png = Path(download.value.path()).read_bytes()
        gap = legend_gap_px(png)
        assert gap >= 16, f"legend entries {gap} px apart in the exported PNG (run-on 'subtree RSSown RSS')"
    finally:
        context.close()
