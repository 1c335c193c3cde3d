"""Access control for a shared dashboard: Streamlit's OIDC login when `.streamlit/secrets.toml` has an `[auth]`
section, else a shared token `PMI_TOKEN`, else open (the default bind is 127.0.0.1 only).

`gate(pages)` runs in the router before any page, so deep links are gated too. The token is compared with
`hmac.compare_digest`, typed into a form or passed once as `?token=` (then dropped from the URL) and remembered in
the session. `python -m ui.auth --check-share` is what `make share` runs first: it refuses to expose the server on
every interface when neither access control is configured. Streamlit is imported lazily so the check runs anywhere.
"""

from __future__ import annotations

import hmac
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parent.parent
TOKEN_ENV = "PMI_TOKEN"
TOKEN_PARAM = "token"
SESSION_KEY = "_pmi_authenticated"
MIN_SHARE_TOKEN_LEN = 16
_AUTH_HEADER = re.compile(r"^\s*\[\s*auth\b", re.MULTILINE)


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
        if token_matches(given, expected):
            st.session_state[SESSION_KEY] = True
            return True
        error = "The token in the link is not valid."
    st.title("PID Memory Inspector")
    st.info("This dashboard is shared with access control: enter the access token.", icon=":material/lock:")
    with st.form("pmi_token_form", clear_on_submit=True):
        typed = st.text_input("Access token", type="password", key="pmi_token_input")
        submitted = st.form_submit_button("Open the dashboard")
    if submitted:
        if token_matches(typed, expected):
            st.session_state[SESSION_KEY] = True
            st.rerun()
        error = "Wrong token."
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
