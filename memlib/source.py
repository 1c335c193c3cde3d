"""A recording as memlib sees it: which store to query, what it holds, and its files for the query layer.

``open_recording(path)`` accepts a store (docs/store.md), a store of the previous layout (converted once, in place, or
into a cache when the folder is read-only; progress lines on stderr) or a folder of seed-format CSVs (imported once
into a store in a cache, reused while the CSVs are unchanged, extended when new ones appear: ``memlib.seed``). It is
cheap when nothing changed (a directory listing); ``host=`` describes one host of a store of several from its own
folders. ``parquet_files`` lists the closed files of one table, pruned by host and date from the directory names
(and by time from the footer's statistics at the window's ends), and verified by their checksum when first read
(once per file and process; a damaged file is left out and named in ``Recording.notices``); ``parquet_files_at``
keeps only the files holding given sample times, ``procs_files_without_sums`` the process files whose system rows
lack the stored per-sample sums. ``active`` decodes every active segment (``.current``) with tree columns, cached
by byte offset, so a growing file costs only its new samples.

Notices name files relative to the recording root, never absolute server paths nor file contents.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import store
from memlib import seed, tree
from store import files, lock, migrate, schema
from store.segment import procs_rows, system_rows, with_tree

Kind = Literal["native", "seed", "empty"]
ROLLUP_DIR = "rollups"  # memlib.rollup's tables inside a store: data, not an unknown file
Progress = Callable[[str], None]
STEP_HOSTS = 8  # the sampling interval is the median step of this many hosts' newest system files


@dataclass(frozen=True)
class Recording:
    """An opened recording: the store `root` to query, the path as given (`shown`), kind, hosts (partition names),
    exact start times or not (seed), median sampling interval (s; of the newest files of up to STEP_HOSTS hosts),
    first and last sample (UTC), notices."""

    root: Path
    shown: str
    kind: Kind
    hosts: list[str]
    start_times_exact: bool
    interval_s: float | None
    span: tuple[pd.Timestamp, pd.Timestamp] | None
    notices: list[str]
    current_dirs: tuple[Path, ...] = ()  # where active segments live (the root; the original folder for a cache)
    scope: str | None = None  # the host whose files span, interval and notices describe (None: every host)


@dataclass(frozen=True)
class ActiveTables:
    """The active segments' rows: procs (store PROCS columns + host, tree columns derived), system (SYSTEM + host),
    cgroups (CGROUPS + host), as Arrow tables at the stored types; notices about them."""

    procs: pa.Table
    system: pa.Table
    cgroups: pa.Table
    notices: list[str] = field(default_factory=list)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ opening


_OPEN_CACHE: dict[tuple[str, str, str], tuple[tuple, Recording]] = {}
_OPEN_LOCK = threading.Lock()


def _signature(root: Path, current_dirs: tuple[Path, ...], host: str | None) -> tuple:
    """What open_recording's cache checks: the closed files' folders (mtimes; of `host` only when given) and the
    active segments' sizes."""
    currents = [c for d in current_dirs for c in files.list_current(d)[0]]
    return files.dir_signature(root, host), tuple((str(c.path), c.size, c.mtime_ns) for c in currents)


