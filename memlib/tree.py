"""Process trees per snapshot: parent links, levels, descendant counts, subtree totals; vectorised over all snapshots.

Conventions (design.md §5):
- A row's parent is the row of the same snapshot whose ``pid`` equals its ``ppid``. Parents are found for every row of
  every snapshot at once with ``searchsorted`` on ``(snap << 32) | pid`` keys.
- Level 0 (a root): ``ppid == 0`` (init, pid 1, and kthreadd, pid 2, on Linux), or the parent is absent from that
  snapshot, or the row is its own parent (``ppid == pid``). Everything under init has level >= 1.
- Bad data: rows whose parent chain loops (a cycle such as 5 -> 6 -> 5) are made roots (the cycle members; processes
  hanging below a cycle keep their chain). Duplicate ``(snap, pid)`` rows: children attach to the first one.
- ``subtree_<m>`` = own value + every descendant's value at that moment. RSS is always known. For PSS/USS/swap the
  subtree total is the sum over the members whose value is known, and null only when no member's value is known
  (so a subtree total of a partly readable tree is a lower bound). A metric column absent from ``procs`` gives an
  all-null subtree column.
- Identity is ``proc_id`` ((pid, start time) per host and boot), numbered by memlib.query; trees only use pid/ppid
  within one snapshot, which is unambiguous because a pid names one live process at a time.

``stored_tree`` gives the same answers in the store's form (``parent_start_time`` instead of a row position) for the
writer: the store keeps them in every closed segment (docs/store.md).

``TreeIndex`` is an optional helper built once per loaded frame (0.6-1.5 s for a day) that makes per-process and
per-snapshot queries O(rows returned) instead of a boolean mask over every row; the dashboard caches it and passes it
as ``index=`` to the timeline/summary functions.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from memlib import schema

_PID_MASK = np.int64(0xFFFFFFFF)
_METRIC_COLUMNS = list(schema.MEMORY_METRICS.values())  # rss_bytes, pss_bytes, uss_bytes, swap_bytes
_KNOWN_SHIFT = 21  # known-value counts of pss/uss/swap packed into one int64 column (each < 2**21 per subtree)


def _require(procs: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in procs.columns]
    if missing:
        raise KeyError(f"procs frame lacks column(s) {missing}; build it with schema.conform(df, schema.PROC_COLUMNS)")


def _keys(snap: np.ndarray, pid: np.ndarray) -> np.ndarray:
    return (snap.astype(np.int64) << 32) | (pid.astype(np.int64) & _PID_MASK)


def _cycle_members(pending: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Rows among `pending` (all unresolved, parents all unresolved) that lie on a parent cycle."""
    cur = pending
    while True:
        tails = cur[~np.isin(cur, parent[cur])]  # nobody in the remaining set points at them
        if tails.size == 0:
            return cur
        cur = np.setdiff1d(cur, tails, assume_unique=True)


