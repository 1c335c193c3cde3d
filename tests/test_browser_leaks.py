"""Real browser: `/leaks` opened first on a fresh server lists the sample's leaker; a click opens its drill-down."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT
from test_browser import TIMEOUT_MS, main_frames, query, settle

from memlib import query as q
from memlib import source
from memlib.units import iso_z

pytestmark = pytest.mark.browser

SAMPLE = ROOT / "sample" / "dumps"
CHECKBOX_PX = 15  # the row-selection column at the table's left edge
ROW_PX = 35


def test_leaks_deep_link_then_first_suspect_opens_the_leakers_drill_down(browser, fresh_server) -> None:
    everyone = q.stats(source.open_recording(SAMPLE, "UTC"))
    leaker = everyone[everyone["name"] == "demo-leaker"].iloc[0]
    leaker_pid = int(leaker["pid"])
    server = fresh_server(SAMPLE)
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{server.url}/leaks")
        settle(page)
        assert page.locator("h1").first.inner_text().strip() == "Leaks & spikes"
        assert page.locator('[data-testid="stException"]').count() == 0
        suspects = main_frames(page).first
        suspects.locator("canvas").first.wait_for(timeout=TIMEOUT_MS)
        box = suspects.bounding_box()
        x, y = box["x"] + CHECKBOX_PX, box["y"] + ROW_PX * 1.5  # row 0, below the header
        page.mouse.move(x, y)
        page.wait_for_timeout(150)
        page.mouse.click(x, y)
        page.wait_for_url(re.compile(r"/pid\?"), timeout=TIMEOUT_MS)
        settle(page)
        assert query(page) == {"pid": str(leaker_pid), "start": iso_z(leaker["start_time"])}  # exactly that process
        page.get_by_text(f"PID {leaker_pid}", exact=True).wait_for()
        page.get_by_text("demo-leaker", exact=True).wait_for()
    finally:
        context.close()
    assert "Traceback" not in server.log_text()
