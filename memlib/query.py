"""Every question the pages and the CLI ask, answered by a query over the store in place (DuckDB, embedded).

Nothing here holds a recording in memory: each function reads the Parquet files that can hold the answer
(``memlib.source.parquet_files`` prunes by host and date) plus the active segment (``memlib.source.active``), and
returns a pandas frame of only what is shown. Pure analysis (trees, Theil–Sen, spikes, compare, alert rules) stays in
the other memlib modules and runs on these small frames.

Identity: a moment is ``Moment(ts, host)`` (one sample of one host); a process is ``Proc(host, boot_id, pid,
start_time)``. Frames that feed the frame-based analysis carry ``snap`` and ``proc_id`` numbered *within that frame*
(``moment`` has snap 0; two moments 0 and 1): they are not stable across calls; use ts / Proc to refer to things.
Times are ``datetime64[ns, UTC]`` (stored with microsecond precision); bytes are int64 (Int64 where unknown).

Long ranges: functions with ``bins=N`` return at most N time buckets of equal width over [t_from, t_to]; each
bucket row has ``ts`` (its first sample's time: a real snapshot), for every memory column the bucket's **maximum**
under the column's own name and its minimum as ``<column>_min`` (a 5 s spike survives a 30-day chart), and
``samples``. ``bins=None`` returns one row per sample.

Connections: one DuckDB cursor per thread on one in-memory database (``SET TimeZone='UTC'``), closed by
``release_thread()`` (the dashboard calls it when a page run ends); the active segment's Arrow tables are registered
per call under unique names and dropped after it.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, cast

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from memlib import compare as compare_mod
from memlib import groups as groups_mod
from memlib import leaks as leaks_mod
from memlib import schema, source, summary, tree
from memlib import spikes as spikes_mod
from memlib.scrub import scrub_cmdline
from memlib.timeline import metric_column
from memlib.units import iso_z, parse_time, to_utc
from store import schema as store_schema

Table = Literal["procs", "system", "cgroups"]
TIME_UNIT = "us"  # the store's precision


class Moment(NamedTuple):
    """One snapshot: the sample of `host` at `ts`."""

    ts: pd.Timestamp
    host: str


class Proc(NamedTuple):
    """One process's identity."""

    host: str
    boot_id: str
    pid: int
    start_time: pd.Timestamp


# ------------------------------------------------------------------------------------------------ engine

_local = threading.local()
_names = itertools.count()
_DB: duckdb.DuckDBPyConnection | None = None
_DB_LOCK = threading.Lock()
MEMORY_LIMIT = "256MB"  # DuckDB's working memory, shared by every thread's cursor (spills to disk beyond it)


def _con() -> duckdb.DuckDBPyConnection:
    """This thread's cursor on the one in-memory database (shared buffer pool and Parquet metadata cache)."""
    global _DB
    con = getattr(_local, "con", None)
    if con is None:
        with _DB_LOCK:
            if _DB is None:
                _DB = duckdb.connect()
                _DB.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
                _DB.execute("SET enable_object_cache = true")
                _DB.execute("SET allocator_flush_threshold = '16MB'")  # give freed memory back to the system
                _DB.execute("SET preserve_insertion_order = false")  # every answer that has an order says ORDER BY
        con = _DB.cursor()
        con.execute("SET TimeZone = 'UTC'")
        _local.con = con
    return con


def warm_up() -> None:
    """Open the in-memory database now (a server at start) rather than in the first query."""
    _con()
    release_thread()


def release_thread() -> None:
    """Close this thread's cursor (the next query opens another). A web server runs each page in a new thread: a
    finished thread's cursor, with the memory its queries used, lives on until the garbage collector finds it."""
    con = getattr(_local, "con", None)
    if con is not None:
        _local.con = None
        con.close()


def _columns(table: Table) -> list[tuple[str, pa.DataType]]:
    return [(f.name, f.type) for f in store_schema.SCHEMAS[table]] + [("host", pa.string())]


_DUCK_TYPES = {
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.string(): "VARCHAR",
    store_schema.TS: "TIMESTAMPTZ",
}


def _duck_type(t: pa.DataType) -> str:
    return _DUCK_TYPES.get(t, "TIMESTAMPTZ" if pa.types.is_timestamp(t) else "VARCHAR")


@dataclass
class _Scan:
    """The SQL text of one table of a recording over a time range (files + active segment), and its registrations."""

    sql: str
    registered: list[str]


def _scan(con: duckdb.DuckDBPyConnection, rec: source.Recording, table: Table, t_from=None, t_to=None,
          hosts: Sequence[str] | None = None, paths: list[Path] | None = None) -> _Scan:  # fmt: skip
    cols = _columns(table)
    wanted = list(hosts) if hosts is not None else None
    files = paths if paths is not None else source.parquet_files(rec, table, t_from, t_to, wanted)
    parts, registered = [], []
    if files:
        names = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        sel = ", ".join(f'"{c}"' for c, _ in cols)
        # files written before a column existed lack it: a typed empty row set, unioned by name, makes it null there
        typed = ", ".join(f'CAST(NULL AS {_duck_type(t)}) AS "{c}"' for c, t in cols)
        parts.append(
            f"SELECT {sel} FROM ((SELECT {typed} WHERE false) UNION ALL BY NAME (SELECT * FROM read_parquet([{names}], "
            "hive_partitioning=true, union_by_name=true, hive_types={'host': 'VARCHAR', 'date': 'DATE'})))"
        )
    act = getattr(source.active(rec), table, None)
    if act is not None and act.num_rows:
        if "host" not in act.column_names and len(rec.hosts) == 1:
            act = act.append_column("host", pa.array([rec.hosts[0]] * act.num_rows, pa.string()))
        name = f"pmi_active_{next(_names)}"
        con.register(name, act)
        registered.append(name)
        have = set(act.column_names)
        sel = ", ".join(
            f'CAST("{c}" AS {_duck_type(t)}) AS "{c}"' if c in have else f'CAST(NULL AS {_duck_type(t)}) AS "{c}"'
            for c, t in cols
        )
        parts.append(f"SELECT {sel} FROM {name}")
    if not parts:
        sel = ", ".join(f'CAST(NULL AS {_duck_type(t)}) AS "{c}"' for c, t in cols)
        parts.append(f"SELECT {sel} WHERE false")
    return _Scan("(" + " UNION ALL ".join(parts) + ")", registered)


@contextmanager
def _tables(rec: source.Recording, t_from=None, t_to=None, hosts=None, paths: list[Path] | None = None,
            **only: bool) -> Iterator[dict[str, str]]:  # fmt: skip
    """Context: {table: SQL source} for the tables asked (procs=True, system=True, cgroups=True); `paths`: these
    closed files instead of the recording's (one table asked; the caller verified them)."""
    con = _con()
    scans = {t: _scan(con, rec, cast(Table, t), t_from, t_to, hosts, paths) for t, want in only.items() if want}
    try:
        yield {t: s.sql for t, s in scans.items()}
    finally:
        for s in scans.values():
            for name in s.registered:
                con.unregister(name)


def _run(sql: str, params: Sequence | None = None) -> pd.DataFrame:
    """SQL -> pandas frame: times datetime64[ns, UTC], integers with nulls Int64, strings object."""
    tbl = _con().sql(sql, params=list(params) if params else None).to_arrow_table()
    out = {}
    for name, col in zip(tbl.column_names, tbl.columns, strict=True):
        t = col.type
        if pa.types.is_timestamp(t):
            s = pd.Series(col.to_pandas(), copy=False)
            s = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
            out[name] = s.astype(schema.UTC_NS)
        elif pa.types.is_integer(t):
            if col.null_count:
                out[name] = pd.Series(pd.array(col.to_pylist(), dtype="Int64"))
            else:
                out[name] = pd.Series(col.to_numpy(), dtype=t.to_pandas_dtype())
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            values = col.to_pylist()
            if name.endswith("cmdline"):  # scrubbed before writing and again before it is shown
                values = [None if v is None else _rescrub(v) for v in values]
            out[name] = pd.Series(values, dtype=object)
        else:
            out[name] = pd.Series(col.to_pandas(), copy=False)
    return pd.DataFrame(out, index=pd.RangeIndex(tbl.num_rows))


