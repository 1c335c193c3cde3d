"""The one loader for the dashboard and the CLI: native segments + seed-format CSVs -> one Dataset.

``load_dumps(path, tz=None)`` reads

* native segments directly in ``path`` (``memlib.store.list_segments`` / ``read_segment``), and
* seed-format CSVs under ``path/time/``, or directly in ``path`` when it is such a folder itself (``memlib.seed``;
  stamps are local time of the recording machine, ``tz`` names that zone, default: the zone of the machine running
  the loader — ``$TZ``, else ``/etc/localtime``),

maps both into PROCS / SYSTEM / SNAPSHOTS frames (``memlib.schema``): ``snap`` is dense over the distinct
``(ts, host)`` of all rows ordered by time; ``proc_id`` is dense over ``(host, boot_id, pid, start_time)``; strings are
categories; TREE columns come from ``memlib.tree.derive_trees``. Seed identity inference: see ``memlib.seed``.

Faults never raise: a missing or empty directory gives an empty Dataset (kind "empty") with a notice; damaged or unknown
files are skipped and named in ``info.notices``. Only a bad ``tz`` raises (ValueError), as it is the caller's mistake.

Caching (module level, per (resolved path, tz, selected segments), thread-safe, the 2 most recent):

* every file is stat-ed (size + mtime_ns); when nothing changed, the previous Dataset is returned as is (milliseconds);
* per-file results are kept: a new or changed seed CSV / closed parquet segment is the only one read again; the growing
  ``.current`` segment is read from the byte offset where the previous read stopped (``SegmentTables.next_offset``);
  closed parquet segments keep their system rows and notices only: a rebuild reads their procs again (a day of them
  takes ~0.4 s; keeping them decoded would hold ~600 MB next to the Dataset);
* when the change is only native rows later than everything loaded (the collector appending), the new rows get new
  snapshot numbers, known identities keep their ``proc_id`` and trees are derived for the new rows only; they are
  written behind the existing rows in buffers with room to spare (``_RowBuffer``), so an append costs O(new rows);
  anything else (seed files changed, a file removed or rewritten, compaction of ``.current`` into parquet, rows older
  than the loaded ones) rebuilds the frames from the cached per-file results.

Speed (issue 7): procs stay Arrow tables (strings as dictionaries) until all parts are concatenated; keys (snap,
proc_id) come from Arrow hash kernels on packed int64 keys; each column is gathered into (snap, pid) order and
converted once, category columns straight from the dictionary indices (no per-file categorical union, no strings
per row); command lines are scrubbed per distinct value in a thread while the numpy work runs.

``clear_cache()`` drops everything (tests).
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import union_categoricals

from memlib import schema, seed, store, tree
from memlib import window as windows
from memlib.scrub import scrub_cmdline
from memlib.units import local_zone, parse_time, resolve_zone  # noqa: F401  (re-exported)

SEED_DIR = "time"
_MAX_CACHED_PATHS = 2  # each holds a Dataset (a day of history is ~0.8 GB)
_IDENTITY = ["host", "boot_id", "pid", "start_time"]
_STRING_COLUMNS = [c for c, t in store.STORED_PROC_DTYPES.items() if t == "category"]
_READERS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class SourceInfo:
    """What the UI/CLI says about the data: path, kind (native/seed/mixed/empty), hosts, exactness, interval, notes."""

    path: str
    kind: str
    hosts: list[str]
    start_times_exact: bool
    interval_s: float | None
    notices: list[str]


@dataclass(frozen=True)
class Dataset:
    """procs: PROCS + TREE sorted by snap, pid; system: SYSTEM; snapshots: SNAPSHOTS; info: SourceInfo."""

    procs: pd.DataFrame
    system: pd.DataFrame
    snapshots: pd.DataFrame
    info: SourceInfo
    cgroup_mem: pd.DataFrame = field(default_factory=schema.empty_cgroup_mem)  # CGROUP_MEM (schema.py)
    derived: dict = field(default_factory=dict, compare=False, repr=False)  # built once per Dataset (tree_index)


_INDEX_LOCK = threading.Lock()


def tree_index(ds: Dataset) -> tree.TreeIndex:
    """The Dataset's tree.TreeIndex over its procs, built once (thread-safe) and kept with it."""
    idx = ds.derived.get("tree_index")
    if idx is None:
        with _INDEX_LOCK:  # a background load and a page may ask at once: one build
            idx = ds.derived.get("tree_index")
            if idx is None:
                idx = tree.TreeIndex.build(ds.procs)
                ds.derived["tree_index"] = idx
    return idx


# ------------------------------------------------------------------------------------------------ time zones


# ------------------------------------------------------------------------------------------------ cache state


@dataclass
class _SeedFile:
    size: int
    mtime_ns: int
    kind: str  # "process" | "system"
    stamp: pd.Timestamp  # naive local
    result: object  # DataFrame (process) | dict (system) | None when unreadable
    notices: list[str]


@dataclass
class _Segment:
    size: int
    mtime_ns: int
    kind: str  # "parquet" | "current"
    offset: int
    procs: list[pa.Table]  # .current: the parts read so far; parquet: empty (re-read on a rebuild, saves memory)
    system: list[pd.DataFrame]
    notices: list[str]


@dataclass
class _State:
    seed_files: dict[str, _SeedFile] = field(default_factory=dict)
    segments: dict[str, _Segment] = field(default_factory=dict)
    signature: tuple = ()
    dataset: Dataset | None = None
    identities: pd.DataFrame | None = None  # host, boot_id, pid, start_time, proc_id of the dataset
    rows: _RowBuffer | None = None  # the dataset's procs with room for appends (made by the first append)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one load of this state at a time


_CACHE: dict[tuple[str, str], _State] = {}
_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every cached directory."""
    with _LOCK:
        _CACHE.clear()


# ------------------------------------------------------------------------------------------------ scanning


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _scan(folder: Path) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Seed CSVs in folder/time/ (and, for a folder that is itself a time/ folder, in folder) -> {relative path:
    (size, mtime_ns)}; plus notices naming unknown files (segments, temp files and dot files are not unknown)."""
    found: dict[str, tuple[int, int]] = {}
    unknown: list[str] = []
    for sub, prefix in ((folder, ""), (folder / SEED_DIR, f"{SEED_DIR}/")):
        try:
            entries = list(os.scandir(sub))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            unknown.append(f"{prefix or sub.name + '/'}: unreadable ({exc})")
            continue
        for entry in entries:
            name = entry.name
            if not entry.is_file() or name.startswith(".") or name.endswith(store.TMP_SUFFIX):
                continue
            if seed.is_seed_name(name):
                try:
                    st = entry.stat()
                except OSError:
                    continue
                found[prefix + name] = (st.st_size, st.st_mtime_ns)
            elif prefix or not store.SEGMENT_RE.match(name):
                unknown.append(f"{prefix}{name}: unknown file, skipped")
    return found, sorted(unknown)