def link_rows(snap: np.ndarray, pid: np.ndarray, ppid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrays snap/pid/ppid (one per row) -> (parent_row int64, -1 for roots; level int16), cycles broken as roots."""
    n = len(pid)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int16)
    key = _keys(snap, pid)
    if np.all(key[1:] >= key[:-1]):
        order = None
        skey = key
    else:
        order = np.argsort(key, kind="stable")
        skey = key[order]
    pkey = _keys(snap, ppid)
    pos = np.searchsorted(skey, pkey)
    np.minimum(pos, n - 1, out=pos)
    found = (skey[pos] == pkey) & (ppid != 0) & (ppid != pid)
    if order is not None:
        pos = order[pos]
    parent = np.where(found, pos, -1).astype(np.int64, copy=False)

    level = np.full(n, -1, np.int16)
    level[parent < 0] = 0
    pending = np.flatnonzero(parent >= 0)
    while pending.size:
        plevel = level[parent[pending]]
        ok = plevel >= 0
        if not ok.any():  # only cycles (and what hangs below them) are left
            cyc = _cycle_members(pending, parent)
            parent[cyc] = -1
            level[cyc] = 0
            pending = pending[level[pending] < 0]
            continue
        level[pending[ok]] = plevel[ok] + 1
        pending = pending[~ok]
    return parent, level


_CHUNK_ROWS = 1 << 16
_WORKERS = max(1, min(4, os.cpu_count() or 1))  # numpy releases the GIL in the sorts, searches and gathers


def _snapshot_chunks(snap: np.ndarray) -> list[tuple[int, int]]:
    """Ascending snapshot numbers -> [start, end) row ranges of about _CHUNK_ROWS rows, cut between snapshots."""
    n = len(snap)
    if n == 0:
        return []
    cuts = np.unique(np.searchsorted(snap, snap[np.arange(0, n, _CHUNK_ROWS)], side="left"))
    bounds = [*cuts.tolist(), n]
    return list(itertools.pairwise(bounds))


def _sum_up(parent: np.ndarray, level: np.ndarray, acc: list[np.ndarray]) -> None:
    """Add every row's accumulators into its parent's, deepest level first, so each ends up holding its subtree."""
    max_level = int(level.max())
    by_level = np.argsort(level, kind="stable")
    bounds = np.searchsorted(level[by_level], np.arange(max_level + 2))
    for lv in range(max_level, 0, -1):
        rows = by_level[bounds[lv] : bounds[lv + 1]]
        prow = parent[rows]
        for a in acc:
            np.add.at(a, prow, a[rows])


def _metric_arrays(procs: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray | None] | None]:
    """metric column -> (values with nulls as 0, known mask or None when all known) or None when nothing is known."""
    out: dict[str, tuple[np.ndarray, np.ndarray | None] | None] = {}
    for col in _METRIC_COLUMNS:
        if col not in procs.columns:
            out[col] = None
            continue
        s = procs[col]
        known = s.notna().to_numpy()
        if col == "rss_bytes":  # required: an empty frame is fine, a null is bad input
            if not known.all():
                raise ValueError(f"rss_bytes is null in {int((~known).sum())} row(s); RSS is required for every row")
            out[col] = (s.to_numpy(dtype=np.int64), None)
            continue
        if not known.any():
            out[col] = None
            continue
        values = s.to_numpy(dtype=np.int64, na_value=0)
        out[col] = (values, None if known.all() else known)
    return out


def derive_trees(procs: pd.DataFrame) -> pd.DataFrame:
    """PROCS rows (any snapshots, any order) -> TREE columns (level, parent_row, descendants, subtree_*), same index.

    ``parent_row`` is the parent's row position in ``procs`` (-1 for a root). See the module docstring for roots,
    cycles and how nulls in PSS/USS/swap are summed.
    """
    _require(procs, ["snap", "pid", "ppid", "rss_bytes"])
    n = len(procs)
    snap = procs["snap"].to_numpy()
    pid = procs["pid"].to_numpy()
    ppid = procs["ppid"].to_numpy()
    metrics = _metric_arrays(procs)
    perm = None
    if n > 1 and not np.all(snap[1:] >= snap[:-1]):  # work in snapshot order, map back at the end
        perm = np.argsort(snap, kind="stable")
        snap, pid, ppid = snap[perm], pid[perm], ppid[perm]
        metrics = {
            c: None if m is None else (m[0][perm], None if m[1] is None else m[1][perm]) for c, m in metrics.items()
        }

    # Columns summed upward, one np.add.at per level each. Member counts and known-value counts are packed into
    # 21-bit fields of int64 columns (two masks per column besides the count); metrics sharing one null mask (PSS,
    # USS and swap all come from smaps_rollup) share one known-count field.
    acc: list[np.ndarray] = [np.ones(n, np.int64)]
    value_at: dict[str, int] = {}
    masks: list[np.ndarray] = []
    mask_of: dict[str, int] = {}
    for col in _METRIC_COLUMNS:
        m = metrics[col]
        if m is None:
            continue
        values, known = m
        value_at[col] = len(acc)
        acc.append(values.copy() if perm is None else values)
        if known is not None:
            same = [j for j, k in enumerate(masks) if np.array_equal(k, known)]
            if same:
                mask_of[col] = same[0]
            else:
                mask_of[col] = len(masks)
                masks.append(known)
    field: dict[int, tuple[int, int]] = {}  # mask number -> (acc column, bit shift)
    for j, known in enumerate(masks):
        slot = (j + 1) % 3
        if slot == 0:
            acc.append(np.zeros(n, np.int64))
        column = 0 if j < 2 else len(acc) - 1 if slot == 0 else field[j - 1][0]
        field[j] = (column, slot * _KNOWN_SHIFT)
        acc[column] |= known.astype(np.int64) << np.int64(slot * _KNOWN_SHIFT)

    # Trees are independent per snapshot: work through chunks of whole snapshots that fit in the CPU caches
    # (about 40% faster than whole-array passes on a day of history).
    parent = np.empty(n, np.int64)
    level = np.empty(n, np.int16)

    def chunk(bounds: tuple[int, int]) -> None:  # writes only rows [a, b) of the outputs: chunks run in parallel
        a, b = bounds
        p, lv = link_rows(snap[a:b], pid[a:b], ppid[a:b])
        _sum_up(p, lv, [x[a:b] for x in acc])
        parent[a:b] = np.where(p >= 0, p + a, -1)
        level[a:b] = lv

    chunks = _snapshot_chunks(snap)
    if len(chunks) > 1 and _WORKERS > 1:
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            list(pool.map(chunk, chunks))
    else:
        for bounds in chunks:
            chunk(bounds)
    if perm is not None:
        parent = np.where(parent >= 0, perm[np.maximum(parent, 0)], -1)
        inverse = np.empty(n, np.int64)
        inverse[perm] = np.arange(n)
        parent, level = parent[inverse], level[inverse]
        acc = [x[inverse] for x in acc]

    field_mask = np.int64((1 << _KNOWN_SHIFT) - 1)
    out: dict[str, object] = {
        "level": level,
        "parent_row": parent,
        "descendants": ((acc[0] & field_mask) - 1).astype(np.int32),
    }
    for col in _METRIC_COLUMNS:
        tcol = schema.subtree_column(col)
        if col not in value_at:
            out[tcol] = pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))
            continue
        values = acc[value_at[col]]
        if col == "rss_bytes":
            out[tcol] = values
        elif col not in mask_of:
            out[tcol] = pd.arrays.IntegerArray(values, np.zeros(n, bool))
        else:
            column, shift = field[mask_of[col]]
            out[tcol] = pd.arrays.IntegerArray(values, ((acc[column] >> np.int64(shift)) & field_mask) == 0)
    # every array already has its schema dtype: build without copies or block consolidation
    return pd.DataFrame({c: out[c] for c in schema.TREE_COLUMNS}, index=procs.index, copy=False)


def with_tree(procs: pd.DataFrame) -> pd.DataFrame:
    """PROCS frame -> the same frame with TREE columns (derived only when one of them is missing)."""
    if all(c in procs.columns for c in schema.TREE_COLUMNS):
        return procs
    base = procs.drop(columns=[c for c in schema.TREE_COLUMNS if c in procs.columns])
    tr = derive_trees(base)
    return base.assign(**{c: tr[c].array for c in tr.columns})  # arrays: no index alignment (duplicates are fine)


@dataclass(frozen=True, eq=False)
class TreeIndex:
    """Row lookups for one PROCS(+TREE) frame, built once with ``TreeIndex.build(procs)`` and cached by the caller.

    All arrays hold row positions in that frame. Reuse it only with the exact frame it was built from.
    """

    n_rows: int
    snap_values: np.ndarray  # sorted distinct snapshot numbers
    snap_starts: np.ndarray  # rows of snap_values[i]: snap_order[snap_starts[i]:snap_starts[i + 1]]
    snap_order: np.ndarray
    proc_values: np.ndarray  # sorted distinct proc_ids
    proc_starts: np.ndarray
    proc_order: np.ndarray  # rows sorted by proc_id then snapshot
    parent_row: np.ndarray
    child_starts: np.ndarray  # children of row r: child_order[child_starts[r]:child_starts[r + 1]]
    child_order: np.ndarray

    @classmethod
    def build(cls, procs: pd.DataFrame) -> TreeIndex:
        """PROCS frame (TREE columns used when present, else derived) -> TreeIndex over its rows."""
        _require(procs, ["snap", "pid", "ppid", "proc_id"])
        snap = procs["snap"].to_numpy()
        if "parent_row" in procs.columns:
            parent = procs["parent_row"].to_numpy(dtype=np.int64)
        else:
            parent, _ = link_rows(snap, procs["pid"].to_numpy(), procs["ppid"].to_numpy())
        snap_order = np.argsort(snap, kind="stable")
        snap_values, snap_starts = group_bounds(snap[snap_order])
        # stable sort on proc_id of the snapshot-ordered rows keeps each process's rows in time order
        pid_of = procs["proc_id"].to_numpy()[snap_order]
        o = np.argsort(pid_of, kind="stable")
        proc_order = snap_order[o]
        proc_values, proc_starts = group_bounds(pid_of[o])
        n = len(procs)
        child_order = np.argsort(parent, kind="stable")
        child_order = child_order[np.searchsorted(parent[child_order], 0) :]
        counts = np.bincount(parent[child_order], minlength=n) if n else np.zeros(0, np.int64)
        child_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(
            n, snap_values, snap_starts, snap_order, proc_values, proc_starts, proc_order, parent, child_starts,
            child_order,
        )  # fmt: skip

    def rows_of_snap(self, snap: int) -> np.ndarray:
        """Snapshot number -> row positions of that snapshot (empty when absent)."""
        return _lookup(self.snap_values, self.snap_starts, self.snap_order, snap)

    def rows_of_proc(self, proc_id: int) -> np.ndarray:
        """proc_id -> its row positions in time order (empty when unknown)."""
        return _lookup(self.proc_values, self.proc_starts, self.proc_order, proc_id)

    def children_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Row positions -> row positions of their direct children (grouped by parent, in the order of `rows`)."""
        starts = self.child_starts[rows]
        lens = self.child_starts[rows + 1] - starts
        total = int(lens.sum())
        if total == 0:
            return np.empty(0, np.int64)
        offs = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        return self.child_order[np.arange(total) + offs]


def group_bounds(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values -> (distinct values, bounds): value i occupies positions bounds[i]..bounds[i + 1] - 1."""
    if sorted_values.size == 0:
        return sorted_values, np.zeros(1, np.int64)
    cut = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    starts = np.concatenate([[0], cut, [sorted_values.size]]).astype(np.int64)
    return sorted_values[starts[:-1]], starts


def _lookup(values: np.ndarray, starts: np.ndarray, order: np.ndarray, key: int) -> np.ndarray:
    i = int(np.searchsorted(values, key))
    if i >= values.size or values[i] != key:
        return np.empty(0, np.int64)
    return order[starts[i] : starts[i + 1]]


def snapshot(procs: pd.DataFrame, snap: int, index: TreeIndex | None = None) -> pd.DataFrame:
    """PROCS(+TREE) frame and a snapshot number -> that snapshot's rows with TREE columns, ``parent_row`` local.

    ``parent_row`` in the result is the parent's row position within the returned frame (-1 for roots). Empty frame
    when the snapshot is absent.
    """
    _require(procs, ["snap", "pid", "ppid"])
    if index is not None:
        sub = procs.iloc[np.sort(index.rows_of_snap(snap))]
    else:
        sub = procs[procs["snap"].to_numpy() == snap]
    if all(c in sub.columns for c in schema.TREE_COLUMNS):
        parent, _ = link_rows(sub["snap"].to_numpy(), sub["pid"].to_numpy(), sub["ppid"].to_numpy())
        return sub.assign(parent_row=parent)
    return with_tree(sub)


def ancestors(procs: pd.DataFrame, proc_id: int, snap: int, index: TreeIndex | None = None) -> pd.DataFrame:
    """PROCS frame, proc_id, snapshot -> rows of the chain from its root down to the process (empty if absent)."""
    snap_df = snapshot(procs, snap, index)
    hit = np.flatnonzero(snap_df["proc_id"].to_numpy() == proc_id)
    if hit.size == 0:
        return snap_df.iloc[0:0]
    parent = snap_df["parent_row"].to_numpy()
    chain = [int(hit[0])]
    while parent[chain[-1]] >= 0 and len(chain) <= len(snap_df):  # bounded: cycles were broken by link_rows
        chain.append(int(parent[chain[-1]]))
    return snap_df.iloc[chain[::-1]]


def descendants_of(procs: pd.DataFrame, proc_id: int, snap: int, index: TreeIndex | None = None) -> pd.DataFrame:
    """PROCS frame, proc_id, snapshot -> the process and every process below it at that moment (snapshot row order)."""
    snap_df = snapshot(procs, snap, index)
    inside = snap_df["proc_id"].to_numpy() == proc_id
    if not inside.any():
        return snap_df.iloc[0:0]
    parent = snap_df["parent_row"].to_numpy()
    has_parent = parent >= 0
    safe_parent = np.where(has_parent, parent, 0)
    while True:  # one pass per level below the process
        grown = inside | (has_parent & inside[safe_parent])
        if (grown == inside).all():
            break
        inside = grown
    return snap_df[inside]


def stored_tree(procs: pa.Table | pd.DataFrame) -> pa.Table:
    """Stored process rows of one or many snapshots (ts, pid, ppid, start_time, rss_bytes and, when present,
    pss/uss/swap_bytes; a ``host`` column, when present, splits snapshots too) -> Arrow table of the stored tree columns
    (store.schema.TREE_SCHEMA: level, parent_start_time, descendants, subtree_*_bytes), same rows, same order.

    A snapshot is (host, ts); ``parent_start_time`` is the start time of the parent row found by ``derive_trees``
    (null for a root), so (ppid, parent_start_time) names the parent process."""
    table = procs if isinstance(procs, pa.Table) else pa.Table.from_pandas(procs, preserve_index=False)
    n = table.num_rows
    names = set(table.column_names)
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    keys = [ts]
    if "host" in names:
        keys.insert(0, pd.factorize(table.column("host").to_pandas())[0].astype(np.int64))
    if n and len(keys) == 1:
        snap = np.unique(ts, return_inverse=True)[1].reshape(-1)
    elif n:
        snap = np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)[1].reshape(-1)
    else:
        snap = np.empty(0, np.int64)
    frame = {
        "snap": snap.astype(np.int64),
        "pid": table.column("pid").to_numpy(),
        "ppid": table.column("ppid").to_numpy(),
    }
    for col in _METRIC_COLUMNS:
        if col in names:
            arr = table.column(col)
            frame[col] = (
                pd.arrays.IntegerArray(
                    arr.fill_null(0).cast(pa.int64()).to_numpy(), arr.is_null().to_numpy(zero_copy_only=False)
                )
                if col != "rss_bytes"
                else arr.cast(pa.int64()).to_numpy()
            )
    tr = derive_trees(pd.DataFrame(frame))
    parent = tr["parent_row"].to_numpy()
    start_col = table.column("start_time")
    start = start_col.cast(pa.int64()).fill_null(0).to_numpy()
    at = np.maximum(parent, 0)
    unknown = (parent < 0) | start_col.is_null().to_numpy(zero_copy_only=False)[at] if n else np.zeros(0, bool)
    parent_start = pa.array(start[at], mask=unknown).cast(start_col.type).cast(pa.timestamp("us", tz="UTC"), safe=False)
    arrays = {
        "level": pa.array(tr["level"].to_numpy(), type=pa.int16()),
        "parent_start_time": parent_start,
        "descendants": pa.array(tr["descendants"].to_numpy(), type=pa.int32()),
    }
    for col in _METRIC_COLUMNS:
        s = tr[schema.subtree_column(col)]
        if col == "rss_bytes":
            arrays[f"subtree_{col}"] = pa.array(s.to_numpy(dtype=np.int64), type=pa.int64())
        else:
            arrays[f"subtree_{col}"] = pa.array(s.to_numpy(dtype=np.int64, na_value=0), mask=s.isna().to_numpy())
    return pa.table(arrays)
