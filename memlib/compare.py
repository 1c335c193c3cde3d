"""Two moments side by side (issue 5, item 5): which processes and subtrees are new, exited, grown or shrunk.

Identity is ``proc_id`` (pid + start time): a pid reused between the two moments is one process that exited and
another that is new. Built on ``memlib.summary.growers`` (same before/after/delta definitions: a new process's
before and an exited one's after count as 0) with a ``change`` label per process and per subtree:

- ``new``: alive only at the second moment; ``exited``: only at the first;
- ``grown`` / ``shrunk`` / ``unchanged``: alive at both, delta > 0 / < 0 / == 0;
- ``unknown``: alive at both but the metric is unknown at one of them (PSS/USS/swap not read).

The subtree of a process is the process and everything below it at each moment (its membership may differ).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memlib import summary
from memlib.tree import TreeIndex, snapshot

CHANGES = ["new", "exited", "grown", "shrunk", "unchanged", "unknown"]
COMPARE_COLUMNS = [
    "proc_id", "pid", "start_time", "name", "cmdline", "user", "change", "before_bytes", "after_bytes", "delta_bytes",
    "subtree_change", "subtree_before_bytes", "subtree_after_bytes", "subtree_delta_bytes", "descendants_before",
    "descendants_after",
]  # fmt: skip


def _label(status: np.ndarray, delta: pd.Series) -> pd.Categorical:
    d = delta.to_numpy(dtype=np.float64, na_value=np.nan)
    label = np.select(
        [status == "new", status == "exited", np.isnan(d), d > 0, d < 0],
        ["new", "exited", "unknown", "grown", "shrunk"],
        "unchanged",
    )
    return pd.Categorical(label, categories=CHANGES)


def compare_processes(
    procs: pd.DataFrame, snap_from: int, snap_to: int, metric: str = "rss", index: TreeIndex | None = None
) -> pd.DataFrame:
    """PROCS(+TREE) frame, two snapshots, metric -> COMPARE_COLUMNS, one row per process alive at either moment.

    ``change`` / ``subtree_change`` in CHANGES (module docstring); bytes Int64 (null when the metric is unknown);
    ``start_time`` UTC. Sorted by |delta_bytes| descending (nulls last), then pid. Raises ValueError on an unknown
    metric; an absent snapshot simply contributes no rows.
    """
    g = summary.growers(procs, snap_from, snap_to, metric=metric, limit=None, index=index)
    status = g["status"].astype(str).to_numpy()
    out = g.assign(
        change=_label(status, g["delta_bytes"]),
        subtree_change=_label(status, g["subtree_delta_bytes"]),
    )
    both = [snapshot(procs, s, index)[["proc_id", "start_time"]] for s in (snap_from, snap_to)]
    starts = pd.concat(both).drop_duplicates("proc_id").set_index("proc_id")["start_time"]
    out["start_time"] = starts.reindex(out["proc_id"].to_numpy()).to_numpy()
    out["start_time"] = out["start_time"].astype(procs["start_time"].dtype)
    size = out["delta_bytes"].astype("Float64").abs().to_numpy(dtype=np.float64, na_value=-1.0)
    order = np.lexsort((out["pid"].to_numpy(), -size))
    return out.iloc[order][COMPARE_COLUMNS].reset_index(drop=True)


def compare_subtrees(
    procs: pd.DataFrame, snap_from: int, snap_to: int, metric: str = "rss", index: TreeIndex | None = None
) -> pd.DataFrame:
    """As compare_processes, restricted to processes with at least one descendant at either moment, sorted by
    |subtree_delta_bytes| descending (nulls last), then pid."""
    out = compare_processes(procs, snap_from, snap_to, metric=metric, index=index)
    has_desc = (out["descendants_before"].fillna(0) > 0) | (out["descendants_after"].fillna(0) > 0)
    out = out[has_desc.to_numpy(dtype=bool)]
    size = out["subtree_delta_bytes"].astype("Float64").abs().to_numpy(dtype=np.float64, na_value=-1.0)
    order = np.lexsort((out["pid"].to_numpy(), -size))
    return out.iloc[order].reset_index(drop=True)


def change_counts(table: pd.DataFrame, column: str = "change") -> dict[str, int]:
    """compare_processes output -> {change: number of rows} for every label in CHANGES (0 when absent)."""
    counts = table[column].astype(str).value_counts()
    return {c: int(counts.get(c, 0)) for c in CHANGES}


def change_totals(table: pd.DataFrame) -> pd.DataFrame:
    """compare_processes output -> one row per change label: change, processes, before_bytes, after_bytes,
    delta_bytes (sums of known values; Int64)."""
    g = table.groupby("change", observed=False, sort=False)
    out = pd.DataFrame(
        {
            "processes": g.size().astype(np.int32),
            "before_bytes": g["before_bytes"].sum(min_count=0).astype("Int64"),
            "after_bytes": g["after_bytes"].sum(min_count=0).astype("Int64"),
            "delta_bytes": g["delta_bytes"].sum(min_count=0).astype("Int64"),
        }
    )
    return out.reindex(CHANGES).rename_axis("change").reset_index()
