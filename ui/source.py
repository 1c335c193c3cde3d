"""Which recording a viewer may look at: only folders the server lists under its configured roots.

Roots: `PMI_DUMPS_ROOT` (one or more folders joined by `:`), default the repo's `dumps/` and `sample/`. A source is
named `<root name>/<path inside the root>` ("dumps", "sample/dumps"); the URL carries that name as `source` and the
sidebar offers a selectbox of the listed names — there is no free path entry. A name with `..`, an absolute path or a
symlink that leads out of its root is rejected with a message. Without `source` the server's own choice applies
(`PMI_DUMPS`, `-- --dumps DIR`, then dumps/ or the shipped sample: `ui.data.resolve_source`).

Only directories are listed, symlinks are resolved and must stay inside their root, and a folder that cannot be
read (permissions, a symlink loop) is skipped. Viewers never see server paths: `viewer_text` turns every absolute
path in a notice or description into `<root name>/<path inside the root>` (outside the roots: `…/<last part>`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from memlib.display import visible
from ui import data

ROOT_ENV = "PMI_DUMPS_ROOT"
PARAM = "source"
SESSION_KEY = "_pmi_source"
MAX_DEPTH = 3  # folders below a root that are searched for recordings
MAX_SOURCES = 200
MAX_NAME_LEN = 300
SKIP_DIRS = frozenset({"time", "__pycache__", "node_modules"})
# an absolute path inside a text: starts with "/" not preceded by a word, dot, slash or colon (so URLs and relative
# names are left alone) and runs to a blank, quote, bracket, comma, semicolon or colon
_ABS_PATH_RE = re.compile(r"(?<![\w.~\-/:])/[^\s'\"`,;:()\[\]{}<>|]*")


@dataclass(frozen=True)
class Root:
    """A configured root: the `name` its sources start with and its resolved `path`."""

    name: str
    path: Path


@dataclass(frozen=True)
class Choice:
    """Result of resolving the URL's `source`: the DataSource to show, its name (None = server default), an error."""

    source: data.DataSource
    name: str | None
    error: str | None = None


