"""Where the store's files live and how to list them safely (docs/store.md, "Layout").

``<root>/<table>/host=<host>/date=<YYYY-MM-DD>/seg-<YYYYmmddTHHMMSS.fff>Z.parquet`` for closed segments,
``<root>/seg-<stamp>Z-<host>.current`` for active ones. Listing reads only regular files inside the root: a symlink
is resolved and kept only when its target is a regular file (or directory) inside the root; loops, dangling links,
links leaving the root and special files (fifos, sockets, devices) are skipped with a notice naming them relative to
the root. Names starting with ``.`` or ``_`` and ``*.tmp`` are not data and are skipped silently.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from store.schema import TABLES, Table

TMP_SUFFIX = ".tmp"
DAMAGED_SUFFIX = ".damaged"
CURRENT_RE = re.compile(r"^seg-(\d{8}T\d{6}\.\d{3})Z-(.+)\.current$")
PARQUET_RE = re.compile(r"^seg-(\d{8}T\d{6}\.\d{3})Z(?:-\d+)?\.parquet$")
OLD_RE = re.compile(r"^seg-(\d{8}T\d{6}\.\d{3})Z-(.+?)\.(procs|system)\.parquet$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def safe_host(host: str) -> str:
    """Host name made safe for a file and directory name: anything outside [A-Za-z0-9._-] becomes '_' ('' and names
    made of dots only -> 'unknown')."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", host)
    return "unknown" if not cleaned.strip(".") else cleaned


def utc(ts: object) -> pd.Timestamp:
    """A time (pd.Timestamp, datetime, ns int, text; naive = UTC) -> tz-aware UTC pd.Timestamp."""
    t = pd.Timestamp(ts)  # type: ignore[arg-type]  # any of the kinds above; pandas raises on others
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def stamp(ts: object) -> str:
    """A time -> the stamp segment names carry ('20260101T000000.000', UTC, milliseconds)."""
    t = utc(ts)
    return t.strftime("%Y%m%dT%H%M%S.") + f"{t.microsecond // 1000:03d}"


def stamp_time(text: str) -> pd.Timestamp | None:
    """A stamp ('20260101T000000.000...') -> its UTC time, None when malformed."""
    try:
        return pd.Timestamp(datetime.strptime(text[:19], "%Y%m%dT%H%M%S.%f"), tz="UTC")
    except ValueError:
        return None


def partition_dir(root: Path, table: Table, host: str, day: date | str) -> Path:
    """root/<table>/host=<safe host>/date=<YYYY-MM-DD>."""
    return Path(root) / table / f"host={safe_host(host)}" / f"date={day}"


def current_name(stamp_text: str, host: str) -> str:
    """('20260101T000000.000', 'h') -> 'seg-20260101T000000.000Z-h.current'."""
    return f"seg-{stamp_text}Z-{safe_host(host)}.current"


def is_skipped_name(name: str) -> bool:
    """Names that are never data: hidden (.x), underscore (_x, Spark's _SUCCESS), temp files."""
    return name.startswith((".", "_")) or name.endswith(TMP_SUFFIX)


@dataclass(frozen=True)
class ClosedFile:
    """One closed segment file: its table, host and date (from the directory names), path and stat (size, mtime)."""

    table: Table
    host: str
    date: date
    path: Path
    size: int
    mtime_ns: int


def relative(root: Path, path: Path) -> str:
    """`path` named relative to `root` (for notices: never an absolute server path)."""
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return Path(path).name