def open_recording(
    path: str | Path, tz: str | None = None, progress: Progress | None = None, host: str | None = None
) -> Recording:
    """A recording folder -> Recording (see the module docstring); never raises for bad or missing files (an empty
    Recording says why), only for a bad `tz` (ValueError). `progress` gets conversion/import lines (default stderr).

    `host`: describe that host alone (span, interval and file notices of its partitions and active segment; the
    folders and footers of other hosts are not read), so one host of a fleet store opens at the cost of its own
    store; `hosts` still names every host. None: the whole recording."""
    zone = seed.resolve_zone(tz)
    progress = progress or _stderr
    folder = Path(path).expanduser().absolute()
    shown = str(path)
    if not folder.is_dir():
        reason = "is not a directory" if folder.exists() else "does not exist"
        return _empty(folder, shown, [f"recording folder {shown} {reason}"])
    notices: list[str] = []
    root = folder
    current_dirs: tuple[Path, ...] = (folder,)
    kind: Kind = "native"
    if migrate.old_segments(folder):
        root, more = _convert_old_layout(folder, progress)
        notices += more
        current_dirs = (folder,)
    elif seed.has_seed_files(folder) and _has_store_files(folder):
        notices.append("seed-format CSVs beside the store are not shown (a recording folder holds one kind)")
    elif seed.has_seed_files(folder):
        imported = seed.import_seed(folder, zone, progress, tree.stored_tree)
        if imported.root is None:
            return _empty(folder, shown, imported.notices)
        root, current_dirs = imported.root, ()
        kind = "seed"
        notices += imported.notices
    scope = host if host is not None and kind == "native" else None
    key = (str(folder.resolve()), str(zone), scope or "")
    sig = _signature(root, current_dirs, scope)
    with _OPEN_LOCK:
        hit = _OPEN_CACHE.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1]
    rec = _describe(root, shown, kind, notices, current_dirs, sig[0], scope)
    with _OPEN_LOCK:
        _OPEN_CACHE[key] = (sig, rec)
        while len(_OPEN_CACHE) > 16:
            _OPEN_CACHE.pop(next(iter(_OPEN_CACHE)))
    return rec


def partition_hosts(path: str | Path) -> list[str]:
    """A store folder -> the hosts its partition folders and active segments name, sorted (directory names only; []
    for a folder of another kind: open_recording describes those whole)."""
    folder = Path(path)
    current = {c.host for c in files.list_current(folder)[0]}
    return sorted(set(files.list_hosts(folder)) | current)


def _has_store_files(folder: Path) -> bool:
    return any((folder / t).is_dir() for t in store.TABLES) or bool(files.list_current(folder)[0])


def _root_notices(root: Path) -> list[str]:
    """Files directly in a store root that are not data: damaged segments kept aside, unknown files."""
    out: list[str] = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return out
    for name in names:
        if files.is_skipped_name(name) or name in (*store.TABLES, ROLLUP_DIR) or files.CURRENT_RE.match(name):
            continue
        if name.endswith(files.DAMAGED_SUFFIX):
            out.append(f"{name}: a damaged active segment kept aside (its readable samples were published)")
        elif name != seed.SEED_DIR:
            out.append(f"{name}: unknown file, skipped")
    return out


def _empty(folder: Path, shown: str, notices: list[str]) -> Recording:
    return Recording(folder, shown, "empty", [], True, None, None, notices, ())


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _convert_old_layout(folder: Path, progress: Progress) -> tuple[Path, list[str]]:
    """Convert the previous layout in `folder` (in place when writable and no collector holds it, else into a cache)
    -> (root to query, notices)."""
    in_place = _writable(folder)
    held = None
    deadline = time.monotonic() + 120
    while in_place:
        try:
            held = lock.acquire(folder)
            break
        except OSError:
            in_place = False
        except lock.Locked:
            if not lock.dir_locked(folder) or time.monotonic() > deadline:
                in_place = False  # a collector of an earlier version is still writing here: convert a copy
                break
            time.sleep(0.2)  # another process is converting it (or a collector starting): wait for it
            if not migrate.old_segments(folder):
                return folder, []
    dest = folder if in_place else seed.cache_dir(folder, "store")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        manifest = None if in_place else _read_json(dest / _CONVERTED)
        segments = migrate.old_segments(folder)
        stamp = {s.stamp + s.host: _stat_key(s) for s in segments}
        todo = {k for k, v in stamp.items() if manifest is None or manifest.get(k) != v}
        if not todo:
            return dest, list((manifest or {}).get("", []))
        how = "in place" if in_place else f"into {dest}"
        progress(f"{folder}: converting a store of the previous layout {how} ({len(todo)} segment(s))")
        done = migrate.migrate(
            folder, tree.stored_tree, dest=dest, progress=progress, keep_originals=not in_place, only=todo
        )
        notes = list(done.notices)
        if done.converted:
            notes.append(f"converted {done.converted} segment(s) of the previous store layout")
        if in_place:
            notes += [n for n in store.recover(folder, tree.stored_tree) if not n.startswith("removed stale")]
        else:  # remember what the cache holds: the originals stay, and are converted again only when they change
            _write_json(dest / _CONVERTED, {**(manifest or {}), **stamp, "": notes})
        return dest, notes
    finally:
        if held is not None:
            lock.release(held)


