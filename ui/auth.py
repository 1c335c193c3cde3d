"""Access control for a shared dashboard: Streamlit's OIDC login when `.streamlit/secrets.toml` has an `[auth]`
section, else a shared token `PMI_TOKEN`, else open (the default bind is 127.0.0.1 only).

`gate(pages)` runs in the router before any page, so deep links are gated too. The token is compared with
`hmac.compare_digest`, typed into a form or passed once as `?token=` (then dropped from the URL) and remembered in
the session. Wrong guesses are slowed per client (`GuessLimiter`: per browser session and per client address, the
first `FREE_GUESSES` are free, then each waits twice as long as the one before, up to 5 minutes; a guess made
while waiting is refused unread). `python -m ui.auth --check-share` is what `make share` runs first: it refuses to
expose the server on every interface when neither access control is configured. Streamlit is imported lazily so
the check runs anywhere.

Before access is granted a session changes nothing on the server: `install_server_guards()` (run by serve.py at
server start and by the router on every run, idempotent) makes Streamlit's runtime drop the websocket requests
`GATED_BACKMSGS` (clear every viewer's caches, file upload URLs, backend operations, git info) from a session that
has no access, and serve.py answers `/_stcore/metrics` only to `Authorization: Bearer <PMI_TOKEN>` and refuses
file uploads (the app has none; Streamlit would store them in memory for any open session).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parent.parent
TOKEN_ENV = "PMI_TOKEN"
TOKEN_PARAM = "token"
SESSION_KEY = "_pmi_authenticated"
MIN_SHARE_TOKEN_LEN = 16
_AUTH_HEADER = re.compile(r"^\s*\[\s*auth\b", re.MULTILINE)
FREE_GUESSES = 3  # wrong tokens before the back-off starts (a typo or two costs nothing)
GUESS_BASE_S = 1.0
GUESS_CAP_S = 300.0
# websocket requests a session without access may not make (each changes server state or tells about the server)
GATED_BACKMSGS = frozenset({"clear_cache", "file_urls_request", "backend_operation_request", "load_git_info"})
_LOG = logging.getLogger("pmi.auth")


class GuessLimiter:
    """Exponential back-off of wrong token guesses per client key (a session id, a client address).

    After n wrong guesses (n > FREE_GUESSES) under a key, the next guess is read only GUESS_BASE_S * 2**(n -
    FREE_GUESSES - 1) seconds later, at most GUESS_CAP_S; a right guess clears the keys. Thread-safe; keeps at most
    `max_keys` keys (the oldest dropped)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        """No key has guessed yet."""
        self.clock = clock
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._state: dict[Hashable, tuple[int, float]] = {}  # key -> (wrong guesses, not before)

    def wait_s(self, keys: Iterable[Hashable]) -> float:
        """Seconds before a guess from a client with these keys is read (0 when it may guess now)."""
        now = self.clock()
        with self._lock:
            return max([self._state.get(k, (0, now))[1] - now for k in keys] + [0.0])

    def failed(self, keys: Iterable[Hashable]) -> None:
        """Count one wrong guess under each key and set when the next one may come."""
        now = self.clock()
        with self._lock:
            for k in keys:
                n = self._state.pop(k, (0, now))[0] + 1
                delay = 0.0 if n <= FREE_GUESSES else min(GUESS_CAP_S, GUESS_BASE_S * 2 ** (n - FREE_GUESSES - 1))
                self._state[k] = (n, now + delay)
            while len(self._state) > self.max_keys:
                del self._state[next(iter(self._state))]

    def succeeded(self, keys: Iterable[Hashable]) -> None:
        """A right guess: forget these keys."""
        with self._lock:
            for k in keys:
                self._state.pop(k, None)


GUESSES = GuessLimiter()  # one per server process: every session and client address shares it


def token_matches(given: str | None, expected: str | None) -> bool:
    """(typed token, configured token) -> True only when both are non-empty and equal (constant-time compare)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def secrets_paths(app_dir: Path = APP_DIR, home: Path | None = None) -> list[Path]:
    """The secrets.toml files Streamlit reads: ~/.streamlit/secrets.toml and <app dir>/.streamlit/secrets.toml."""
    home = home if home is not None else Path(os.environ.get("HOME", str(Path.home())))
    return [home / ".streamlit" / "secrets.toml", app_dir / ".streamlit" / "secrets.toml"]


def auth_section_in(text: str) -> bool:
    """secrets.toml text -> True when it has an `[auth]` (or `[auth.<provider>]`) table."""
    try:
        import tomllib

        return isinstance(tomllib.loads(text).get("auth"), dict)
    except Exception:  # unparsable TOML or no tomllib: fall back to the header line
        return bool(_AUTH_HEADER.search(text))


def oidc_configured_in(paths: Sequence[Path]) -> bool:
    """secrets.toml paths -> True when any existing one has an `[auth]` section."""
    for path in paths:
        try:
            if path.is_file() and auth_section_in(path.read_text(encoding="utf-8", errors="replace")):
                return True
        except OSError:
            continue
    return False


def oidc_configured() -> bool:
    """True when Streamlit's OIDC login is configured for this server (an `[auth]` section in its secrets)."""
    return oidc_configured_in(secrets_paths())


