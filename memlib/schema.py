"""Every column memlib, the collector and the dashboard exchange in pandas: name, dtype, unit.

What is stored on disk (Arrow types, units, the tree columns, the system and cgroup tables) is named in
``store/schema.py``; the frames below are memlib's in-memory view of those rows.

Units: memory in **bytes**, time as **UTC** ``datetime64[ns, UTC]``, durations in seconds.
Unknown values are null (``pd.NA`` / NaN), never 0.

Frames
------
PROCS (one row per process per snapshot; what memlib.query returns for the frame analyses, sorted by ``snap, pid``):
    snap        int32                 snapshot index within that frame (dense, 0..n-1, ordered by ``ts``)
    ts          datetime64[ns, UTC]   sample time
    host        category              host name of the recording machine
    boot_id     category              /proc/sys/kernel/random/boot_id ("" for seed dumps)
    pid         int32
    ppid        int32                 0 for roots such as init / kthreadd
    start_time  datetime64[ns, UTC]   boot time + /proc/<pid>/stat field 22; for seed dumps: first time seen
    proc_id     int64                 dense identity of (host, boot_id, pid, start_time) within one frame
    uid         Int64 (nullable)      real uid (null for seed dumps)
    user        category              user name (uid as text when unresolvable)
    state       category (nullable)   R, S, D, Z, ... (null for seed dumps)
    name        category              comm (<= 15 chars) on Linux; argv[0] basename for seed dumps
    cmdline     category              scrubbed command line, argv joined by " " (kernel threads: "[comm]")
    rss_bytes   int64
    vsz_bytes   int64
    threads     Int64 (nullable)
    cgroup      category (nullable)   cgroup v2 path ("/system.slice/x.service"), v1 memory path otherwise
    pss_bytes   Int64 (nullable)      from smaps_rollup when readable
    uss_bytes   Int64 (nullable)      Private_Clean + Private_Dirty from smaps_rollup
    swap_bytes  Int64 (nullable)      Swap from smaps_rollup
    smaps_ts    datetime64[ns, UTC] (nullable)  when the smaps values were read (they may be older than ts)

TREE (memlib.tree.derive_trees adds these to PROCS, same row order):
    level            int16   0 = root (parent absent from the snapshot, or ppid == 0)
    parent_row       int64   row position of the parent in the same frame, -1 for a root
    descendants      int32   number of processes below (not counting itself)
    subtree_<m>      int64 / Int64  for each memory metric m present: own + all descendants, at that moment
                             (subtree_rss_bytes, subtree_pss_bytes, subtree_uss_bytes, subtree_swap_bytes)

The system series (memlib.query.SYSTEM_COLUMNS) and per-cgroup memory (ts, host, cgroup, memory_current_bytes)
come straight from the store's system and cgroups tables; their formulas are in memlib.query.system and the README.
"""

from __future__ import annotations

import pandas as pd

from store import schema as store_schema

UTC_NS = "datetime64[ns, UTC]"
MIB = 1 << 20

# name -> pandas dtype, for the PROCS frame (order is the canonical column order)
PROC_COLUMNS: dict[str, str] = {
    "snap": "int32",
    "ts": UTC_NS,
    "host": "category",
    "boot_id": "category",
    "pid": "int32",
    "ppid": "int32",
    "start_time": UTC_NS,
    "proc_id": "int64",
    "uid": "Int64",
    "user": "category",
    "state": "category",
    "name": "category",
    "cmdline": "category",
    "rss_bytes": "int64",
    "vsz_bytes": "int64",
    "threads": "Int64",
    "cgroup": "category",
    "pss_bytes": "Int64",
    "uss_bytes": "Int64",
    "swap_bytes": "Int64",
    "smaps_ts": UTC_NS,
}

# Columns a sample stores (memlib.query numbers snap and proc_id within each answer).
STORED_PROC_COLUMNS: list[str] = [c for c in PROC_COLUMNS if c not in ("snap", "proc_id")]

# memory metrics a process may carry; RSS always, the others when smaps_rollup was readable
MEMORY_METRICS: dict[str, str] = {
    "rss": "rss_bytes",
    "pss": "pss_bytes",
    "uss": "uss_bytes",
    "swap": "swap_bytes",
}
METRIC_HELP: dict[str, str] = {
    "rss": "RSS: resident pages, shared pages counted in full for every process that maps them.",
    "pss": "PSS: resident pages, each shared page split evenly among the processes sharing it (sums add up).",
    "uss": "USS: pages private to the process, what would be freed if it exited.",
    "swap": "Swap: the process's pages currently swapped out.",
}

TREE_COLUMNS: dict[str, str] = {
    "level": "int16",
    "parent_row": "int64",
    "descendants": "int32",
    "subtree_rss_bytes": "int64",
    "subtree_pss_bytes": "Int64",
    "subtree_uss_bytes": "Int64",
    "subtree_swap_bytes": "Int64",
}

SYSTEM_KEY_COLUMNS: dict[str, str] = {
    "snap": "int32",
    "ts": UTC_NS,
    "host": "category",
    "boot_id": "category",
}
# /proc/meminfo fields that are counts, not kB
MEMINFO_COUNT_FIELDS = store_schema.MEMINFO_COUNT_FIELDS

SNAPSHOT_COLUMNS: dict[str, str] = {
    "snap": "int32",
    "ts": UTC_NS,
    "host": "category",
    "boot_id": "category",
    "processes": "int32",
}


CGROUP_MEM_COLUMNS: dict[str, str] = {
    "ts": UTC_NS,
    "host": "category",
    "cgroup": "category",
    "memory_current_bytes": "Int64",
}
SKIPPED_SAMPLES_FIELD = "CollectorSkippedSamples"  # system field: samples skipped (disk full) before this one
CGROUP_MEM_FIELD_PREFIX = store_schema.CGROUP_MEM_FIELD_PREFIX  # a .current system field: prefix + cgroup path


def empty_cgroup_mem() -> pd.DataFrame:
    """An empty CGROUP_MEM frame at schema dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in CGROUP_MEM_COLUMNS.items()})


def subtree_column(metric_column: str) -> str:
    """'rss_bytes' -> 'subtree_rss_bytes'."""
    return f"subtree_{metric_column}"


def empty_procs() -> pd.DataFrame:
    """An empty PROCS frame with every column at its schema dtype."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in PROC_COLUMNS.items()})


def empty_system() -> pd.DataFrame:
    """An empty SYSTEM frame (key columns only) at schema dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in SYSTEM_KEY_COLUMNS.items()})


NON_NULLABLE = frozenset({"int16", "int32", "int64"})


def conform(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Return df with exactly `columns`, cast to their schema dtypes, in order.

    A missing nullable column is added as all-null; a missing non-nullable one raises KeyError naming it.
    """
    out = {}
    for name, dtype in columns.items():
        if name in df.columns:
            s = df[name]
            out[name] = s if str(s.dtype) == dtype else s.astype(dtype)
        elif dtype in NON_NULLABLE:
            raise KeyError(f"missing required column {name!r}")
        else:
            out[name] = pd.Series(None, index=df.index, dtype=object).astype(dtype)
    return pd.DataFrame(out, index=df.index)
