"""Spikes (issue 6): short rises well above a series' recent baseline, per process and for the system.

Definition, per series (one process's metric, or the system's used memory), samples in time order:
- baseline at a sample = median of the series over the preceding ``baseline_s`` seconds (current sample excluded,
  at least ``min_baseline_samples`` samples, otherwise no baseline and no spike);
- spread at a sample = median over the same preceding window of |value - baseline| (a rolling MAD of the past);
- a sample is *high* when value - baseline > max(min_size_bytes, k x spread);
- a spike is a run of consecutive high samples of one series: ``start`` = first high sample's time, ``end`` = last
  high sample's time, ``peak_bytes``/``peak_ts`` = the largest value and when (first on ties), ``baseline_bytes`` =
  the baseline at the start, ``size_bytes`` = peak - baseline, ``samples`` = number of high samples.
A steady leak is never a spike: on a ramp every sample sits the same distance above its trailing median, so the
spread equals that distance and ``k`` > 1 keeps it below the threshold. A rise that lasts longer than about half of
``baseline_s`` becomes the new baseline (a level shift ends the spike). Unknown values (null PSS) are skipped.

Per process, only processes whose metric moves by at least ``min_size_bytes`` in the window (max - min, one
reduceat over all rows) get rolling medians (pandas groupby-rolling over those rows only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memlib import schema
from memlib.timeline import metric_column
from memlib.tree import TreeIndex, group_bounds
from memlib.units import ns_of, to_utc

MIB = schema.MIB
DEFAULT_BASELINE_S = 600.0
DEFAULT_K = 5.0
PROCESS_MIN_SIZE = 32 * MIB
SYSTEM_MIN_SIZE = 128 * MIB

EVENT_COLUMNS = [
    "start", "end", "duration_s", "peak_ts", "peak_bytes", "baseline_bytes", "size_bytes", "samples",
]  # fmt: skip
PROCESS_SPIKE_COLUMNS = ["proc_id", "pid", "start_time", "name", "cmdline", "user", *EVENT_COLUMNS]
SYSTEM_SPIKE_COLUMNS = ["series", *EVENT_COLUMNS]


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "group": pd.Series(dtype="int64"),
            "start": pd.Series(dtype=schema.UTC_NS),
            "end": pd.Series(dtype=schema.UTC_NS),
            "duration_s": pd.Series(dtype="float64"),
            "peak_ts": pd.Series(dtype=schema.UTC_NS),
            "peak_bytes": pd.Series(dtype="int64"),
            "baseline_bytes": pd.Series(dtype="int64"),
            "size_bytes": pd.Series(dtype="int64"),
            "samples": pd.Series(dtype="int32"),
            "first_row": pd.Series(dtype="int64"),
        }
    )


def series_spikes(
    group: np.ndarray,
    t_ns: np.ndarray,
    values: np.ndarray,
    baseline_s: float = DEFAULT_BASELINE_S,
    k: float = DEFAULT_K,
    min_size_bytes: float = PROCESS_MIN_SIZE,
    min_baseline_samples: int = 3,
) -> pd.DataFrame:
    """Many series at once: group id, time (int ns, UTC) and value per sample, sorted by (group, time) -> spikes.

    Columns: group, start, end, duration_s, peak_ts, peak_bytes, baseline_bytes, size_bytes, samples, first_row
    (position of the spike's first sample in the inputs). Rules in the module docstring.
    """
    n = len(values)
    if n == 0:
        return _empty_events()
    if baseline_s <= 0 or k < 0 or min_size_bytes < 0:
        raise ValueError("baseline_s must be > 0, k and min_size_bytes >= 0")
    v = np.asarray(values, dtype=np.float64)
    frame = pd.DataFrame({"g": group, "v": v}, index=pd.DatetimeIndex(t_ns))
    window = f"{round(baseline_s * 1e9)}ns"
    roll = frame.groupby("g", sort=False)["v"].rolling(window, closed="left", min_periods=min_baseline_samples)
    base = roll.median().to_numpy()
    dev = v - base
    frame["d"] = np.abs(dev)
    roll_d = frame.groupby("g", sort=False)["d"].rolling(window, closed="left", min_periods=1)
    spread = roll_d.median().to_numpy()
    spread = np.where(np.isnan(spread), 0.0, spread)
    high = dev > np.maximum(min_size_bytes, k * spread)  # NaN baseline -> False
    if not high.any():
        return _empty_events()
    g = np.asarray(group)
    new_group = np.concatenate([[True], g[1:] != g[:-1]])
    prev_high = np.concatenate([[False], high[:-1]]) & ~new_group
    starts_at = high & ~prev_high
    event = np.cumsum(starts_at) - 1
    hi_rows = np.flatnonzero(high)
    ev = event[hi_rows]
    _, eb = group_bounds(ev)
    first, last = hi_rows[eb[:-1]], hi_rows[eb[1:] - 1]
    peak = np.maximum.reduceat(v[hi_rows], eb[:-1])
    is_peak = v[hi_rows] == peak[ev]
    peak_pos = np.where(is_peak, np.arange(len(hi_rows)), len(hi_rows))
    peak_row = hi_rows[np.minimum.reduceat(peak_pos, eb[:-1])]
    t = np.asarray(t_ns, dtype=np.int64)
    baseline = np.rint(base[first]).astype(np.int64)
    utc = "UTC"
    return pd.DataFrame(
        {
            "group": g[first].astype(np.int64),
            "start": pd.DatetimeIndex(t[first]).tz_localize(utc),
            "end": pd.DatetimeIndex(t[last]).tz_localize(utc),
            "duration_s": (t[last] - t[first]) / 1e9,
            "peak_ts": pd.DatetimeIndex(t[peak_row]).tz_localize(utc),
            "peak_bytes": np.rint(peak).astype(np.int64),
            "baseline_bytes": baseline,
            "size_bytes": np.rint(peak).astype(np.int64) - baseline,
            "samples": np.diff(eb).astype(np.int32),
            "first_row": first.astype(np.int64),
        }
    )


def process_spikes(
    procs: pd.DataFrame,
    t_from: pd.Timestamp | str | None = None,
    t_to: pd.Timestamp | str | None = None,
    metric: str = "rss",
    baseline_s: float = DEFAULT_BASELINE_S,
    k: float = DEFAULT_K,
    min_size_bytes: float = PROCESS_MIN_SIZE,
    index: TreeIndex | None = None,
) -> pd.DataFrame:
    """PROCS frame and a window -> one row per process spike, largest first: PROCESS_SPIKE_COLUMNS.

    proc_id, pid, start_time, name, cmdline, user (at the spike's start), start, end, duration_s, peak_ts,
    peak_bytes, baseline_bytes, size_bytes, samples. Only samples inside [t_from, t_to] are used (the baseline too).
    `index`: a TreeIndex built from this very frame (skips a sort).
    """
    col = metric_column(metric)
    missing = [c for c in ("ts", "proc_id", "pid", "start_time", col) if c not in procs.columns]
    if missing:
        raise KeyError(f"procs frame lacks column(s) {missing}")
    t_all = ns_of(procs["ts"])
    mask = np.ones(len(procs), bool)
    if t_from is not None:
        mask &= t_all >= to_utc(t_from).as_unit("ns").value
    if t_to is not None:
        mask &= t_all <= to_utc(t_to).as_unit("ns").value
    values = procs[col]
    if values.hasnans:
        mask &= values.notna().to_numpy()
    if index is not None and index.n_rows == len(procs):
        order = index.proc_order
    else:
        by_time = np.argsort(t_all, kind="stable")
        order = by_time[np.argsort(procs["proc_id"].to_numpy()[by_time], kind="stable")]
    order = order[mask[order]]
    empty = pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in PROCESS_SPIKE_COLUMNS})
    if order.size == 0:
        return empty
    v = values.to_numpy(dtype=np.float64, na_value=np.nan)[order]
    pid_sorted = procs["proc_id"].to_numpy()[order]
    _, bounds = group_bounds(pid_sorted)
    moves = np.maximum.reduceat(v, bounds[:-1]) - np.minimum.reduceat(v, bounds[:-1])
    cand = np.repeat(moves >= min_size_bytes, np.diff(bounds))
    rows = order[cand]
    if rows.size == 0:
        return empty
    ev = series_spikes(pid_sorted[cand], t_all[rows], v[cand], baseline_s, k, min_size_bytes)
    if ev.empty:
        return empty
    at = rows[ev["first_row"].to_numpy()]
    out = pd.DataFrame(
        {
            "proc_id": ev["group"].to_numpy(),
            "pid": procs["pid"].to_numpy()[at].astype(np.int32),
            "start_time": procs["start_time"].array.take(at),
        }
    )
    for c in ("name", "cmdline", "user"):
        if c in procs.columns:
            out[c] = procs[c].array.take(at)
    for c in EVENT_COLUMNS:
        out[c] = ev[c].to_numpy() if c not in ("start", "end", "peak_ts") else ev[c].array
    out = out.sort_values(["size_bytes", "start"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return out[[c for c in PROCESS_SPIKE_COLUMNS if c in out.columns]]


def used_spikes(
    summ: pd.DataFrame,
    t_from: pd.Timestamp | str | None = None,
    t_to: pd.Timestamp | str | None = None,
    baseline_s: float = DEFAULT_BASELINE_S,
    k: float = DEFAULT_K,
    min_size_bytes: float = SYSTEM_MIN_SIZE,
) -> pd.DataFrame:
    """A system series (ts, mem_used_bytes; one row per sample) and a window -> SYSTEM_SPIKE_COLUMNS, time order."""
    used = summ["mem_used_bytes"]
    t = ns_of(summ["ts"])
    mask = used.notna().to_numpy().copy()  # pandas 3 hands out read-only views
    if t_from is not None:
        mask &= t >= to_utc(t_from).as_unit("ns").value
    if t_to is not None:
        mask &= t <= to_utc(t_to).as_unit("ns").value
    order = np.flatnonzero(mask)
    order = order[np.argsort(t[order], kind="stable")]
    v = used.to_numpy(dtype=np.float64, na_value=np.nan)[order]
    ev = series_spikes(np.zeros(len(order), np.int64), t[order], v, baseline_s, k, min_size_bytes)
    out = ev.drop(columns=["group", "first_row"])
    out.insert(0, "series", "mem_used")
    return out.sort_values("start", kind="stable").reset_index(drop=True)[SYSTEM_SPIKE_COLUMNS]


def _dtype(c: str) -> str:
    if c in ("start_time", "start", "end", "peak_ts"):
        return schema.UTC_NS
    if c in ("name", "cmdline", "user"):
        return "object"
    if c in ("proc_id", "peak_bytes", "baseline_bytes", "size_bytes"):
        return "int64"
    if c in ("pid", "samples"):
        return "int32"
    return "float64"
