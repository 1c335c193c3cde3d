"""Totals over time per group of processes: by name, by command (argv[0]), by user or by cgroup (issue 5, item 4).

A group's value at a moment is the sum over its member processes at that moment (``processes`` counts them).
RSS is always known; PSS/USS/swap are sums of the members whose value is known and null when none is
(``smaps_known`` says how many members had PSS). Keys:

- ``name``: the process name (comm, <= 15 chars on Linux).
- ``command``: argv[0] of the recorded command line, basename, without a trailing ':' (``/usr/bin/python3 x.py`` ->
  ``python3``; ``postgres: checkpointer`` -> ``postgres``); kernel threads keep their ``[comm]``.
- ``user``: the user name.
- ``cgroup``: the process's own cgroup path (see memlib.cgroups for totals rolled up to parent cgroups).

A process whose key is unknown (no cgroup recorded, empty name) lands in the group ``UNKNOWN_GROUP``, so that the
group totals of a moment always add up to the totals of all its processes. With ``top=K`` only the K groups with the
largest peak (max over time of the group total of ``metric``) keep their own rows (a group whose peak is 0 or unknown
is never among them); the rest are summed into ``OTHER_GROUP``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from memlib import schema
from memlib.timeline import metric_column
from memlib.tree import TreeIndex

GROUP_BY = ("name", "command", "user", "cgroup")
UNKNOWN_GROUP = "(unknown)"
OTHER_GROUP = "(other)"
GROUP_COLUMNS = [
    "ts", "snap", "group", "processes", "rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes", "smaps_known",
]  # fmt: skip
SOURCE_COLUMN = {"name": "name", "command": "cmdline", "user": "user", "cgroup": "cgroup"}


def command_of(cmdline: pd.Series) -> pd.Series:
    """Command lines -> argv[0] basenames without a trailing ':' (kernel threads '[comm]' kept); null stays null."""
    text = cmdline.astype("string")
    kernel = text.str.startswith("[") & text.str.endswith("]")
    first = text.str.strip().str.split(" ", n=1).str[0]
    base = first.str.rsplit("/", n=1).str[-1].str.rstrip(":")
    out = base.where(~kernel, text)
    return out.where(out.str.len() > 0)


def group_keys(procs: pd.DataFrame, by: str) -> pd.Categorical:
    """PROCS frame, key kind (GROUP_BY) -> one group label per row (UNKNOWN_GROUP where the key is unknown).

    Labels are computed once per distinct value (categories), never per row."""
    if by not in GROUP_BY:
        raise ValueError(f"cannot group by {by!r}; expected one of {', '.join(GROUP_BY)}")
    col = SOURCE_COLUMN[by]
    if col not in procs.columns:
        raise KeyError(f"the frame has no {col!r} column to group by {by}")
    values = procs[col]
    cat = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
    cats = pd.Series(cat.cat.categories.astype(str), dtype="string")
    labels = command_of(cats) if by == "command" else cats.where(cats.str.len() > 0)
    labels = labels.fillna(UNKNOWN_GROUP).to_numpy(dtype=object)
    codes = cat.cat.codes.to_numpy()
    uniq, inverse = np.unique(np.append(labels, UNKNOWN_GROUP).astype(str), return_inverse=True)
    unknown_code = inverse[-1]
    per_row = np.where(codes >= 0, inverse[:-1][np.maximum(codes, 0)] if labels.size else unknown_code, unknown_code)
    return pd.Categorical.from_codes(per_row, categories=uniq)


def _sum_known(keys: np.ndarray, values: pd.Series, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum of known values, number of known values) per key."""
    known = values.notna().to_numpy()
    data = values.to_numpy(dtype=np.int64, na_value=0) if values.dtype != np.int64 else values.to_numpy()
    total = np.bincount(keys, weights=data.astype(np.float64), minlength=size)
    return np.rint(total).astype(np.int64), np.bincount(keys, weights=known, minlength=size).astype(np.int64)


