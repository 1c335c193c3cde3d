"""The collector's writer: one sample at a time into the active segment, closed segments published as Parquet.

``SegmentWriter.append`` adds one procs + one system frame to ``<root>/seg-<stamp>Z-<host>.current`` (store.frames);
the segment closes every ``period_s`` seconds of running and whenever a sample's UTC date differs from the segment's
first sample's, so a closed segment never crosses midnight. A sample's stored time is unique for the writer: one whose
clock reading lands on a time it already wrote (a clock stepped back) is stored 1 µs later, so (host, ts) stays one
snapshot (the writer remembers the last ``RECENT_STAMPS`` times). Closing (``compact_current``) derives the tree columns
with the caller's ``derive`` and publishes the tables (store.segment.publish); the `.current` is then deleted, or,
when it held damage, kept aside as ``*.current.damaged`` (never deleted while it may hold a readable sample).
``recover`` does the same for leftovers at collector start, converts a store of the previous layout and removes
stale temp files.
"""

from __future__ import annotations

import errno
import os
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from store import files, migrate
from store import frames as fr
from store.current import read_current
from store.schema import CGROUP_MEM_FIELD_PREFIX, TABLES
from store.segment import Derive, build_tables, publish

RECENT_STAMPS = 200_000  # sample times remembered to keep stored times unique (11 days at 5 s)


class SegmentWriter:
    """Appends one procs + one system frame per sample to the active `.current`; publishes it per period and day."""

    def __init__(self, root: Path, host: str, boot_id: str, period_s: float = 3600, *, derive: Derive) -> None:
        """Writer for store `root` (created if missing); `derive` computes tree columns (memlib.tree.stored_tree)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.boot_id = boot_id
        self.period_s = period_s
        self.derive = derive
        self.current: Path | None = None
        self._fd: int | None = None
        self._size = 0  # bytes of whole samples in the active segment (a failed write is cut back to this)
        self._opened_at = 0.0
        self._day: int | None = None  # UTC day number of the segment's first sample
        self.closed: list[Path] = []  # files published by this writer, oldest first
        self.samples = 0
        self.notes: list[str] = []  # what the last compactions reported (damage kept aside, ...)
        self._stamps: set[int] = set()  # µs of the sample times written, bounded by the deque below
        self._stamp_order: deque[int] = deque()

    def _new_current(self, ts: pd.Timestamp) -> None:
        base = files.utc(ts)
        for bump in range(100_000):
            when = base + pd.Timedelta(milliseconds=bump)
            name = files.current_name(files.stamp(when), self.host)
            closed = [files.partition_dir(self.root, t, self.host, when.date()) / f"seg-{files.stamp(when)}Z.parquet"
                      for t in TABLES]  # fmt: skip
            taken = [self.root / name, self.root / (name + files.DAMAGED_SUFFIX), *closed]
            if not any(p.exists() for p in taken):  # its closed files will carry the same name: never overwrite
                break
        else:
            raise RuntimeError("no free segment name in the store root")
        path = self.root / name
        tmp = self.root / (name + files.TMP_SUFFIX)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            header = fr.header_bytes()
            if os.write(fd, header) != len(header):  # a short write of 16 bytes: the disk is full
                raise OSError(errno.ENOSPC, "short write of the segment header")
            os.rename(tmp, path)
        except BaseException:  # disk full, ...: no half-made segment is left behind (nor an open descriptor)
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        self._fd = fd
        self._size = fr.HEADER.size
        self.current = path
        self._opened_at = time.monotonic()
        self._day = base.value // 86_400_000_000_000

    def append(
        self,
        ts: pd.Timestamp,
        procs: dict[str, Sequence],
        meminfo: dict[str, int],
        cgroup_mem: dict[str, int] | None = None,
    ) -> None:
        """Write one sample: procs (store.schema.SAMPLE_COLUMNS, equal lengths; times int ns or datetimes), meminfo
        {kernel field name: bytes or count}, and optionally {cgroup path: memory bytes}."""
        if cgroup_mem:
            meminfo = {**meminfo, **{CGROUP_MEM_FIELD_PREFIX + k: v for k, v in cgroup_mem.items()}}
        ts = self._unique(ts)
        frame = fr.encode_sample(ts, procs, meminfo, self.host, self.boot_id)
        day = files.utc(ts).value // 86_400_000_000_000
        if self.current is not None and (time.monotonic() - self._opened_at >= self.period_s or day != self._day):
            self.close()
        if self.current is None:
            self._new_current(ts)
        assert self._fd is not None
        view = memoryview(frame)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except BaseException:
            self._undo_partial_write()
            raise
        self._size += len(frame)
        self.samples += 1

    def _unique(self, ts: pd.Timestamp) -> pd.Timestamp:
        """A sample time -> the same time in whole µs (what the store keeps), moved on by 1 µs while already written."""
        us = files.utc(ts).value // 1000
        while us in self._stamps:
            us += 1
        self._stamps.add(us)
        self._stamp_order.append(us)
        if len(self._stamp_order) > RECENT_STAMPS:
            self._stamps.discard(self._stamp_order.popleft())
        return pd.Timestamp(us * 1000, unit="ns", tz="UTC")

    def _undo_partial_write(self) -> None:
        """After a failed or short write (ENOSPC, EIO): cut the file back to its last whole sample, so the next
        sample follows whole frames; if even that fails, leave the segment (its torn tail is dropped by readers and
        by `recover`) and start a new one at the next append."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._size)
            os.lseek(self._fd, self._size, os.SEEK_SET)
        except OSError:
            os.close(self._fd)
            self._fd = None
            self.current = None

    def close(self) -> None:
        """Publish the active segment (if any) and remove it (kept aside when damaged)."""
        if self.current is None:
            return
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        current, self.current = self.current, None  # a failed compaction leaves a readable .current for `recover`
        published, notes = compact_current(current, self.derive)
        self.closed.extend(published)
        self.notes = notes


