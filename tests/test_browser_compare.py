"""Real browser: `/compare?a=..&b=..` opened first on a fresh server, a row click opens the PID drill-down."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from native_crafted import write_native_crafted
from test_browser import TIMEOUT_MS, click_cell, query, settle

pytestmark = pytest.mark.browser


def test_compare_deep_link_then_row_click_opens_the_process(browser, fresh_server, tmp_path: Path) -> None:
    server = fresh_server(write_native_crafted(tmp_path / "dumps"))
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{server.url}/compare?a=2026-11-27T10:00:00Z&b=2026-11-27T10:00:20Z")
        settle(page)
        page.locator('[data-testid="stMetric"]').filter(has_text="Grown").first.wait_for(timeout=TIMEOUT_MS)
        settle(page)
        # the visible table is the Processes tab (the totals expander and the Subtrees tab are hidden)
        frame = page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]:visible').first
        click_cell(page, frame, 0, 40)  # first row: the nginx worker, pid 11, grown by 20 MiB
        page.wait_for_url(re.compile(r"/pid\?"), timeout=TIMEOUT_MS)
        settle(page)
        q = query(page)
        assert q["pid"] == "11" and q["at"] == "2026-11-27T10:00:20Z"
        page.wait_for_selector("text=PID 11", timeout=TIMEOUT_MS)
    finally:
        context.close()