_CONVERTED = ".pmi-converted.json"


def _stat_key(seg: migrate.OldSegment) -> list[int]:
    out = []
    for p in (seg.procs, seg.system):
        try:
            st = os.stat(p) if p is not None else None
        except OSError:
            st = None
        out += [st.st_size, st.st_mtime_ns] if st else [-1, -1]
    return out


def _read_json(path: Path) -> dict | None:
    import json

    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict) -> None:
    import json

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), "utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class _ClosedInfo:
    hosts: frozenset[str]
    firsts: tuple[int, ...]
    lasts: tuple[int, ...]
    steps: tuple[int, ...]
    notices: tuple[str, ...]
    orphans: tuple[tuple[tuple[str, date, str], str], ...]  # ((host, date, name), notice)


_CLOSED_CACHE: dict[tuple[str, str], tuple[tuple, _ClosedInfo]] = {}


def _closed_info(root: Path, kind: Kind, sig: tuple, scope: str | None = None) -> _ClosedInfo:
    """Hosts, first/last sample times (µs), recent sampling steps and notices of the closed files (of host `scope`
    only when given: `hosts` then names every host folder); recomputed only when a partition folder changed (a
    segment was published or deleted): `sig` is files.dir_signature(root, scope)."""
    key = (str(root), scope or "")
    with _OPEN_LOCK:
        hit = _CLOSED_CACHE.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1]
    closed, notes = files.list_closed(root, hosts=None if scope is None else {scope})
    extra = [] if kind == "seed" else _root_notices(root)
    notices = notes + extra
    orphans = tuple(_orphan_notices(root, closed))
    hosts = {f.host for f in closed} if scope is None else set(files.list_hosts(root))
    firsts: list[int] = []
    lasts: list[int] = []
    steps: list[int] = []
    for table in ("system", "procs"):
        by_host: dict[str, list[files.ClosedFile]] = {}
        for f in closed:
            if f.table == table:
                by_host.setdefault(f.host, []).append(f)
        if not by_host:
            continue
        ends = [sorted(fs, key=lambda f: (f.date, f.path.name)) for fs in by_host.values()]
        # a segment never crosses midnight: only the earliest (latest) day's files can hold the first (last) sample
        lo, hi = min(e[0].date for e in ends), max(e[-1].date for e in ends)
        head = [e[0] for e in ends if e[0].date == lo]
        tail = [e[-1] for e in ends if e[-1].date == hi]
        newest = sorted(ends, key=lambda e: (e[-1].date, e[-1].path.name))[-STEP_HOSTS:]
        with ThreadPoolExecutor(max_workers=4) as pool:  # footer reads release the GIL
            firsts += [r[0] for r in pool.map(_span, head) if r]
            lasts += [r[1] for r in pool.map(_span, tail) if r]
            if table == "system":
                for got in pool.map(_steps, [e[-1].path for e in newest]):
                    steps += got
        break
    info = _ClosedInfo(frozenset(hosts), tuple(firsts), tuple(lasts), tuple(steps), tuple(notices), orphans)
    with _OPEN_LOCK:
        _CLOSED_CACHE[key] = (sig, info)
        while len(_CLOSED_CACHE) > 16:
            _CLOSED_CACHE.pop(next(iter(_CLOSED_CACHE)))
    return info


