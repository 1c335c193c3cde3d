"""Real-browser tests (Debian chromium + playwright): deep links, PID navigation, URL state, downloads.

Dataframes draw on a canvas: cells are clicked by position (header and rows are 35 px high), after a hover.
"""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from memlib import filters, source
from memlib import query as q

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
ROW_PX = 35
CHECKBOX_COL_PX = 30


def settle(page) -> None:
    """Wait until the page shows its title, no script run is in progress and no stale element is left."""
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=TIMEOUT_MS)
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)
    # elements of the previous run are kept (marked stale) until the new run replaced them
    page.wait_for_function("!document.querySelector('[data-stale=\"true\"]')", timeout=TIMEOUT_MS)


def query(page) -> dict[str, str]:
    """The page URL's query parameters (last value of each)."""
    return {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}


def click_cell(page, frame, row: int, x_offset: float) -> None:
    """Click the cell of data row `row` at `x_offset` px from the dataframe's left edge (hover first)."""
    frame.locator("canvas").first.wait_for(timeout=TIMEOUT_MS)
    box = frame.bounding_box()
    x, y = box["x"] + x_offset, box["y"] + ROW_PX * (row + 1) + ROW_PX / 2
    page.mouse.move(x, y)
    page.wait_for_timeout(150)
    page.mouse.click(x, y)


def main_frames(page):
    """Dataframes of the main area (the sidebar's data-source table excluded)."""
    return page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]')


def metric_value(page, label: str) -> str:
    """The value text of the st.metric whose label starts with `label`."""
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text(timeout=TIMEOUT_MS).strip()


def wait_metric_change(page, label: str, old: str) -> str:
    """Wait until the st.metric labelled `label` shows something other than `old`; return the new value."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        value = metric_value(page, label)
        if value != old:
            return value
        page.wait_for_timeout(200)
    raise AssertionError(f"metric {label!r} stayed at {old!r}")


@pytest.fixture
def page(browser, streamlit_server):
    """A new browser context + page (own cookies/session) for each test."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    yield pg
    context.close()


def test_deep_link_first_on_a_fresh_server(browser, fresh_server) -> None:
    server = fresh_server()
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    try:
        pg = context.new_page()
        pg.goto(f"{server.url}/pid?pid=1&level=1")
        settle(pg)
        pg.get_by_text("PID 1", exact=True).wait_for(timeout=TIMEOUT_MS)
        assert pg.locator("h1").first.inner_text().strip() == "PID drill-down"
        # the router ran: our pages, not the legacy auto-discovered list (which would include "app")
        nav = pg.locator('[data-testid="stSidebarNav"]').inner_text()
        icons = {"monitoring", "account_tree", "memory", "category", "folder_open", "compare_arrows", "trending_up",
                 "dns"}  # fmt: skip
        assert [line.strip() for line in nav.splitlines() if line.strip() and line.strip() not in icons] == [
            "Overview",
            "Level view",
            "PID drill-down",
            "Groups",
            "cgroups",
            "Compare two moments",
            "Leaks & spikes",
            "Fleet",
        ]
        assert pg.locator('[data-testid="stException"]').count() == 0
        assert query(pg) == {"pid": "1", "level": "1"}
    finally:
        context.close()
    assert "Traceback" not in server.log_text()


def test_level_pid_click_opens_drill_down_and_parent_link_goes_back(page, streamlit_server, seed_dumps) -> None:
    rec = source.open_recording(seed_dumps, "UTC")
    latest = q.resolve(rec)
    snap = q.moment(rec, latest)
    level2 = snap[snap["level"] == 2].reset_index(drop=True)
    first = level2.iloc[0]
    parent_pid = int(first["ppid"])

    page.goto(f"{streamlit_server.url}/level?level=2")
    settle(page)
    click_cell(page, main_frames(page).first, row=0, x_offset=CHECKBOX_COL_PX + 25)  # the PID cell of row 0
    page.wait_for_url(re.compile(r"/pid\?"), timeout=TIMEOUT_MS)
    settle(page)
    assert query(page)["pid"] == str(int(first["pid"]))
    assert query(page)["level"] == "2"  # the rest of the view travels along
    page.get_by_text(f"PID {int(first['pid'])}", exact=True).wait_for()
    page.get_by_text("Statistics over the window", exact=True).wait_for()
    settle(page)

    # the ancestors table lists root first; its last row is the parent
    chain = q.ancestors(
        rec, q.Proc(str(first["host"]), str(first["boot_id"]), int(first["pid"]), first["start_time"]), latest
    )
    parent_row = len(chain) - 2
    click_cell(page, main_frames(page).first, row=parent_row, x_offset=CHECKBOX_COL_PX + 70)
    page.wait_for_function(f"new URLSearchParams(location.search).get('pid') === '{parent_pid}'", timeout=TIMEOUT_MS)
    settle(page)
    page.get_by_text(f"PID {parent_pid}", exact=True).wait_for()


