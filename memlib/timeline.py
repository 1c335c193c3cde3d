"""One process over time: its own and subtree memory, its direct children's subtrees, and its subtree peak.

Identity is ``proc_id`` (pid + start time): a reused pid is another process and never appears in this one's timeline;
an exec (new name/command line, same pid and start time) stays in it. Frames may carry TREE columns (as memlib.query
returns them); when they do not, trees are derived for the snapshots the process lives in. Pass a cached
``tree.TreeIndex`` built from the same frame as ``index=`` to avoid scanning every row (see memlib.tree).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from memlib import schema
from memlib.tree import TreeIndex, with_tree

TIMELINE_COLUMNS = [
    "ts", "snap", "pid", "ppid", "name", "cmdline", "level", "rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes",
    "subtree_rss_bytes", "subtree_pss_bytes", "subtree_uss_bytes", "subtree_swap_bytes", "descendants",
]  # fmt: skip


def metric_column(metric: str) -> str:
    """'rss' (or 'rss_bytes') -> 'rss_bytes'; raises ValueError naming the allowed metrics otherwise."""
    if metric in schema.MEMORY_METRICS:
        return schema.MEMORY_METRICS[metric]
    if metric in schema.MEMORY_METRICS.values():
        return metric
    raise ValueError(f"unknown memory metric {metric!r}; expected one of {sorted(schema.MEMORY_METRICS)}")


def _proc_rows(procs: pd.DataFrame, proc_id: int, index: TreeIndex | None) -> np.ndarray:
    if index is not None:
        return index.rows_of_proc(proc_id)
    rows = np.flatnonzero(procs["proc_id"].to_numpy() == proc_id)
    order = np.argsort(procs["snap"].to_numpy()[rows], kind="stable")
    return rows[order]


def _treed(procs: pd.DataFrame, proc_id: int, index: TreeIndex | None) -> tuple[pd.DataFrame, np.ndarray]:
    """(frame with TREE columns whose parent_row is positional in it, the process's row positions in time order)."""
    if all(c in procs.columns for c in schema.TREE_COLUMNS):
        return procs, _proc_rows(procs, proc_id, index)
    rows = _proc_rows(procs, proc_id, None)
    snaps = procs["snap"].to_numpy()[rows]
    sub = procs[np.isin(procs["snap"].to_numpy(), snaps)]
    sub = with_tree(sub.reset_index(drop=True))
    return sub, _proc_rows(sub, proc_id, None)


def process_timeline(procs: pd.DataFrame, proc_id: int, index: TreeIndex | None = None) -> pd.DataFrame:
    """PROCS(+TREE) frame and a proc_id -> one row per snapshot it lives in, in time order.

    Columns: ts, snap, pid, ppid, name, cmdline, level, rss/pss/uss/swap_bytes (own), subtree_rss/pss/uss/swap_bytes,
    descendants. Empty (same columns) for an unknown proc_id.
    """
    frame, rows = _treed(procs, proc_id, index)
    cols = [c for c in TIMELINE_COLUMNS if c in frame.columns]
    return frame.iloc[rows, [frame.columns.get_loc(c) for c in cols]].reset_index(drop=True)


def children_trends(
    procs: pd.DataFrame, proc_id: int, metric: str = "rss", index: TreeIndex | None = None
) -> pd.DataFrame:
    """PROCS(+TREE) frame, proc_id, metric -> long frame of its direct children's subtree totals over time.

    Columns: ts, snap, child_proc_id, child_pid, child_name, subtree_<metric>_bytes; one row per (snapshot, child)
    for every snapshot at which the child is a direct child (children that come and go appear only while they are;
    an orphan re-parented to init belongs to init from then on). Sorted by ts, child_pid.
    """
    col = metric_column(metric)
    scol = schema.subtree_column(col)
    frame, rows = _treed(procs, proc_id, index)
    if index is not None and frame is procs:
        child = index.children_of_rows(rows)
    else:
        parent = frame["parent_row"].to_numpy()
        is_p = np.zeros(len(frame) + 1, bool)  # last slot stands for "no parent" (-1)
        is_p[rows] = True
        child = np.flatnonzero(is_p[parent])
    snap = frame["snap"].to_numpy()[child]
    cpid = frame["pid"].to_numpy()[child]
    in_order = np.all((snap[1:] > snap[:-1]) | ((snap[1:] == snap[:-1]) & (cpid[1:] >= cpid[:-1])))
    if not in_order:
        child = child[np.lexsort((cpid, snap))]
    cols = ["ts", "snap", "proc_id", "pid", "name", scol]
    out = frame.iloc[child, [frame.columns.get_loc(c) for c in cols]]
    out = out.rename(columns={"proc_id": "child_proc_id", "pid": "child_pid", "name": "child_name"})
    return out.reset_index(drop=True)


class SubtreePeak(NamedTuple):
    """The largest per-moment subtree total: value in bytes (None when never known), when, and at which snapshot."""

    bytes: int | None
    ts: pd.Timestamp | None
    snap: int | None


def subtree_peak(procs: pd.DataFrame, proc_id: int, metric: str = "rss", index: TreeIndex | None = None) -> SubtreePeak:
    """PROCS(+TREE) frame, proc_id, metric -> SubtreePeak: max over time of the subtree total at each moment.

    Never a sum of each member's own maximum (those are reached at different times; design.md §3, mistake 1).
    The first moment wins a tie.
    """
    tl = process_timeline(procs, proc_id, index)
    values = tl[schema.subtree_column(metric_column(metric))] if len(tl) else pd.Series(dtype="Int64")
    if values.notna().sum() == 0:
        return SubtreePeak(None, None, None)
    i = int(values.astype("Float64").to_numpy(dtype=float, na_value=-np.inf).argmax())
    return SubtreePeak(int(values.iloc[i]), tl["ts"].iloc[i], int(tl["snap"].iloc[i]))