def _describe(
    root: Path,
    shown: str,
    kind: Kind,
    notices: list[str],
    current_dirs: tuple[Path, ...],
    sig: tuple,
    scope: str | None = None,
) -> Recording:
    info = _closed_info(root, kind, sig, scope)
    pending = _pending(root, current_dirs) if info.orphans else set()
    notices = notices + list(info.notices) + [text for key, text in info.orphans if key not in pending]
    hosts = set(info.hosts)
    firsts, lasts, steps = list(info.firsts), list(info.lasts), list(info.steps)
    act = _active_from(root, current_dirs, kind) if current_dirs else None
    if act is not None:
        notices += act.notices
        hosts |= set(act.system.column("host").to_pylist()) | set(act.procs.column("host").unique().to_pylist())
        if scope is not None:
            act = ActiveTables(_of_host(act.procs, scope), _of_host(act.system, scope), act.cgroups, act.notices)
        for tbl in (act.system, act.procs):
            if tbl.num_rows:
                ts = tbl.column("ts").cast(pa.int64())
                firsts.append(pc.min(ts).as_py())
                lasts.append(pc.max(ts).as_py())
        if act.system.num_rows > 1:
            for h in set(act.system.column("host").to_pylist()):
                sub = act.system.filter(pc.equal(act.system.column("host"), h))
                steps += np.diff(np.sort(sub.column("ts").cast(pa.int64()).to_numpy())).tolist()
    positive = [s for s in steps if s > 0]
    interval = float(np.median(positive)) / 1e6 if positive else None
    span = None
    if firsts and lasts:
        span = (pd.Timestamp(min(firsts), unit="us", tz="UTC"), pd.Timestamp(max(lasts), unit="us", tz="UTC"))
    if not hosts and span is None:
        notices = [*notices, f"{shown} holds no recording yet (no closed segment, no active segment)"]
        return Recording(root, shown, "empty", [], True, None, None, notices, current_dirs)
    return Recording(root, shown, kind, sorted(hosts), kind != "seed", interval, span, notices, current_dirs, scope)


def _of_host(table: pa.Table, host: str) -> pa.Table:
    return table.filter(pc.equal(table.column("host"), host)) if table.num_rows else table


def _steps(path: Path) -> list[int]:
    try:
        ts = pq.read_table(path, columns=["ts"], partitioning=None).column("ts").cast(pa.int64()).to_numpy()
    except (OSError, pa.ArrowException, ValueError):
        return []
    return np.diff(np.sort(ts)).tolist()


def _orphan_notices(root: Path, closed: list[files.ClosedFile]) -> list[tuple[tuple[str, date, str], str]]:
    """A system file without the procs file of its segment (or the reverse) -> ((host, date, name), notice); its rows
    are still read (unless the segment is being published: see _pending)."""
    by_table: dict[str, set[tuple[str, date, str]]] = {}
    for f in closed:
        by_table.setdefault(f.table, set()).add((f.host, f.date, f.path.name))
    procs, system = by_table.get("procs", set()), by_table.get("system", set())
    out = []
    for host, day, name in sorted(system - procs):
        rel = files.relative(root, files.partition_dir(root, "system", host, day) / name)
        text = f"{rel}: no process file for this segment (its system rows are shown, its processes are missing)"
        out.append(((host, day, name), text))
    for host, day, name in sorted(procs - system):
        rel = files.relative(root, files.partition_dir(root, "procs", host, day) / name)
        out.append(
            (
                (host, day, name),
                f"{rel}: no system file for this segment (its processes are shown, RAM totals are missing)",
            )
        )
    return out


# ------------------------------------------------------------------------------------------------ closed files


_VERIFIED: dict[tuple[str, int, int], tuple[bool, str | None]] = {}  # (path, size, mtime_ns) -> check()
_VERIFY_LOCK = threading.Lock()


def _utc_date(t: object) -> date:
    return files.utc(t).date()