@contextmanager
def _keys(procs: Sequence[Proc] | None) -> Iterator[str]:
    """Context: SQL condition keeping only the rows of these processes ("" for None = every process)."""
    if procs is None:
        yield ""
        return
    con = _con()
    name = f"pmi_keys_{next(_names)}"
    table = pa.table(
        {
            "host": pa.array([p.host for p in procs], pa.string()),
            "boot_id": pa.array([p.boot_id for p in procs], pa.string()),
            "pid": pa.array([int(p.pid) for p in procs], pa.int32()),
            "start_time": pa.array([to_utc(p.start_time).value for p in procs], pa.timestamp("ns", tz="UTC")),
        }
    )
    con.register(name, table)
    pids = ", ".join(str(v) for v in sorted({int(p.pid) for p in procs})) or "NULL"
    try:  # (the plain pid list is a filter the Parquet scan applies itself, before the identity test per row)
        yield (
            f"pid IN ({pids}) AND (host, boot_id, pid, start_time) IN (SELECT (host, boot_id, pid, "
            f"CAST(start_time AS TIMESTAMPTZ)) FROM {name})"
        )
    finally:
        con.unregister(name)


@functools.lru_cache(maxsize=65536)
def _rescrub(cmdline: str) -> str:
    """A stored command line scrubbed again (rules may have grown since it was written); cached per distinct text."""
    return scrub_cmdline(cmdline)


def _p(ts: pd.Timestamp | None) -> pd.Timestamp | None:
    return None if ts is None else to_utc(ts)


# ------------------------------------------------------------------------------------------------ moments

SNAPSHOT_LIST_COLUMNS = ["ts", "host", "boot_id"]


def snapshots(rec: source.Recording, t_from=None, t_to=None, host: str | None = None) -> pd.DataFrame:
    """Recording (+ window, host) -> its snapshot times: ts, host, boot_id, one row per sample, by ts then host."""
    t_from, t_to = _p(t_from), _p(t_to)
    where, params = _window(t_from, t_to, host)
    with _tables(rec, t_from, t_to, [host] if host else None, system=True) as t:
        return _run(f"SELECT ts, host, boot_id FROM {t['system']} {where} ORDER BY ts, host", params)


def _window(t_from, t_to, host=None, extra: str = "", prefix: str = "") -> tuple[str, list]:
    """WHERE clause (or "") and its parameters for a time window, a host and an extra condition."""
    conds, params = [], []
    if t_from is not None:
        conds.append(f"{prefix}ts >= ?")
        params.append(t_from)
    if t_to is not None:
        conds.append(f"{prefix}ts <= ?")
        params.append(t_to)
    if host is not None:
        conds.append(f"{prefix}host = ?")
        params.append(host)
    if extra:
        conds.append(extra)
    return ("WHERE " + " AND ".join(conds)) if conds else "", params


def _half_interval(rec: source.Recording) -> pd.Timedelta:
    return pd.Timedelta(seconds=(rec.interval_s or 0.0) / 2)


def resolve(rec: source.Recording, at: str | pd.Timestamp | None = None, host: str | None = None) -> Moment:
    """'latest'/None, ISO text or a time -> the snapshot it names (ValueError with a one-line reason otherwise).

    The snapshot at exactly that time; else the nearest within half the sampling interval (a time printed by
    units.iso_z always matches exactly); else, inside a gap of the recording, the last snapshot before it. A time
    before the first or after the last sample (by more than half an interval) is an error naming the first/last.
    """
    if rec.span is None:
        raise ValueError(f"no snapshots in {rec.shown}")
    latest = at is None or (isinstance(at, str) and at.strip().lower() == "latest")
    first, last = rec.span
    if latest:
        want = last
    else:
        want = parse_time(at) if isinstance(at, str) else to_utc(at)
        half = _half_interval(rec)
        outside = want < first - half or want > last + half
        if outside and snapshots(rec, want - half, want + half, host).empty:  # (the span is checked, not trusted)
            side = "before the first" if want < first else "after the last"
            raise ValueError(f"{iso_z(want)} is {side} sample ({iso_z(first if want < first else last)})")
    half = _half_interval(rec)
    reach = max(pd.Timedelta(hours=1), 4 * half)
    if latest:
        near = snapshots(rec, last - reach, None, host)
        if near.empty:
            near = snapshots(rec, None, None, host)
        if near.empty:
            raise ValueError(f"no snapshots in {rec.shown}" + (f" for host {host}" if host else ""))
        row = near.iloc[-1]
        return Moment(row["ts"], str(row["host"]))
    near = snapshots(rec, want - reach, want + half, host)
    if near.empty or (near["ts"] > want).all():
        before = snapshots(rec, None, want, host)
        if before.empty:
            raise ValueError(f"{iso_z(want)} is before the first sample ({iso_z(first)})")
        row = before.iloc[-1]
        return Moment(row["ts"], str(row["host"]))
    diff = (near["ts"] - want).abs()
    i = int(diff.to_numpy().argmin())
    if diff.iloc[i] <= half:
        return Moment(near["ts"].iloc[i], str(near["host"].iloc[i]))
    row = near[near["ts"] <= want].iloc[-1]
    return Moment(row["ts"], str(row["host"]))


_PROC_SELECT = (
    'ts, host, boot_id, pid, ppid, start_time, uid, "user", state, name, cmdline, rss_bytes, vsz_bytes, threads, '
    "cgroup, pss_bytes, uss_bytes, swap_bytes, smaps_ts, level, parent_start_time, descendants, subtree_rss_bytes, "
    "subtree_pss_bytes, subtree_uss_bytes, subtree_swap_bytes"
)
MOMENT_COLUMNS = [*schema.PROC_COLUMNS, *schema.TREE_COLUMNS, "parent_start_time"]


def _as_procs(df: pd.DataFrame, snap_of: pd.Series | None = None) -> pd.DataFrame:
    """Query rows -> PROCS + TREE frame: snap (0 or `snap_of`), proc_id dense over identity, parent_row local to it."""
    snap = np.zeros(len(df), np.int32) if snap_of is None else snap_of.to_numpy(np.int32)
    df = df.assign(snap=snap)
    df = df.sort_values(["snap", "pid"], kind="stable").reset_index(drop=True)
    ident = ["host", "boot_id", "pid", "start_time"]
    df["proc_id"] = df.groupby(ident, sort=False, dropna=False).ngroup().astype(np.int64)
    # the parent: the first row of the same sample and host whose (pid, start_time) is (ppid, parent_start_time)
    key = ["snap", "host", "pid", "start_time"]
    rows = df[key].assign(parent_row=np.arange(len(df), dtype=np.int64)).drop_duplicates(key)
    want = pd.DataFrame(
        {"snap": df["snap"], "host": df["host"], "pid": df["ppid"], "start_time": df["parent_start_time"]}
    )
    found = want.merge(rows, on=key, how="left")["parent_row"]
    pos = found.to_numpy(dtype=np.float64, na_value=-1.0).astype(np.int64)
    df["parent_row"] = np.where(df["parent_start_time"].isna().to_numpy(), -1, pos)
    for c in ("host", "boot_id", "user", "state", "name", "cmdline", "cgroup"):
        df[c] = df[c].astype("category")
    return schema.conform(df, {**schema.PROC_COLUMNS, **schema.TREE_COLUMNS, "parent_start_time": schema.UTC_NS})


def moment(rec: source.Recording, m: Moment) -> pd.DataFrame:
    """A snapshot -> its processes: PROCS + TREE columns + parent_start_time, snap 0, by pid (parent_row local)."""
    with _tables(rec, m.ts, m.ts, [m.host], procs=True) as t:
        df = _run(f"SELECT {_PROC_SELECT} FROM {t['procs']} WHERE ts = ? AND host = ?", [m.ts, m.host])
    return _as_procs(df)


def moments(rec: source.Recording, ms: Sequence[Moment]) -> pd.DataFrame:
    """Several snapshots -> their processes as one PROCS + TREE frame, snap i for ms[i], proc_id shared across them."""
    if not ms:
        return _as_procs(_empty_rows())
    parts = []
    for i, m in enumerate(ms):
        df = moment(rec, m).drop(columns=["snap", "proc_id", "parent_row"])
        parts.append(df.assign(_snap=i))
    df = pd.concat([p.astype({c: object for c in p.columns if isinstance(p[c].dtype, pd.CategoricalDtype)})
                    for p in parts], ignore_index=True)  # fmt: skip
    return _as_procs(df.drop(columns=["_snap"]), df["_snap"])


def _empty_rows() -> pd.DataFrame:
    with _tables(_EMPTY, procs=True) as t:
        return _run(f"SELECT {_PROC_SELECT} FROM {t['procs']}")


# ------------------------------------------------------------------------------------------------ processes

FIND_COLUMNS = ["host", "boot_id", "pid", "start_time", "first_seen", "last_seen", "name", "cmdline", "user",
                "samples", "rss_max_bytes"]  # fmt: skip


