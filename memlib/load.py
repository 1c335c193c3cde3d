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

Caching (module level, per (resolved path, tz), thread-safe, the 4 most recent paths):

* every file is stat-ed (size + mtime_ns); when nothing changed, the previous Dataset is returned as is (milliseconds);
* per-file results are kept: a new or changed seed CSV / closed parquet segment is the only one read again; the growing
  ``.current`` segment is read from the byte offset where the previous read stopped (``SegmentRead.next_offset``);
* when the change is only native rows later than everything loaded (the collector appending), the new rows get new
  snapshot numbers, known identities keep their ``proc_id`` and trees are derived for the new rows only;
  anything else (seed files changed, a file removed or rewritten, compaction of ``.current`` into parquet, rows older
  than the loaded ones) rebuilds the frames from the cached per-file results.

``clear_cache()`` drops everything (tests).
"""

from __future__ import annotations

import os
import threading
import zoneinfo
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from memlib import schema, seed, store, tree
from memlib.scrub import scrub_cmdline

SEED_DIR = "time"
_MAX_CACHED_PATHS = 4
_IDENTITY = ["host", "boot_id", "pid", "start_time"]


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


# ------------------------------------------------------------------------------------------------ time zones


def local_zone() -> tzinfo:
    """The zone of the machine running the loader: $TZ if it names a zone, else /etc/localtime, else UTC."""
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return zoneinfo.ZoneInfo(env)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return zoneinfo.ZoneInfo(target.split("zoneinfo/", 1)[1])
        with open("/etc/localtime", "rb") as fh:
            return zoneinfo.ZoneInfo.from_file(fh, key="localtime")
    except (OSError, zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def resolve_zone(tz: str | None) -> tzinfo:
    """Zone name (IANA, e.g. "Europe/Berlin", or "UTC") or None (local zone) -> tzinfo; ValueError if unknown."""
    if tz is None or tz == "":
        return local_zone()
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Berlin' or 'UTC')") from None


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
    procs: list[pd.DataFrame]
    system: list[pd.DataFrame]
    notices: list[str]


@dataclass
class _State:
    seed_files: dict[str, _SeedFile] = field(default_factory=dict)
    segments: dict[str, _Segment] = field(default_factory=dict)
    signature: tuple = ()
    dataset: Dataset | None = None
    identities: pd.DataFrame | None = None  # host, boot_id, pid, start_time, proc_id of the dataset


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


def _rescrub(cmdline: pd.Series) -> pd.Series:
    """Category column of command lines -> the same, scrubbed again (once per distinct value; defence in depth for
    files written by older collectors). Values that become equal are merged into one category."""
    cat = cmdline.array
    cats = pd.Index(cat.categories.astype(str), dtype=object)
    cleaned = cats.map(scrub_cmdline)
    if cleaned.equals(cats):
        return cmdline
    uniq, remap = np.unique(np.asarray(cleaned, dtype=object), return_inverse=True)
    codes = np.asarray(cat.codes, dtype=np.int64)
    new_codes = np.where(codes >= 0, remap.reshape(-1)[codes], -1)
    return pd.Series(pd.Categorical.from_codes(new_codes, categories=uniq), index=cmdline.index)


def _stored(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Raw procs parts (native or seed) -> one frame at STORED_PROC_COLUMNS dtypes, command lines scrubbed."""
    parts = [schema.conform(f, store.STORED_PROC_DTYPES) for f in frames if len(f)]
    if not parts:
        return schema.conform(schema.empty_procs(), store.STORED_PROC_DTYPES)
    out = _categorical_concat(parts)
    out["cmdline"] = _rescrub(out["cmdline"])
    return out


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


def _text_rank(s: pd.Series) -> np.ndarray:
    """Category (or text) column -> int64 per row, ordered like the text values (nulls as "")."""
    cat = s.array if isinstance(s.dtype, pd.CategoricalDtype) else pd.Categorical(s.astype(object))
    cats = np.asarray(cat.categories.astype(str), dtype=object)
    rank = np.empty(len(cats) + 1, np.int64)
    rank[:-1] = np.argsort(np.argsort(cats, kind="stable"), kind="stable") + 1
    rank[-1] = 0  # code -1 (null) -> "" sorts first
    return rank[np.asarray(cat.codes, dtype=np.int64)]


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