def parquet_files(
    rec: Recording,
    table: schema.Table,
    t_from: object = None,
    t_to: object = None,
    hosts: list[str] | None = None,
) -> list[Path]:
    """Closed files of `table` in `rec` whose date partition overlaps [t_from, t_to] (UTC; None = open) and whose
    host is in `hosts` (None = all), sorted by host, date, name; files failing their checksum are left out and named
    in rec.notices. Files of the window's first and last day whose footer statistics put them wholly outside it
    are left out unread. Only directory names, footers and (once per file) a read file's bytes are read."""
    lo = None if t_from is None else _utc_date(t_from)
    hi = None if t_to is None else _utc_date(t_to)
    closed = _listed(rec, table, lo, hi, hosts)
    if t_from is not None or t_to is not None:  # a file of a window's first or last day may lie outside the window
        a = None if t_from is None else files.utc(t_from).value // 1000 - 1
        b = None if t_to is None else files.utc(t_to).value // 1000 + 1
        closed = [f for f in closed if (f.date != lo and f.date != hi) or _overlaps(_span(f), a, b)]
    return [f.path for f in _verified_files(rec, closed)]


def parquet_files_at(rec: Recording, table: schema.Table, times: Sequence[pd.Timestamp],
                     hosts: list[str] | None = None) -> list[Path]:  # fmt: skip
    """parquet_files of the range `times` span, only the files whose footer statistics (first..last ts) hold one of
    `times`: a few processes' last samples read the few files that hold them, not every file between."""
    if not len(times):
        return []
    us = np.unique([files.utc(t).value // 1000 for t in times])

    def holds(f: files.ClosedFile) -> bool:
        span = _span(f)
        return span is None or bool(np.searchsorted(us, span[1], "right") > np.searchsorted(us, span[0], "left"))

    lo, hi = (_utc_date(pd.Timestamp(int(t), unit="us", tz="UTC")) for t in (us[0], us[-1]))
    return [f.path for f in _verified_files(rec, [f for f in _listed(rec, table, lo, hi, hosts) if holds(f)])]


def _listed(rec: Recording, table: schema.Table, lo: date | None, hi: date | None,
            hosts: list[str] | None) -> list[files.ClosedFile]:  # fmt: skip
    """Closed files of `table` whose date partition lies in [lo, hi] and host in `hosts` (None = all), without the
    files of a segment being published (its active segment still holds those rows); unverified."""
    if rec.kind == "empty":
        return []
    wanted = None if hosts is None else {files.safe_host(h) for h in hosts} | set(hosts)
    closed, _ = files.list_closed(rec.root, [table], days=(lo, hi), hosts=wanted)
    pending = _pending(rec.root, rec.current_dirs) if table != "procs" and rec.current_dirs else set()
    return [f for f in closed if (f.host, f.date, f.path.name) not in pending]


def _verified_files(rec: Recording, closed: list[files.ClosedFile]) -> list[files.ClosedFile]:
    """Closed files -> those that pass their checksum (verified once per file and process, on a few threads); the
    others are named in rec.notices."""
    with _VERIFY_LOCK:
        todo = [f for f in closed if (str(f.path), f.size, f.mtime_ns) not in _VERIFIED]
    if len(todo) > 1:  # reading and CRC32 release the GIL: verify new files on a few threads
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(_verified, todo))
    out = []
    for f in closed:
        ok, problem = _verified(f)
        if ok:
            out.append(f)
        if problem is not None:
            note = f"{files.relative(rec.root, f.path)}: {problem}"
            if note not in rec.notices:
                rec.notices.append(note)
    return out


def procs_files_without_sums(rec: Recording, t_from: object = None, t_to: object = None,
                             hosts: list[str] | None = None) -> list[Path]:  # fmt: skip
    """The closed procs files of the window (as parquet_files) whose segment's system file lacks the stored process
    sums (store.schema.PROC_SUM_COLUMNS: files written before them): a system series sums those files' rows itself."""
    system = {f: _file_key(f) for f in parquet_files(rec, "system", t_from, t_to, hosts)}
    with _VERIFY_LOCK:
        todo = [f for f, key in system.items() if key not in _SUMS]
    if todo:
        with ThreadPoolExecutor(max_workers=min(4, len(todo))) as pool:
            found = list(pool.map(_has_sums, todo))
        with _VERIFY_LOCK:
            _SUMS.update(zip((system[f] for f in todo), found, strict=True))
            if len(_SUMS) > 200_000:
                _SUMS.clear()
    with _VERIFY_LOCK:
        lacking = {f.relative_to(rec.root).parts[1:] for f, key in system.items() if not _SUMS.get(key, False)}
    if not lacking:
        return []
    return [f for f in parquet_files(rec, "procs", t_from, t_to, hosts) if f.relative_to(rec.root).parts[1:] in lacking]


_SUMS: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime_ns) of a system file -> it holds the sums