def find_processes(rec: source.Recording, pid: int, start_time: str | pd.Timestamp | None = None,
                   host: str | None = None, t_from=None, t_to=None) -> pd.DataFrame:  # fmt: skip
    """Processes that had `pid` -> FIND_COLUMNS, one row per identity, oldest first (name/cmdline: the latest seen).

    With start_time (a time or ISO text): only the process whose start time is nearest to it within 1 s. With a
    window: only the processes seen in it (first_seen, last_seen, samples... within the window).
    """
    want = None
    if start_time is not None:
        want = parse_time(start_time) if isinstance(start_time, str) else to_utc(start_time)
    t_from, t_to = _p(t_from), _p(t_to)
    prune = t_from if t_from is not None or want is None else want - CLOCK_STEP_MARGIN
    where, params = _window(t_from, t_to, host, "pid = ?")
    params.append(int(pid))
    with _tables(rec, prune, t_to, [host] if host else None, procs=True) as t:
        out = _run(
            f"""SELECT host, boot_id, pid, start_time, min(ts) AS first_seen, max(ts) AS last_seen,
                arg_max(name, ts) AS name, arg_max(cmdline, ts) AS cmdline, arg_max("user", ts) AS "user",
                count(*)::INTEGER AS samples,
                max(rss_bytes) AS rss_max_bytes
            FROM {t["procs"]} {where} GROUP BY host, boot_id, pid, start_time ORDER BY first_seen, host, start_time""",
            params,
        )
    if want is not None and len(out):
        diff = (out["start_time"] - want).abs()
        near = diff <= pd.Timedelta(seconds=1)
        out = out[near & (diff == diff[near].min())] if near.any() else out.iloc[0:0]
    return out.reset_index(drop=True)


def find_matching(rec: source.Recording, text: str, host: str | None = None, limit: int | None = 5) -> pd.DataFrame:
    """Processes whose name, command line or user contains `text` anywhere in the recording (case-insensitive, as
    memlib.filters' match) -> FIND_COLUMNS, one row per identity, the most recently seen first (`limit` rows)."""
    cond = '(contains(lower(name), ?) OR contains(lower(cmdline), ?) OR contains(lower("user"), ?))'
    where, params = _window(None, None, host, cond)
    params += [text.lower()] * 3
    with _tables(rec, None, None, [host] if host else None, procs=True) as t:
        return _run(
            f"""SELECT host, boot_id, pid, start_time, min(ts) AS first_seen, max(ts) AS last_seen,
                arg_max(name, ts) AS name, arg_max(cmdline, ts) AS cmdline, arg_max("user", ts) AS "user",
                count(*)::INTEGER AS samples, max(rss_bytes) AS rss_max_bytes
            FROM {t["procs"]} {where} GROUP BY host, boot_id, pid, start_time
            ORDER BY last_seen DESC, first_seen DESC, pid {"" if limit is None else f"LIMIT {int(limit)}"}""",
            params,
        )


def process(rec: source.Recording, pid: int, start_time: str | pd.Timestamp | None = None,
            host: str | None = None) -> Proc | None:  # fmt: skip
    """pid (+ start time) -> that process (the latest with that pid unless start_time picks another), or None."""
    found = find_processes(rec, pid, start_time, host)
    if found.empty:
        return None
    row = found.iloc[-1]
    return Proc(str(row["host"]), str(row["boot_id"]), int(row["pid"]), row["start_time"])


CLOCK_STEP_MARGIN = pd.Timedelta(days=1)  # a process's samples are read from its start time minus this


def _proc_from(rec: source.Recording, p: Proc, t_from) -> tuple[pd.Timestamp | None, pd.Timestamp, pd.Timestamp]:
    """(the window's start for the SQL condition, the earliest date to read files from, the bins' grid start).

    A process has no samples before it started, except after the wall clock stepped back: files are read from a
    day before its start time, rows are not cut at the start time."""
    if t_from is not None:
        t_from = _p(t_from)
        return t_from, t_from, t_from
    grid = p.start_time if rec.span is None else max(p.start_time, rec.span[0])
    return None, p.start_time - CLOCK_STEP_MARGIN, grid


def _proc_where(p: Proc, prefix: str = "") -> tuple[str, list]:
    return (
        f"{prefix}host = ? AND {prefix}boot_id = ? AND {prefix}pid = ? AND {prefix}start_time = ?",
        [p.host, p.boot_id, int(p.pid), p.start_time],
    )


TIMELINE_COLUMNS = [
    "ts", "pid", "ppid", "name", "cmdline", "level", "rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes",
    "subtree_rss_bytes", "subtree_pss_bytes", "subtree_uss_bytes", "subtree_swap_bytes", "descendants",
]  # fmt: skip
_TIMELINE_VALUES = [c for c in TIMELINE_COLUMNS if c.endswith("_bytes")] + ["descendants"]


def _bin_grid(rec: source.Recording, t_from, t_to, bins: int) -> tuple[int, int]:
    """(first bucket start, bucket width) in microseconds since the epoch for `bins` buckets over the window."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    lo = t_from if t_from is not None else (rec.span[0] if rec.span else pd.Timestamp(0, tz="UTC"))
    hi = t_to if t_to is not None else (rec.span[1] if rec.span else lo)
    lo_us, hi_us = lo.value // 1000, hi.value // 1000
    width = max(1, -(-(hi_us - lo_us + 1) // bins))
    return lo_us, width


def _bucketed(inner: str, keys: list[str], values: list[str], texts: list[str], t0: int, width: int) -> str:
    """SQL: rows of `inner` (with ts) -> one row per (keys, bucket): ts = first sample, max and <v>_min per value."""
    k = ", ".join(keys)
    aggs = [f"max({v}) AS {v}, min({v}) AS {v}_min" for v in values]
    aggs += [f"arg_max({c}, ts) AS {c}" for c in texts]
    group = f"{k + ', ' if k else ''}(epoch_us(ts) - {t0}) // {width}"
    return (
        f"SELECT {k + ', ' if k else ''}min(ts) AS ts, {', '.join(aggs)}, count(*)::INTEGER AS samples "
        f"FROM ({inner}) GROUP BY {group}"
    )


def timeline(rec: source.Recording, p: Proc, t_from=None, t_to=None, bins: int | None = None) -> pd.DataFrame:
    """A process -> one row per sample it lives in, in time order: TIMELINE_COLUMNS (own and subtree bytes).

    With bins: at most `bins` buckets (module docstring): maxima under the column names, minima as ``<col>_min``,
    ``samples``; pid/ppid/name/cmdline/level of the bucket's last sample.
    """
    t_from, prune, grid = _proc_from(rec, p, t_from)
    t_to = _p(t_to)
    cond, params = _proc_where(p)
    where, wparams = _window(t_from, t_to, None, cond)
    cols = ", ".join(TIMELINE_COLUMNS)
    with _tables(rec, prune, t_to, [p.host], procs=True) as t:
        inner = f"SELECT {cols} FROM {t['procs']} {where}"
        if bins is None:
            return _run(inner + " ORDER BY ts", wparams + params)
        t0, width = _bin_grid(rec, grid, t_to, bins)
        sql = _bucketed(inner, [], _TIMELINE_VALUES, ["pid", "ppid", "name", "cmdline", "level"], t0, width)
        out = _run(sql + " ORDER BY ts", wparams + params)
    return out


CHILDREN_COLUMNS = ["ts", "child_pid", "child_start_time", "child_name"]


def children(rec: source.Recording, p: Proc, metric: str = "rss", t_from=None, t_to=None,
             bins: int | None = None) -> pd.DataFrame:  # fmt: skip
    """A process -> its direct children's subtree totals over time: ts, child_pid, child_start_time, child_name,
    subtree_<metric>_bytes; one row per (sample, child) while the child is a direct child (with bins: per bucket,
    max and ``_min``). Sorted by ts, child_pid."""
    col = schema.subtree_column(metric_column(metric))
    t_from, prune, grid = _proc_from(rec, p, t_from)
    t_to = _p(t_to)
    where, params = _window(t_from, t_to, None, "host = ? AND boot_id = ? AND ppid = ? AND parent_start_time = ?")
    params += [p.host, p.boot_id, int(p.pid), p.start_time]
    with _tables(rec, prune, t_to, [p.host], procs=True) as t:
        inner = (
            f"SELECT ts, pid AS child_pid, start_time AS child_start_time, name AS child_name, {col} "
            f"FROM {t['procs']} {where}"
        )
        if bins is None:
            return _run(inner + " ORDER BY ts, child_pid", params)
        t0, width = _bin_grid(rec, grid, t_to, bins)
        sql = _bucketed(inner, ["child_pid", "child_start_time"], [col], ["child_name"], t0, width)
        return _run(sql + " ORDER BY ts, child_pid", params)


def subtree_peak(rec: source.Recording, p: Proc, metric: str = "rss", t_from=None, t_to=None) -> tuple:
    """A process -> (bytes, ts) of the largest per-moment subtree total of `metric` (first on ties); (None, None)."""
    col = schema.subtree_column(metric_column(metric))
    t_from, prune, _ = _proc_from(rec, p, t_from)
    cond, params = _proc_where(p)
    where, wparams = _window(t_from, _p(t_to), None, cond + f" AND {col} IS NOT NULL")
    with _tables(rec, prune, _p(t_to), [p.host], procs=True) as t:
        out = _run(f"SELECT {col} AS v, ts FROM {t['procs']} {where} ORDER BY v DESC, ts LIMIT 1", wparams + params)
    if out.empty:
        return None, None
    return int(out["v"].iloc[0]), out["ts"].iloc[0]


def ancestors(rec: source.Recording, p: Proc, m: Moment) -> pd.DataFrame:
    """A process at a moment -> its chain from the root down to it (PROCS + TREE rows); empty if not alive then."""
    snap = moment(rec, m)
    pid = _local_id(snap, p)
    return snap.iloc[0:0] if pid is None else tree.ancestors(snap, pid, 0)


def descendants(rec: source.Recording, p: Proc, m: Moment) -> pd.DataFrame:
    """A process at a moment -> it and everything below it (PROCS + TREE rows); empty if not alive then."""
    snap = moment(rec, m)
    pid = _local_id(snap, p)
    return snap.iloc[0:0] if pid is None else tree.descendants_of(snap, pid, 0)


def _local_id(frame: pd.DataFrame, p: Proc) -> int | None:
    hit = (
        (frame["pid"].to_numpy() == p.pid)
        & (frame["start_time"] == p.start_time).to_numpy()
        & (frame["host"].astype(str).to_numpy() == p.host)
    )
    return int(frame["proc_id"].to_numpy()[hit][0]) if hit.any() else None


def proc_of(frame: pd.DataFrame, proc_id: int) -> Proc:
    """A frame from this module and one of its proc_ids -> that process's identity."""
    row = frame[frame["proc_id"].to_numpy() == proc_id].iloc[0]
    return Proc(str(row["host"]), str(row["boot_id"]), int(row["pid"]), row["start_time"])