def _snapshot_keys(raw: pd.DataFrame, first_snap: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows (ts, host, boot_id) -> (snap per row, SNAPSHOTS frame), snaps numbered from first_snap by (ts, host)."""
    codes, first_row = _group_codes([_ns(raw["ts"]), _text_rank(raw["host"])])
    counts = np.bincount(codes, minlength=len(first_row))
    snaps = pd.DataFrame(
        {
            "snap": np.arange(len(first_row), dtype=np.int64) + first_snap,
            "ts": raw["ts"].take(first_row).reset_index(drop=True),
            "host": raw["host"].take(first_row).astype(str).to_numpy(),
            "boot_id": raw["boot_id"].take(first_row).astype(str).to_numpy(),
            "processes": counts,
        }
    )
    return codes + first_snap, schema.conform(snaps, schema.SNAPSHOT_COLUMNS)


def _assign_ids(raw: pd.DataFrame, known: pd.DataFrame | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows -> (proc_id per row, identity table); identities in `known` keep their id, new ones get the next ids.

    The identity table holds one row per process: host, boot_id (text), pid, start_time (int64 ns), proc_id.
    """
    start_ns = _ns(raw["start_time"])
    pid = raw["pid"].to_numpy(np.int64)
    local, first_row = _group_codes([_text_rank(raw["host"]), _text_rank(raw["boot_id"]), pid, start_ns])
    uniq = pd.DataFrame(
        {
            "host": raw["host"].take(first_row).astype(str).to_numpy(),
            "boot_id": raw["boot_id"].take(first_row).astype(str).to_numpy(),
            "pid": pid[first_row],
            "start_time": start_ns[first_row],
        }
    )
    if known is None or known.empty:
        ids = np.arange(len(uniq), dtype=np.int64)
        table = uniq.assign(proc_id=ids)
    else:
        matched = uniq.merge(known, on=_IDENTITY, how="left")["proc_id"]
        new = matched.isna().to_numpy()
        start = int(known["proc_id"].max()) + 1
        ids = np.array(matched.to_numpy(dtype=np.float64, na_value=np.nan), copy=True)
        ids[new] = start + np.arange(int(new.sum()))
        ids = ids.astype(np.int64)
        table = pd.concat([known, uniq[new].assign(proc_id=ids[new])], ignore_index=True)
    return ids[local], table


def _build_procs(raw: pd.DataFrame, snap: np.ndarray, proc_id: np.ndarray) -> pd.DataFrame:
    """Stored rows + snap + proc_id -> PROCS + TREE sorted by snap, pid (parent_row relative to this frame)."""
    frame = raw.assign(snap=snap.astype(np.int32), proc_id=proc_id)
    order = np.lexsort((frame["pid"].to_numpy(), snap))
    frame = schema.conform(frame.take(order).reset_index(drop=True), schema.PROC_COLUMNS)
    trees = tree.derive_trees(frame)
    return pd.concat([frame, trees], axis=1)


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


def _full_build(path: str, state: _State, zone: tzinfo, extra_notices: list[str]) -> Dataset:
    seed_procs, seed_system, seed_notes = _seed_frames(state, zone)
    native_procs = [p for seg in state.segments.values() for p in seg.procs]
    native_system = [s for seg in state.segments.values() for s in seg.system]
    has_native = any(len(p) for p in native_procs)
    has_seed = len(seed_procs) > 0
    notices = extra_notices + seed_notes
    raw = _stored([*native_procs, seed_procs] if has_seed else native_procs)
    if raw.empty:
        state.identities = None
        if not notices:
            notices = [f"no dumps in {path}"]
        return _empty_dataset(path, notices)
    snap, snaps = _snapshot_keys(raw, 0)
    proc_id, state.identities = _assign_ids(raw, None)
    procs = _build_procs(raw, snap, proc_id)
    system = _system_frame([*native_system, seed_system] if has_seed else native_system, snaps)
    cg_mem = _cgroup_mem_frame(native_system, snaps)
    return Dataset(procs, system, snaps, _info(path, procs, snaps, has_native, has_seed, notices), cg_mem)


def _append(
    path: str,
    state: _State,
    base: Dataset,
    new_procs: list[pd.DataFrame],
    new_system: list[pd.DataFrame],
    notices: list[str],
) -> Dataset:
    """Add native rows later than everything in `base` (the collector appending) without rebuilding base."""
    raw = _stored(new_procs)
    has_seed = base.info.kind in ("seed", "mixed")
    if raw.empty:  # e.g. a torn tail: nothing new yet (system rows come with their procs rows)
        return Dataset(
            base.procs,
            base.system,
            base.snapshots,
            _info(path, base.procs, base.snapshots, True, has_seed, notices),
            base.cgroup_mem,
        )
    snap, snaps_new = _snapshot_keys(raw, len(base.snapshots))
    proc_id, state.identities = _assign_ids(raw, state.identities)
    procs_new = _build_procs(raw, snap, proc_id)
    parent = procs_new["parent_row"].to_numpy()
    procs_new["parent_row"] = np.where(parent >= 0, parent + len(base.procs), parent)
    procs = _categorical_concat([base.procs, procs_new])
    snaps = _categorical_concat([base.snapshots, snaps_new])
    system = _categorical_concat([base.system, _system_frame(new_system, snaps_new)])
    new_cg = _cgroup_mem_frame(new_system, snaps_new)
    cg_mem = _categorical_concat([base.cgroup_mem, new_cg]) if len(new_cg) else base.cgroup_mem
    for frame, cols in ((procs, {**schema.PROC_COLUMNS, **schema.TREE_COLUMNS}), (snaps, schema.SNAPSHOT_COLUMNS)):
        for col, dtype in cols.items():
            if str(frame[col].dtype) != dtype:
                frame[col] = frame[col].astype(dtype)
    if len(cg_mem) and str(cg_mem["cgroup"].dtype) != "category":
        cg_mem = schema.conform(cg_mem, schema.CGROUP_MEM_COLUMNS)
    return Dataset(procs, system, snaps, _info(path, procs, snaps, True, has_seed, notices), cg_mem)


# ------------------------------------------------------------------------------------------------ entry point


def load_dumps(path: str | Path, tz: str | None = None) -> Dataset:
    """Dumps directory (native segments + seed CSVs under time/) -> Dataset; cached (see module docstring).

    tz: zone of the seed stamps (IANA name; None = the zone of this machine). Raises ValueError only for a bad tz.
    """
    zone = resolve_zone(tz)
    folder = Path(path).expanduser()
    shown = str(folder)
    if not folder.is_dir():
        reason = "is not a directory" if folder.exists() else "does not exist"
        return _empty_dataset(shown, [f"dumps directory {shown} {reason}"])
    cache_key = (str(folder.resolve()), str(zone))
    with _LOCK:
        state = _CACHE.pop(cache_key, None) or _State()
        _CACHE[cache_key] = state  # most recent last
        while len(_CACHE) > _MAX_CACHED_PATHS:
            _CACHE.pop(next(iter(_CACHE)))
        return _load_locked(shown, folder, zone, state)


def _load_locked(shown: str, folder: Path, zone: tzinfo, state: _State) -> Dataset:
    segments = store.list_segments(folder)
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
    appended_procs: list[pd.DataFrame] = []
    appended_system: list[pd.DataFrame] = []
    for key in set(state.segments) - set(seg_stats):
        del state.segments[key]
        rebuilt = True
    for key, (size_mtime, kind) in seg_stats.items():
        if size_mtime is None:
            continue
        old = state.segments.get(key)
        if old is not None and (old.size, old.mtime_ns) == size_mtime and old.kind == kind:
            continue
        if old is not None and kind == "current" and old.kind == "current" and size_mtime[0] >= old.size:
            part = store.read_segment(Path(key), old.offset)
            old.procs.append(part.procs)
            old.system.append(part.system)
            old.size, old.mtime_ns, old.offset = size_mtime[0], size_mtime[1], part.next_offset
            old.notices = part.notices
            appended_procs.append(part.procs)
            appended_system.append(part.system)
            continue
        part = store.read_segment(Path(key), 0)
        state.segments[key] = _Segment(
            size_mtime[0], size_mtime[1], kind, part.next_offset, [part.procs], [part.system], part.notices
        )
        if old is not None:
            rebuilt = True
        appended_procs.append(part.procs)
        appended_system.append(part.system)

    notices = list(unknown)
    notices += [n for seg in state.segments.values() for n in seg.notices]
    notices += [n for name in sorted(state.seed_files) for n in state.seed_files[name].notices]

    base = state.dataset
    if not rebuilt and base is not None and len(base.procs) and _all_later(appended_procs, base):
        ds = _append(shown, state, base, appended_procs, appended_system, notices)
    else:
        ds = _full_build(shown, state, zone, notices)
    state.dataset, state.signature = ds, signature
    return ds


def _all_later(parts: list[pd.DataFrame], base: Dataset) -> bool:
    latest = base.snapshots["ts"].max()
    return all(part.empty or part["ts"].min() > latest for part in parts)


# ------------------------------------------------------------------------------------------------ queries


def parse_time(text: str) -> pd.Timestamp:
    """ISO 8601 text -> UTC Timestamp (a time without zone is taken as UTC); ValueError with the text otherwise."""
    try:
        ts = pd.Timestamp(str(text).strip())
    except (ValueError, TypeError, OverflowError):
        ts = None
    if ts is None or ts is pd.NaT or pd.isna(ts):
        raise ValueError(f"{text!r} is not a time: use ISO 8601 (e.g. 2026-11-27T17:02:13Z) or 'latest'")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


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
