"""Issue 8 item 5: safe sharing. Default bind 127.0.0.1 with error details and usage stats off; a token (PMI_TOKEN,
constant-time compare, form or `?token=` once) or OIDC login gates every page before any data; `make share` refuses
to bind 0.0.0.0 without access control."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import ROOT

from ui import auth

TOKEN = "correct-horse-battery-staple-42"
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))
GATE_TYPES = {"title", "alert", "form", "text_input", "button", "form_submit_button", "flex_container", "main",
              "sidebar", "event", "error", "info", "markdown"}  # fmt: skip
DATA_TYPES = {"dataframe", "arrow_data_frame", "metric", "plotly_chart", "download_button", "text", "code", "table"}


# ---- configuration


def test_config_binds_localhost_and_hides_errors_and_usage_stats() -> None:
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["client"]["showErrorDetails"] in ("none", False)
    assert cfg["browser"]["gatherUsageStats"] is False


def test_makefile_binds_all_interfaces_only_in_share_after_the_check() -> None:
    text = (ROOT / "Makefile").read_text()
    assert re.search(r"^share: share-check\b", text, re.MULTILINE)
    assert re.search(r"^share-check:\n\t@?\$\(PYTHON\) -m ui\.auth --check-share", text, re.MULTILINE)
    binds = re.findall(r"--server\.address (\S+)", text)
    assert binds.count("0.0.0.0") == 1 and set(binds) == {"127.0.0.1", "0.0.0.0"}
    share = text.split("\nshare:", 1)[1].split("\n\n", 1)[0]
    assert "0.0.0.0" in share


# ---- token compare and the share check (pure)


def test_token_matches_uses_a_constant_time_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert auth.token_matches(TOKEN, TOKEN)
    assert not auth.token_matches(TOKEN[:-1], TOKEN)
    assert not auth.token_matches(TOKEN + "x", TOKEN)
    assert not auth.token_matches("ünïcode-tökén", TOKEN) and auth.token_matches("ünïcode-tökén", "ünïcode-tökén")
    assert len(calls) == 5
    assert not auth.token_matches("", "") and not auth.token_matches(None, TOKEN) and not auth.token_matches(TOKEN, "")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('[auth]\nredirect_uri = "http://h:8501/oauth2callback"\n', True),
        ('[auth.google]\nclient_id = "x"\n', True),
        ('[other]\nauth = "x"\n', False),
        ('auth = "just a key"\n', False),
        ("", False),
        ("[auth\nbroken = ", True),  # unparsable, but clearly meant as [auth]: treated as configured
    ],
)
def test_auth_section_detection(text: str, found: bool) -> None:
    assert auth.auth_section_in(text) is found


def test_share_problems(tmp_path: Path) -> None:
    none = [tmp_path / "absent.toml"]
    assert auth.share_problems({}, none, authlib=True)[0].startswith("Refusing to share")
    assert "shorter" in auth.share_problems({"PMI_TOKEN": "abc"}, none, authlib=True)[0]
    assert auth.share_problems({"PMI_TOKEN": "   "}, none, authlib=True)[0].startswith("Refusing")
    assert auth.share_problems({"PMI_TOKEN": TOKEN}, none, authlib=True) == []
    oidc = tmp_path / "secrets.toml"
    oidc.write_text('[auth]\ncookie_secret = "x"\n')
    assert auth.share_problems({}, [oidc], authlib=True) == []
    assert "Authlib" in auth.share_problems({}, [oidc], authlib=False)[0]
    assert auth.mode({}, oidc=False) == "open" and auth.mode({"PMI_TOKEN": TOKEN}, oidc=False) == "token"
    assert auth.mode({"PMI_TOKEN": TOKEN}, oidc=True) == "oidc"


def _env_without_token(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PMI_TOKEN"}
    return {**env, "HOME": str(tmp_path), **extra}


def _skip_if_repo_has_oidc() -> None:
    if auth.oidc_configured_in([ROOT / ".streamlit" / "secrets.toml"]):
        pytest.skip("this checkout has an [auth] section in .streamlit/secrets.toml: sharing is allowed")


def test_make_share_refuses_without_access_control(tmp_path: Path) -> None:
    _skip_if_repo_has_oidc()
    for extra in ({}, {"PMI_TOKEN": "short"}):
        done = subprocess.run(
            ["make", "--no-print-directory", "share", "PORT=1"],
            cwd=ROOT,
            env=_env_without_token(tmp_path, **extra),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0, done.stdout + done.stderr
        assert "Refusing to share" in done.stderr
        assert "streamlit run" not in done.stdout


def test_share_check_accepts_a_long_token(tmp_path: Path) -> None:
    _skip_if_repo_has_oidc()
    done = subprocess.run(
        [sys.executable, "-m", "ui.auth", "--check-share"],
        cwd=ROOT,
        env=_env_without_token(tmp_path, PMI_TOKEN=TOKEN),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "PMI_TOKEN" in done.stderr


# ---- the gate in the app (AppTest)


def _types(at) -> set[str]:
    out: set[str] = set()

    def walk(node) -> None:
        kind = getattr(node, "type", None)
        if kind:
            out.add(str(kind))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch, seed_dumps: Path):
    """Factory: AppTest of app.py over the seed dumps with PMI_TOKEN set, optionally on `page` with URL params."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PMI_DUMPS", str(seed_dumps))
    monkeypatch.setenv("PMI_TZ", "UTC")
    monkeypatch.setenv("PMI_TOKEN", TOKEN)
    monkeypatch.setattr(auth, "oidc_configured", lambda: False)

    def run(page: str | None = None, **params: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        for k, v in params.items():
            at.query_params[k] = v
        at.run()
        if page is not None:
            at.switch_page(page)
            at.run()
        return at

    return run


def _assert_locked(at) -> None:
    assert not at.exception
    kinds = _types(at)
    assert not kinds & DATA_TYPES, kinds & DATA_TYPES
    assert [t.label for t in at.text_input] == ["Access token"]
    assert not at.sidebar.selectbox and not at.sidebar.dataframe


@pytest.mark.parametrize("page", PAGES)
def test_without_the_token_no_page_shows_data(gated, page: str) -> None:
    _assert_locked(gated(page, pid="1"))


def test_a_wrong_token_in_the_link_is_refused_and_dropped(gated) -> None:
    at = gated(token="wrong-token-of-some-length")
    _assert_locked(at)
    assert any("not valid" in e.value for e in at.error)
    assert "token" not in at.query_params


def test_the_token_in_the_link_opens_the_page_once_and_leaves_the_url(gated) -> None:
    at = gated(token=TOKEN, level="1")
    assert not at.exception
    assert "token" not in at.query_params and at.query_params.get("level") in ("1", ["1"])
    assert at.main.dataframe and not [t for t in at.text_input if t.label == "Access token"]
    at.switch_page("pages/level.py").run()  # remembered in the session: other pages open without the token
    assert not at.exception and at.main.dataframe


def test_typing_the_token_into_the_form_opens_the_dashboard(gated) -> None:
    at = gated("pages/pid.py", pid="1")
    _assert_locked(at)
    at.text_input(key="pmi_token_input").input("nope")
    at.button[0].click().run()
    _assert_locked(at)
    assert any("Wrong token" in e.value for e in at.error)
    at.text_input(key="pmi_token_input").input(TOKEN)
    at.button[0].click().run()
    assert not at.exception
    assert "metric" in _types(at) and not [t for t in at.text_input if t.label == "Access token"]


def test_open_mode_without_token_or_oidc_shows_data(run_page, seed_dumps: Path, monkeypatch) -> None:
    monkeypatch.delenv("PMI_TOKEN", raising=False)
    monkeypatch.setattr(auth, "oidc_configured", lambda: False)
    at = run_page(seed_dumps)
    assert not at.exception and at.main.dataframe


def test_oidc_login_gates_the_pages(run_page, seed_dumps: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(auth, "oidc_configured", lambda: True)
    monkeypatch.setattr(auth, "_authlib_installed", lambda: True)
    monkeypatch.setenv("PMI_DUMPS", str(seed_dumps))
    monkeypatch.setenv("PMI_TZ", "UTC")
    monkeypatch.setenv("PMI_TOKEN", TOKEN)  # OIDC wins over the token when both are configured
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert not _types(at) & DATA_TYPES and [b.label for b in at.button] == ["Log in"]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.user = {"is_logged_in": True, "email": "alice@example.com"}
    at.run()
    assert not at.exception and at.main.dataframe
    assert any(t.value == "Signed in: alice@example.com" for t in at.sidebar.text)


# ---- real browser: the gate on a deep link, and concurrent viewers (issue 8 item 6, small version of bench_load)

BROWSER_TIMEOUT_MS = 90_000
# JS run on every settled page: Markdown/HTML made from the hostile process name would show up as these elements
HOSTILE_PROBE = """() => {
  const main = document.querySelector('[data-testid="stApp"]');
  const bad = [];
  if (main.querySelector('img[src*="example.invalid"], a[href*="example.invalid"]')) bad.push('link/image');
  if (main.querySelector('.katex, mjx-container')) bad.push('math');
  for (const b of main.querySelectorAll('b, strong')) if (b.textContent.includes('bold')) bad.push('<b>');
  return bad.join(', ');
}"""


@pytest.mark.browser
def test_browser_deep_link_is_gated_until_the_token(browser, fresh_server, seed_dumps: Path) -> None:
    server = fresh_server(seed_dumps, PMI_TOKEN=TOKEN)
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(BROWSER_TIMEOUT_MS)
        page.goto(f"{server.url}/pid?pid=1")  # a deep link opened first on a fresh server
        page.wait_for_selector('input[type="password"]')
        page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')")
        assert page.locator('[data-testid="stDataFrame"], [data-testid="stMetric"]').count() == 0
        assert page.locator('[data-testid="stSidebarNav"]').count() == 0
        page.goto(f"{server.url}/level?level=1&token={TOKEN}")
        page.wait_for_selector('[data-testid="stMain"] [data-testid="stDataFrame"]')
        query = parse_qs(urlparse(page.url).query)
        assert "token" not in query and query.get("level") == ["1"]
        assert page.locator('input[type="password"]').count() == 0
    finally:
        context.close()


@pytest.mark.browser
def test_browser_three_concurrent_sessions_render_every_page(browser, tmp_path: Path) -> None:
    from test_ui_safety import write_hostile_native

    from bench import bench_load

    dumps = write_hostile_native(tmp_path / "dumps", samples=12)
    server = bench_load.start_server(dumps, tmp_path)
    try:
        urls = bench_load.page_urls(server.url)
        with bench_load.PeakRss(server) as peak:
            results = bench_load.run_sessions(urls, 3, probe_js=HOSTILE_PROBE, split=True)
        log = server.log.read_text(errors="replace")
    finally:
        server.stop()
    errors = [e for r in results for e in r.errors]
    assert not errors, errors[:5]
    assert sorted(u for r in results for u in r.times) == sorted(urls)  # each page rendered by one of the sessions
    assert "Traceback" not in log, log[-3000:]
    assert peak.peak < 1 << 30  # three viewers of a tiny recording: far below 1 GiB (the bench has the day figure)


def test_oidc_without_authlib_says_so_and_shows_no_data(seed_dumps: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(auth, "oidc_configured", lambda: True)
    monkeypatch.setattr(auth, "_authlib_installed", lambda: False)
    monkeypatch.setenv("PMI_DUMPS", str(seed_dumps))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception and not _types(at) & DATA_TYPES
    assert any("Authlib" in e.value for e in at.error) and not at.button