# ------------------------------------------------------------------------------------------------ system

SYSTEM_COLUMNS = [
    "ts", "host", "mem_total_bytes", "mem_used_bytes", "mem_available_bytes", "cached_bytes", "buffers_bytes",
    "swap_total_bytes", "swap_used_bytes", "procs_rss_bytes", "procs_pss_bytes", "pss_known_processes",
    "pss_known_rss_bytes", "processes",
]  # fmt: skip
SYSTEM_VALUES = [c for c in SYSTEM_COLUMNS if c.endswith("_bytes") or c in ("processes", "pss_known_processes")]


_USED = (  # MemTotal - MemAvailable (MemTotal - MemFree - Buffers - Cached - SReclaimable without MemAvailable)
    "coalesce(s.mem_total_bytes - s.mem_available_bytes, s.mem_total_bytes - s.mem_free_bytes - s.buffers_bytes "
    "- s.cached_bytes - coalesce(s.sreclaimable_bytes, 0))"
)


def system(rec: source.Recording, t_from=None, t_to=None, host: str | None = None,
           bins: int | None = None) -> pd.DataFrame:  # fmt: skip
    """System memory over time: SYSTEM_COLUMNS, one row per sample (or per bucket with bins), by ts.

    Formulas (the README lists them): used = MemTotal - MemAvailable (MemTotal - MemFree - Buffers - Cached -
    SReclaimable when MemAvailable is missing); cached = Buffers + Cached + SReclaimable (`free`'s buff/cache);
    buffers = Buffers; swap used = SwapTotal - SwapFree; procs_rss = Σ RSS of the processes; procs_pss = Σ PSS over
    those whose PSS is known (null when none), pss_known_processes their count and pss_known_rss_bytes their Σ RSS;
    processes = process count. A sample without process rows has processes 0 and null sums. The sums are read from
    the system rows where the segment stored them (store.schema.PROC_SUM_COLUMNS), else summed from the process rows
    (older files, the active segment): a series reads process rows only where it must.
    Use summary.attributed() for "not attributed" (never a bare negative number).
    """
    t_from, t_to = _p(t_from), _p(t_to)
    where, params = _window(t_from, t_to, host)
    swhere, _ = _window(t_from, t_to, host, prefix="s.")
    hosts = [host] if host else None
    summed = source.procs_files_without_sums(rec, t_from, t_to, hosts)  # older files: their rows are summed here
    with (
        _tables(rec, t_from, t_to, hosts, system=True) as t,
        _tables(rec, t_from, t_to, hosts, summed, procs=True) as u,
    ):
        stored = "s.processes IS NOT NULL"  # the sums written with the segment (else: the rows summed, p)
        inner = f"""
            WITH p AS (
                SELECT host, ts, count(*)::INTEGER AS processes, sum(rss_bytes)::BIGINT AS procs_rss_bytes,
                    sum(pss_bytes)::BIGINT AS procs_pss_bytes, count(pss_bytes)::INTEGER AS pss_known_processes,
                    sum(CASE WHEN pss_bytes IS NOT NULL THEN rss_bytes END)::BIGINT AS pss_known_rss_bytes
                FROM {u["procs"]} {where} GROUP BY host, ts)
            SELECT s.ts, s.host, s.mem_total_bytes, {_USED} AS mem_used_bytes, s.mem_available_bytes,
                s.buffers_bytes + s.cached_bytes + coalesce(s.sreclaimable_bytes, 0) AS cached_bytes,
                s.buffers_bytes, s.swap_total_bytes, s.swap_total_bytes - s.swap_free_bytes AS swap_used_bytes,
                (CASE WHEN {stored} THEN s.procs_rss_bytes ELSE p.procs_rss_bytes END)::BIGINT AS procs_rss_bytes,
                (CASE WHEN {stored} THEN s.procs_pss_bytes ELSE p.procs_pss_bytes END)::BIGINT AS procs_pss_bytes,
                coalesce(s.pss_known_processes, p.pss_known_processes, 0)::INTEGER AS pss_known_processes,
                (CASE WHEN {stored} THEN s.pss_known_rss_bytes ELSE p.pss_known_rss_bytes END)::BIGINT
                    AS pss_known_rss_bytes,
                coalesce(s.processes, p.processes, 0)::INTEGER AS processes
            FROM {t["system"]} s LEFT JOIN p ON p.host = s.host AND p.ts = s.ts
            {swhere}"""
        if bins is None:
            out = _run(inner + " ORDER BY s.ts, s.host", params + params)
        else:
            t0, width = _bin_grid(rec, t_from, t_to, bins)
            sql = _bucketed(inner, ["host"], SYSTEM_VALUES, [], t0, width)
            out = _run(sql + " ORDER BY ts, host", params + params)
    return out


def latest_system(rec: source.Recording, m: Moment) -> pd.Series:
    """A moment -> its system row (SYSTEM_COLUMNS) as a Series."""
    out = system(rec, m.ts, m.ts, m.host)
    return out.iloc[0] if len(out) else pd.Series(index=SYSTEM_COLUMNS, dtype=object)


# ------------------------------------------------------------------------------------------------ statistics


def stats_columns(metric: str = "rss") -> list[str]:
    """The columns of ``stats`` for a metric (rss: STATS_COLUMNS)."""
    m = metric_column(metric).removesuffix("_bytes")
    return [
        "host", "boot_id", "pid", "start_time", "name", "cmdline", "user", "first_seen", "last_seen", "samples",
        "lifetime_s", "observed_span_s",
        *[f"{p}_{s}_bytes" for p in (m, f"subtree_{m}") for s in ("min", "mean", "max", "p95", "last")],
        f"subtree_{m}_max_ts", "growth_bytes_per_hour", "subtree_growth_bytes_per_hour",
    ]  # fmt: skip