class SafeLister:
    """Lists entries under one root, resolving symlinks and refusing what leaves the root; gathers notices."""

    def __init__(self, root: Path) -> None:
        """Lister for `root` (its real path is the boundary)."""
        self.root = Path(root)
        self.real_root = Path(os.path.realpath(root))
        self.notices: list[str] = []

    def _inside(self, real: str) -> bool:
        return real == str(self.real_root) or real.startswith(str(self.real_root) + os.sep)

    def check(self, entry: os.DirEntry | Path, want_dir: bool) -> os.stat_result | None:
        """stat of `entry` when it is a regular file (want_dir False) or a directory (True) inside the root, following
        a symlink only to a target inside the root; None (with a notice for links and special files) otherwise."""
        path = Path(entry.path if isinstance(entry, os.DirEntry) else entry)
        rel = relative(self.root, path)
        try:
            st = os.lstat(path)
        except OSError:
            return None  # gone meanwhile
        if stat.S_ISLNK(st.st_mode):
            try:
                real = Path(path).resolve(strict=True)
            except RuntimeError:
                self.notices.append(f"{rel}: symlink loop, skipped")
                return None
            except OSError as exc:
                if exc.errno == 40:  # ELOOP
                    self.notices.append(f"{rel}: symlink loop, skipped")
                else:
                    self.notices.append(f"{rel}: dangling symlink, skipped")
                return None
            if not self._inside(str(real)):
                self.notices.append(f"{rel}: symlink to a file outside the recording, skipped")
                return None
            try:
                st = os.stat(real)
            except OSError:
                return None
        if want_dir:
            if stat.S_ISDIR(st.st_mode):
                return st
            if not stat.S_ISREG(st.st_mode):
                self.notices.append(f"{rel}: not a regular file or directory, skipped")
            return None
        if stat.S_ISREG(st.st_mode):
            return st
        if not stat.S_ISDIR(st.st_mode):
            self.notices.append(f"{rel}: not a regular file (fifo, socket or device), skipped")
        return None

    def scandir(self, folder: Path) -> list[os.DirEntry]:
        """Entries of `folder` sorted by name ([] when it is missing; a notice when unreadable)."""
        try:
            with os.scandir(folder) as it:
                return sorted(it, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            self.notices.append(f"{relative(self.root, folder)}: unreadable ({exc.strerror or exc})")
            return []


def _partition_value(name: str, key: str) -> str | None:
    return name[len(key) + 1 :] if name.startswith(key + "=") else None


def list_closed(
    root: Path,
    tables: Iterable[Table] = TABLES,
    lister: SafeLister | None = None,
    days: tuple[date | None, date | None] = (None, None),
    hosts: set[str] | None = None,
) -> tuple[list[ClosedFile], list[str]]:
    """Closed segment files under `root` for `tables` whose date partition lies in `days` (inclusive, None = open)
    and whose host is in `hosts` (None = all), sorted by table, host, date, name; + notices (links, special files,
    directories or names that are not partitions). Folders outside the range are not listed."""
    lister = lister or SafeLister(root)
    lo, hi = days
    out: list[ClosedFile] = []
    for table in tables:
        tdir = Path(root) / table
        if lister.check(tdir, want_dir=True) is None:
            continue
        for h in lister.scandir(tdir):
            if is_skipped_name(h.name):
                continue
            host = _partition_value(h.name, "host")
            if host is not None and hosts is not None and host not in hosts:
                continue
            if host is None or lister.check(h, want_dir=True) is None:
                if host is None:
                    lister.notices.append(f"{relative(root, Path(h.path))}: not a host=<name> folder, skipped")
                continue
            for d in lister.scandir(Path(h.path)):
                if is_skipped_name(d.name):
                    continue
                text = _partition_value(d.name, "date")
                day = _parse_date(text)
                if day is not None and ((lo is not None and day < lo) or (hi is not None and day > hi)):
                    continue
                if day is None or lister.check(d, want_dir=True) is None:
                    if day is None:
                        lister.notices.append(
                            f"{relative(root, Path(d.path))}: not a date=<YYYY-MM-DD> folder, skipped"
                        )
                    continue
                for f in lister.scandir(Path(d.path)):
                    if is_skipped_name(f.name):
                        continue
                    st = lister.check(f, want_dir=False)
                    if st is None:
                        continue
                    if not f.name.endswith(".parquet"):
                        lister.notices.append(f"{relative(root, Path(f.path))}: not a Parquet file, skipped")
                        continue
                    out.append(ClosedFile(table, host, day, Path(f.path), st.st_size, st.st_mtime_ns))
    return out, lister.notices


def dir_signature(root: Path, host: str | None = None) -> tuple:
    """(relative folder, mtime_ns) of every table, host and date folder under `root` (below the tables, only the
    folders of `host` when given): it changes whenever a closed file is published, replaced or deleted (all of them go
    through a rename or unlink in their date folder), and a table's whenever a host folder appears or goes."""
    out: list[tuple[str, int]] = []

    def note(folder: Path) -> bool:
        try:
            out.append((relative(root, folder), os.stat(folder).st_mtime_ns))
        except OSError:
            return False
        return True

    for table in TABLES:
        tdir = Path(root) / table
        if not note(tdir):
            continue
        for hdir in _subdirs(tdir) if host is None else [tdir / f"host={host}"]:
            if note(hdir):
                for ddir in _subdirs(hdir):
                    note(ddir)
    return tuple(sorted(out))


def _subdirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            return [Path(e.path) for e in it if e.is_dir() and not is_skipped_name(e.name)]
    except OSError:
        return []


def list_hosts(root: Path, lister: SafeLister | None = None) -> list[str]:
    """The host partition names (``host=<name>`` folders) of every table under `root`, sorted; only directory names
    are read (what is inside a host folder is checked when its files are listed)."""
    lister = lister or SafeLister(root)
    found: set[str] = set()
    for table in TABLES:
        tdir = Path(root) / table
        if lister.check(tdir, want_dir=True) is None:
            continue
        for h in lister.scandir(tdir):
            host = None if is_skipped_name(h.name) else _partition_value(h.name, "host")
            if host and lister.check(h, want_dir=True) is not None:
                found.add(host)
    return sorted(found)


def _parse_date(text: str | None) -> date | None:
    if text is None or not _DATE_RE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class CurrentFile:
    """One active segment at the root: path, host (safe form, from the name), size, mtime."""

    path: Path
    host: str
    size: int
    mtime_ns: int


def list_current(root: Path, lister: SafeLister | None = None) -> tuple[list[CurrentFile], list[str]]:
    """Active segments (``seg-…-<host>.current``) directly in `root`, sorted by name, + notices."""
    lister = lister or SafeLister(root)
    out = []
    for e in lister.scandir(Path(root)):
        m = CURRENT_RE.match(e.name)
        if not m:
            continue
        st = lister.check(e, want_dir=False)
        if st is not None:
            out.append(CurrentFile(Path(e.path), m.group(2), st.st_size, st.st_mtime_ns))
    return out, lister.notices


def fsync_dir(path: Path) -> None:
    """fsync a directory (so a rename or a new file in it is durable); errors ignored where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