def configured_token(env: Mapping[str, str] | None = None) -> str | None:
    """PMI_TOKEN from the environment (surrounding blanks stripped), None when unset or blank."""
    value = (env if env is not None else os.environ).get(TOKEN_ENV, "").strip()
    return value or None


def mode(env: Mapping[str, str] | None = None, oidc: bool | None = None) -> str:
    """Access mode of this server: "oidc" (an [auth] section), "token" (PMI_TOKEN set) or "open"."""
    if oidc if oidc is not None else oidc_configured():
        return "oidc"
    return "token" if configured_token(env) else "open"


def share_problems(env: Mapping[str, str], paths: Sequence[Path], authlib: bool) -> list[str]:
    """(environment, secrets paths, Authlib importable) -> reasons `make share` must refuse; empty = may share."""
    if oidc_configured_in(paths):
        if not authlib:
            return ["An [auth] section is configured but Authlib is not installed: pip install 'Authlib>=1.3.2'."]
        return []
    token = configured_token(env)
    if token is None:
        return [
            "Refusing to share: no access control configured.",
            "Set PMI_TOKEN (e.g. PMI_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))') "
            "make share) or add an [auth] section (OIDC) to .streamlit/secrets.toml. See README, 'Sharing'.",
        ]
    if len(token) < MIN_SHARE_TOKEN_LEN:
        return [f"Refusing to share: PMI_TOKEN is shorter than {MIN_SHARE_TOKEN_LEN} characters."]
    return []


def _authlib_installed() -> bool:
    try:
        import authlib  # noqa: F401
    except ImportError:
        return False
    return True


def check_share_main(argv: Sequence[str] | None = None) -> int:
    """`python -m ui.auth --check-share`: print why sharing is refused (exit 2) or the mode used (exit 0)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["--check-share"]:
        print("usage: python -m ui.auth --check-share", file=sys.stderr)
        return 2
    problems = share_problems(os.environ, secrets_paths(), _authlib_installed())
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return 2
    how = "OIDC login ([auth] in secrets.toml)" if oidc_configured() else "the PMI_TOKEN token"
    print(f"Sharing on every interface; access requires {how}.", file=sys.stderr)
    return 0


# ---- the gate (Streamlit) ----


def _query_token(st: Any) -> str | None:
    raw = st.query_params.get_all(TOKEN_PARAM)
    return raw[-1] if raw else None


def _client_keys(st: Any) -> list[Hashable]:
    """The keys a guess is counted under: this browser session, and the client's address when known."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    keys: list[Hashable] = [("session", ctx.session_id if ctx is not None else "")]
    ip = getattr(st.context, "ip_address", None)
    if ip:
        keys.append(("ip", ip))
    return keys


def _guess(st: Any, given: str | None, expected: str) -> str | None:
    """One token guess of this client -> None when right (access granted), else the error to show."""
    keys = _client_keys(st)
    wait = GUESSES.wait_s(keys)
    if wait > 0:
        return f"Too many wrong tokens from this browser: try again in {wait:.0f} s."
    if token_matches(given, expected):
        GUESSES.succeeded(keys)
        st.session_state[SESSION_KEY] = True
        return None
    GUESSES.failed(keys)
    return ""


def _token_gate(st: Any, expected: str) -> bool:
    """Token mode: True when this session may see data; otherwise draws the token form and returns False."""
    if st.session_state.get(SESSION_KEY) is True:
        if TOKEN_PARAM in st.query_params:
            del st.query_params[TOKEN_PARAM]
        return True
    error = None
    if TOKEN_PARAM in st.query_params:
        given = _query_token(st)
        del st.query_params[TOKEN_PARAM]  # used once, never left in the address bar or a copied link
        error = _guess(st, given, expected)
        if error is None:
            return True
        error = error or "The token in the link is not valid."
    st.title("PID Memory Inspector")
    st.info("This dashboard is shared with access control: enter the access token.", icon=":material/lock:")
    with st.form("pmi_token_form", clear_on_submit=True):
        typed = st.text_input("Access token", type="password", key="pmi_token_input")
        submitted = st.form_submit_button("Open the dashboard")
    if submitted:
        error = _guess(st, typed, expected)
        if error is None:
            st.rerun()
        error = error or "Wrong token."
    if error:
        st.error(error, icon=":material/block:")
    return False