def stats(rec: source.Recording, t_from=None, t_to=None, procs: Sequence[Proc] | None = None,
          host: str | None = None, metric: str = "rss") -> pd.DataFrame:  # fmt: skip
    """Per process over the window: stats_columns(metric) (as memlib.stats: lifetime from the start time, or the
    observed span when the recording's start times are not exact; <m>_{min,mean,max,p95,last}_bytes of its own and
    its subtree's value (known samples only; p95 interpolates linearly); subtree_<m>_max_ts when the subtree peaked
    (first on ties); growth = least-squares slope of the samples per hour, NaN with fewer than two distinct times).
    Sorted by host, pid, start_time."""
    col = metric_column(metric)
    m = col.removesuffix("_bytes")
    t_from, t_to = _p(t_from), _p(t_to)
    life = "epoch(max(ts) - start_time)" if rec.start_times_exact else "epoch(max(ts) - min(ts))"

    def agg(c: str, pre: str) -> str:
        return (
            f"min({c}) AS {pre}_min_bytes, avg({c}) AS {pre}_mean_bytes, max({c}) AS {pre}_max_bytes, "
            f"quantile_cont({c}, 0.95) AS {pre}_p95_bytes, arg_max({c}, ts) AS {pre}_last_bytes, "
            f"regr_slope({c}, epoch(ts) / 3600.0) AS {'' if pre == m else 'subtree_'}growth_bytes_per_hour"
        )

    with _keys(procs) as keep, _tables(rec, t_from, t_to, [host] if host else None, procs=True) as t:
        where, wparams = _window(t_from, t_to, host, keep)
        out = _run(
            f"""SELECT host, boot_id, pid, start_time, arg_max(name, ts) AS name, arg_max(cmdline, ts) AS cmdline,
                arg_max("user", ts) AS "user", min(ts) AS first_seen, max(ts) AS last_seen,
                count(*)::INTEGER AS samples, {life} AS lifetime_s, epoch(max(ts) - min(ts)) AS observed_span_s,
                {agg(col, m)}, {agg("subtree_" + col, "subtree_" + m)},
                arg_max(ts, [subtree_{col}, -epoch_us(ts)]) FILTER (WHERE subtree_{col} IS NOT NULL)
                    AS subtree_{m}_max_ts
            FROM {t["procs"]} {where} GROUP BY host, boot_id, pid, start_time ORDER BY host, pid, start_time""",
            wparams,
        )
    return out[stats_columns(metric)]


STATS_COLUMNS = stats_columns("rss")


# ------------------------------------------------------------------------------------------------ at a moment


def top_processes(rec: source.Recording, m: Moment, metric: str = "rss", limit: int | None = 10) -> pd.DataFrame:
    """Largest processes at a moment by own metric (summary.top_processes on that moment's rows)."""
    return summary.top_processes(moment(rec, m), 0, metric=metric, limit=limit)


def top_subtrees(rec: source.Recording, m: Moment, metric: str = "rss", limit: int | None = 10,
                 level: int | None = None) -> pd.DataFrame:  # fmt: skip
    """Largest subtrees at a moment (summary.top_subtrees on that moment's rows; + subtree_share)."""
    return summary.top_subtrees(moment(rec, m), 0, metric=metric, limit=limit, level=level)


GROWER_COLUMNS = [
    "host", "boot_id", "pid", "start_time", "name", "cmdline", "user", "status", "first_seen", "last_seen",
    "before_bytes", "after_bytes", "delta_bytes", "subtree_before_bytes", "subtree_after_bytes", "subtree_delta_bytes",
    "descendants_before", "descendants_after", "proc_id",
]  # fmt: skip
GROWER_STATUS = ["alive", "new", "exited", "new, exited"]


class WindowChanges(NamedTuple):
    """growers: GROWER_COLUMNS (see `growers`); counts: processes_before, processes_now, new, exited, seen."""

    growers: pd.DataFrame
    counts: dict[str, int]


COUNT_KEYS = ("processes_before", "processes_now", "new", "exited", "seen")


def growers(rec: source.Recording, a: Moment, b: Moment, metric: str = "rss", limit: int | None = 10,
            by: str = "own") -> pd.DataFrame:  # fmt: skip
    """Processes by their own growth within the window [a, b] (one host): GROWER_COLUMNS, largest first.

    For each process seen in the window: before_bytes = its first known value of the metric in the window,
    after_bytes = its last, delta_bytes = after - before (a process that started or exited inside the window: from
    its own first to its own last sample, so one that grew and exited counts by its rise); subtree_* the same of its
    stored subtree total; first_seen/last_seen in the window; status "alive" (sampled at both ends), "new" (not at
    a), "exited" (not at b), "new, exited" (neither). Sorted by delta_bytes (by="own") or subtree_delta_bytes
    (by="subtree") descending, unknown last, then pid; limit=None keeps all. proc_id numbers the answer.
    """
    return window_changes(rec, a, b, metric, limit, by).growers


def counts(rec: source.Recording, a: Moment, b: Moment) -> dict[str, int]:
    """Process counts between two moments of one host: processes_before (sampled at a), processes_now (at b), new
    (first seen after a), exited (last seen before b), seen (in the window)."""
    return window_changes(rec, a, b, limit=1).counts


def window_changes(rec: source.Recording, a: Moment, b: Moment, metric: str = "rss", limit: int | None = 10,
                   by: str = "own") -> WindowChanges:  # fmt: skip
    """`growers` and `counts` of the window [a, b] from one pass over its rows (arg_min/arg_max skip unknown
    values); text is read for the growers' rows only."""
    if by not in ("own", "subtree"):
        raise ValueError(f"by must be 'own' or 'subtree', got {by!r}")
    col = metric_column(metric)
    scol = schema.subtree_column(col)
    delta = "delta_bytes" if by == "own" else "subtree_delta_bytes"
    where, params = _window(a.ts, b.ts, b.host)
    with _tables(rec, a.ts, b.ts, [b.host], procs=True) as t:
        out = _run(
            f"""WITH g AS (SELECT hash(host, boot_id, pid, start_time) AS k, any_value(pid) AS pid,
                    any_value(start_time) AS start_time, min(ts) AS first_seen, max(ts) AS last_seen,
                    arg_min({col}, ts) AS before_bytes, arg_max({col}, ts) AS after_bytes,
                    arg_min({scol}, ts) AS subtree_before_bytes, arg_max({scol}, ts) AS subtree_after_bytes,
                    arg_min(descendants, ts) AS descendants_before, arg_max(descendants, ts) AS descendants_after
                FROM {t["procs"]} {where} GROUP BY k),
            c AS (SELECT count(*) FILTER (WHERE first_seen = ?) AS processes_before,
                    count(*) FILTER (WHERE last_seen = ?) AS processes_now,
                    count(*) FILTER (WHERE first_seen > ?) AS new, count(*) FILTER (WHERE last_seen < ?) AS exited,
                    count(*) AS seen FROM g)
            SELECT g.* EXCLUDE (start_time), after_bytes - before_bytes AS delta_bytes,
                subtree_after_bytes - subtree_before_bytes AS subtree_delta_bytes, c.*
            FROM g, c ORDER BY {delta} DESC NULLS LAST, g.pid, g.start_time, k
            {"" if limit is None else f"LIMIT {int(limit)}"}""",
            [*params, a.ts, b.ts, a.ts, b.ts],
        )
    tally = {k: int(out[k].iloc[0]) if len(out) else 0 for k in COUNT_KEYS}
    out = out.drop(columns=list(COUNT_KEYS))
    out["proc_id"] = out.pop("k").to_numpy(np.uint64).view(np.int64)
    pids = out.pop("pid").tolist()
    texts = _texts_at_last(rec, out, b.host, pids if len(pids) <= FEW_TIMES else None)
    out = out.merge(texts, on="proc_id", how="left")
    at_a, at_b = (out["first_seen"] == a.ts).to_numpy(), (out["last_seen"] == b.ts).to_numpy()
    status = np.select([at_a & at_b, at_b, at_a], GROWER_STATUS[:3], GROWER_STATUS[3])
    out["status"] = pd.Categorical(status, categories=GROWER_STATUS)
    out = out.sort_values([delta, "pid", "start_time"], ascending=[False, True, True], na_position="last",
                          kind="stable")  # fmt: skip
    out["proc_id"] = np.arange(len(out), dtype=np.int64)
    return WindowChanges(out[GROWER_COLUMNS].reset_index(drop=True), tally)


def compare(rec: source.Recording, a: Moment, b: Moment, metric: str = "rss", subtrees: bool = False) -> pd.DataFrame:
    """Two moments -> memlib.compare's table (compare_processes, or compare_subtrees with subtrees=True)."""
    both = moments(rec, [a, b])
    fn = compare_mod.compare_subtrees if subtrees else compare_mod.compare_processes
    return fn(both, 0, 1, metric=metric)


# ------------------------------------------------------------------------------------------------ groups, cgroups

_GROUP_KEY = {
    "name": "name",
    "user": '"user"',
    "cgroup": "cgroup",
    "command": (
        "CASE WHEN cmdline LIKE '[%]' THEN cmdline ELSE "
        "rtrim(regexp_extract(split_part(trim(cmdline), ' ', 1), '[^/]*$'), ':') END"
    ),
}
_PRUNED_KEYS = {"name"}  # many groups, a cheap key: bounding first pays (a few users or a costly key: it does not)
GROUP_COLUMNS = ["ts", "group", "processes", "rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes", "smaps_known"]


