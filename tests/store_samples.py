"""Tiny recordings written through the real writer (store.SegmentWriter) for the store and source tests."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

import store
from memlib.tree import stored_tree

MIB = 1 << 20
T0 = pd.Timestamp("2026-11-27T10:00:00Z")


def sample_procs(rows: list[tuple[int, int, int]], start: dict[int, pd.Timestamp] | None = None) -> dict[str, list]:
    """[(pid, ppid, rss MiB)] -> the columns SegmentWriter.append takes (start times T0 - pid s unless given)."""
    start = start or {}
    pids = [r[0] for r in rows]
    return {
        "pid": pids,
        "ppid": [r[1] for r in rows],
        "start_time": [start.get(p, T0 - pd.Timedelta(seconds=p)).value for p in pids],
        "uid": [1000] * len(rows),
        "user": ["alice"] * len(rows),
        "state": ["S"] * len(rows),
        "name": [f"p{p}" for p in pids],
        "cmdline": [f"/bin/p{p} --run" for p in pids],
        "rss_bytes": [r[2] * MIB for r in rows],
        "vsz_bytes": [r[2] * 4 * MIB for r in rows],
        "threads": [1] * len(rows),
        "cgroup": ["/user.slice"] * len(rows),
        "pss_bytes": [r[2] * MIB // 2 for r in rows],
        "uss_bytes": [None] * len(rows),
        "swap_bytes": [0] * len(rows),
        "smaps_ts": [None] * len(rows),
    }


MEMINFO = {"MemTotal": 4096 * MIB, "MemFree": 1024 * MIB, "MemAvailable": 2048 * MIB, "HugePages_Total": 0}


def writer(root: Path, host: str = "vm", boot_id: str = "boot-1", period_s: float = 3600) -> store.SegmentWriter:
    """A SegmentWriter for `root` deriving trees with memlib.tree.stored_tree."""
    return store.SegmentWriter(root, host, boot_id, period_s, derive=stored_tree)


def write_simple(root: Path, n: int = 3, close: bool = True, step_s: float = 5.0, host: str = "vm") -> Path:
    """n samples of a 3-process tree (1 <- 10 <- 11, rss 10/20/30+k MiB), one cgroup; closed unless `close` False."""
    w = writer(root, host=host)
    for k in range(n):
        ts = T0 + pd.Timedelta(seconds=step_s * k)
        w.append(ts, sample_procs([(1, 0, 10), (10, 1, 20), (11, 10, 30 + k)]), MEMINFO, cgroup_mem={"/x": 5 * MIB})
    if close:
        w.close()
    elif w._fd is not None:
        os.close(w._fd)  # leave the .current as a running (or crashed) collector would
    return root
