"""Which recording the dashboard shows, the opened recording, and the one cache of memlib.query answers.

Order: `PMI_DUMPS=DIR` or `streamlit run app.py -- --dumps DIR`, else `dumps/` when it holds data, else the shipped
`sample/dumps/`. Nothing holds a recording in memory: pages ask memlib.query for what they show through `ask()`,
whose answers are cached (st.cache_data, capped) on (folder, zone, a cheap fingerprint of its files, the question).
The fingerprint is every folder's mtime plus the active segments' sizes: a collector's new sample or a closed
segment changes it, an unchanged recording costs one walk over its folders.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from memlib import source as memsource

APP_DIR = Path(__file__).resolve().parent.parent
MAX_ANSWERS = 400  # cached query answers (all pages, all viewers); each is at most one snapshot or ~2 000 chart rows
T = TypeVar("T")


@dataclass(frozen=True)
class DataSource:
    """Where the data comes from: `path` (None when nothing exists), `origin` and a human sentence about it."""

    path: Path | None
    origin: str  # "env" | "arg" | "dumps" | "sample" | "chosen" | "none"
    description: str
    tz: str | None = None

    @property
    def is_sample(self) -> bool:
        """True when the app shows the shipped sample recording."""
        return self.origin == "sample"


def _arg_dumps(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--dumps" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--dumps="):
            return arg.split("=", 1)[1]
    return None


def holds_data(path: Path) -> bool:
    """True when `path` holds a recording: the store's `procs/` tables, segments (`seg-*`) or seed CSVs."""
    if not path.is_dir():
        return False
    if (path / "procs").is_dir() or any(path.glob("seg-*")):
        return True
    return any((path / "time").glob("process_mem_*.csv"))


def resolve_source(argv: Sequence[str], env: Mapping[str, str], app_dir: Path = APP_DIR) -> DataSource:
    """argv (after `--`), environment and app folder -> the DataSource the app shows."""
    tz = env.get("PMI_TZ") or None
    explicit = env.get("PMI_DUMPS") or None
    origin = "env"
    if explicit is None:
        explicit = _arg_dumps(argv)
        origin = "arg"
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        how = "PMI_DUMPS" if origin == "env" else "--dumps"
        if not path.is_dir():
            return DataSource(None, "none", f"The dumps folder {path} (from {how}) does not exist.", tz)
        return DataSource(path, origin, f"{path} (from {how})", tz)
    dumps = app_dir / "dumps"
    if holds_data(dumps):
        return DataSource(dumps, "dumps", f"{dumps}", tz)
    sample = app_dir / "sample" / "dumps"
    if holds_data(sample):
        return DataSource(sample, "sample", f"the shipped sample recording ({sample}): dumps/ holds no data yet", tz)
    return DataSource(None, "none", "No data: dumps/ is empty and the shipped sample is missing.", tz)


def server_source() -> DataSource:
    """The DataSource for this server process (sys.argv after `--`, os.environ), before any viewer choice."""
    return resolve_source(sys.argv[1:], os.environ)


def fingerprint(path: Path, host: str | None = None) -> str:
    """A folder -> a short digest of every folder's mtime below it and every active segment's size and mtime; with
    `host` (a store opened for that host), only that host's: other hosts' partition folders (``host=…``) and active
    segments are left out, and so is the root's own mtime (which any host's active segment changes).

    Segments are published by rename and CSVs appear as new files, so any new data changes a folder's mtime; the
    active segment (`*.current`) grows in place, so its size counts too."""
    parts: list[str] = []
    todo = [path]
    mine = None if host is None else f"host={host}"
    while todo:
        folder = todo.pop()
        try:
            if mine is None or folder != path:
                parts.append(f"{folder}:{folder.stat().st_mtime_ns}")
            with os.scandir(folder) as it:
                for entry in it:
                    if mine is not None and entry.name.startswith("host=") and entry.name != mine:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(Path(entry.path))
                    elif entry.name.endswith(".current"):
                        if host is not None and not entry.name.endswith(f"-{host}.current"):
                            continue
                        s = entry.stat()
                        parts.append(f"{entry.name}:{s.st_size}:{s.st_mtime_ns}")
        except OSError:
            continue
    return hashlib.blake2b("\n".join(sorted(parts)).encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Loaded:
    """An opened recording (`rec`, a memlib.source Recording; `rec.scope` the host it describes, None for every
    host) and the cache token of its current files (folder, zone, scope, fingerprint)."""

    source: DataSource
    rec: Any
    token: tuple


@st.cache_resource(max_entries=4, show_spinner="Opening the recording…")
def _open(path: str, tz: str | None, host: str | None, fp: str) -> Any:
    """memlib.source.open_recording, once per files' state (old layouts and seed CSVs are converted here, once)."""
    return memsource.open_recording(Path(path), tz, host=host)


def open_current(source: DataSource, host: str | None = None, whole: bool = False) -> Loaded | None:
    """DataSource -> its opened recording and cache token; None without a folder.

    A store of several hosts is opened for one host (`host` when it is one of them, else the first), so a host's
    pages cost what its own store would; `whole`: every host (the Fleet page)."""
    if source.path is None:
        return None
    hosts = [] if whole else memsource.partition_hosts(source.path)
    scope = (host if host in hosts else hosts[0]) if len(hosts) > 1 else None
    fp = fingerprint(source.path, scope)
    rec = _open(str(source.path), source.tz, scope, fp)
    return Loaded(source, rec, (str(source.path), source.tz, rec.scope, fp))


@st.cache_data(max_entries=MAX_ANSWERS, show_spinner=False)
def _answer(name: str, token: tuple, args: tuple, kwargs: tuple, _fn: Callable[..., Any], _rec: Any) -> Any:
    return _fn(_rec, *args, **dict(kwargs))


def ask(loaded: Loaded, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A memlib.query function `fn(rec, *args, **kwargs)` -> its answer, cached on (recording token, fn, arguments)."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    return _answer(name, loaded.token, args, tuple(sorted(kwargs.items())), fn, loaded.rec)


@st.cache_resource(max_entries=32, show_spinner=False)
def figure(kind: str, token: tuple, key: tuple, _build: Callable[[], Any]) -> Any:
    """A Plotly figure built once per (kind, recording token, key) by `_build()` and shared (never mutate it)."""
    return _build()
