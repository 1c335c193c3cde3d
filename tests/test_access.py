"""Access before the token: nothing changes server state (a real websocket client against a real serve.py
server), token guesses are slowed per client, and Streamlit's metrics endpoint is not public."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.test_sharing import TOKEN, gated  # noqa: F401  (the AppTest factory behind the token)
from ui import auth

# ---- the guess limiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_guesses_back_off_exponentially_per_key() -> None:
    clock = Clock()
    lim = auth.GuessLimiter(clock=clock)
    a, b = [("session", "a"), ("ip", "10.0.0.1")], [("session", "b"), ("ip", "10.0.0.2")]
    waits = []
    for _ in range(auth.FREE_GUESSES + 6):
        assert lim.wait_s(a) == 0
        lim.failed(a)
        waits.append(lim.wait_s(a))
        clock.now += waits[-1]
    assert waits == [0.0] * auth.FREE_GUESSES + [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert lim.wait_s(b) == 0  # another client is not slowed
    assert lim.wait_s([("session", "new tab"), ("ip", "10.0.0.1")]) == 0  # the address waited out its delay
    lim.failed(a)
    assert lim.wait_s([("session", "new tab"), ("ip", "10.0.0.1")]) == 64.0  # a new tab from the same address waits
    lim.succeeded(a)
    assert lim.wait_s(a) == 0


def test_the_wait_is_capped() -> None:
    clock = Clock()
    lim = auth.GuessLimiter(clock=clock)
    for _ in range(40):
        lim.failed(["k"])
    assert lim.wait_s(["k"]) == auth.GUESS_CAP_S


@pytest.fixture
def gated_clock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """(AppTest of app.py behind TOKEN, the limiter's clock moved by hand)."""
    clock = Clock()
    monkeypatch.setattr(auth, "GUESSES", auth.GuessLimiter(clock=clock))
    return request.getfixturevalue("gated")(), clock


def _submit(at, token: str) -> list[str]:
    at.text_input(key="pmi_token_input").input(token)
    at.button[0].click().run()
    return [e.value for e in at.error]


def test_the_form_slows_wrong_guesses_and_refuses_unread_while_waiting(gated_clock) -> None:
    """After the free guesses a wrong token costs a wait; during it even the right token is not read."""
    at, clock = gated_clock
    for _ in range(auth.FREE_GUESSES + 1):
        assert _submit(at, "wrong-guess") == ["Wrong token."]
    assert any("Too many wrong tokens" in e and "1 s" in e for e in _submit(at, TOKEN))
    assert [t.label for t in at.text_input] == ["Access token"]  # still locked
    clock.now += 1.0
    assert _submit(at, "wrong-again") == ["Wrong token."]
    assert any("2 s" in e for e in _submit(at, TOKEN))
    clock.now += 2.0
    assert _submit(at, TOKEN) == [] and not at.exception
    assert not [t for t in at.text_input if t.label == "Access token"]


def test_a_token_in_the_link_is_a_guess_too(gated_clock) -> None:
    at, _ = gated_clock
    for _ in range(auth.FREE_GUESSES + 1):
        _submit(at, "wrong-guess")
    at.query_params["token"] = TOKEN
    at.run()
    assert any("Too many wrong tokens" in e.value for e in at.error)
    assert "token" not in at.query_params


# ---- a real server: websocket requests before the token, /_stcore/metrics


def _http(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _misses(server_url: str) -> int:
    """Cache misses of the app's cached functions so far (from the metrics, read with the token)."""
    status, text = _http(f"{server_url}/_stcore/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    found = re.findall(r'^cache_lookups_total\{cache="ui\.[^"]*",[^}]*result="miss"\} (\d+)', text, re.MULTILINE)
    assert found, text[:500]
    return sum(map(int, found))


async def _session(server_url: str, query: str, clear: bool) -> None:
    """One websocket session like a browser tab's: run the app with `query`, then optionally send clear_cache."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    uri = server_url.replace("http://", "ws://") + "/_stcore/stream"
    async with websockets.connect(uri, subprotocols=["streamlit"], max_size=None) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_script_hash = ""
        await ws.send(msg.SerializeToString())
        deadline = time.monotonic() + 90
        while True:
            fwd = ForwardMsg()
            fwd.ParseFromString(await asyncio.wait_for(ws.recv(), max(1.0, deadline - time.monotonic())))
            if fwd.WhichOneof("type") == "script_finished":
                break
        if clear:
            msg = BackMsg()
            msg.clear_cache = True
            await ws.send(msg.SerializeToString())
            await asyncio.sleep(1.0)  # handled on the server's event loop; the next request observes it


@pytest.mark.slow
def test_clear_cache_before_the_token_clears_nothing(fresh_server, seed_dumps: Path) -> None:
    """A websocket client without the token sends clear_cache (the toolbar's "Clear caches", which clears every
    viewer's caches): the next viewer's run still hits the caches. The same request from a session that gave
    the token clears them (so the observation can see a clear)."""
    server = fresh_server(seed_dumps, PMI_TOKEN=TOKEN)
    with_token = f"token={TOKEN}"
    asyncio.run(_session(server.url, with_token, clear=False))
    first = _misses(server.url)
    asyncio.run(_session(server.url, "", clear=True))  # no token: refused
    asyncio.run(_session(server.url, with_token, clear=False))
    assert _misses(server.url) == first, "the caches were cleared by a session without access"
    assert "refused clear_cache from a session without access" in server.log_text()
    asyncio.run(_session(server.url, with_token, clear=True))  # with the token: allowed
    asyncio.run(_session(server.url, with_token, clear=False))
    assert _misses(server.url) > first


async def _upload_from_an_open_session(server_url: str, size: int) -> int:
    """Open a session without the token, then PUT a `size`-byte file to Streamlit's upload endpoint with a
    self-made XSRF token (header and cookie agree: a scripted client sets both) -> the HTTP status."""
    import uuid

    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string

    uri = server_url.replace("http://", "ws://") + "/_stcore/stream"
    async with websockets.connect(uri, subprotocols=["streamlit"], max_size=None) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        await ws.send(msg.SerializeToString())
        session_id = ""
        while not session_id:
            fwd = ForwardMsg()
            fwd.ParseFromString(await asyncio.wait_for(ws.recv(), 60))
            if fwd.WhichOneof("type") == "new_session":
                session_id = fwd.new_session.initialize.session_id
        xsrf = generate_xsrf_token_string()
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n\r\n'
        body = head + b"A" * size + b"\r\n--b--\r\n"
        headers = {
            "Content-Type": "multipart/form-data; boundary=b",
            "X-Xsrftoken": xsrf,
            "Cookie": f"_streamlit_xsrf={xsrf}",
        }
        req = urllib.request.Request(
            f"{server_url}/_stcore/upload_file/{session_id}/{uuid.uuid4()}", data=body, method="PUT", headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code


@pytest.mark.slow
def test_no_upload_into_server_memory_before_the_token(fresh_server, seed_dumps: Path) -> None:
    """Streamlit stores an uploaded file in memory for any open session; the app has no uploader, so serve.py
    refuses the endpoint (it answered 204 to a session that never gave the token)."""
    server = fresh_server(seed_dumps, PMI_TOKEN=TOKEN)
    assert asyncio.run(_upload_from_an_open_session(server.url, 1_000_000)) == 404


@pytest.mark.slow
def test_metrics_are_not_public(fresh_server, seed_dumps: Path) -> None:
    server = fresh_server(seed_dumps, PMI_TOKEN=TOKEN)
    assert _http(f"{server.url}/_stcore/metrics")[0] == 404
    assert _http(f"{server.url}/_stcore/metrics/")[0] == 404
    assert _http(f"{server.url}/_stcore/metrics", {"Authorization": "Bearer wrong"})[0] == 404
    assert _http(f"{server.url}/_stcore/metrics", {"Authorization": TOKEN})[0] == 404
    status, text = _http(f"{server.url}/_stcore/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and "active_sessions" in text
    assert _http(f"{server.url}/_stcore/health")[0] == 200


@pytest.mark.slow
def test_metrics_without_a_token_configured_are_refused(fresh_server, seed_dumps: Path) -> None:
    server = fresh_server(seed_dumps)
    assert _http(f"{server.url}/_stcore/metrics")[0] == 404
    assert _http(f"{server.url}/_stcore/metrics", {"Authorization": "Bearer "})[0] == 404


def test_metrics_allowed_only_with_the_bearer_token() -> None:
    env = {"PMI_TOKEN": TOKEN}
    assert auth.metrics_allowed(f"Bearer {TOKEN}", env)
    for header in (None, "", TOKEN, f"bearer {TOKEN}", f"Bearer {TOKEN}x", "Bearer "):
        assert not auth.metrics_allowed(header, env), header
    assert not auth.metrics_allowed("Bearer ", {})