def _decode(data: bytes, rel: str, notices: list[str]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        notices.append(f"{rel}: non-UTF-8 bytes replaced")
        return data.decode("utf-8", errors="replace")


def _read_seed_file(folder: Path, rel: str, size_mtime: tuple[int, int]) -> _SeedFile:
    """One seed CSV (path relative to the dumps folder) -> parsed result, or None with the reason in notices."""
    classified = seed.classify_name(rel.rsplit("/", 1)[-1])
    if classified is None:
        return _SeedFile(*size_mtime, "unknown", pd.Timestamp(0), None, [f"{rel}: impossible date, skipped"])
    kind, stamp = classified
    notices: list[str] = []
    result: object = None
    try:
        text = _decode((folder / rel).read_bytes(), rel, notices)
        if kind == "process":
            parsed = seed.parse_process_csv(text)
            result = parsed.frame
        else:
            parsed = seed.parse_sys_csv(text)
            result = parsed.values
        notices.extend(f"{rel}: {n}" for n in parsed.notices)
    except (OSError, ValueError) as exc:
        notices.append(f"{rel}: skipped ({exc})")
    return _SeedFile(size_mtime[0], size_mtime[1], kind, stamp, result, notices)


# ------------------------------------------------------------------------------------------------ assembling


def _seed_frames(state: _State, zone: tzinfo) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Cached seed files -> (procs, system) with UTC times, plus notices on unpaired rounds."""
    files = sorted(state.seed_files.items(), key=lambda kv: (kv[1].mtime_ns, kv[0]))
    usable = [(name, f) for name, f in files if f.result is not None]
    if not usable:
        return pd.DataFrame(), pd.DataFrame(), []
    # one naive stamp -> one UTC time, resolved in file order over both kinds of files
    naive = pd.Series([f.stamp for _, f in usable], dtype="datetime64[ns]")
    first = ~naive.duplicated().to_numpy()
    utc_unique = seed.localize_stamps(naive[first], zone)
    to_utc = dict(zip(naive[first].to_numpy(), utc_unique.to_numpy(), strict=True))
    proc_stamps = {f.stamp for _, f in usable if f.kind == "process"}
    notices = [
        f"{name}: no usable process_mem file with the same stamp, skipped"
        for name, f in usable
        if f.kind == "system" and f.stamp not in proc_stamps
    ]
    processes = [(pd.Timestamp(to_utc[f.stamp.to_datetime64()]), f.result) for _, f in usable if f.kind == "process"]
    systems = [
        (pd.Timestamp(to_utc[f.stamp.to_datetime64()]), f.result)
        for _, f in usable
        if f.kind == "system" and f.stamp in proc_stamps
    ]
    procs, system = seed.build_seed_frames(processes, systems)  # type: ignore[arg-type]
    return procs, system, notices


def _str_categories(s: pd.Series) -> pd.Categorical:
    """A category column with its categories as text (so categoricals from different sources union)."""
    cat = s.array
    return pd.Categorical.from_codes(cat.codes, categories=pd.Index(cat.categories.astype(str), dtype=object))


def _categorical_concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate frames of one layout keeping category columns categorical (categories unioned, the first frame's
    codes kept, so appending to a large frame costs a copy, not a re-encode)."""
    frames = [f for f in frames if len(f.columns)]
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1:
        return frames[0]
    columns = list(frames[0].columns)
    cat_cols = [
        c for c in columns if all(c in f.columns and isinstance(f[c].dtype, pd.CategoricalDtype) for f in frames)
    ]
    out = pd.concat([f.drop(columns=cat_cols) for f in frames], ignore_index=True)
    for col in cat_cols:
        merged = union_categoricals([_str_categories(f[col]) for f in frames], ignore_order=True)
        out[col] = pd.Series(merged, index=out.index)
    return out[[c for c in columns if c in out.columns] + [c for c in out.columns if c not in columns]]


def _scrubbed(values: pd.Index) -> pd.Index:
    """Command lines -> the same, scrubbed again (defence in depth for files written by older collectors)."""
    return pd.Index(values.map(scrub_cmdline), dtype="str")


def _rescrub_codes(codes: np.ndarray, values: pd.Index, cleaned: pd.Index) -> tuple[np.ndarray, pd.Index]:
    """Category codes over `values` and the scrubbed values -> (codes, categories) with values that became equal
    merged into one category (categories sorted)."""
    if cleaned.equals(values):
        return codes, values
    uniq, remap = np.unique(np.asarray(cleaned, dtype=object), return_inverse=True)
    remap = np.append(remap.reshape(-1), -1).astype(_code_dtype(len(uniq)))  # remap[-1] serves the null code
    return remap[codes], pd.Index(uniq, dtype="str")


def _system_frame(frames: list[pd.DataFrame], snaps: pd.DataFrame) -> pd.DataFrame:
    """Raw system parts + SNAPSHOTS -> SYSTEM (snap, ts, host, boot_id, meminfo Int64...), one row per snap.

    A system row is matched to its snapshot on (ts, host); rows without a snapshot are dropped, the last of
    duplicates wins."""
    parts = [f for f in frames if len(f)]
    if not parts or snaps.empty:
        return schema.empty_system()
    raw = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    left = pd.DataFrame({"t": _ns(raw["ts"]), "h": raw["host"].astype(str).to_numpy(), "row": np.arange(len(raw))})
    right = pd.DataFrame(
        {"t": _ns(snaps["ts"]), "h": snaps["host"].astype(str).to_numpy(), "pos": np.arange(len(snaps))}
    )
    m = left.merge(right, on=["t", "h"], how="inner").drop_duplicates("pos", keep="last").sort_values("pos")
    rows, pos = m["row"].to_numpy(), m["pos"].to_numpy()
    cols: dict[str, object] = {
        "snap": snaps["snap"].to_numpy()[pos].astype(np.int32),
        "ts": snaps["ts"].take(pos).reset_index(drop=True),
        "host": snaps["host"].take(pos).reset_index(drop=True),
        "boot_id": snaps["boot_id"].take(pos).reset_index(drop=True),
    }
    for col in raw.columns:
        if col in schema.SYSTEM_KEY_COLUMNS or col.startswith(schema.CGROUP_MEM_FIELD_PREFIX):
            continue
        values = raw[col].take(rows).reset_index(drop=True)
        cols[col] = values if str(values.dtype) == "Int64" else values.astype("Int64")
    return pd.DataFrame(cols)


def _cgroup_mem_frame(frames: list[pd.DataFrame], snaps: pd.DataFrame) -> pd.DataFrame:
    """Raw system parts + SNAPSHOTS -> CGROUP_MEM (ts, host, cgroup, memory_current_bytes) from the system fields
    named CGROUP_MEM_FIELD_PREFIX + path; rows of samples without a snapshot are dropped, nulls skipped."""
    pre = schema.CGROUP_MEM_FIELD_PREFIX
    parts = [f for f in frames if len(f) and any(c.startswith(pre) for c in f.columns)]
    if not parts or snaps.empty:
        return schema.empty_cgroup_mem()
    raw = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    cols = [c for c in raw.columns if c.startswith(pre)]
    known = pd.MultiIndex.from_arrays([_ns(snaps["ts"]), snaps["host"].astype(str).to_numpy()])
    here = pd.MultiIndex.from_arrays([_ns(raw["ts"]), raw["host"].astype(str).to_numpy()])
    raw = raw[here.isin(known)]
    values = raw[cols].astype("Int64")
    mask = values.notna().to_numpy()
    r, c = np.nonzero(mask)  # row-major: by sample, then cgroup
    data = np.column_stack([values[col].to_numpy(dtype=np.int64, na_value=0) for col in cols])[r, c]
    out = pd.DataFrame(
        {
            "ts": raw["ts"].take(r).reset_index(drop=True),
            "host": raw["host"].astype(str).take(r).reset_index(drop=True),
            "cgroup": pd.Categorical.from_codes(c, categories=[col[len(pre) :] for col in cols]),
            "memory_current_bytes": pd.array(data, dtype="Int64"),
        }
    )
    out = out.drop_duplicates(["ts", "host", "cgroup"], keep="last").reset_index(drop=True)
    return schema.conform(out, schema.CGROUP_MEM_COLUMNS)


def _group_codes(keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Equal-length int64 key arrays (most significant first) -> (dense group code per row in key order, first row
    of each group)."""
    n = len(keys[0])
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.lexsort(keys[::-1])
    change = np.zeros(n, bool)
    change[0] = True
    for k in keys:
        ks = k[order]
        change[1:] |= ks[1:] != ks[:-1]
    sorted_codes = np.cumsum(change) - 1
    codes = np.empty(n, np.int64)
    codes[order] = sorted_codes
    return codes, order[change]


def _ns(s: pd.Series) -> np.ndarray:
    """datetime64[ns, UTC] column -> int64 ns (NaT -> int64 min)."""
    return s.array.asi8 if hasattr(s.array, "asi8") else s.astype("int64").to_numpy()


# ------------------------------------------------------------------------------------------------ Arrow -> PROCS
# Every part (native segments, seed rows) is an Arrow table at store.PROC_TABLE_SCHEMA; they are concatenated once,
# keys are computed on numpy arrays and each column is converted to its pandas dtype once, already in snap, pid order.

_I64_MIN = np.iinfo(np.int64).min
_PID_OFFSET = 1 << 31  # int32 pid -> non-negative, order kept


def _seed_table(seed_procs: pd.DataFrame) -> pa.Table | None:
    """Seed procs frame -> Arrow table at store.PROC_TABLE_SCHEMA (None when empty)."""
    if seed_procs.empty:
        return None
    frame = schema.conform(seed_procs, store.STORED_PROC_DTYPES)
    return store.procs_arrow(pa.Table.from_pandas(frame, preserve_index=False), None, None)


def _chunks_numpy(col: pa.ChunkedArray, fill: int | None = None) -> np.ndarray:
    """Arrow integer/timestamp column -> one numpy array (timestamps as int64 ns; nulls -> fill)."""
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    if fill is not None and col.null_count:
        col = col.fill_null(fill)
    chunks = [c.to_numpy() for c in col.chunks]
    if not chunks:
        return np.empty(0, col.type.to_pandas_dtype())
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _code_dtype(n: int) -> type:
    """Smallest signed integer dtype holding codes -1..n-1 (what pandas stores for n categories)."""
    return np.int8 if n < 127 else np.int16 if n < 32767 else np.int32


def _dictionary_codes(col: pa.ChunkedArray) -> tuple[np.ndarray, pd.Index]:
    """Dictionary column with one dictionary for all chunks -> (codes into the sorted used values, -1 = null, in
    the smallest dtype; those values as a str Index)."""
    if col.num_chunks == 0:
        return np.empty(0, np.int8), pd.Index([], dtype="str")
    values = np.asarray(col.chunk(0).dictionary.to_numpy(zero_copy_only=False), dtype=object)
    used = pc.unique(pa.chunked_array([c.indices for c in col.chunks], type=pa.int32())).drop_null().to_numpy()
    keep = np.sort(used.astype(np.int64))
    kept = values[keep]
    order = np.argsort(kept, kind="stable")
    dtype = _code_dtype(len(keep))
    remap = np.full(len(values) + 1, -1, dtype)  # remap[-1] serves the null code
    remap[keep[order]] = np.arange(len(keep))
    codes = np.empty(len(col), dtype)
    pos = 0
    for chunk in col.chunks:  # one gather per chunk into the output: no concatenated copy of the indices
        idx = chunk.indices.fill_null(-1) if chunk.null_count else chunk.indices
        np.take(remap, idx.to_numpy(), out=codes[pos : pos + len(chunk)], mode="wrap")  # unbuffered; -1 = last
        pos += len(chunk)
    return codes, pd.Index(kept[order], dtype="str")


def _dense(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int64 values -> (dense int64 code per value, numbered in value order; the distinct values, sorted)
    (Arrow's hash kernel: several times faster than pd.factorize on millions of rows)."""
    enc = pc.dictionary_encode(pa.array(values))
    uniq = enc.dictionary.to_numpy()
    order = np.argsort(uniq, kind="stable")
    rank = np.empty(len(uniq), np.int64)
    rank[order] = np.arange(len(uniq))
    return np.take(rank, enc.indices.to_numpy()), uniq[order]


def _pack_bits(n: int) -> int:
    """Bits needed for values 0..n-1 (at least 1)."""
    return max(1, int(n - 1).bit_length())


def _assemble(
    parts: list[pa.Table], first_snap: int, known: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    """Procs tables (store.PROC_TABLE_SCHEMA) -> (PROCS + TREE sorted by snap, pid with parent_row relative to this
    frame; SNAPSHOTS numbered from first_snap by (ts, host); identity table host, boot_id, pid, start_time (int64 ns),
    proc_id) or None when there are no rows. Identities in `known` keep their proc_id, new ones get the next ids.
    `parts` is emptied (its tables are released column by column while converting)."""
    tables = [t for t in parts if t is not None and t.num_rows]
    parts.clear()
    if not tables:
        return None
    tables.sort(key=lambda t: pc.min(t.column("ts")).value or 0)  # files in time order: rows often need no reorder
    table = pa.concat_tables(tables).unify_dictionaries()
    del tables
    n = table.num_rows
    cols = {name: table.column(name) for name in table.column_names}
    del table
    cats: dict[str, tuple[np.ndarray, pd.Index]] = {c: _dictionary_codes(cols.pop(c)) for c in _STRING_COLUMNS}
    # command lines are scrubbed (pure Python, per distinct value) while the numpy work below runs
    pool = ThreadPoolExecutor(max_workers=1)
    scrubbing = pool.submit(_scrubbed, cats["cmdline"][1])
    pool.shutdown(wait=False)
    host_rank = cats["host"][0].astype(np.int64) + 1  # null -> 0, then values in text order
    boot_rank = cats["boot_id"][0].astype(np.int64) + 1
    n_host, n_boot = len(cats["host"][1]) + 1, len(cats["boot_id"][1]) + 1

    # snap: dense over (ts, host) in that order
    ts = _chunks_numpy(cols.pop("ts"), _I64_MIN)
    snap, _ = _dense(ts)
    if n_host > 2 or not host_rank.all():
        snap, _ = _dense(snap * n_host + host_rank)
    pid32 = _chunks_numpy(cols.pop("pid"))
    pid = pid32.astype(np.int64)

    # row order: snap, pid (stable: duplicate rows keep their input order)
    order = _frame_order(snap, pid)
    split = _split_repeated_samples(snap, pid, order)
    if split is not None:  # one host sampled twice at the same time (a clock stepped back onto earlier samples)
        snap = split
        order = _frame_order(snap, pid)

    # proc_id: dense over (host, boot_id, pid, start_time), numbered in that order
    start = _chunks_numpy(cols.pop("start_time"), _I64_MIN)
    start_codes, start_values = _dense(start)
    sb, hb, bb = _pack_bits(len(start_values)), _pack_bits(n_host), _pack_bits(n_boot)
    if hb + bb + 32 + sb <= 63:
        packed = host_rank << (bb + 32 + sb)  # in place: each temporary of a day's rows costs page faults
        packed |= boot_rank << (32 + sb)
        packed += (pid + _PID_OFFSET) << sb
        packed |= start_codes
        local, uniq = _dense(packed)
        del packed
        u_host = uniq >> (bb + 32 + sb)
        u_boot = (uniq >> (32 + sb)) & ((1 << bb) - 1)
        u_pid = ((uniq >> sb) & 0xFFFFFFFF) - _PID_OFFSET
        u_start = np.asarray(start_values)[uniq & ((1 << sb) - 1)]
    else:  # too many distinct values to pack into 63 bits: sort the keys instead
        local, first_row = _group_codes([host_rank, boot_rank, pid, start])
        u_host, u_boot, u_pid, u_start = host_rank[first_row], boot_rank[first_row], pid[first_row], start[first_row]
    host_text = np.concatenate([[None], np.asarray(cats["host"][1], dtype=object)])
    boot_text = np.concatenate([[None], np.asarray(cats["boot_id"][1], dtype=object)])
    uniq_ids = pd.DataFrame(
        {
            "host": host_text[u_host],
            "boot_id": boot_text[u_boot],
            "pid": u_pid.astype(np.int64),
            "start_time": u_start.astype(np.int64),
        }
    )
    del start_codes
    ids, identities = _match_identities(uniq_ids, known)
    proc_id = ids[local]
    del local

    # SNAPSHOTS: per snap its first row in input order
    snap_sorted = snap if order is None else snap[order]
    bounds = np.flatnonzero(np.r_[True, snap_sorted[1:] != snap_sorted[:-1]])
    first_row = bounds if order is None else np.minimum.reduceat(order, bounds)
    counts = np.diff(np.r_[bounds, n])
    snaps = pd.DataFrame(
        {
            "snap": np.arange(len(bounds), dtype=np.int64) + first_snap,
            "ts": pd.Series(ts[first_row].view("datetime64[ns]")).dt.tz_localize("UTC"),
            "host": host_text[host_rank[first_row]],
            "boot_id": boot_text[boot_rank[first_row]],
            "processes": counts,
        }
    )
    snaps["host"] = snaps["host"].fillna("nan")  # as text (the null category reads "nan", as before)
    snaps["boot_id"] = snaps["boot_id"].fillna("nan")
    snaps = schema.conform(snaps, schema.SNAPSHOT_COLUMNS)

    def taken(a: np.ndarray) -> np.ndarray:
        return a if order is None else a[order]

    order_arr = None if order is None else pa.array(order)

    def arrow_taken(col: pa.ChunkedArray) -> pa.Array:
        """Column -> one Arrow array in frame order (Arrow gathers from the chunks: no concatenated copy first)."""
        if order_arr is not None:
            col = col.take(order_arr)
        return col.chunk(0) if col.num_chunks == 1 else pa.concat_arrays(col.chunks)

    data: dict[str, object] = {}
    for name, dtype in schema.PROC_COLUMNS.items():
        if name == "snap":
            data[name] = (snap_sorted + first_snap).astype(np.int32)
        elif name == "proc_id":
            data[name] = taken(proc_id)
        elif name == "ts":
            data[name] = _utc(taken(ts))
        elif name == "start_time":
            data[name] = _utc(taken(start))
        elif name == "pid":
            data[name] = taken(pid32)
        elif dtype == "category":
            codes, values = cats.pop(name)
            if name == "cmdline":
                codes, values = _rescrub_codes(codes, values, scrubbing.result())
            data[name] = pd.Categorical.from_codes(taken(codes), dtype=pd.CategoricalDtype(values), validate=False)
        else:
            arr = arrow_taken(cols.pop(name))
            if dtype == schema.UTC_NS:
                arr = arr.cast(pa.int64())
                data[name] = _utc((arr.fill_null(_I64_MIN) if arr.null_count else arr).to_numpy())
            elif dtype == "Int64":
                # the values buffer as it is (what lies under a null does not matter to IntegerArray): no copy
                mask = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else np.zeros(n, bool)
                buf = arr.buffers()[1]
                values = (
                    np.zeros(n, np.int64)
                    if buf is None
                    else np.frombuffer(buf, dtype=np.int64, count=arr.offset + n)[arr.offset :]
                )
                data[name] = pd.arrays.IntegerArray(values, mask)
            else:
                data[name] = arr.to_numpy().astype(dtype, copy=False)
            del arr
    del ts, start, pid, pid32, proc_id, snap
    frame = pd.DataFrame(data, copy=False)
    del data
    trees = tree.derive_trees(frame)
    return pd.concat([frame, trees], axis=1), snaps, identities


def _frame_order(snap: np.ndarray, pid: np.ndarray) -> np.ndarray | None:
    """int64 snap and pid per row -> the stable permutation into (snap, pid) order, None when already in it."""
    key = snap << 32
    key += pid
    key += _PID_OFFSET  # == (snap << 32) | (pid + 2**31): one temporary instead of three
    return None if len(key) < 2 or bool(np.all(key[1:] >= key[:-1])) else np.argsort(key, kind="stable")


def _split_repeated_samples(snap: np.ndarray, pid: np.ndarray, order: np.ndarray | None) -> np.ndarray | None:
    """Snapshots in which a pid occurs more than once (two samples of one host with the same time, e.g. after the
    clock was stepped back) -> new dense snap numbers where the k-th row of a pid at that time (input order) belongs
    to the k-th sample; None when no pid repeats (the usual case, checked on adjacent keys)."""
    s_snap = snap if order is None else snap[order]
    s_pid = pid if order is None else pid[order]
    same = (s_snap[1:] == s_snap[:-1]) & (s_pid[1:] == s_pid[:-1])
    if not same.any():
        return None
    idx = np.arange(len(snap))
    run_start = np.maximum.accumulate(np.where(np.r_[True, ~same], idx, 0))
    rank = np.empty(len(snap), np.int64)
    rank[idx if order is None else order] = idx - run_start
    return _dense(snap * (int(rank.max()) + 1) + rank)[0]


def _utc(ns: np.ndarray) -> pd.arrays.DatetimeArray:
    """int64 ns since the epoch (int64 min = NaT) -> datetime64[ns, UTC] array (no copy)."""
    return pd.arrays.DatetimeArray._simple_new(ns.view("datetime64[ns]"), dtype=pd.DatetimeTZDtype("ns", "UTC"))


def _match_identities(uniq: pd.DataFrame, known: pd.DataFrame | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Distinct identities (host, boot_id, pid, start_time) in key order -> (proc_id of each, identity table):
    identities in `known` keep their id, new ones get the next ids in key order."""
    if known is None or known.empty:
        ids = np.arange(len(uniq), dtype=np.int64)
        return ids, uniq.assign(proc_id=ids)
    matched = uniq.merge(known, on=_IDENTITY, how="left")["proc_id"]
    new = matched.isna().to_numpy()
    start = int(known["proc_id"].max()) + 1
    ids = np.array(matched.to_numpy(dtype=np.float64, na_value=np.nan), copy=True)
    ids[new] = start + np.arange(int(new.sum()))
    ids = ids.astype(np.int64)
    table = pd.concat([known, uniq[new].assign(proc_id=ids[new])], ignore_index=True)
    return ids, table


def _concat_rows(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Two frames of one layout -> rows of a then b, dtypes kept; category columns keep a's codes, b's new values
    are appended to a's categories."""
    data: dict[str, object] = {}
    for col in a.columns:
        x, y = a[col].array, b[col].array
        if isinstance(x, pd.Categorical):
            y_cats = y.categories
            new_values = y_cats[~y_cats.isin(x.categories)]
            cats = x.categories.append(new_values) if len(new_values) else x.categories
            y_map = np.append(cats.get_indexer(y_cats), -1)  # y_map[-1] serves the null code
            codes = np.concatenate([x.codes.astype(np.int32), y_map[y.codes.astype(np.int64)].astype(np.int32)])
            data[col] = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(cats), validate=False)
        elif isinstance(x, np.ndarray | pd.arrays.NumpyExtensionArray):
            data[col] = np.concatenate([np.asarray(x), np.asarray(y, dtype=np.asarray(x).dtype)])
        else:
            data[col] = type(x)._concat_same_type([x, y.astype(x.dtype)])
    return pd.DataFrame(data, copy=False)


class _RowBuffer:
    """Column buffers with room to spare behind the PROCS + TREE frame of the latest Dataset of a path: an append
    writes the new rows behind the end and builds a new frame of views over the longer prefix (no copy of the
    existing rows; earlier frames keep seeing only their own rows). Untouched spare room costs no resident memory."""

    def __init__(self, frame: pd.DataFrame, spare: int) -> None:
        """A copy of `frame` with room for `spare` more rows."""
        self.n = 0
        self.capacity = len(frame) + spare
        self.columns = list(frame.columns)
        self.data: dict[str, list] = {}  # name -> [kind, buffers..., categories or dtype]
        for col in self.columns:
            arr = frame[col].array
            if isinstance(arr, pd.Categorical):
                self.data[col] = ["cat", np.empty(self.capacity, arr.codes.dtype), arr.categories]
            elif isinstance(arr, pd.arrays.IntegerArray):
                self.data[col] = ["int", np.empty(self.capacity, np.int64), np.empty(self.capacity, bool)]
            elif isinstance(arr, pd.arrays.DatetimeArray):
                self.data[col] = ["dt", np.empty(self.capacity, np.int64)]
            else:
                values = np.asarray(arr)
                self.data[col] = ["np", np.empty(self.capacity, values.dtype)]
        self.append(frame)

    def _grow(self, need: int) -> None:
        self.capacity = max(need, self.capacity + self.capacity // 4)
        for entry in self.data.values():
            for i, buf in enumerate(entry):
                if isinstance(buf, np.ndarray):
                    new = np.empty(self.capacity, buf.dtype)
                    new[: self.n] = buf[: self.n]
                    entry[i] = new

    def append(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of `frame` (same columns and dtypes as the buffered frame) -> the whole frame with them appended."""
        n, k = self.n, len(frame)
        if n + k > self.capacity:
            self._grow(n + k)
        end = n + k
        for col in self.columns:
            entry = self.data[col]
            arr = frame[col].array
            if entry[0] == "cat":
                cats = entry[2]
                known = cats.get_indexer(arr.categories)  # hash engine kept on `cats` between appends
                new_values = arr.categories[known < 0]
                if len(new_values):
                    cats = cats.append(new_values)
                    entry[2] = cats
                    dtype = _code_dtype(len(cats))
                    if np.dtype(dtype).itemsize > entry[1].itemsize:
                        entry[1] = entry[1].astype(dtype)
                if len(new_values):
                    known = cats.get_indexer(arr.categories)
                remap = np.append(known, -1)  # remap[-1] serves the null code
                entry[1][n:end] = remap[arr.codes]
            elif entry[0] == "int":
                entry[1][n:end] = arr.to_numpy(dtype=np.int64, na_value=0)
                entry[2][n:end] = arr.isna()
            elif entry[0] == "dt":
                entry[1][n:end] = arr.asi8
            else:
                entry[1][n:end] = np.asarray(arr)
        self.n = end
        return self.frame()

    def frame(self) -> pd.DataFrame:
        """The buffered rows as a frame of views (no copy)."""
        n = self.n
        data: dict[str, object] = {}
        for col in self.columns:
            entry = self.data[col]
            if entry[0] == "cat":
                data[col] = pd.Categorical.from_codes(entry[1][:n], dtype=pd.CategoricalDtype(entry[2]), validate=False)
            elif entry[0] == "int":
                data[col] = pd.arrays.IntegerArray(entry[1][:n], entry[2][:n])
            elif entry[0] == "dt":
                data[col] = _utc(entry[1][:n])
            else:
                data[col] = entry[1][:n]
        return pd.DataFrame(data, copy=False)


def _interval(snaps: pd.DataFrame) -> float | None:
    if len(snaps) < 2:
        return None
    ts = snaps["ts"].astype("int64").to_numpy()
    host = snaps["host"].astype(str).to_numpy()
    order = np.lexsort((ts, host))
    d = np.diff(ts[order])[host[order][1:] == host[order][:-1]]
    d = d[d > 0]
    return float(np.median(d) / 1e9) if len(d) else None


def _info(
    path: str, procs: pd.DataFrame, snaps: pd.DataFrame, has_native: bool, has_seed: bool, notices: list[str]
) -> SourceInfo:
    kind = "empty" if procs.empty else ("mixed" if has_native and has_seed else ("seed" if has_seed else "native"))
    hosts = sorted({h for h in snaps["host"].astype(str).unique() if h}) if len(snaps) else []
    return SourceInfo(path, kind, hosts, kind == "native", _interval(snaps), notices)


def _empty_dataset(path: str, notices: list[str]) -> Dataset:
    trees = pd.DataFrame({c: pd.Series(dtype=t) for c, t in schema.TREE_COLUMNS.items()})
    procs = pd.concat([schema.empty_procs(), trees], axis=1)
    snaps = pd.DataFrame({c: pd.Series(dtype=t) for c, t in schema.SNAPSHOT_COLUMNS.items()})
    return Dataset(procs, schema.empty_system(), snaps, SourceInfo(path, "empty", [], False, None, notices))


def _full_build(
    path: str, state: _State, zone: tzinfo, extra_notices: list[str], fresh: dict[str, pa.Table | None]
) -> Dataset:
    """Every cached part (parquet segments re-read unless in `fresh`, just read) -> a new Dataset."""
    seed_procs, seed_system, seed_notes = _seed_frames(state, zone)
    parts: list[pa.Table | None] = []
    for key, seg in state.segments.items():
        if seg.kind == "parquet":
            parts.append(fresh.get(key))
        else:
            parts.extend(seg.procs)
    missing = [key for key, seg in state.segments.items() if seg.kind == "parquet" and key not in fresh]
    reread = _read_many(missing)
    parts += [reread[key].procs for key in missing]
    fresh.clear()
    native_system = [s for seg in state.segments.values() for s in seg.system]
    has_native = any(t is not None and t.num_rows for t in parts)
    has_seed = len(seed_procs) > 0
    notices = extra_notices + seed_notes
    if has_seed:
        parts.append(_seed_table(seed_procs))
    built = _assemble(parts, 0, None)
    if built is None:
        state.identities = None
        if not notices:
            notices = [f"no dumps in {path}"]
        return _empty_dataset(path, notices)
    procs, snaps, state.identities = built
    system = _system_frame([*native_system, seed_system] if has_seed else native_system, snaps)
    cg_mem = _cgroup_mem_frame(native_system, snaps)
    return Dataset(procs, system, snaps, _info(path, procs, snaps, has_native, has_seed, notices), cg_mem)


def _append(
    path: str,
    state: _State,
    base: Dataset,
    new_procs: list[pa.Table | None],
    new_system: list[pd.DataFrame],
    notices: list[str],
) -> Dataset:
    """Add native rows later than everything in `base` (the collector appending) without rebuilding base."""
    has_seed = base.info.kind in ("seed", "mixed")
    built = _assemble(new_procs, len(base.snapshots), state.identities)
    if built is None:  # e.g. a torn tail: nothing new yet (system rows come with their procs rows)
        return Dataset(
            base.procs,
            base.system,
            base.snapshots,
            _info(path, base.procs, base.snapshots, True, has_seed, notices),
            base.cgroup_mem,
            base.derived,  # the same rows: what was derived from them still holds
        )
    procs_new, snaps_new, state.identities = built
    parent = procs_new["parent_row"].to_numpy()
    procs_new["parent_row"] = np.where(parent >= 0, parent + len(base.procs), parent)
    if state.rows is None or state.rows.n != len(base.procs):
        state.rows = _RowBuffer(base.procs, spare=max(len(procs_new), len(base.procs) // 4))
    procs = state.rows.append(procs_new)
    snaps = _concat_rows(base.snapshots, snaps_new)
    system = _categorical_concat([base.system, _system_frame(new_system, snaps_new)])
    new_cg = _cgroup_mem_frame(new_system, snaps_new)
    cg_mem = _categorical_concat([base.cgroup_mem, new_cg]) if len(new_cg) else base.cgroup_mem
    if len(cg_mem) and str(cg_mem["cgroup"].dtype) != "category":
        cg_mem = schema.conform(cg_mem, schema.CGROUP_MEM_COLUMNS)
    return Dataset(procs, system, snaps, _info(path, procs, snaps, True, has_seed, notices), cg_mem)


# ------------------------------------------------------------------------------------------------ entry point


def _allocators() -> None:
    """Allocator settings for loading millions of rows (once per process; the environment variables win):

    * Arrow's jemalloc pool unless ARROW_DEFAULT_MEMORY_POOL names one: loading a day took 3.5-4.2 s and 1.4 GB
      peak with it against 6.2 s and 1.5-1.7 GB with the default mimalloc pool (pyarrow 26, same run), as freed
      blocks are reused instead of faulting in fresh pages;
    * numpy's madvise(MADV_HUGEPAGE) off unless NUMPY_MADVISE_HUGEPAGE is set: with the kernel's transparent huge
      pages on "madvise" (Debian's default), faulting a huge page in may compact memory synchronously; a day's load
      spent 3.8 s in the kernel with it and 1.9-2.2 s without (CPU 7.2 vs 4.5-5.6 s, same run)."""
    global _ALLOCATORS_SET
    if _ALLOCATORS_SET:
        return
    _ALLOCATORS_SET = True
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        with contextlib.suppress(NotImplementedError, pa.ArrowException):
            pa.set_memory_pool(pa.jemalloc_memory_pool())
    if "NUMPY_MADVISE_HUGEPAGE" not in os.environ:
        with contextlib.suppress(ImportError, AttributeError):
            from numpy._core.multiarray import _set_madvise_hugepage

            _set_madvise_hugepage(False)


_ALLOCATORS_SET = False


def load_dumps(
    path: str | Path, tz: str | None = None, window: tuple[pd.Timestamp | None, pd.Timestamp | None] | None = None
) -> Dataset:
    """Dumps directory (native segments + seed CSVs under time/) -> Dataset; cached (see module docstring).

    tz: zone of the seed stamps (IANA name; None = the zone of this machine). Raises ValueError only for a bad tz.
    window: (lo, hi) UTC times (either None = open): only native segments overlapping it are loaded, whole (their
    procs and system rows); seed files are always loaded. None loads everything.
    """
    zone = resolve_zone(tz)
    _allocators()
    folder = Path(path).expanduser()
    shown = str(folder)
    if not folder.is_dir():
        reason = "is not a directory" if folder.exists() else "does not exist"
        return _empty_dataset(shown, [f"dumps directory {shown} {reason}"])
    keys = _window_keys(folder, window)
    cache_key = (str(folder.resolve()), str(zone), keys)
    with _LOCK:  # guards the cache only: loads of different states run in parallel (a background load, a viewer)
        state = _CACHE.pop(cache_key, None)
        if state is None:
            state = _State()
            if keys is not None:  # another window of this recording is dropped first: one window in memory at once
                for other in [k for k in _CACHE if k[:2] == cache_key[:2] and k[2] is not None and _done(k)]:
                    del _CACHE[other]
        _CACHE[cache_key] = state  # most recent last
        for old in [k for k in _CACHE if k != cache_key and _done(k)][: max(0, len(_CACHE) - _MAX_CACHED_PATHS)]:
            del _CACHE[old]  # least recent first; a state still loading is never dropped
    with state.lock:
        return _load_locked(shown, folder, zone, state, None if keys is None else set(keys))


def _done(cache_key: tuple) -> bool:
    """True when the cached state under `cache_key` holds a Dataset and no load of it is running (call under _LOCK)."""
    state = _CACHE[cache_key]
    return state.dataset is not None and not state.lock.locked()


def _window_keys(folder: Path, window: tuple | None) -> tuple[str, ...] | None:
    """A window (lo, hi; either None = open) -> keys of the native segments overlapping it; None for no window."""
    if window is None:
        return None
    lo = window[0] if window[0] is not None else pd.Timestamp.min.tz_localize("UTC")
    hi = window[1] if window[1] is not None else pd.Timestamp.max.tz_localize("UTC")
    return windows.selected_keys(windows.segment_spans(folder), lo, hi)


def is_loaded(path: str | Path, tz: str | None = None, window: tuple | None = None) -> bool:
    """True when load_dumps(path, tz, window) has a Dataset cached for that path, zone and window's segments (a call
    then costs a directory listing, or reading only what was appended)."""
    folder = Path(path).expanduser()
    keys = _window_keys(folder, window)
    try:
        cache_key = (str(folder.resolve()), str(resolve_zone(tz)), keys)
    except (OSError, ValueError):
        return False
    with _LOCK:
        state = _CACHE.get(cache_key)
        return state is not None and state.dataset is not None


def _load_locked(shown: str, folder: Path, zone: tzinfo, state: _State, keys: set[str] | None = None) -> Dataset:
    segments = store.list_segments(folder)
    if keys is not None:
        segments = [s for s in segments if s.key in keys]
    seg_stats = {str(s.path): (_stat(s.path), s.kind) for s in segments}
    seed_stats, unknown = _scan(folder)
    signature = (
        tuple(sorted((k, v[0], v[1]) for k, v in seg_stats.items())),
        tuple(sorted(seed_stats.items())),
        tuple(unknown),
    )
    if state.dataset is not None and signature == state.signature:
        return state.dataset

    # seed files: re-read new or changed ones only
    seed_changed = set(state.seed_files) != set(seed_stats)
    for name in set(state.seed_files) - set(seed_stats):
        del state.seed_files[name]
    for name, size_mtime in seed_stats.items():
        old = state.seed_files.get(name)
        if old is None or (old.size, old.mtime_ns) != size_mtime:
            state.seed_files[name] = _read_seed_file(folder, name, size_mtime)
            seed_changed = True

    # native segments: new parquet read whole, growing .current read from its offset
    rebuilt = seed_changed or state.dataset is None
    appended_procs: list[pa.Table | None] = []
    appended_system: list[pd.DataFrame] = []
    fresh: dict[str, pa.Table | None] = {}  # parquet segments read now (a rebuild uses them instead of reading again)
    for key in set(state.segments) - set(seg_stats):
        del state.segments[key]
        rebuilt = True
    to_read = [
        key
        for key, (size_mtime, kind) in seg_stats.items()
        if size_mtime is not None
        and not _unchanged(state.segments.get(key), size_mtime, kind)
        and not _grown_current(state.segments.get(key), size_mtime, kind)
    ]
    whole = _read_many(to_read)
    for key, (size_mtime, kind) in seg_stats.items():
        if size_mtime is None:
            continue
        old = state.segments.get(key)
        if _unchanged(old, size_mtime, kind):
            continue
        if _grown_current(old, size_mtime, kind):
            part = _read_ordered(key, old.offset)
            if part.procs is not None:
                old.procs.append(part.procs)
            old.system.append(part.system)
            old.size, old.mtime_ns, old.offset = size_mtime[0], size_mtime[1], part.next_offset
            old.notices = part.notices
            appended_procs.append(part.procs)
            appended_system.append(part.system)
            continue
        part = whole.pop(key)
        kept = [part.procs] if kind == "current" and part.procs is not None else []
        state.segments[key] = _Segment(
            size_mtime[0], size_mtime[1], kind, part.next_offset, kept, [part.system], part.notices
        )
        if kind == "parquet":
            fresh[key] = part.procs
        if old is not None:
            rebuilt = True
        appended_procs.append(part.procs)
        appended_system.append(part.system)

    notices = list(unknown)
    notices += [n for seg in state.segments.values() for n in seg.notices]
    notices += [n for name in sorted(state.seed_files) for n in state.seed_files[name].notices]

    base = state.dataset
    if not rebuilt and base is not None and len(base.procs) and _all_later(appended_procs, base):
        fresh.clear()
        ds = _append(shown, state, base, appended_procs, appended_system, notices)
    else:
        appended_procs.clear()
        state.rows = None
        ds = _full_build(shown, state, zone, notices, fresh)
    state.dataset, state.signature = ds, signature
    return ds


def _unchanged(old: _Segment | None, size_mtime: tuple[int, int], kind: str) -> bool:
    return old is not None and (old.size, old.mtime_ns) == size_mtime and old.kind == kind


def _grown_current(old: _Segment | None, size_mtime: tuple[int, int], kind: str) -> bool:
    return old is not None and kind == "current" and old.kind == "current" and size_mtime[0] >= old.size


def _time_ordered(table: pa.Table | None) -> pa.Table | None:
    """Procs table -> the same rows in (ts, pid) order (stable). Files are stored in (pid, start_time, ts) order for
    compression; reordering each file on its own is several times faster than one gather over a day of rows (the
    source stays in cache), and files that follow each other in time then concatenate already in frame order."""
    if table is None or table.num_rows < 2:
        return table
    ts = _chunks_numpy(table.column("ts"), _I64_MIN)
    pid = _chunks_numpy(table.column("pid"))
    if bool(np.all(ts[1:] >= ts[:-1])) and bool(np.all((ts[1:] > ts[:-1]) | (pid[1:] >= pid[:-1]))):
        return table
    by_pid = np.argsort(pid, kind="stable")
    order = by_pid[np.argsort(ts[by_pid], kind="stable")]
    return table.take(pa.array(order))


def _read_ordered(key: str, offset: int = 0) -> store.SegmentTables:
    """store.read_segment_tables with the procs in (ts, pid) order."""
    part = store.read_segment_tables(Path(key), offset)
    part.procs = _time_ordered(part.procs)
    return part


def _read_many(keys: list[str]) -> dict[str, store.SegmentTables]:
    """Segments read whole, two at a time (Parquet decoding and Arrow gathers release the GIL) -> {key: tables}."""
    if len(keys) < 2:
        return {key: _read_ordered(key) for key in keys}
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        return dict(zip(keys, pool.map(_read_ordered, keys), strict=True))


def _all_later(parts: list[pa.Table | None], base: Dataset) -> bool:
    latest = base.snapshots["ts"].max().value
    for part in parts:
        if part is None or part.num_rows == 0:
            continue
        first = pc.min(part.column("ts").cast(pa.int64())).as_py()
        if first is None or first <= latest:
            return False
    return True


# ------------------------------------------------------------------------------------------------ queries


def resolve_at(ds: Dataset, text: str) -> int:
    """'latest' or ISO 8601 -> the last snap at or before that time; ValueError when there is none or text is bad."""
    snaps = ds.snapshots
    if snaps.empty:
        raise ValueError(f"no snapshots in {ds.info.path}")
    if str(text).strip().lower() == "latest":
        return int(snaps["snap"].iloc[-1])
    at = parse_time(text)
    ts = snaps["ts"].astype("int64").to_numpy()
    pos = int(np.searchsorted(ts, at.as_unit("ns").value, side="right")) - 1
    if pos < 0:
        first = snaps["ts"].iloc[0].isoformat()
        raise ValueError(f"{text!r} is before the first snapshot ({first})")
    return int(snaps["snap"].iloc[pos])


FIND_COLUMNS = ["proc_id", "pid", "start_time", "first_seen", "last_seen", "name", "cmdline"]


def find_process(ds: Dataset, pid: int, start_time: pd.Timestamp | str | None = None) -> pd.DataFrame:
    """Processes that had `pid` -> DataFrame(proc_id, pid, start_time, first_seen, last_seen, name, cmdline).

    One row per proc_id, oldest first; name/cmdline are the latest seen. With start_time (Timestamp or ISO text),
    only the process whose start time is nearest to it within 1 s (printed times may be rounded).
    """
    procs = ds.procs
    rows = procs[procs["pid"].to_numpy() == int(pid)]
    if rows.empty:
        dtypes = {"proc_id": "int64", "pid": "int32", "name": object, "cmdline": object}
        return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, schema.UTC_NS)) for c in FIND_COLUMNS})
    grouped = rows.groupby("proc_id", sort=False, observed=True)
    out = pd.DataFrame(
        {
            "pid": grouped["pid"].first(),
            "start_time": grouped["start_time"].first(),
            "first_seen": grouped["ts"].min(),
            "last_seen": grouped["ts"].max(),
            "name": grouped["name"].last().astype(str),
            "cmdline": grouped["cmdline"].last().astype(str),
        }
    ).reset_index()
    out = out.sort_values(["first_seen", "proc_id"], kind="stable").reset_index(drop=True)[FIND_COLUMNS]
    if start_time is not None:
        want = parse_time(start_time) if isinstance(start_time, str) else pd.Timestamp(start_time)
        want = want.tz_localize("UTC") if want.tzinfo is None else want.tz_convert("UTC")
        diff = (out["start_time"] - want).abs()
        near = diff <= pd.Timedelta(seconds=1)
        if not near.any():
            return out.iloc[0:0]
        out = out[near & (diff == diff[near].min())].reset_index(drop=True)
    return out
