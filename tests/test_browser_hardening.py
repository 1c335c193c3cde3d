"""Real-browser checks of what a viewer's browser does: no request leaves the dashboard's host (the page icon is a
local file, never a font fetched from the internet)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.test_browser import TIMEOUT_MS, settle

pytestmark = pytest.mark.browser


def test_no_request_leaves_the_server(browser, streamlit_server) -> None:
    """Every request the browser makes while opening four pages goes to 127.0.0.1 (outside ones are recorded and
    refused), and the favicon is served by the dashboard itself."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    outside: list[str] = []
    seen: list[str] = []

    def check(route, request) -> None:
        seen.append(request.url)
        host = urlparse(request.url).hostname
        if request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route.continue_()
        else:
            outside.append(request.url)
            route.abort()

    context.route("**/*", check)
    try:
        pg = context.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        for path in ("/", "/level?level=1", "/pid?pid=1&level=1", "/groups"):
            pg.goto(f"{streamlit_server.url}{path}")
            settle(pg)
        pg.wait_for_timeout(500)
        icon = pg.evaluate("document.querySelector('link[rel~=\"icon\"]')?.href || ''")
    finally:
        context.close()
    assert not outside, outside
    assert len(seen) > 10
    assert icon.startswith(streamlit_server.url) and "gstatic" not in icon, icon