def test_slider_change_is_reflected_in_the_url(page, streamlit_server) -> None:
    page.goto(f"{streamlit_server.url}/level?level=1")
    settle(page)
    shown_before = int(metric_value(page, "Shown at level 1").replace(",", ""))
    slider = (
        page.locator('[data-testid="stSidebar"] [data-testid="stSlider"]')
        .filter(has_text="Minimum own memory")
        .get_by_role("slider")
    )
    slider.focus()
    slider.press("ArrowRight")  # off -> 1 MiB
    page.wait_for_function("new URLSearchParams(location.search).get('min_rss_mb') === '1'", timeout=TIMEOUT_MS)
    settle(page)
    shown_after = wait_metric_change(page, "Shown at level 1", str(shown_before))
    assert int(shown_after.replace(",", "")) < shown_before
    assert query(page) == {"level": "1", "min_rss_mb": "1"}
    # moving back to the default removes the parameter again
    slider.focus()
    slider.press("ArrowLeft")
    page.wait_for_function("!new URLSearchParams(location.search).has('min_rss_mb')", timeout=TIMEOUT_MS)


def test_copied_url_reproduces_the_view_in_a_new_context(browser, page, streamlit_server, seed_dumps) -> None:
    rec = source.open_recording(seed_dumps, "UTC")
    at = q.snapshots(rec)["ts"].iloc[40]
    at_text = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    url = f"{streamlit_server.url}/level?at={at_text}&level=1&min_rss_mb=1&match=bash"
    page.goto(url)
    settle(page)
    shown = metric_value(page, "Shown at level 1")
    copied = page.url

    expected = filters.filter_snapshot(
        q.moment(rec, q.resolve(rec, at)),
        filters.Filters(min_rss_mib=1, match="bash"),
        level=1,
    )
    assert int(shown) == int(expected["kept"].sum())

    other = browser.new_context(viewport={"width": 1500, "height": 1000})
    try:
        pg2 = other.new_page()
        pg2.goto(copied)
        settle(pg2)
        assert metric_value(pg2, "Shown at level 1") == shown
        assert query(pg2) == query(page)
        from playwright.sync_api import expect

        match_box = pg2.locator('[data-testid="stSidebar"]').get_by_label("Name or command line contains")
        expect(match_box).to_have_value("bash", timeout=TIMEOUT_MS)  # the widget takes its value from the URL
        pg2.get_by_text(f"Snapshot {at.strftime('%Y-%m-%d %H:%M:%S')} UTC", exact=False).first.wait_for()
    finally:
        other.close()


def test_csv_download_holds_exactly_the_filtered_rows(page, streamlit_server) -> None:
    page.goto(f"{streamlit_server.url}/level?level=1&min_rss_mb=1")
    settle(page)
    shown = int(metric_value(page, "Shown at level 1"))
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        page.locator('[data-testid="stDownloadButton"]').filter(has_text="CSV").first.click()
    download = info.value
    assert re.fullmatch(r"level1_\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z\.csv", download.suggested_filename)
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert len(rows) == shown > 0
    assert all(int(r["rss_bytes"]) >= 1 << 20 for r in rows)
    assert all(r["level"] == "1" for r in rows)


def click_plot_point(page, chart, selector: str, nth: int) -> None:
    """Click the centre of the `nth` element matching `selector` inside a Plotly chart (hover first)."""
    target = chart.locator(selector).filter(visible=True).nth(nth)
    target.wait_for(timeout=TIMEOUT_MS)
    box = target.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    page.mouse.click(x, y)


def test_clicking_the_ram_chart_opens_the_level_view_at_that_moment(page, streamlit_server, seed_dumps) -> None:
    rec = source.open_recording(seed_dumps, "UTC")
    page.goto(f"{streamlit_server.url}/")
    settle(page)
    ram = page.locator('[data-testid="stPlotlyChart"]').first
    click_plot_point(page, ram, ".scatterlayer .trace:first-child .points path", 20)  # the 21st "used" sample
    page.wait_for_url(re.compile(r"/level\?"), timeout=TIMEOUT_MS)
    settle(page)
    expected = q.snapshots(rec)["ts"].iloc[20]
    assert query(page)["at"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
    page.get_by_text(f"Snapshot {expected.strftime('%Y-%m-%d %H:%M:%S')} UTC", exact=False).first.wait_for()

    # and a box of the tree picture opens that process's drill-down
    treemap = page.locator('[data-testid="stPlotlyChart"]').last
    treemap.scroll_into_view_if_needed()
    click_plot_point(page, treemap, "g.slice", 3)
    page.wait_for_url(re.compile(r"/pid\?"), timeout=TIMEOUT_MS)
    settle(page)
    assert query(page)["at"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
    page.get_by_text(f"PID {query(page)['pid']}", exact=True).wait_for()