def _file_key(path: Path) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (str(path), -1, -1)
    return (str(path), st.st_size, st.st_mtime_ns)


def _has_sums(path: Path) -> bool:
    try:
        return "processes" in pq.read_schema(path).names
    except (OSError, pa.ArrowException, ValueError):
        return False


_SPANS: dict[tuple[str, int, int], tuple[int, int] | None] = {}  # (path, size, mtime_ns) -> store.ts_range


def _span(f: files.ClosedFile) -> tuple[int, int] | None:
    """First and last ts (µs) of a closed file from its footer (once per file and process); None when unknown."""
    key = (str(f.path), f.size, f.mtime_ns)
    with _VERIFY_LOCK:
        if key in _SPANS:
            return _SPANS[key]
    span = store.ts_range(f.path)
    with _VERIFY_LOCK:
        _SPANS[key] = span
        if len(_SPANS) > 200_000:
            _SPANS.clear()
    return span


def _overlaps(span: tuple[int, int] | None, a: int | None, b: int | None) -> bool:
    """False only when a known span lies wholly before `a` or after `b` (µs; None = open)."""
    if span is None:
        return True  # unknown: read it (and its verification names it when it is damaged)
    return not ((a is not None and span[1] < a) or (b is not None and span[0] > b))


def _verified(f: files.ClosedFile) -> tuple[bool, str | None]:
    key = (str(f.path), f.size, f.mtime_ns)
    with _VERIFY_LOCK:
        if key in _VERIFIED:
            return _VERIFIED[key]
    result = store.check(f.path, f.table)
    with _VERIFY_LOCK:
        _VERIFIED[key] = result
        if len(_VERIFIED) > 200_000:
            _VERIFIED.clear()
    return result


# ------------------------------------------------------------------------------------------------ active segments


@dataclass
class _Part:
    ino: int
    offset: int
    host: str
    procs: list[pa.Table]
    system: list[pa.Table]
    cgroups: list[pa.Table]
    notices: list[str]


_ACTIVE: dict[str, _Part] = {}
_ACTIVE_LOCK = threading.Lock()
_PROCS_OUT = pa.schema([*schema.PROCS_SCHEMA, ("host", pa.string())])
_SYSTEM_OUT = pa.schema([*schema.SYSTEM_SCHEMA, ("host", pa.string())])
_CGROUPS_OUT = pa.schema([*schema.CGROUPS_SCHEMA, ("host", pa.string())])


def active(rec: Recording) -> ActiveTables:
    """Every active segment of `rec` -> ActiveTables (tree columns derived per snapshot); cached per file by byte
    offset: a grown file costs only its new samples, an unchanged one nothing."""
    return _active_from(rec.root, rec.current_dirs, rec.kind)


def _pending(root: Path, current_dirs: tuple[Path, ...]) -> set[tuple[str, date, str]]:
    """(host, date, file name) of closed files an active segment is being published into: its procs file (written
    last) is not there yet, so its system and cgroup files are not read (the .current still holds those rows)."""
    out = set()
    for d in current_dirs:
        for cur in files.list_current(d)[0]:
            m = files.CURRENT_RE.match(cur.path.name)
            when = files.stamp_time(m.group(1)) if m else None
            if m is not None and when is not None and not _published(root, cur):
                out.add((cur.host, when.date(), f"seg-{m.group(1)}Z.parquet"))
    return out