def _cells(key: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer keys in [0, space) -> (sorted distinct keys, position of each key among them); dense when small."""
    if space <= max(4 * key.size, 1 << 16):
        present = np.zeros(space, bool)
        present[key] = True
        cell = np.flatnonzero(present)
        rank = np.cumsum(present) - 1
        return cell, rank[key]
    return np.unique(key, return_inverse=True)


def group_totals(
    procs: pd.DataFrame, by: str = "name", top: int | None = None, metric: str = "rss", snaps: list[int] | None = None
) -> pd.DataFrame:
    """PROCS frame, key kind -> GROUP_COLUMNS: one row per (snapshot, group) with members, sorted by snap, group.

    ``processes`` int32, ``rss_bytes`` int64, ``pss/uss/swap_bytes`` Int64 (sum of known values, null when no
    member is known), ``smaps_known`` int32 (members with PSS), ``group`` category. ``top=K`` keeps the K groups
    with the largest peak of ``metric`` and sums the others into OTHER_GROUP; ``snaps`` restricts to those snapshots.
    """
    mcol = metric_column(metric)
    if top is not None and top < 0:
        raise ValueError(f"top must be >= 0, got {top}")
    if snaps is not None:
        procs = procs[np.isin(procs["snap"].to_numpy(), np.asarray(snaps, dtype=np.int64))]
    labels = group_keys(procs, by)
    categories = np.asarray(labels.categories, dtype=object)
    ng = max(len(categories), 1)
    snap_values, snap_idx = np.unique(procs["snap"].to_numpy(dtype=np.int64), return_inverse=True)
    ns = snap_values.size
    cell, inverse = _cells(snap_idx.astype(np.int64) * ng + labels.codes.astype(np.int64), ns * ng)
    # per occupied (snapshot, group) cell: member count, and per metric the sum and the number of known values
    count = np.bincount(inverse, minlength=cell.size)
    sums: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for col in schema.MEMORY_METRICS.values():
        if col in procs.columns:
            sums[col] = _sum_known(inverse, procs[col], cell.size)
        else:
            sums[col] = (np.zeros(cell.size, np.int64), np.zeros(cell.size, np.int64))
    s_of, g_of = cell // ng, cell % ng
    peak = np.full(ng, -1, np.int64)  # per group the largest known total of the metric, -1 when never known
    if top is not None:
        total, known = sums[mcol]
        np.maximum.at(peak, g_of, np.where(known > 0, total, -1))
    if top is not None and (top < len(categories) or (peak[: len(categories)] <= 0).any()):
        keep = np.zeros(ng, bool)
        keep[np.argsort(-peak, kind="stable")[:top]] = True
        keep &= peak > 0  # a group whose peak is 0 or unknown is not "top"
        kept = np.flatnonzero(keep)
        new_code = np.full(ng, kept.size, np.int64)
        new_code[kept] = np.arange(kept.size)
        categories = np.append(categories[kept], OTHER_GROUP)
        ng2 = categories.size
        cell2, inv2 = np.unique(s_of * ng2 + new_code[g_of], return_inverse=True)
        count = np.bincount(inv2, weights=count, minlength=cell2.size).astype(np.int64)
        sums = {
            c: tuple(np.rint(np.bincount(inv2, weights=a, minlength=cell2.size)).astype(np.int64) for a in pair)
            for c, pair in sums.items()
        }
        s_of, g_of, ng = cell2 // ng2, cell2 % ng2, ng2
    ts_ns = np.zeros(ns, np.int64)
    if len(procs):
        ts_ns[snap_idx] = procs["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    order = np.argsort(categories.astype(str), kind="stable")
    rank = np.empty(ng, np.int64)
    rank[order] = np.arange(ng)
    out = pd.DataFrame(
        {
            "ts": pd.to_datetime(ts_ns[s_of], utc=True),
            "snap": snap_values[s_of].astype(np.int32),
            "group": pd.Categorical.from_codes(rank[g_of], categories=categories[order].astype(str)),
            "processes": count.astype(np.int32),
            "rss_bytes": sums["rss_bytes"][0],
        }
    )
    for col in ("pss_bytes", "uss_bytes", "swap_bytes"):
        total, known = sums[col]
        out[col] = pd.arrays.IntegerArray(total, known == 0)
    out["smaps_known"] = sums["pss_bytes"][1].astype(np.int32)
    out["ts"] = out["ts"].astype(schema.UTC_NS)
    return out.sort_values(["snap", "group"], kind="stable")[GROUP_COLUMNS].reset_index(drop=True)


def group_members(procs: pd.DataFrame, by: str, group: str, snap: int, index: TreeIndex | None = None) -> pd.DataFrame:
    """PROCS frame, key kind, group label, snapshot -> that moment's member rows (PROCS columns), by RSS descending."""
    if index is not None:
        sub = procs.iloc[np.sort(index.rows_of_snap(snap))]
    else:
        sub = procs[procs["snap"].to_numpy() == snap]
    labels = group_keys(sub, by)
    hit = np.asarray(labels == group)
    return sub[hit].sort_values("rss_bytes", ascending=False, kind="stable")


def group_summary(totals: pd.DataFrame, metric: str = "rss") -> pd.DataFrame:
    """group_totals output -> one row per group: group, snapshots, processes_max, <metric>_mean/max/last_bytes
    (mean/max over the snapshots where the group had members and a known value; last = at its last snapshot),
    sorted by the max descending (nulls last)."""
    mcol = metric_column(metric)
    name = mcol.removesuffix("_bytes")
    group = totals["group"].astype("category")
    codes = group.cat.codes.to_numpy().astype(np.int64)
    ng = len(group.cat.categories)
    values = totals[mcol]
    known = values.notna().to_numpy()
    v = values.to_numpy(dtype=np.float64, na_value=np.nan)
    n_known = np.bincount(codes, weights=known, minlength=ng)
    mean = np.bincount(codes, weights=np.where(known, v, 0.0), minlength=ng) / np.maximum(n_known, 1)
    vmax = np.full(ng, -np.inf)
    np.maximum.at(vmax, codes, np.where(known, v, -np.inf))
    last_row = np.full(ng, -1, np.int64)
    order = np.lexsort((np.arange(len(totals)), totals["snap"].to_numpy()))
    last_row[codes[order]] = order  # later snapshots overwrite earlier ones
    seen = np.bincount(codes, minlength=ng) > 0

    def ints(x: np.ndarray, null: np.ndarray) -> pd.arrays.IntegerArray:
        return pd.arrays.IntegerArray(np.rint(np.where(null, 0, x)).astype(np.int64), null)

    out = pd.DataFrame(
        {
            "group": pd.Categorical(group.cat.categories[seen], categories=group.cat.categories),
            "snapshots": np.bincount(codes, minlength=ng)[seen].astype(np.int32),
            "processes_max": _group_max(codes, totals["processes"].to_numpy(), ng)[seen].astype(np.int32),
            f"{name}_mean_bytes": ints(mean[seen], n_known[seen] == 0),
            f"{name}_max_bytes": ints(vmax[seen], n_known[seen] == 0),
            f"{name}_last_bytes": values.iloc[last_row[seen]].astype("Int64").to_numpy(),
        }
    )
    rank = np.argsort(-out[f"{name}_max_bytes"].to_numpy(dtype=np.float64, na_value=-np.inf), kind="stable")
    return out.iloc[rank].reset_index(drop=True)


def with_known_peak(series: pd.DataFrame, col: str) -> pd.DataFrame:
    """Group series (ts, group, <col>...) -> only the rows of the groups whose largest `col` value is above 0 (a
    group that is always 0 or unknown, e.g. kernel threads or an "(other)" of such groups, has nothing to show)."""
    if len(series) == 0:
        return series
    peak = series.groupby("group", observed=True)[col].max()
    shown = peak.index[peak.astype("Float64").fillna(0).to_numpy(dtype=float) > 0]
    return series[series["group"].isin(shown)].reset_index(drop=True)


def _group_max(codes: np.ndarray, values: np.ndarray, ng: int) -> np.ndarray:
    out = np.zeros(ng, np.int64)
    np.maximum.at(out, codes, values.astype(np.int64))
    return out