def _oidc_gate(st: Any) -> bool:
    """OIDC mode: True when the viewer is logged in (logout button in the sidebar); else a login button, False."""
    if st.user.get("is_logged_in"):
        who = st.user.get("email") or st.user.get("name") or "logged in"
        with st.sidebar:
            st.text(f"Signed in: {who}")
            if st.button("Log out", key="pmi_logout"):
                st.logout()
        return True
    st.title("PID Memory Inspector")
    st.info("This dashboard is shared with access control: sign in to continue.", icon=":material/lock:")
    if not _authlib_installed():
        st.error("Login is configured ([auth]) but Authlib is not installed on the server.", icon=":material/error:")
        return False
    if st.button("Log in", type="primary", key="pmi_login"):
        st.login()
    return False


def session_granted(app_session: Any) -> bool:
    """A Streamlit AppSession -> True when its viewer has access (open mode, the token given, or logged in)."""
    how = mode()
    if how == "open":
        return True
    if how == "oidc":
        try:
            return bool(app_session._user_info.get("is_logged_in"))
        except Exception:
            return False
    try:
        return app_session._session_state[SESSION_KEY] is True
    except Exception:  # KeyError: never granted in this session
        return False


def install_server_guards() -> None:
    """Make this process's Streamlit runtime drop GATED_BACKMSGS from sessions without access (logged once per
    session and kind); idempotent. Wraps AppSession.handle_backmsg, the runtime's one entry for websocket
    requests."""
    from streamlit.runtime.app_session import AppSession

    if getattr(AppSession.handle_backmsg, "_pmi_guarded", False):
        return
    original = AppSession.handle_backmsg

    def handle_backmsg(self: Any, msg: Any) -> None:
        kind = msg.WhichOneof("type")
        if kind in GATED_BACKMSGS and not session_granted(self):
            _LOG.warning("refused %s from a session without access (%s)", kind, str(getattr(self, "id", ""))[:8])
            return
        original(self, msg)

    handle_backmsg._pmi_guarded = True  # type: ignore[attr-defined]
    AppSession.handle_backmsg = handle_backmsg  # type: ignore[method-assign]


PRIVATE_PATH_SUFFIXES = ("/_stcore/metrics",)
# the app has no file uploader: Streamlit's upload endpoint would let any open session (no token needed, the XSRF
# cookie is the client's own) store files of up to server.maxUploadSize in the server's memory
REFUSED_PATH_PART = "/_stcore/upload_file"


def metrics_allowed(authorization: str | None, env: Mapping[str, str] | None = None) -> bool:
    """(Authorization header, environment) -> True only for "Bearer <PMI_TOKEN>" when a token is configured."""
    expected = configured_token(env)
    if not authorization or expected is None or not authorization.startswith("Bearer "):
        return False
    return token_matches(authorization.removeprefix("Bearer ").strip(), expected)


class PrivateEndpoints:
    """ASGI middleware (serve.py): Streamlit's `/_stcore/metrics` answers 404 unless the request carries
    `Authorization: Bearer <PMI_TOKEN>` (no token configured: always 404), `/_stcore/upload_file/...` always
    answers 404 (no uploads); everything else passes through."""

    def __init__(self, app: Any) -> None:
        """Wrap the ASGI `app`."""
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Refuse private paths without the bearer token; pass every other request on."""
        path = scope.get("path", "").rstrip("/")
        if scope.get("type") == "http":
            refused = REFUSED_PATH_PART in path
            if not refused and path.endswith(PRIVATE_PATH_SUFFIXES):
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
                refused = not metrics_allowed(headers.get("authorization"))
            if refused:
                from starlette.responses import PlainTextResponse

                await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def gate(pages: Callable[[], list[Any]], env: Mapping[str, str] | None = None) -> None:
    """Router hook: let the run continue when access is granted (or open mode); else draw the gate and st.stop()."""
    import streamlit as st

    how = mode(env)
    if how == "open":
        return
    granted = _oidc_gate(st) if how == "oidc" else _token_gate(st, configured_token(env) or "")
    if granted:
        return
    st.navigation(pages(), position="hidden")  # keeps the requested page (deep link) without listing pages
    st.stop()


if __name__ == "__main__":
    sys.exit(check_share_main())