def groups(rec: source.Recording, by: str = "name", t_from=None, t_to=None, top: int | None = None,
           metric: str = "rss", host: str | None = None, bins: int | None = None) -> pd.DataFrame:  # fmt: skip
    """Group totals over time (memlib.groups semantics): GROUP_COLUMNS, one row per (sample or bucket, group).

    ``top=K`` keeps the K groups with the largest peak of `metric` (a peak of 0 or unknown is never top), the rest
    summed into groups.OTHER_GROUP.
    With bins: per bucket and group, the max of each total (``<col>_min`` the min) and ``samples``.
    """
    if by not in _GROUP_KEY:
        raise ValueError(f"cannot group by {by!r}; expected one of {', '.join(groups_mod.GROUP_BY)}")
    mcol = metric_column(metric)
    t_from, t_to = _p(t_from), _p(t_to)
    where, params = _window(t_from, t_to, host)
    key = f"coalesce(nullif({_GROUP_KEY[by]}, ''), '{groups_mod.UNKNOWN_GROUP}')"
    with _tables(rec, t_from, t_to, [host] if host else None, procs=True) as t:
        bound = top is not None and by in _PRUNED_KEYS
        cands = _group_candidates(t["procs"], key, mcol, where, params, top) if top is not None and bound else None
        rows = f"SELECT host, ts, {key} AS g, rss_bytes, pss_bytes, uss_bytes, swap_bytes FROM {t['procs']} {where}"
        if cands is not None:
            rows = f"SELECT * REPLACE (CASE WHEN g IN (SELECT unnest(?::VARCHAR[])) THEN g END AS g) FROM ({rows})"
        per = f"""SELECT host, ts, g, count(*)::INTEGER AS processes, sum(rss_bytes)::BIGINT AS rss_bytes,
                sum(pss_bytes)::BIGINT AS pss_bytes, sum(uss_bytes)::BIGINT AS uss_bytes,
                sum(swap_bytes)::BIGINT AS swap_bytes, count(pss_bytes)::INTEGER AS smaps_known
            FROM ({rows}) GROUP BY host, ts, g"""
        if cands is not None:
            params = [cands, *params]  # (its placeholder comes first in the text)
        if top is not None:  # (g is null for the rows of groups that cannot be among the top: see _group_candidates)
            per = f"""WITH per AS ({per}),
                peak AS (SELECT g, max({mcol}) AS pk FROM per WHERE g IS NOT NULL GROUP BY g),
                kept AS (SELECT g FROM peak WHERE pk > 0 ORDER BY pk DESC, g LIMIT {int(top)})
                SELECT host, ts, CASE WHEN g IN (SELECT g FROM kept) THEN g ELSE '{groups_mod.OTHER_GROUP}' END AS g,
                    sum(processes)::INTEGER AS processes, sum(rss_bytes)::BIGINT AS rss_bytes,
                    sum(pss_bytes)::BIGINT AS pss_bytes, sum(uss_bytes)::BIGINT AS uss_bytes,
                    sum(swap_bytes)::BIGINT AS swap_bytes, sum(smaps_known)::INTEGER AS smaps_known
                FROM per GROUP BY ALL"""
        if bins is None:
            out = _run(f'SELECT ts, g AS "group", * EXCLUDE (ts, g, host) FROM ({per}) ORDER BY ts, "group"', params)
        else:
            t0, width = _bin_grid(rec, t_from, t_to, bins)
            sql = _bucketed(per, ["g"], ["processes", "rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes",
                                         "smaps_known"], [], t0, width)  # fmt: skip
            out = _run(f'SELECT ts, g AS "group", * EXCLUDE (ts, g) FROM ({sql}) ORDER BY ts, "group"', params)
    return out


def _group_candidates(procs: str, key: str, mcol: str, where: str, params: list, top: int) -> list[str] | None:
    """The groups that can be among the `top` largest peaks of `mcol` (per-moment group totals), from bounds that
    need no per-moment totals: a group's peak is at least its largest single value (lower bound) and at most the
    sum over its processes of each one's largest value (upper bound); a group whose upper bound is below the
    top-th largest lower bound cannot rank. None (every group) when fewer than `top` groups have a known value or a
    value is negative."""
    if top < 1:
        return None
    bounds = _run(
        f"""SELECT g, sum(m)::DOUBLE AS ub, max(m)::DOUBLE AS lb, min(n)::DOUBLE AS low FROM (
                SELECT {key} AS g, max({mcol}) AS m, min({mcol}) AS n FROM {procs} {where}
                GROUP BY host, boot_id, pid, start_time, g)
            GROUP BY g""",
        params,
    )
    known = bounds.dropna(subset=["lb"])
    if len(known) < top or (known["low"] < 0).any():  # (the bounds hold for values >= 0 only)
        return None
    floor = np.sort(known["lb"].to_numpy(np.float64))[-top]
    return known.loc[known["ub"].to_numpy(np.float64) >= floor, "g"].astype(str).tolist()


def group_members(rec: source.Recording, m: Moment, by: str, group: str) -> pd.DataFrame:
    """A moment, key kind and group label -> its member rows (PROCS + TREE), by RSS descending."""
    return groups_mod.group_members(moment(rec, m), by, group, 0)


def cgroup_mem(rec: source.Recording, t_from=None, t_to=None, host: str | None = None) -> pd.DataFrame:
    """The kernel's per-cgroup memory use over the window: ts, host, cgroup, memory_current_bytes."""
    t_from, t_to = _p(t_from), _p(t_to)
    where, params = _window(t_from, t_to, host)
    with _tables(rec, t_from, t_to, [host] if host else None, cgroups=True) as t:
        return _run(f"SELECT ts, host, cgroup, memory_current_bytes FROM {t['cgroups']} {where} ORDER BY ts", params)


def cgroup_tree(rec: source.Recording, m: Moment) -> pd.DataFrame:
    """The cgroup tree at a moment: memlib.cgroups.CGROUP_TREE_COLUMNS (memory_current_bytes when recorded)."""
    from memlib import cgroups

    return cgroups.cgroup_tree(moment(rec, m), 0, cgroup_mem(rec, m.ts, m.ts, m.host))


def cgroup_members(rec: source.Recording, m: Moment, cgroup: str, recursive: bool = True) -> pd.DataFrame:
    """Processes in a cgroup (and below it when recursive) at a moment, by RSS descending."""
    from memlib import cgroups

    return cgroups.cgroup_members(moment(rec, m), 0, cgroup, recursive)


