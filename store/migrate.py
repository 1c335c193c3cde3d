"""Converting a store of the previous layout (``seg-<stamp>Z-<host>.procs.parquet`` + ``.system.parquet`` pairs
directly in the root) into the partitioned layout, once, resumably.

Each pair is read, its tree columns derived, and published under the destination (the root itself, or a cache
directory when the root is read-only) with the pair's stamp as the segment name; only then is the original removed
(in place) — or, when one of its files is unreadable or unusable (no ``ts``/``pid`` column, a column of the wrong
type), renamed ``*.damaged`` with a notice naming it, while the rest of the segment and the other segments are
converted; nothing readable is ever deleted. A crash at any point loses nothing: a re-run publishes the same names
again (overwriting) and carries on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from store import files
from store.schema import SAMPLE_TYPES, TS
from store.segment import Derive, SegmentTables, procs_rows, publish, system_rows, with_proc_sums, with_tree

_UNUSABLE = (KeyError, ValueError, TypeError, pa.ArrowException)
_T = TypeVar("_T")
_NO_PROCS = pa.schema([("ts", TS), *SAMPLE_TYPES.items()]).empty_table()


@dataclass(frozen=True)
class OldSegment:
    """One segment of the previous layout: stamp, host (from its name), and its files that exist."""

    stamp: str
    host: str
    procs: Path | None
    system: Path | None


@dataclass
class Migration:
    """migrate's result: segments converted, files removed or kept aside, notices (names relative to the root)."""

    converted: int = 0
    published: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def old_segments(root: Path) -> list[OldSegment]:
    """Segments of the previous layout directly in `root` (regular files only), oldest first."""
    found: dict[tuple[str, str], dict[str, Path]] = {}
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for e in entries:
        m = files.OLD_RE.match(e.name)
        if m and e.is_file(follow_symlinks=False):
            found.setdefault((m.group(1), m.group(2)), {})[m.group(3)] = Path(e.path)
    return [
        OldSegment(stamp, host, parts.get("procs"), parts.get("system"))
        for (stamp, host), parts in sorted(found.items())
    ]


def _read(root: Path, path: Path | None) -> tuple[pa.Table | None, str | None]:
    """`path` read whole -> (table, None), or (None, why) with the path in the reason relative to `root`."""
    if path is None:
        return None, None
    try:
        return pq.read_table(path, partitioning=None), None
    except (OSError, pa.ArrowException, ValueError) as exc:
        return None, f"unreadable ({str(exc).replace(str(path), files.relative(root, path))})"


def _convert(table: pa.Table | None, how: Callable[[pa.Table], _T]) -> tuple[_T | None, str | None]:
    """`how(table)` -> (its result, None), or (None, why) when the table's columns cannot be converted."""
    if table is None:
        return None, None
    try:
        return how(table), None
    except _UNUSABLE as exc:
        return None, f"unusable ({exc.args[0] if isinstance(exc, KeyError) and exc.args else exc})"


def _procs_table(table: pa.Table, boot_id: str, derive: Derive) -> pa.Table:
    """Old-layout process rows -> stored rows with their tree columns."""
    return with_tree(procs_rows(table, boot_id), derive)


def _meta(table: pa.Table | None, key: bytes) -> str | None:
    meta = None if table is None else table.schema.metadata
    if meta and key in meta:
        return meta[key].decode("utf-8", "replace")
    if table is not None and key.decode() in table.column_names and table.num_rows:
        return str(table.column(key.decode())[0].as_py())
    return None


def migrate(
    root: Path,
    derive: Derive,
    dest: Path | None = None,
    progress: Callable[[str], None] | None = None,
    keep_originals: bool = False,
    only: set[str] | None = None,
) -> Migration:
    """Convert every old-layout segment in `root` (or those whose stamp + host is in `only`) into `dest` (default:
    `root`) -> Migration.

    Originals are removed after their files are published (fsynced and renamed) unless `keep_originals` (a cache
    conversion of a read-only root); a damaged original is renamed ``<name>.damaged`` (in place only)."""
    root = Path(root)
    dest = root if dest is None else Path(dest)
    result = Migration()
    segments = [s for s in old_segments(root) if only is None or s.stamp + s.host in only]
    for i, seg in enumerate(segments, 1):
        if progress is not None:
            progress(f"converting the previous store layout: segment {i}/{len(segments)} ({seg.stamp}Z, {seg.host})")
        procs, procs_bad = _read(root, seg.procs)
        system, system_bad = _read(root, seg.system)
        for path, bad in ((seg.procs, procs_bad), (seg.system, system_bad)):
            if bad and path is not None:
                result.notices.append(f"{files.relative(root, path)}: {bad}")
        if seg.procs is None and seg.system is not None:
            result.notices.append(f"{files.relative(root, seg.system)}: no process file beside it (system rows only)")
        if procs is not None or system is not None:
            host = _meta(procs, b"host") or _meta(system, b"host") or seg.host
            boot_id = _meta(procs, b"boot_id") or _meta(system, b"boot_id") or ""
            if system is not None:
                system = system.drop_columns([c for c in ("host", "boot_id") if c in system.column_names])
            rows, procs_unusable = _convert(procs, partial(_procs_table, boot_id=boot_id, derive=derive))
            sys_rows, system_unusable = _convert(system, partial(system_rows, boot_id=boot_id))
            for path, bad in ((seg.procs, procs_unusable), (seg.system, system_unusable)):
                if bad and path is not None:
                    result.notices.append(f"{files.relative(root, path)}: {bad}")
            procs_bad, system_bad = procs_bad or procs_unusable, system_bad or system_unusable
            if rows is not None or sys_rows is not None:
                sys_table, cgroups = sys_rows if sys_rows is not None else system_rows(None, boot_id)
                procs_table = rows if rows is not None else with_tree(procs_rows(_NO_PROCS, boot_id), derive)
                tables = SegmentTables(host, boot_id, procs_table, with_proc_sums(sys_table, procs_table), cgroups)
                result.published += publish(dest, tables, stamp=seg.stamp, overwrite=True)
                result.converted += 1
        if keep_originals:
            continue
        for path, bad in ((seg.system, system_bad), (seg.procs, procs_bad)):
            if path is None:
                continue
            if bad:
                os.replace(path, path.with_name(path.name + files.DAMAGED_SUFFIX))
                result.notices.append(f"{files.relative(root, path)}: kept aside as {path.name}{files.DAMAGED_SUFFIX}")
            else:
                path.unlink(missing_ok=True)
                result.removed.append(path)
        files.fsync_dir(root)
    return result
