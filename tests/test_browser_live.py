"""Real browser: a page left open shows the collector's next sample by itself (the sidebar's watcher reruns the app
when the recording's files change), without a reload."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from store_samples import MEMINFO, T0, sample_procs, writer
from test_browser import TIMEOUT_MS, settle

pytestmark = pytest.mark.browser


def test_an_open_page_shows_a_new_sample_without_a_reload(browser, fresh_server, tmp_path: Path) -> None:
    root = tmp_path / "rec"
    w = writer(root)
    for k in range(3):
        w.append(T0 + pd.Timedelta(seconds=5 * k), sample_procs([(1, 0, 10), (10, 1, 20)]), MEMINFO)
    server = fresh_server(root)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{server.url}/level?level=1")
        settle(page)
        page.get_by_text("Snapshot 2026-11-27 10:00:10 UTC").first.wait_for()
        w.append(T0 + pd.Timedelta(seconds=15), sample_procs([(1, 0, 10), (10, 1, 20), (12, 1, 7)]), MEMINFO)
        # the watcher looks every max(2 s, the sampling interval: 5 s)
        page.get_by_text("Snapshot 2026-11-27 10:00:15 UTC").first.wait_for(timeout=30_000)
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        context.close()
        w.close()