def compact_current(current: Path, derive: Derive) -> tuple[list[Path], list[str]]:
    """Publish a `.current`'s whole samples as closed files, then delete it -> (published paths, notes).

    Damage (samples lost, bytes skipped) keeps the original aside as ``<name>.damaged``; a file that is not ours or
    of a newer format is left where it is; an empty one (no sample) is deleted."""
    root = current.parent
    name = current.name
    data = current.read_bytes()
    read = read_current(current, data=data)
    if not read.readable and data:
        return [], [f"left {name}: {'; '.join(read.problems)}"]
    damaged = bool(read.lost_samples or read.problems) and bool(data)
    published: list[Path] = []
    notes: list[str] = []
    if read.procs is not None or read.system is not None:
        seg = build_tables(read.host or _host_of(name), read.boot_id, read.procs, read.system, derive)
        m = files.CURRENT_RE.match(name)
        published = publish(root, seg, stamp=m.group(1) if m else None, overwrite=True)
    if damaged:
        os.replace(current, current.with_name(name + files.DAMAGED_SUFFIX))
        files.fsync_dir(root)
        notes.append(f"kept {name} aside as {name}{files.DAMAGED_SUFFIX}: {'; '.join(read.problems)}")
    else:
        current.unlink(missing_ok=True)
    return published, notes


def _host_of(name: str) -> str:
    m = files.CURRENT_RE.match(name)
    return m.group(2) if m else "unknown"


def recover(root: Path, derive: Derive) -> list[str]:
    """At collector start (under the lock): drop stale temp files, convert segments of the previous layout
    (store.migrate), publish leftover `.current` files -> notes."""
    root = Path(root)
    notes: list[str] = []
    if not root.is_dir():
        return notes
    for path in sorted(root.iterdir()):
        if path.name.startswith("seg-") and path.name.endswith(files.TMP_SUFFIX) and path.is_file():
            path.unlink(missing_ok=True)
            notes.append(f"removed stale temp file {path.name}")
    inside = os.path.realpath(root) + os.sep
    for table in TABLES:
        for tmp in sorted((root / table).glob(f"host=*/date=*/*{files.TMP_SUFFIX}")):
            if tmp.is_file() and not tmp.is_symlink() and os.path.realpath(tmp).startswith(inside):
                tmp.unlink(missing_ok=True)
                notes.append(f"removed stale temp file {files.relative(root, tmp)}")
    if migrate.old_segments(root):
        done = migrate.migrate(root, derive)
        notes += done.notices
        notes.append(f"converted {done.converted} segment(s) of the previous store layout")
    currents, _ = files.list_current(root)
    for cur in currents:
        if cur.path.is_symlink():
            continue
        try:
            published, more = compact_current(cur.path, derive)
        except (OSError, pa.ArrowException, ValueError) as exc:
            notes.append(f"could not compact {cur.path.name}: {exc}")
            continue
        notes.extend(more)
        notes.append(f"compacted leftover {cur.path.name}" if published else f"removed {cur.path.name} (no sample)")
    return notes
