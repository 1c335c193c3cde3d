"""History statistics per process (issue 4): when it was seen, how long it has lived, and its own and subtree RSS.

Lifetime comes from the start time (design.md §3, mistake 5): ``lifetime_s = last_seen - start_time``, so a process
seen in one snapshot still has its real age. Seed dumps carry no start time; their import sets ``start_time`` to the
first time seen, so there the lifetime is the observed span (``Recording.start_times_exact`` is False and the UI
says so). Growth per hour is the ordinary least-squares slope of the samples against time (bytes per hour); it is
null (NaN) for a process with fewer than two samples at distinct times. p95 interpolates linearly between samples
(numpy/pandas "linear"). Vectorised: rows are grouped by proc_id once (or taken from a cached ``tree.TreeIndex``),
then every statistic is a reduceat or a gather.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from memlib.tree import TreeIndex, group_bounds, with_tree

_NS_PER_H = 3600 * 1_000_000_000

STATS_COLUMNS = [
    "proc_id", "pid", "start_time", "name", "cmdline", "user", "first_seen", "last_seen", "samples", "lifetime_s",
    "observed_span_s",
    *[f"{p}_{s}_bytes" for p in ("rss", "subtree_rss") for s in ("min", "mean", "max", "p95", "last")],
    "growth_bytes_per_hour", "subtree_growth_bytes_per_hour",
]  # fmt: skip


def _slope_per_hour(starts: np.ndarray, counts: np.ndarray, t_ns: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Grouped rows (group g: starts[g] .. + counts[g], time order) -> least-squares slope of y per hour (NaN: none)."""
    grp = np.repeat(np.arange(len(counts)), counts)
    x = (t_ns - t_ns[starts][grp]) / _NS_PER_H  # hours since the group's first sample keeps the floats small
    yf = y.astype(float)
    xm = np.add.reduceat(x, starts) / counts
    ym = np.add.reduceat(yf, starts) / counts
    dx = x - xm[grp]
    sxy = np.add.reduceat(dx * (yf - ym[grp]), starts)
    sxx = np.add.reduceat(dx * dx, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = sxy / sxx
    slope[~(sxx > 0)] = np.nan
    return slope


def _p95(starts: np.ndarray, counts: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Grouped values -> 95th percentile per group, linear interpolation (sorts values within each group)."""
    grp = np.repeat(np.arange(len(counts)), counts)
    code_bits = max(1, len(counts).bit_length())
    vmin = int(v.min())
    span = int(v.max()) - vmin
    if span < (1 << (62 - code_bits)):  # one int64 sort of (group, value) keys
        key = (grp.astype(np.int64) << (62 - code_bits)) | (v - vmin)
        key.sort()
        srt = (key & ((1 << (62 - code_bits)) - 1)) + vmin
    else:
        srt = v[np.lexsort((v, grp))]
    h = (counts - 1) * 0.95
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, counts - 1)
    a, b = srt[starts + lo].astype(float), srt[starts + hi].astype(float)
    return a + (h - lo) * (b - a)


def process_stats(
    procs: pd.DataFrame,
    proc_ids: Iterable[int] | None = None,
    lifetime_exact: bool = True,
    index: TreeIndex | None = None,
) -> pd.DataFrame:
    """PROCS(+TREE) frame -> one row per proc_id (all, or those in `proc_ids`), sorted by proc_id: STATS_COLUMNS.

    proc_id, pid, start_time, name, cmdline, user (last values seen: an exec changes name/cmdline), first_seen,
    last_seen, samples, lifetime_s (last_seen - start_time; with ``lifetime_exact=False`` the observed span
    last_seen - first_seen), observed_span_s, rss_{min,mean,max,p95,last}_bytes, subtree_rss_{...}_bytes,
    growth_bytes_per_hour and subtree_growth_bytes_per_hour (least-squares slope of own / subtree RSS, bytes/hour).
    `index`: a TreeIndex built from this very frame, to skip grouping the rows.
    """
    missing = [c for c in ("snap", "ts", "proc_id", "pid", "start_time", "rss_bytes") if c not in procs.columns]
    if missing:
        raise KeyError(f"procs frame lacks column(s) {missing}")
    df = with_tree(procs)  # subtree totals need whole snapshots: derive before selecting processes
    if proc_ids is not None:
        wanted = np.asarray(list(proc_ids), dtype=np.int64)
        df = df[np.isin(df["proc_id"].to_numpy(), wanted)]
        index = None
    if len(df) == 0:
        return _empty(df)
    if index is not None and index.n_rows == len(df):
        order, ids, bounds = index.proc_order, index.proc_values, index.proc_starts
    else:
        snap = df["snap"].to_numpy()
        by_time = np.argsort(snap, kind="stable")
        pid_sorted = df["proc_id"].to_numpy()[by_time]
        o = np.argsort(pid_sorted, kind="stable")
        order = by_time[o]
        ids, bounds = group_bounds(pid_sorted[o])
    starts = bounds[:-1]
    counts = np.diff(bounds)
    first, last = order[starts], order[bounds[1:] - 1]
    ts = df["ts"].array
    t_ns = ts.asi8[order]
    out = {
        "proc_id": ids.astype(np.int64),
        "pid": df["pid"].to_numpy()[first],
        "start_time": df["start_time"].array.take(first),
    }
    for c in ("name", "cmdline", "user"):
        if c in df.columns:
            out[c] = df[c].array.take(last)
    out["first_seen"] = ts.take(first)
    out["last_seen"] = ts.take(last)
    out["samples"] = counts.astype(np.int32)
    span = (out["last_seen"] - out["first_seen"]).total_seconds()
    age = (out["last_seen"] - out["start_time"]).total_seconds()
    out["lifetime_s"] = np.asarray(age if lifetime_exact else span, dtype=float)
    out["observed_span_s"] = np.asarray(span, dtype=float)
    slopes = {}
    for src, pre in (("rss_bytes", "rss"), ("subtree_rss_bytes", "subtree_rss")):
        col = df[src].to_numpy(dtype=np.int64)
        v = col[order]
        out[f"{pre}_min_bytes"] = np.minimum.reduceat(v, starts)
        out[f"{pre}_mean_bytes"] = np.add.reduceat(v, starts) / counts
        out[f"{pre}_max_bytes"] = np.maximum.reduceat(v, starts)
        out[f"{pre}_p95_bytes"] = _p95(starts, counts, v)
        out[f"{pre}_last_bytes"] = col[last]
        slopes[pre] = _slope_per_hour(starts, counts, t_ns, v)
    out["growth_bytes_per_hour"] = slopes["rss"]
    out["subtree_growth_bytes_per_hour"] = slopes["subtree_rss"]
    return pd.DataFrame({c: out[c] for c in STATS_COLUMNS if c in out})


def _empty(df: pd.DataFrame) -> pd.DataFrame:
    dtypes = {"proc_id": "int64", "pid": "int32", "samples": "int32"}
    out = {}
    for c in STATS_COLUMNS:
        if c in ("start_time", "first_seen", "last_seen"):
            out[c] = pd.Series(dtype=df["ts"].dtype)
        elif c in ("name", "cmdline", "user"):
            if c in df.columns:
                out[c] = df[c].iloc[0:0].reset_index(drop=True)
        elif c.endswith(("_min_bytes", "_max_bytes", "_last_bytes")):
            out[c] = pd.Series(dtype="int64")
        else:
            out[c] = pd.Series(dtype=dtypes.get(c, "float64"))
    return pd.DataFrame(out)