def _published(root: Path, cur: files.CurrentFile) -> bool:
    """True when the closed procs file of this active segment exists already (published, not yet deleted)."""
    m = files.CURRENT_RE.match(cur.path.name)
    when = files.stamp_time(m.group(1)) if m else None
    if m is None or when is None:
        return False
    name = f"seg-{m.group(1)}Z.parquet"
    return (files.partition_dir(root, "procs", cur.host, when.date()) / name).exists()


def _active_from(root: Path, current_dirs: tuple[Path, ...], kind: str) -> ActiveTables:
    procs: list[pa.Table] = []
    system: list[pa.Table] = []
    cgroups: list[pa.Table] = []
    notices: list[str] = []
    seen: set[str] = set()
    for d in current_dirs:
        lister = files.SafeLister(d)
        currents, notes = files.list_current(d, lister)
        notices += notes
        for cur in currents:
            if _published(root, cur):
                continue
            key = str(cur.path)
            seen.add(key)
            part = _read_part(key, cur, d)
            procs += part.procs
            system += part.system
            cgroups += part.cgroups
            notices += part.notices
    with _ACTIVE_LOCK:
        for key in [k for k in _ACTIVE if k not in seen and any(k.startswith(str(d)) for d in current_dirs)]:
            del _ACTIVE[key]
    return ActiveTables(_cat(procs, _PROCS_OUT), _cat(system, _SYSTEM_OUT), _cat(cgroups, _CGROUPS_OUT), notices)


def _cat(parts: list[pa.Table], out_schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(parts) if parts else out_schema.empty_table()


def _read_part(key: str, cur: files.CurrentFile, folder: Path) -> _Part:
    try:
        st = os.stat(cur.path)
    except OSError:
        return _Part(0, 0, cur.host, [], [], [], [])
    with _ACTIVE_LOCK:
        part = _ACTIVE.get(key)
    if part is None or part.ino != st.st_ino or st.st_size < part.offset:
        part = _Part(st.st_ino, 0, cur.host, [], [], [], [])
    if st.st_size == part.offset and part.offset:
        return part
    rel = files.relative(folder, cur.path)
    try:
        read = store.read_current(cur.path, part.offset)
    except FileNotFoundError:  # published and deleted meanwhile: its closed files show at the next open
        return part
    except OSError as exc:
        part.notices = [f"{rel}: unreadable ({exc.strerror or exc})"]
        return part
    problems = [f"{rel}: {p}" for p in read.problems]
    lists = {"procs": list(part.procs), "system": list(part.system), "cgroups": list(part.cgroups)}
    if read.procs is not None or read.system is not None:  # new lists: a concurrent reader never sees half of it
        host = files.safe_host(read.host) if read.host else cur.host
        p = with_tree(procs_rows(read.procs, read.boot_id), tree.stored_tree)
        s, c = system_rows(read.system, read.boot_id)
        for name, t, out_schema in (("procs", p, _PROCS_OUT), ("system", s, _SYSTEM_OUT), ("cgroups", c, _CGROUPS_OUT)):
            if t.num_rows:
                t = t.append_column("host", pa.array([host] * t.num_rows, pa.string()))
                lists[name].append(t.select(out_schema.names).cast(out_schema))
                if len(lists[name]) > 64:  # a day of samples read one at a time: keep few chunks
                    lists[name] = [pa.concat_tables(lists[name]).combine_chunks()]
    offset = read.next_offset or part.offset
    new = _Part(part.ino, offset, part.host, lists["procs"], lists["system"], lists["cgroups"], [])
    new.notices = (part.notices if part.offset else []) + [p for p in problems if p not in part.notices]
    with _ACTIVE_LOCK:
        _ACTIVE[key] = new
    return new


def clear_cache() -> None:
    """Forget cached listings, verifications and active segments (tests)."""
    with _OPEN_LOCK:
        _OPEN_CACHE.clear()
        _CLOSED_CACHE.clear()
    with _VERIFY_LOCK:
        _VERIFIED.clear()
        _SPANS.clear()
        _SUMS.clear()
    with _ACTIVE_LOCK:
        _ACTIVE.clear()
