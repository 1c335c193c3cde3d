"""Retention: delete whole closed segments (every table's file of one segment) by age or until the store fits."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from store import files


def store_bytes(root: Path) -> int:
    """Bytes taken by every closed file and active segment of the store at `root`."""
    closed, _ = files.list_closed(root)
    currents, _ = files.list_current(root)
    return sum(f.size for f in closed) + sum(c.size for c in currents)


def _segments(root: Path) -> list[tuple[int, int, list[Path]]]:
    """Closed segments (files sharing host, date and name across tables) -> [(newest mtime_ns, bytes, paths)],
    oldest first."""
    groups: dict[tuple[str, str, str], list[files.ClosedFile]] = {}
    closed, _ = files.list_closed(root)
    for f in closed:
        groups.setdefault((f.host, str(f.date), f.path.name), []).append(f)
    out = [
        (max(f.mtime_ns for f in g), sum(f.size for f in g), [f.path for f in g])
        for _, g in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][2]))
    ]
    out.sort(key=lambda s: s[0])
    return out


def apply_retention(root: Path, max_age_days: float | None, max_bytes: int | None,
                    keep: Callable[[list[Path]], bool] | None = None) -> list[Path]:  # fmt: skip
    """Delete whole closed segments older than `max_age_days` (by mtime) or, oldest first, until the store takes
    <= `max_bytes`; never touches `.current` files nor a segment for which `keep(paths)` is true (e.g. not shipped
    yet: the store may then stay above `max_bytes`). Returns the deleted paths (procs file first in each segment)."""
    root = Path(root)
    if not root.is_dir() or (max_age_days is None and max_bytes is None):
        return []
    deleted: list[Path] = []
    candidates = []
    now_ns = time.time_ns()
    for mtime, size, paths in _segments(root):
        if keep is not None and keep(paths):
            continue
        if max_age_days is not None and now_ns - mtime > max_age_days * 86400e9:
            deleted.extend(_delete(paths))
        else:
            candidates.append((mtime, size, paths))
    if max_bytes is not None:
        total = store_bytes(root)
        for _, size, paths in candidates:
            if total <= max_bytes:
                break
            deleted.extend(_delete(paths))
            total -= size
    return deleted


def _delete(paths: list[Path]) -> list[Path]:
    # procs first: once it is gone the segment's processes are no longer visible
    out = []
    for p in sorted(paths, key=lambda p: p.parts[-4] != "procs"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            out.append(p)
        with contextlib.suppress(OSError):  # an emptied date= folder goes too
            os.rmdir(p.parent)
    return out
