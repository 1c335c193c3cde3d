"""Leak scores (issue 6): which processes, and which subtrees, keep growing over a window.

Per process (``leak_scores``), over the rows whose ``ts`` lies in [t_from, t_to]:

1. Candidates: processes with at least ``min_samples`` samples spanning at least ``min_duration_s`` in the window
   (short-lived processes are never suspects: a job that starts and exits is churn, not a leak).
2. Resampling: each candidate's own observed span is cut into ``max_points`` (200) equal bins; a bin holds the
   **minimum** of the metric over its samples (the floor) and the mean time of those samples. A leak raises the floor;
   a short spike does not. A day at 5 s (17,280 samples) becomes 200 points, so the cost per process is bounded.
   Bins are built for every candidate at once on a (process x bin) matrix (numpy, no loop per row or process).
3. Pre-filter: only processes whose floor rose (median of the last quarter of bins > median of the first quarter)
   go on; the others are not growing and are left out of the result. The Theil-Sen step below then runs over the
   remaining candidates in chunks of rows of the matrix (a loop per chunk of ~150 processes, not per process).
4. ``rate_bytes_per_hour``: Theil-Sen slope of the floor against time (median of the slopes between every pair of
   bins), robust to a spike (a few outlying bins move the median of ~20,000 pair slopes very little).
   ``late_rate_bytes_per_hour``: the same over the second half of the bins only (pairs whose both bins lie there).
5. ``rising_share``: share of steps between consecutive bins in which the floor rose (a steady leak: close to 1;
   a grow-once-then-plateau step: close to 0). ``fit_r2``: 1 - SS_res / SS_tot of the Theil-Sen line (intercept
   = median of y - slope * x), clipped to [0, 1]. ``growth_bytes``: last bin's floor - lowest floor.
   ``growing_since``: the time of the last bin whose floor is within ``max(1 MiB, 2 % of the range)`` of the lowest
   floor (the process has been growing since it last was at its low); within the window.
6. ``score`` = log2(1 + rate / (1 MiB/h)) x rising_share x fit_r2 x late_factor x sqrt(growing_s / window),
   where late_factor = clip(late_rate / rate, 0, 1) (a process that grew and then stopped scores ~0), growing_s =
   last_seen - growing_since and window = the time covered by the window's samples (growing over the whole window
   counts fully, growing over a quarter of it half: how long it has been growing). The score is 0 when the rate is
   <= 0 or the fitted growth over the observed span (rate x span) is below ``min_growth_bytes``. It is a ranking,
   not a probability: above ~1 means a steady rise of a few MiB/h or more.

Per subtree (``subtree_leak_scores``), decision: **the sum of per-member growth**. A subtree's members are the
process itself and every process seen below it at sampled moments of the window (snapshots on a grid with a step of
``min_duration_s / 2``, plus each long-lived process's last snapshot: a member that stays ``min_duration_s`` is always
seen). Its rate is the sum of the rates of the members scored above (long-lived, floor rising). Children that come and
go are short-lived and never scored, so a subtree whose total moves only because children start and exit gets no rate
(neither does one that only gains long-lived flat children: that is more processes, not a leak; ``members`` shows
it); a long-lived child born mid-window contributes its own growth, not its birth. Members whose floor did not rise
add nothing (the rate is an upper bound of the net trend when a member shrinks). A process re-parented away (an
orphan) stays a member of the subtree it was seen in. A subtree's steadiness is the rate-weighted mean, over its
growing members, of each member's score without its rate term (rising_share x fit_r2 x late_factor x duration
factor); score = log2(1 + rate / (1 MiB/h)) x steadiness; ``growing_since`` the earliest among members with a positive
score. Roots: long-lived processes at level >= 1 (init and
kthreadd's subtrees are everything) with at least one member besides themselves; subtrees nest (a leaker's parent,
grandparent... all list it; ``top_member_*`` names it). Only subtrees with at least one scored member are listed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from memlib import schema
from memlib.timeline import metric_column
from memlib.tree import TreeIndex, group_bounds, with_tree
from memlib.units import ns_of, to_utc

NS_PER_H = 3_600_000_000_000
MIB = schema.MIB
MAX_POINTS = 200
_PAIR_BUDGET = 3_000_000  # pair slopes held at once by the chunked Theil-Sen (~24 MB of float64)

LEAK_COLUMNS = [
    "proc_id", "pid", "start_time", "name", "cmdline", "user", "first_seen", "last_seen", "samples",
    "rate_bytes_per_hour", "late_rate_bytes_per_hour", "rising_share", "fit_r2", "growth_bytes", "growing_since",
    "growing_s", "start_floor_bytes", "end_floor_bytes", "score",
]  # fmt: skip
SUBTREE_LEAK_COLUMNS = [
    "proc_id", "pid", "start_time", "name", "cmdline", "user", "last_seen", "members", "growing_members",
    "rate_bytes_per_hour", "growing_since", "top_member_pid", "top_member_name", "top_member_rate_bytes_per_hour",
    "score",
]  # fmt: skip


def _window_mask(ts: pd.Series, t_from: pd.Timestamp | None, t_to: pd.Timestamp | None) -> np.ndarray:
    t = ns_of(ts)
    mask = np.ones(len(t), bool)
    if t_from is not None:
        mask &= t >= to_utc(t_from).as_unit("ns").value
    if t_to is not None:
        mask &= t <= to_utc(t_to).as_unit("ns").value
    return mask


def _row_median(sorted_rows: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Rows sorted ascending with NaN last, and their count of valid values -> median per row (NaN when none)."""
    k = valid.astype(np.int64)
    lo = np.clip((k - 1) // 2, 0, None)
    hi = np.clip(k // 2, 0, sorted_rows.shape[1] - 1)
    r = np.arange(sorted_rows.shape[0])
    med = (sorted_rows[r, lo] + sorted_rows[r, hi]) / 2
    med[k == 0] = np.nan
    return med


def theil_sen(x: np.ndarray, y: np.ndarray, from_col: int = 0) -> np.ndarray:
    """(rows x points) times and values, NaN = empty -> Theil-Sen slope per row (y units per x unit; NaN: < 2 points).

    Only pairs whose both points lie at column >= from_col are used (from_col=0: every pair). Rows are processed in
    chunks so at most ~3 M pair slopes exist at once.
    """
    n_rows, n_pts = y.shape
    i, j = np.triu_indices(n_pts, k=1)
    keep = i >= from_col
    i, j = i[keep], j[keep]
    out = np.full(n_rows, np.nan)
    if len(i) == 0:
        return out
    step = max(1, _PAIR_BUDGET // len(i))
    for a in range(0, n_rows, step):  # a loop per chunk of rows, each chunk fully vectorised
        xs, ys = x[a : a + step], y[a : a + step]
        with np.errstate(invalid="ignore", divide="ignore"):
            s = (ys[:, j] - ys[:, i]) / (xs[:, j] - xs[:, i])
        s[~np.isfinite(s)] = np.nan
        valid = np.count_nonzero(~np.isnan(s), axis=1)
        s.sort(axis=1)
        out[a : a + step] = _row_median(s, valid)
    return out


def _empty_leaks(procs: pd.DataFrame) -> pd.DataFrame:
    out: dict[str, pd.Series] = {}
    for c in LEAK_COLUMNS:
        if c in ("start_time", "first_seen", "last_seen", "growing_since"):
            out[c] = pd.Series(dtype=schema.UTC_NS)
        elif c in ("name", "cmdline", "user"):
            out[c] = procs[c].iloc[0:0].reset_index(drop=True) if c in procs.columns else pd.Series(dtype=object)
        elif c == "pid" and c in procs.columns:
            out[c] = pd.Series(dtype="int32")
        elif c in ("proc_id", "growth_bytes", "start_floor_bytes", "end_floor_bytes"):
            out[c] = pd.Series(dtype="int64")
        elif c in ("pid", "samples"):
            out[c] = pd.Series(dtype="int32")
        else:
            out[c] = pd.Series(dtype="float64")
    return pd.DataFrame(out)


def leak_scores(
    procs: pd.DataFrame,
    t_from: pd.Timestamp | str | None = None,
    t_to: pd.Timestamp | str | None = None,
    metric: str = "rss",
    min_samples: int = 12,
    min_duration_s: float = 600.0,
    min_growth_bytes: int = MIB,
    max_points: int = MAX_POINTS,
    index: TreeIndex | None = None,
) -> pd.DataFrame:
    """PROCS frame and a window -> one row per growing candidate process, most suspicious first: LEAK_COLUMNS.

    proc_id, pid, start_time, name, cmdline, user (last seen in the window), first_seen, last_seen, samples (in the
    window), rate_bytes_per_hour (Theil-Sen), late_rate_bytes_per_hour, rising_share, fit_r2, growth_bytes,
    growing_since, growing_s, start_floor_bytes, end_floor_bytes, score. Definitions in the module docstring. Rows
    with a null metric value (PSS/USS unread) are ignored. `index`: a TreeIndex built from this very frame (skips a
    sort). Sorted by score, then rate, descending.
    """
    col = metric_column(metric)
    missing = [c for c in ("ts", "proc_id", "pid", "start_time", col) if c not in procs.columns]
    if missing:
        raise KeyError(f"procs frame lacks column(s) {missing}")
    if max_points < 4:
        raise ValueError(f"max_points must be >= 4, got {max_points}")
    mask = _window_mask(procs["ts"], t_from, t_to)
    values = procs[col]
    if values.hasnans:
        mask &= values.notna().to_numpy()
    if index is not None and index.n_rows == len(procs):
        order = index.proc_order
    else:
        snap_order = np.argsort(procs["snap"].to_numpy(), kind="stable") if "snap" in procs.columns else None
        if snap_order is None:
            snap_order = np.argsort(ns_of(procs["ts"]), kind="stable")
        o = np.argsort(procs["proc_id"].to_numpy()[snap_order], kind="stable")
        order = snap_order[o]
    order = order[mask[order]]
    if order.size == 0:
        return _empty_leaks(procs)
    ids, bounds = group_bounds(procs["proc_id"].to_numpy()[order])
    counts = np.diff(bounds)
    t_all = ns_of(procs["ts"])[order]
    window_s = max((int(t_all.max()) - int(t_all.min())) / 1e9, 1e-9)  # the window actually covered by samples
    first_t, last_t = t_all[bounds[:-1]], t_all[bounds[1:] - 1]
    span = last_t - first_t
    keep = (counts >= max(2, min_samples)) & (span >= min_duration_s * 1e9) & (span > 0)
    if not keep.any():
        return _empty_leaks(procs)
    row_keep = np.repeat(keep, counts)
    rows = order[row_keep]
    g = np.repeat(np.arange(int(keep.sum())), counts[keep])
    ids, first_t, last_t, span, counts = ids[keep], first_t[keep], last_t[keep], span[keep], counts[keep]
    t = t_all[row_keep]
    v = values.to_numpy(dtype=np.float64, na_value=np.nan)[rows]

    # per (process, bin): the floor (minimum) and the mean time of its samples
    nb = max_points
    b = np.minimum(((t - first_t[g]) / span[g] * nb).astype(np.int64), nb - 1)  # float: no overflow on long spans
    key = g * nb + b
    _, kb = group_bounds(key)  # rows are in (process, time) order, so keys are sorted
    kstart = kb[:-1]
    kg = g[kstart]
    last_row = rows[np.cumsum(counts) - 1]
    first_row = rows[np.concatenate([[0], np.cumsum(counts)[:-1]])]
    floors = pd.DataFrame(
        {
            "proc_id": ids[kg].astype(np.int64),
            "b": b[kstart],
            "floor": np.minimum.reduceat(v, kstart),
            "tmean_h": np.add.reduceat((t - first_t[g]) / NS_PER_H, kstart) / np.diff(kb),
            "first_ns": first_t[kg],
            "last_ns": last_t[kg],
            "samples": counts[kg],
            "pid": procs["pid"].to_numpy()[first_row][kg],
            "start_time": procs["start_time"].array.take(first_row[kg]),
        }
    )
    for c in ("name", "cmdline", "user"):
        if c in procs.columns:
            floors[c] = procs[c].array.take(last_row[kg])
    return score_floors(floors, window_s, nb, min_growth_bytes)


FLOOR_COLUMNS = ["proc_id", "b", "floor", "tmean_h", "first_ns", "last_ns", "samples", "pid", "start_time"]


def score_floors(
    floors: pd.DataFrame | None, window_s: float, max_points: int = MAX_POINTS, min_growth_bytes: int = MIB
) -> pd.DataFrame:
    """Per-bin floors -> leak scores: LEAK_COLUMNS, most suspicious first (steps 3-6 of the module docstring).

    `floors`: one row per non-empty (process, bin), sorted by proc_id then b: FLOOR_COLUMNS (b = bin number in
    0..max_points-1, floor = min of the metric in it, tmean_h = mean time of its samples in hours since the process's
    first sample in the window, first_ns/last_ns/samples/pid/start_time per process, repeated) and optionally name,
    cmdline, user (the process's last values in the window). window_s: the time covered by the window's samples.
    Extra columns that are constant per process (host, boot_id) are carried into the result.
    """
    if floors is None or floors.empty:
        return _empty_leaks(floors if floors is not None else pd.DataFrame())
    nb = max_points
    pid_codes = floors["proc_id"].to_numpy()
    ids, gb = group_bounds(pid_codes)
    gstart = gb[:-1]
    n_proc = len(ids)
    kg = np.repeat(np.arange(n_proc), np.diff(gb))
    kbin = floors["b"].to_numpy(np.int64)
    floor = floors["floor"].to_numpy(np.float64)
    tmean = floors["tmean_h"].to_numpy(np.float64)
    first_t = floors["first_ns"].to_numpy(np.int64)[gstart]
    last_t = floors["last_ns"].to_numpy(np.int64)[gstart]
    span = last_t - first_t
    counts = floors["samples"].to_numpy(np.int64)[gstart]
    Y = np.full((n_proc, nb), np.nan)
    X = np.full((n_proc, nb), np.nan)
    Y[kg, kbin] = floor
    X[kg, kbin] = tmean

    # pre-filter: the floor rose between the first and the last quarter of the bins
    q = nb // 4
    with np.errstate(all="ignore"):
        early = np.nanmedian(Y[:, :q], axis=1)
        late = np.nanmedian(Y[:, nb - q :], axis=1)
    rising = late > early
    if not rising.any():
        return _empty_leaks(floors)
    sel = np.flatnonzero(rising)
    Ys, Xs = Y[sel], X[sel]
    rate = theil_sen(Xs, Ys)
    late_rate = theil_sen(Xs, Ys, from_col=nb // 2)

    # fit quality of the robust line
    with np.errstate(all="ignore"):
        intercept = np.nanmedian(Ys - rate[:, None] * Xs, axis=1)
        resid = Ys - (intercept[:, None] + rate[:, None] * Xs)
        ss_res = np.nansum(resid * resid, axis=1)
        dev = Ys - np.nanmean(Ys, axis=1)[:, None]
        ss_tot = np.nansum(dev * dev, axis=1)
        r2 = np.where(ss_tot > 0, np.clip(1 - ss_res / ss_tot, 0, 1), 0.0)

    # rising share, growth and growing-since from the compact (non-empty bins) arrays
    per_proc_bins = np.diff(gb)
    same = kg[1:] == kg[:-1]
    ups = np.bincount(kg[1:][same & (floor[1:] > floor[:-1])], minlength=n_proc)
    steps = np.maximum(per_proc_bins - 1, 1)
    share = ups / steps
    lo = np.minimum.reduceat(floor, gstart)
    hi = np.maximum.reduceat(floor, gstart)
    tol = np.maximum(MIB, 0.02 * (hi - lo))
    near_low = floor <= (lo + tol)[kg]
    pos = np.where(near_low, np.arange(len(floor)), -1)
    last_low = np.maximum.reduceat(pos, gstart)
    since_ns = first_t + np.rint(tmean[last_low] * NS_PER_H).astype(np.int64)
    end_floor = floor[gstart + per_proc_bins - 1]
    start_floor = floor[gstart]

    share = share[sel]
    late_factor = np.where(rate > 0, np.clip(np.nan_to_num(late_rate / np.where(rate > 0, rate, 1)), 0, 1), 0.0)
    fitted_growth = rate * span[sel] / NS_PER_H
    growing_s = (last_t[sel] - since_ns[sel]) / 1e9
    duration_factor = np.sqrt(np.clip(growing_s / window_s, 0, 1))
    score = np.log2(1 + np.clip(rate, 0, None) / MIB) * share * r2 * late_factor * duration_factor
    score = np.where((rate > 0) & (fitted_growth >= min_growth_bytes), score, 0.0)
    score = np.nan_to_num(score)

    at = gstart[sel]
    out = pd.DataFrame(
        {
            "proc_id": ids[sel].astype(np.int64),
            "pid": floors["pid"].to_numpy()[at].astype(np.int32),
            "start_time": floors["start_time"].array.take(at),
        }
    )
    for c in floors.columns:
        if c not in FLOOR_COLUMNS:
            out[c] = floors[c].array.take(at)
    out["first_seen"] = pd.DatetimeIndex(first_t[sel]).tz_localize("UTC")
    out["last_seen"] = pd.DatetimeIndex(last_t[sel]).tz_localize("UTC")
    out["samples"] = counts[sel].astype(np.int32)
    out["rate_bytes_per_hour"] = rate
    out["late_rate_bytes_per_hour"] = late_rate
    out["rising_share"] = share
    out["fit_r2"] = r2
    out["growth_bytes"] = (end_floor - lo)[sel].astype(np.int64)
    out["growing_since"] = pd.DatetimeIndex(since_ns[sel]).tz_localize("UTC")
    out["growing_s"] = growing_s
    out["start_floor_bytes"] = start_floor[sel].astype(np.int64)
    out["end_floor_bytes"] = end_floor[sel].astype(np.int64)
    out["score"] = score
    order_out = np.lexsort((-np.nan_to_num(rate, nan=-np.inf), -score))
    extra = [c for c in out.columns if c not in LEAK_COLUMNS]
    return out.iloc[order_out].reset_index(drop=True)[[c for c in LEAK_COLUMNS if c in out.columns] + extra]


def _membership_pairs(
    procs: pd.DataFrame, rows: np.ndarray, last_rows: np.ndarray, min_duration_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Window rows -> (root proc_id, member proc_id) pairs, distinct: member was in root's subtree at a sampled moment.

    Sampled moments: snapshots on a time grid with a step of min_duration_s / 2 (so a member that stays in a subtree
    for min_duration_s is seen at least once), plus every long-lived process's last snapshot in the window. Roots are
    processes at level >= 1; every process is paired with itself.
    """
    snap_all = procs["snap"].to_numpy()
    snap_w = snap_all[rows]
    t_w = ns_of(procs["ts"])[rows]
    us, first = np.unique(snap_w, return_index=True)
    ut = t_w[first]
    step = max(1.0, min_duration_s / 2) * 1e9
    grid = np.arange(ut[0], ut[-1] + step, step)
    picked = us[np.clip(np.searchsorted(ut, grid), 0, len(us) - 1)]
    snaps = np.union1d(picked, snap_all[last_rows])
    positions = rows[np.isin(snap_w, snaps)]
    sub = procs.iloc[positions]
    sub = with_tree(sub.drop(columns=[c for c in schema.TREE_COLUMNS if c in sub.columns]).reset_index(drop=True))
    parent = sub["parent_row"].to_numpy(dtype=np.int64)
    level = sub["level"].to_numpy()
    ids = sub["proc_id"].to_numpy().astype(np.int64)
    anc_pairs, mem_pairs = [ids], [ids]  # a process is a member of its own subtree
    member = np.arange(len(sub))
    cur = parent.copy()
    while True:  # one pass per tree level, every row at once
        alive = cur >= 0
        if not alive.any():
            break
        member, cur = member[alive], cur[alive]
        hit = level[cur] >= 1
        anc_pairs.append(ids[cur[hit]])
        mem_pairs.append(ids[member[hit]])
        cur = parent[cur]
    anc, mem = np.concatenate(anc_pairs), np.concatenate(mem_pairs)
    width = np.int64(int(max(anc.max(initial=0), mem.max(initial=0))) + 1)
    key = np.unique(anc * width + mem)
    return key // width, key % width


def subtree_leak_scores(
    procs: pd.DataFrame,
    t_from: pd.Timestamp | str | None = None,
    t_to: pd.Timestamp | str | None = None,
    metric: str = "rss",
    min_samples: int = 12,
    min_duration_s: float = 600.0,
    min_growth_bytes: int = MIB,
    process_scores: pd.DataFrame | None = None,
    index: TreeIndex | None = None,
    long_lived: np.ndarray | None = None,
) -> pd.DataFrame:
    """PROCS frame and a window -> one row per subtree with a growing member, most suspicious first.

    Columns: SUBTREE_LEAK_COLUMNS (proc_id ... of the subtree's root, last_seen in the window; members = distinct
    processes seen in the subtree at the sampled moments, growing_members = members with a positive score,
    rate_bytes_per_hour = sum of the scored members' rates, growing_since, top_member_* = the member with the largest
    rate, score). `process_scores`: leak_scores of the same frame/window/parameters, to avoid recomputing.
    `long_lived`: the proc_ids seen for min_samples over min_duration_s in the window, when `procs` holds only the
    sampled moments (memlib.query passes the rows of the grid and of each long-lived process's last sample).
    """
    scores = process_scores
    if scores is None:
        scores = leak_scores(procs, t_from, t_to, metric, min_samples, min_duration_s, min_growth_bytes, index=index)
    empty = pd.DataFrame({c: pd.Series(dtype=_subtree_dtype(c)) for c in SUBTREE_LEAK_COLUMNS})
    if scores.empty:
        return empty
    rows = np.flatnonzero(_window_mask(procs["ts"], t_from, t_to))
    pid_arr = procs["proc_id"].to_numpy()[rows]
    t_arr = ns_of(procs["ts"])[rows]
    o = np.lexsort((t_arr, pid_arr))
    ids, bounds = group_bounds(pid_arr[o])
    last_rows = rows[o[bounds[1:] - 1]]
    counts = np.diff(bounds)
    span = t_arr[o[bounds[1:] - 1]] - t_arr[o[bounds[:-1]]]
    if long_lived is None:
        long_lived = (counts >= max(2, min_samples)) & (span >= min_duration_s * 1e9) & (span > 0)
    else:
        long_lived = np.isin(ids, np.asarray(long_lived, np.int64))
    root_ids, member_ids = _membership_pairs(procs, rows, last_rows[long_lived], min_duration_s)
    is_long = np.zeros(int(max(ids.max(), root_ids.max())) + 1, bool)
    is_long[ids[long_lived]] = True
    ok = is_long[root_ids] & (root_ids != member_ids)
    roots_with_children = np.unique(root_ids[ok])
    keep = np.isin(root_ids, roots_with_children)
    root_ids, member_ids = root_ids[keep], member_ids[keep]
    if root_ids.size == 0:
        return empty
    sc = scores.set_index("proc_id")
    pos = sc.index.get_indexer(member_ids)
    scored = pos >= 0
    pairs = pd.DataFrame({"root": root_ids, "member": member_ids})
    members = pairs.groupby("root", sort=True).size()
    p = pairs[scored].copy()
    p["rate"] = sc["rate_bytes_per_hour"].to_numpy()[pos[scored]]
    p["score"] = sc["score"].to_numpy()[pos[scored]]
    # a member's steadiness: its score without the rate term (rising share x fit x late factor x duration factor)
    rate_term = np.log2(1 + np.clip(sc["rate_bytes_per_hour"].to_numpy(), 0, None) / MIB)
    with np.errstate(all="ignore"):
        steady = np.where(rate_term > 0, sc["score"].to_numpy() / rate_term, 0.0)
    p["steady"] = steady[pos[scored]]
    p["since"] = ns_of(sc["growing_since"])[pos[scored]]
    p["pid"] = sc["pid"].to_numpy()[pos[scored]]
    p["name"] = sc["name"].astype(object).to_numpy()[pos[scored]] if "name" in sc.columns else ""
    if p.empty:
        return empty
    pos_rate = np.clip(p["rate"].to_numpy(), 0, None)
    p["w"] = pos_rate
    p["ws"] = pos_rate * p["steady"].to_numpy()
    p["growing"] = (p["score"].to_numpy() > 0).astype(np.int64)
    p["since_g"] = np.where(p["score"].to_numpy() > 0, p["since"].to_numpy(), np.iinfo(np.int64).max)
    grp = p.groupby("root", sort=True)
    agg = pd.DataFrame(
        {
            "rate": grp["rate"].sum(),
            "w": grp["w"].sum(),
            "ws": grp["ws"].sum(),
            "growing": grp["growing"].sum(),
            "since": grp["since_g"].min(),
        }
    )
    top = p.sort_values(["root", "rate"], ascending=[True, False]).drop_duplicates("root").set_index("root")
    with np.errstate(all="ignore"):
        steadiness = np.where(agg["w"] > 0, agg["ws"] / agg["w"], 0.0)
    rate = agg["rate"].to_numpy()
    score = np.where(rate > 0, np.log2(1 + np.clip(rate, 0, None) / MIB) * steadiness, 0.0)
    roots = agg.index.to_numpy()
    root_last = pd.Series(last_rows, index=ids).reindex(roots).to_numpy()
    since = agg["since"].to_numpy()
    out = pd.DataFrame(
        {
            "proc_id": roots.astype(np.int64),
            "pid": procs["pid"].to_numpy()[root_last].astype(np.int32),
            "start_time": procs["start_time"].array.take(root_last),
        }
    )
    for c in ("name", "cmdline", "user"):
        if c in procs.columns:
            out[c] = procs[c].array.take(root_last)
    out["last_seen"] = procs["ts"].array.take(root_last)
    out["members"] = members.reindex(roots).to_numpy().astype(np.int32)
    out["growing_members"] = agg["growing"].to_numpy().astype(np.int32)
    out["rate_bytes_per_hour"] = rate
    nat = since == np.iinfo(np.int64).max
    out["growing_since"] = pd.DatetimeIndex(np.where(nat, np.datetime64("NaT"), since.astype("datetime64[ns]")))
    out["growing_since"] = out["growing_since"].dt.tz_localize("UTC")
    out["top_member_pid"] = top["pid"].reindex(roots).to_numpy().astype(np.int32)
    out["top_member_name"] = top["name"].reindex(roots).to_numpy()
    out["top_member_rate_bytes_per_hour"] = top["rate"].reindex(roots).to_numpy()
    out["score"] = score
    out = out.iloc[np.lexsort((-rate, -score))].reset_index(drop=True)
    return out[[c for c in SUBTREE_LEAK_COLUMNS if c in out.columns]]


def _subtree_dtype(c: str) -> str:
    if c in ("start_time", "last_seen", "growing_since"):
        return schema.UTC_NS
    if c in ("name", "cmdline", "user", "top_member_name"):
        return "object"
    if c == "proc_id":
        return "int64"
    if c in ("pid", "members", "growing_members", "top_member_pid"):
        return "int32"
    return "float64"


def leak_series(
    procs: pd.DataFrame,
    proc_ids: Sequence[int],
    t_from: pd.Timestamp | str | None = None,
    t_to: pd.Timestamp | str | None = None,
    metric: str = "rss",
    points: int = 60,
) -> pd.DataFrame:
    """PROCS frame, proc_ids, window -> their resampled floors for sparklines: proc_id, ts, floor_bytes.

    Each process's observed span in the window is cut into `points` equal bins (as leak_scores does with
    max_points): floor_bytes = the minimum of the metric in the bin, ts = the mean time of its samples. Empty bins
    are left out. Sorted by proc_id (in the order given), ts.
    """
    col = metric_column(metric)
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    wanted = np.asarray(list(proc_ids), dtype=np.int64)
    mask = _window_mask(procs["ts"], t_from, t_to) & np.isin(procs["proc_id"].to_numpy(), wanted)
    if procs[col].hasnans:
        mask &= procs[col].notna().to_numpy()
    rows = np.flatnonzero(mask)
    rank = pd.Series(np.arange(len(wanted)), index=wanted).groupby(level=0).first()
    pid = rank.reindex(procs["proc_id"].to_numpy()[rows]).to_numpy()
    t = ns_of(procs["ts"])[rows]
    o = np.lexsort((t, pid))
    rows, pid, t = rows[o], pid[o], t[o]
    if rows.size == 0:
        return pd.DataFrame(
            {"proc_id": pd.Series(dtype="int64"), "ts": pd.Series(dtype=schema.UTC_NS), "floor_bytes": []}
        )
    _, bounds = group_bounds(pid)
    counts = np.diff(bounds)
    g = np.repeat(np.arange(len(counts)), counts)
    first = t[bounds[:-1]][g]
    span = np.maximum(t[bounds[1:] - 1][g] - first, 1)
    b = np.minimum(((t - first) / span * points).astype(np.int64), points - 1)
    _, kb = group_bounds(g * points + b)
    v = procs[col].to_numpy(dtype=np.float64, na_value=np.nan)[rows]
    floor = np.minimum.reduceat(v, kb[:-1])
    tmean = first[kb[:-1]] + np.rint(np.add.reduceat(t - first, kb[:-1]) / np.diff(kb)).astype(np.int64)
    return pd.DataFrame(
        {
            "proc_id": procs["proc_id"].to_numpy()[rows][kb[:-1]].astype(np.int64),
            "ts": pd.DatetimeIndex(tmean).tz_localize("UTC"),
            "floor_bytes": floor.astype(np.int64),
        }
    )