def configured_roots(env: Mapping[str, str], app_dir: Path = data.APP_DIR) -> list[Root]:
    """Environment + app folder -> the roots (PMI_DUMPS_ROOT entries, else dumps/ and sample/), unique names."""
    raw = env.get(ROOT_ENV, "").strip()
    paths = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()] if raw else []
    if not paths:
        paths = [app_dir / "dumps", app_dir / "sample"]
    roots: list[Root] = []
    seen: set[str] = set()
    for p in paths:
        p = p if p.is_absolute() else Path.cwd() / p
        name = p.name or "root"
        base, n = name, 2
        while name in seen:
            name, n = f"{base}-{n}", n + 1
        seen.add(name)
        roots.append(Root(name, p.resolve()))
    return roots


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _is_dir(entry: os.DirEntry) -> bool:
    """A directory entry -> True for a directory (symlinks followed); False for files, FIFOs, sockets, devices,
    dangling links and symlink loops (DirEntry.is_dir raises ELOOP for those)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def viewer_text(text: object, roots: Sequence[Root] | None = None) -> str:
    """A notice or description for viewers -> the same text with each absolute server path shown as
    `<root name>/<path inside the root>` (a path outside every root: `…/<last part>`) and control or bidi
    characters made visible. `roots` default: the configured roots (PMI_DUMPS_ROOT)."""
    roots = configured_roots(os.environ) if roots is None else roots
    prefixes = sorted(((r.path.as_posix().rstrip("/"), r.name) for r in roots), key=lambda p: -len(p[0]))

    def shown(match: re.Match[str]) -> str:
        path = match.group(0)
        for prefix, name in prefixes:
            if prefix and (path == prefix or path.startswith(prefix + "/")):
                return name + path[len(prefix) :]
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return f"…/{last}" if last else "…"

    return visible(_ABS_PATH_RE.sub(shown, str(text)))


def list_sources(roots: list[Root]) -> list[str]:
    """Roots -> sorted names of the folders holding a recording (the root itself or up to MAX_DEPTH levels below).

    Folders reached through a symlink that leads out of the root, hidden folders, seed `time/` folders and folders
    that cannot be read (permissions, symlink loops) are skipped.
    """
    out: list[str] = []
    for root in roots:
        if not root.path.is_dir():
            continue
        todo: list[tuple[Path, int]] = [(root.path, 0)]
        while todo and len(out) < MAX_SOURCES:
            folder, depth = todo.pop()
            try:
                real = folder.resolve(strict=True)
                if not _inside(real, root.path) or not real.is_dir():
                    continue
                holds = data.holds_data(real)
            except (OSError, RuntimeError):  # unreadable, vanished, or a symlink loop: skipped
                continue
            if holds:
                rel = folder.relative_to(root.path).as_posix()
                out.append(root.name if rel == "." else f"{root.name}/{rel}")
            if depth >= MAX_DEPTH:
                continue
            try:
                with os.scandir(folder) as it:
                    entries = [e for e in it if not e.name.startswith(".") and e.name not in SKIP_DIRS]
            except OSError:
                continue
            todo += [(folder / e.name, depth + 1) for e in entries if _is_dir(e)]
    return sorted(out)


def check_name(name: str, roots: list[Root]) -> tuple[Path | None, str | None]:
    """A `source` name from the URL -> (folder, None) when it is a listed recording, else (None, why it is rejected)."""
    if not name or len(name) > MAX_NAME_LEN or "\x00" in name:
        return None, "The data source name is empty, too long or contains a NUL byte."
    if name.startswith(("/", "\\", "~")) or (len(name) > 1 and name[1] == ":"):
        return None, "Absolute paths are not accepted as a data source; pick one of the listed recordings."
    raw_parts = name.replace("\\", "/").split("/")
    if any(p in ("..", ".") for p in raw_parts) or "\\" in name:
        return None, "'..' and '.' are not accepted in a data source name; pick one of the listed recordings."
    parts = PurePosixPath(name).parts
    by_name = {r.name: r for r in roots}
    root = by_name.get(parts[0])
    if root is None:
        return None, "Unknown data source: it is not under a folder this server lists."
    folder = root.path.joinpath(*parts[1:])
    try:
        real = folder.resolve(strict=True)
    except (OSError, RuntimeError):
        return None, "Unknown data source: that folder does not exist."
    if not _inside(real, root.path):
        return None, "Rejected: that data source is a link leading outside the folders this server lists."
    if name not in list_sources([root]):
        return None, "Unknown data source: that folder holds no recording this server lists."
    return real, None


def choose(name: str | None, default: data.DataSource, roots: list[Root]) -> Choice:
    """(URL `source` or None, the server's DataSource, roots) -> Choice; a rejected name falls back to the default."""
    if name is None or name == "":
        return Choice(default, None)
    folder, error = check_name(name, roots)
    if folder is None:
        return Choice(default, None, error)
    return Choice(data.DataSource(folder, "chosen", name, default.tz), name)


# ---- Streamlit: the URL parameter and the sidebar selectbox ----


def current_choice() -> Choice:
    """This run's Choice from the URL's `source` (restored from the session when a view change dropped it)."""
    import streamlit as st

    roots = configured_roots(os.environ)
    default = data.server_source()
    raw = st.query_params.get_all(PARAM)
    if raw:
        name = raw[-1]
    else:  # a widget or page switch rewrote the URL without `source`: the session keeps the viewer's choice
        name = st.session_state.get(SESSION_KEY)
        if name:
            st.query_params[PARAM] = name
    choice = choose(name, default, roots)
    if choice.error is not None:
        if PARAM in st.query_params:
            del st.query_params[PARAM]
        st.session_state.pop(SESSION_KEY, None)
    else:
        st.session_state[SESSION_KEY] = choice.name
    return choice


def _picked() -> None:
    import streamlit as st

    name = st.session_state.get("w_source")
    if not name or name == DEFAULT_LABEL:
        st.session_state[SESSION_KEY] = None
        if PARAM in st.query_params:
            del st.query_params[PARAM]
    else:
        st.session_state[SESSION_KEY] = name
        st.query_params[PARAM] = name


DEFAULT_LABEL = "(server default)"


def sidebar_chooser(choice: Choice) -> None:
    """Draw the sidebar selectbox of listed recordings (only when there is more than one thing to choose)."""
    import streamlit as st

    names = list_sources(configured_roots(os.environ))
    if choice.error is not None:
        st.error("The data source in the URL was rejected; showing the default.", icon=":material/block:")
        st.text(choice.error)
    if not names:
        return
    options = [DEFAULT_LABEL, *names]
    st.session_state["w_source"] = choice.name if choice.name in names else DEFAULT_LABEL
    st.sidebar.selectbox(
        "Recording",
        options=options,
        key="w_source",
        format_func=visible,  # folder names are shown with control and bidi characters as escapes
        on_change=_picked,
        help="Recordings the server lists under its configured folders (PMI_DUMPS_ROOT); "
        "the server default is PMI_DUMPS, --dumps, dumps/ or the shipped sample.",
    )