def cgroup_timeline(rec: source.Recording, t_from=None, t_to=None, cgroups: list[str] | None = None,
                    rollup: bool = True, host: str | None = None, bins: int | None = None) -> pd.DataFrame:  # fmt: skip
    """Per sample (or bucket) and cgroup: memlib.cgroups.CGROUP_TIMELINE_COLUMNS without snap (tree totals when
    rollup). The per-(sample, cgroup) sums are computed in the query; the roll-up to ancestors runs on that result."""
    from memlib import cgroups as cg_mod

    t_from, t_to = _p(t_from), _p(t_to)
    where, params = _window(t_from, t_to, host, "cgroup IS NOT NULL")
    with _tables(rec, t_from, t_to, [host] if host else None, procs=True) as t:
        per = _run(
            f"""SELECT ts, cgroup, count(*)::BIGINT AS n, sum(rss_bytes)::BIGINT AS rss_bytes,
                sum(pss_bytes)::BIGINT AS pss_bytes, sum(uss_bytes)::BIGINT AS uss_bytes,
                sum(swap_bytes)::BIGINT AS swap_bytes
            FROM {t["procs"]} {where} GROUP BY ts, cgroup""",
            params,
        )
    out = cg_mod.rollup_sums(per, rollup=rollup, cgroups=cgroups, cgroup_mem=cgroup_mem(rec, t_from, t_to, host))
    if bins is not None and len(out):
        t0, width = _bin_grid(rec, t_from, t_to, bins)
        us = out["ts"].array.as_unit("ns").asi8 // 1000
        out = out.assign(_b=(us - t0) // width)
        vals = ["processes", "rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes", "memory_current_bytes"]
        g = out.groupby(["_b", "cgroup"], observed=True, sort=True)
        agg = g[vals].max()
        mins = g[vals].min().add_suffix("_min")
        first = g[["ts", "label"]].first()
        out = pd.concat([first, agg, mins], axis=1).assign(samples=g.size().astype(np.int32))
        out = out.reset_index().drop(columns=["_b"]).sort_values(["ts", "cgroup"], kind="stable")
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ leaks, spikes


def leak_report(rec: source.Recording, t_from=None, t_to=None, metric: str = "rss",
                min_samples: int = leaks_mod.MIN_SAMPLES, min_duration_s: float | None = None,
                min_growth_bytes: int = schema.MIB, max_points: int = leaks_mod.MAX_POINTS,
                host: str | None = None) -> leaks_mod.LeakReport:  # fmt: skip
    """Leak suspects over the window (memlib.leaks semantics) -> LeakReport: scores (LEAK_COLUMNS + host, boot_id,
    most suspicious first), census (why nothing is a suspect), trends (the suspects' floors for sparklines, with
    host, boot_id, pid, start_time).

    One pass over the window's rows, carrying no text, computes each process's fine bins (leaks.Fine) on the grid of
    the window's samples; leaks.floors_of and leaks.score_floors (Theil–Sen) run on that small answer; a last pass
    reads the name, command line and user of the scored processes at their last sample only.
    min_duration_s None: leaks.min_duration_for(the seconds the window's samples cover).
    """
    col = metric_column(metric)
    t_from, t_to = _p(t_from), _p(t_to)
    nb = int(max_points)
    if nb < 4:
        raise ValueError(f"max_points must be >= 4, got {max_points}")
    ident = pd.DataFrame({"host": pd.Series(dtype=object), "boot_id": pd.Series(dtype=object),
                          "pid": pd.Series(dtype="int32"), "start_time": pd.Series(dtype=schema.UTC_NS)})  # fmt: skip
    empty = leaks_mod.LeakReport(
        leaks_mod.ordered(pd.concat([leaks_mod.leak_scores(schema.empty_procs()), ident[["host", "boot_id"]]], axis=1)),
        leaks_mod.LeakCensus(0, 0, 0.0, min_samples, min_duration_s or 0.0),
        leaks_mod.empty_trends(ident),
    )
    where, params = _window(t_from, t_to, host)
    with _tables(rec, t_from, t_to, [host] if host else None, system=True, procs=True) as t:
        bounds = _run(f"SELECT epoch_us(min(ts)) AS lo, epoch_us(max(ts)) AS hi FROM {t['system']} {where}", params)
        if bounds.empty or pd.isna(bounds["lo"].iloc[0]):
            return empty
        origin, width = leaks_mod.fine_grid(int(bounds["lo"].iloc[0]), int(bounds["hi"].iloc[0]), nb)
        where_v, params_v = _window(t_from, t_to, host, f"{col} IS NOT NULL")
        fine = (
            _con()
            .sql(
                f"""SELECT hash(host, boot_id, pid, start_time) AS k, (epoch_us(ts) - {origin}) // {width} AS fb,
                min({col})::BIGINT AS floor, count(*)::BIGINT AS n, sum(epoch_us(ts) - {origin})::BIGINT AS off,
                epoch_us(min(ts)) AS f, epoch_us(max(ts)) AS l
            FROM {t["procs"]} {where_v} GROUP BY ALL""",
                params=params_v,
            )
            .to_arrow_table()
        )
    arrays = {c: fine.column(c).to_numpy() for c in fine.column_names}
    bins = leaks_mod.Fine(arrays["k"].view(np.int64), *(arrays[c] for c in ("fb", "floor", "n", "off", "f", "l")))
    cand, floors, base = leaks_mod.floors_of(bins, origin, min_samples, min_duration_s, nb)
    if cand.empty:
        return empty._replace(census=base)
    last = pd.DataFrame({"proc_id": cand["proc_id"], "last_seen": pd.to_datetime(cand["last_ns"], utc=True)})
    with ThreadPoolExecutor(max_workers=1) as pool:  # the candidates' texts are read while they are scored
        texts = pool.submit(_in_own_thread, _texts_at_last, rec, last, host)
        scores = leaks_mod.score_floors(cand, floors, base.window_s, nb, min_growth_bytes)
        ident = texts.result()
    if scores.empty:
        return empty._replace(census=leaks_mod.census_of(base, len(cand), scores))
    with_ident = cand.merge(ident.drop(columns=["name", "cmdline", "user"]), on="proc_id", how="left")
    trends = leaks_mod.trends(with_ident, floors, scores, nb)
    scores = leaks_mod.ordered(scores.merge(ident, on="proc_id", how="left"))
    return leaks_mod.LeakReport(scores, leaks_mod.census_of(base, len(cand), scores), trends)


FEW_TIMES = 64  # up to this many distinct last samples, only the files holding them are read (else the whole range)


def _texts_at_last(rec: source.Recording, scores: pd.DataFrame, host: str | None,
                   pids: Sequence[int] | None = None) -> pd.DataFrame:  # fmt: skip
    """Processes (proc_id = hash of the identity, last_seen) -> proc_id, host, boot_id, pid, start_time, name,
    cmdline, user at each one's last sample (only the files around those samples are read; `pids`, their pids when
    known, is a filter the Parquet scan applies itself: a few processes cost a few rows)."""
    cols = ["proc_id", "host", "boot_id", "pid", "start_time", "name", "cmdline", "user"]
    if scores.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    t_from, t_to = scores["last_seen"].min(), scores["last_seen"].max()
    con = _con()
    name = f"pmi_last_{next(_names)}"
    con.register(name, pa.table({"k": pa.array(scores["proc_id"].to_numpy(np.int64).view(np.uint64)),
                                 "l": pa.array(scores["last_seen"].array.as_unit("us").asi8)}))  # fmt: skip
    try:
        only = "" if pids is None else f"pid IN ({', '.join(str(int(p)) for p in sorted(set(pids))) or 'NULL'}) AND "
        where, params = _window(t_from, t_to, host, f"{only}epoch_us(ts) IN (SELECT l FROM {name})")
        hosts = [host] if host else None
        times = scores["last_seen"].unique()
        paths = source.parquet_files_at(rec, "procs", times, hosts) if len(times) <= FEW_TIMES else None
        with _tables(rec, t_from, t_to, hosts, paths, procs=True) as t:
            out = _run(
                f"""SELECT k AS proc_id, host, boot_id, pid, start_time, name, cmdline, "user"
                FROM (SELECT hash(host, boot_id, pid, start_time) AS k, epoch_us(ts) AS l, * EXCLUDE (ts)
                      FROM {t["procs"]} {where}) JOIN {name} USING (k, l)""",
                params,
            )
    finally:
        con.unregister(name)
    out["proc_id"] = out["proc_id"].to_numpy(np.uint64).view(np.int64)
    return out[cols].drop_duplicates("proc_id")


def leak_scores(rec: source.Recording, t_from=None, t_to=None, metric: str = "rss",
                min_samples: int = leaks_mod.MIN_SAMPLES, min_duration_s: float | None = None,
                min_growth_bytes: int = schema.MIB, max_points: int = leaks_mod.MAX_POINTS,
                host: str | None = None) -> pd.DataFrame:  # fmt: skip
    """Leak suspects over the window: LEAK_COLUMNS + host, boot_id, most suspicious first (leak_report's scores)."""
    return leak_report(rec, t_from, t_to, metric, min_samples, min_duration_s, min_growth_bytes, max_points,
                       host).scores  # fmt: skip


def subtree_leak_scores(
    rec: source.Recording,
    t_from=None,
    t_to=None,
    metric: str = "rss",
    min_samples: int = leaks_mod.MIN_SAMPLES,
    min_duration_s: float | None = None,
    min_growth_bytes: int = schema.MIB,
    process_scores: pd.DataFrame | None = None,
    host: str | None = None,
) -> pd.DataFrame:
    """Subtrees with growing members over the window (memlib.leaks semantics): SUBTREE_LEAK_COLUMNS + host, boot_id.

    The query returns only the sampled moments the membership rule looks at (a grid of min_duration_s / 2 and each
    long-lived process's last sample) and which processes are long-lived; leaks.subtree_leak_scores does the rest.
    `process_scores`: this module's leak_scores of the same window and parameters (recomputed when None).
    min_duration_s None: leaks.min_duration_for(the seconds the window's snapshots cover).
    """
    t_from, t_to = _p(t_from), _p(t_to)
    scores = process_scores
    if scores is None:
        report = leak_report(rec, t_from, t_to, metric, min_samples, min_duration_s, min_growth_bytes, host=host)
        scores, min_duration_s = report.scores, report.census.min_duration_s
    if scores.empty:
        return leaks_mod.subtree_leak_scores(schema.empty_procs(), process_scores=scores, min_duration_s=0.0)
    snaps = snapshots(rec, t_from, t_to, host)
    if snaps.empty:
        return leaks_mod.subtree_leak_scores(schema.empty_procs(), process_scores=scores.iloc[0:0], min_duration_s=0.0)
    times = np.unique(snaps["ts"].array.as_unit("ns").asi8)
    if min_duration_s is None:
        min_duration_s = leaks_mod.min_duration_for((int(times[-1]) - int(times[0])) / 1e9)
    where, params = _window(t_from, t_to, host)
    with _tables(rec, t_from, t_to, [host] if host else None, procs=True) as t:
        long_lived = _run(
            f"""SELECT host, boot_id, pid, start_time, max(ts) AS last FROM {t["procs"]} {where}
            GROUP BY ALL HAVING count(*) >= {max(2, int(min_samples))}
                AND epoch_us(max(ts)) - epoch_us(min(ts)) >= {float(min_duration_s) * 1e6} AND max(ts) > min(ts)""",
            params,
        )
    step = max(1.0, min_duration_s / 2) * 1e9
    grid = np.arange(times[0], times[-1] + step, step)
    picked = times[np.clip(np.searchsorted(times, grid), 0, len(times) - 1)]
    wanted = np.union1d(picked, long_lived["last"].array.as_unit("ns").asi8)
    frame = _rows_at(rec, wanted, host)
    key = ["host", "boot_id", "pid", "start_time"]
    ids = frame.drop_duplicates("proc_id")[[*key, "proc_id"]].astype({"host": object, "boot_id": object})
    remap = scores.astype({"host": object, "boot_id": object}).drop(columns=["proc_id"]).merge(ids, on=key, how="inner")
    lived = long_lived.astype({"host": object, "boot_id": object}).merge(ids, on=key, how="inner")["proc_id"]
    out = leaks_mod.subtree_leak_scores(
        frame, t_from, t_to, metric, min_samples, min_duration_s, min_growth_bytes,
        process_scores=remap[[*leaks_mod.LEAK_COLUMNS]], long_lived=lived.to_numpy(),
    )  # fmt: skip
    return _attach_identity(out, frame)


def _rows_at(rec: source.Recording, ts_ns: np.ndarray, host: str | None = None) -> pd.DataFrame:
    """The process rows of the samples at these times (ns) as a PROCS + TREE frame (snap per sample)."""
    if len(ts_ns) == 0:
        return _as_procs(_empty_rows())
    lo, hi = pd.Timestamp(int(ts_ns.min()), tz="UTC"), pd.Timestamp(int(ts_ns.max()), tz="UTC")
    con = _con()
    name = f"pmi_times_{next(_names)}"
    con.register(name, pa.table({"t": pa.array(ts_ns, pa.timestamp("ns", tz="UTC"))}))
    try:
        where, params = _window(lo, hi, host)
        with _tables(rec, lo, hi, [host] if host else None, procs=True) as t:
            df = _run(
                f"SELECT {_PROC_SELECT} FROM {t['procs']} {where} "
                f"AND ts IN (SELECT CAST(t AS TIMESTAMPTZ) FROM {name})",
                params,
            )
    finally:
        con.unregister(name)
    snap = df.groupby(["ts", "host"], sort=True).ngroup() if len(df) else pd.Series([], dtype=np.int64)
    return _as_procs(df, snap)


def alerts(rec: source.Recording, rules: Sequence, at=None) -> pd.DataFrame:
    """Alert rules (memlib.alerts.parse_rules) -> the alerts firing at the snapshot `at` names (default latest):
    memlib.alerts.ALERT_COLUMNS. Only the rows of the rules' window are read."""
    from memlib import alerts as alerts_mod

    m = resolve(rec, at)
    t_from = m.ts - pd.Timedelta(seconds=alerts_mod.window_s(rules) + 2 * (rec.interval_s or 0))
    procs = window_rows(rec, t_from, m.ts, m.host)
    sysf = system(rec, t_from, m.ts, m.host)
    return alerts_mod.evaluate(rules, procs, sysf, at=m.ts, interval_s=rec.interval_s)


def process_spikes(rec: source.Recording, t_from=None, t_to=None, metric: str = "rss",
                   host: str | None = None, procs: Sequence[Proc] | None = None, **kw) -> pd.DataFrame:  # fmt: skip
    """Spikes of processes over the window (memlib.spikes semantics): PROCESS_SPIKE_COLUMNS + host, boot_id.

    A first query (numbers only) finds the processes whose metric moves by at least min_size_bytes in the window
    (among `procs` when given); a second reads their samples; spikes.process_spikes finds the runs on those rows.
    """
    col = metric_column(metric)
    min_size = kw.get("min_size_bytes", spikes_mod.PROCESS_MIN_SIZE)
    t_from, t_to = _p(t_from), _p(t_to)
    hosts = [host] if host else None
    with _keys(procs) as keep, _tables(rec, t_from, t_to, hosts, procs=True) as t:  # numbers only: no text read
        where, params = _window(t_from, t_to, host, f"{col} IS NOT NULL" + (f" AND {keep}" if keep else ""))
        moved = _run(
            f"""SELECT host, boot_id, pid, start_time FROM {t["procs"]} {where} GROUP BY ALL
                HAVING max({col}) - min({col}) >= {float(min_size)}""",
            params,
        )
    found = [Proc(*r) for r in moved.itertuples(index=False, name=None)]
    with _keys(found) as keep, _tables(rec, t_from, t_to, hosts, procs=True) as t:
        where, params = _window(t_from, t_to, host, f"{col} IS NOT NULL AND {keep}")
        rows = _run(
            f"""SELECT hash(host, boot_id, pid, start_time) AS k, host, boot_id, pid, start_time, ts, {col}, name,
                cmdline, "user" FROM {t["procs"]} {where}""",
            params,
        )
    frame = _with_ids(rows)
    out = spikes_mod.process_spikes(frame, t_from, t_to, metric=metric, **kw)
    return _attach_identity(out, frame)


class LeaksAndSpikes(NamedTuple):
    """leak_report and process_spikes of one window."""

    report: leaks_mod.LeakReport
    spikes: pd.DataFrame


def leaks_and_spikes(rec: source.Recording, t_from=None, t_to=None, metric: str = "rss",
                     host: str | None = None) -> LeaksAndSpikes:  # fmt: skip
    """leak_report and process_spikes of the window with their defaults, computed side by side (two threads, each
    with its own cursor: one's Python work overlaps the other's scan)."""

    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [
            pool.submit(_in_own_thread, fn, rec, t_from, t_to, metric, host=host)
            for fn in (leak_report, process_spikes)
        ]
    return LeaksAndSpikes(jobs[0].result(), jobs[1].result())


def _in_own_thread(fn, *args, **kwargs):
    """fn(*args, **kwargs) in a pool thread, whose cursor is closed after it (release_thread)."""
    try:
        return fn(*args, **kwargs)
    finally:
        release_thread()


def system_spikes(rec: source.Recording, t_from=None, t_to=None, host: str | None = None, **kw) -> pd.DataFrame:
    """Spikes of used memory over the window (spikes.system_spikes on the system series): SYSTEM_SPIKE_COLUMNS."""
    t_from, t_to = _p(t_from), _p(t_to)
    where, params = _window(t_from, t_to, host, prefix="s.")
    with _tables(rec, t_from, t_to, [host] if host else None, system=True) as t:  # (no process sums needed)
        used = _run(
            f"SELECT s.ts, {_USED} AS mem_used_bytes FROM {t['system']} s {where} ORDER BY s.ts, s.host", params
        )
    return spikes_mod.used_spikes(used, t_from, t_to, **kw)


def _with_ids(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with `k` (the SQL hash of the identity) -> the rows with proc_id (0.. in order of appearance), without k."""
    return rows.drop(columns=["k"]).assign(proc_id=pd.factorize(rows["k"].to_numpy())[0].astype(np.int64))


def _attach_identity(out: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    ids = frame.drop_duplicates("proc_id").set_index("proc_id")
    pos = out["proc_id"].to_numpy()
    return out.assign(host=ids["host"].reindex(pos).to_numpy(), boot_id=ids["boot_id"].reindex(pos).to_numpy())


def window_rows(rec: source.Recording, t_from=None, t_to=None, host: str | None = None,
                columns: Sequence[str] | None = None) -> pd.DataFrame:  # fmt: skip
    """Every process row of a (short) window as a PROCS + TREE frame (snap per sample, proc_id within the answer).

    For the analyses that need every sample of a window (alert rules, subtree leak membership); the caller keeps
    the window short (the recording is never read whole through this)."""
    t_from, t_to = _p(t_from), _p(t_to)
    where, params = _window(t_from, t_to, host)
    with _tables(rec, t_from, t_to, [host] if host else None, procs=True) as t:
        df = _run(f"SELECT {_PROC_SELECT} FROM {t['procs']} {where}", params)
    snap = df.groupby(["ts", "host"], sort=True).ngroup() if len(df) else pd.Series([], dtype=np.int64)
    return _as_procs(df, snap)


# ------------------------------------------------------------------------------------------------ metric


def default_metric(rec: source.Recording, m: Moment) -> summary.MetricChoice:
    """The metric to show by default at a moment: PSS when known for (nearly) all of the RSS (summary.metric_choice
    on the moment's system row: its process sums, not its rows)."""
    now = latest_system(rec, m)
    return summary.metric_choice(now.get("procs_rss_bytes"), now.get("pss_known_rss_bytes"))


_EMPTY = source.Recording(root=__import__("pathlib").Path("/nonexistent"), shown="", kind="empty", hosts=[],
                          start_times_exact=True, interval_s=None, span=None, notices=[])  # fmt: skip
