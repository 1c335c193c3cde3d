"""Fleet questions over a store holding many hosts (each under its own ``host=`` partition): which host, which
process, since when, across every host at once. Contract and design: docs/fleet.md.

- ``hosts(rec)``: one row per host with its first/last sample and the last used memory; a host whose newest data is
  older than its segments' rhythm allows (``stale_after_s``) is ``stale`` since its last sample, never zero memory.
- ``top(rec, at, by, limit)``: the largest processes or subtrees across hosts, each host at its snapshot at or just
  before ``at`` (exact rows from the closed files, via memlib.query). ``top_rollups``: both kinds from the
  ``top_minute`` rollup (per-minute peaks, one read; what the Fleet page shows when that day is rolled up).
- ``used_memory(rec, t_from, t_to, bins)``: every host's used memory over time on one time grid shared by all hosts.

``hosts`` and ``used_memory`` read each (host, date) partition whose rollup is fresh from ``host_minute`` and only the
other partitions (and active segments) from the files, so with the rollups up to date no data file is opened.
- ``leaks(rec, limit)``: the leak ranking from the ``process_day`` rollup (floor growth x r2), with the rollups'
  state (missing or older than the data is said, never guessed).
- ``groups(rec, by, match, ...)``: group totals per host and time bucket (every ``postgres`` on every host).

Every answer names damaged files through ``rec.notices`` (memlib.source verifies each closed file once); the other
hosts' answers stay intact. Rollups are computed by memlib.rollup (``python -m memlib fleet rollup``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from memlib import groups as groups_mod
from memlib import query, rollup, source
from memlib.units import iso_z, parse_time, to_utc
from store import files

TopBy = Literal["rss", "subtree"]
DataFrom = Literal["rollups", "files"]
DEFAULT_PERIOD_S = 3600.0  # the collector's default segment period (used when a host has a single segment)
STALE_FACTOR = 1.5  # a host is stale when its newest sample is older than this many segment periods (+ margin)
STALE_MARGIN_S = 60.0  # shipping delay allowed on top of the period
LEAK_MIN_SAMPLES = 12
LEAK_MIN_SPAN_S = 600.0
LEAK_MIN_GROWTH_BYTES = 1 << 20  # total floor growth over the observed span


# ------------------------------------------------------------------------------------------------ rollup state


@dataclass(frozen=True)
class RollupState:
    """Which (host, date) partitions have fresh rollups (``host=…/date=…`` names), which have rollups computed from
    other files than are there now (stale), and which have none (missing)."""

    fresh: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every partition holding data has a fresh rollup (and there is at least one)."""
        return bool(self.fresh) and not self.stale and not self.missing

    def note(self) -> str | None:
        """One sentence about missing or stale rollups (None when complete)."""
        if self.complete:
            return None
        if not (self.fresh or self.stale or self.missing):
            return "the store holds no closed segments to roll up yet"
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} partition(s) have no rollups (e.g. {self.missing[0]})")
        if self.stale:
            parts.append(f"{len(self.stale)} partition(s) have rollups older than their data (e.g. {self.stale[0]})")
        return "; ".join(parts) + ": run `python -m memlib fleet rollup --dumps STORE`"


def rollup_state(rec: source.Recording) -> RollupState:
    """A recording -> the state of its rollups (a stat of every closed file and one footer per partition)."""
    if rec.kind == "empty":
        return RollupState()
    fresh, stale, missing = [], [], []
    for part in rollup.partitions(rec.root):
        if not (part.procs and part.system):
            continue
        stored = rollup.stored_digest(rec.root, part)
        if stored is None:
            missing.append(part.rel)
        elif stored == part.digest(rec.root):
            fresh.append(part.rel)
        else:
            stale.append(part.rel)
    return RollupState(tuple(fresh), tuple(stale), tuple(missing))


def _rollup_files(rec: source.Recording, table: rollup.RollupTable, days: tuple | None = None) -> list[Path]:
    """The existing partition files of a rollup table, optionally only those whose date is in [days[0], days[1]]."""
    base = rec.root / rollup.ROLLUP_DIR / table
    out = []
    for path in sorted(base.glob("host=*/date=*/part.parquet")):
        day = path.parent.name.removeprefix("date=")
        if days is not None and not (str(days[0]) <= day <= str(days[1])):
            continue
        out.append(path)
    return out


def _read_parquet(paths: list[Path]) -> str:
    names = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
    return (
        f"read_parquet([{names}], hive_partitioning = true, union_by_name = true,"
        " hive_types = {'host': VARCHAR, 'date': VARCHAR})"
    )


# ------------------------------------------------------------------------------------------------ hosts


HOST_COLUMNS = [
    "host", "status", "stale_since", "first_sample", "last_sample", "samples", "period_s", "mem_total_bytes",
    "mem_used_bytes", "behind_s",
]  # fmt: skip


@dataclass(frozen=True)
class Hosts:
    """hosts(): rows (HOST_COLUMNS, by host), the reference time staleness is measured against, and notes."""

    rows: pd.DataFrame
    reference: pd.Timestamp | None
    notes: list[str] = field(default_factory=list)


def _host_files(rec: source.Recording) -> dict[str, list[files.ClosedFile]]:
    """Host -> its closed system files, oldest first (a directory listing: no file is opened)."""
    closed, _ = files.list_closed(rec.root, ["system"])
    out: dict[str, list[files.ClosedFile]] = {}
    for f in sorted(closed, key=lambda f: (f.host, f.date, f.path.name)):
        out.setdefault(f.host, []).append(f)
    return out


def _periods_of(rec: source.Recording, by_host: dict[str, list[files.ClosedFile]]) -> dict[str, float]:
    out = {}
    for host in rec.hosts:
        stamps = [files.stamp_time(f.path.name.removeprefix("seg-")) for f in by_host.get(host, [])]
        s = np.unique(np.array([t.value for t in stamps if t is not None], dtype=np.int64))
        gaps = np.diff(s)
        out[host] = float(np.median(gaps)) / 1e9 if len(gaps) else DEFAULT_PERIOD_S
    return out


def periods(rec: source.Recording) -> dict[str, float]:
    """Host -> its segment period in seconds (median gap between its closed segments' first samples, from the file
    names; DEFAULT_PERIOD_S with fewer than two segments)."""
    return _periods_of(rec, _host_files(rec))


def stale_after(period_s: float, interval_s: float | None) -> float:
    """Seconds a host's newest sample may lag the fleet before it is stale: STALE_FACTOR periods + a margin."""
    return STALE_FACTOR * period_s + max(STALE_MARGIN_S, 3 * (interval_s or 0.0))


_USED_SQL = """coalesce(mem_total_bytes - mem_available_bytes, mem_total_bytes - mem_free_bytes - buffers_bytes
    - cached_bytes - coalesce(sreclaimable_bytes, 0))"""  # MemTotal - MemAvailable (older kernels: the free formula)


def _has_active(rec: source.Recording) -> bool:
    """True when an active segment (not rolled up, never) holds system rows."""
    return bool(rec.current_dirs) and source.active(rec).system.num_rows > 0


def _readable(rec: source.Recording, closed: list[files.ClosedFile]) -> list[Path]:
    """The closed files that pass their checksum (verified once per process, memlib.source); the others are named in
    rec.notices and left out."""
    if len(closed) > 1:  # reading and CRC32 release the GIL: verify new files on a few threads, as memlib.source
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(source._verified, closed))
    out = []
    for f in closed:
        ok, problem = source._verified(f)
        if problem is not None:
            note = f"{files.relative(rec.root, f.path)}: {problem}"
            if note not in rec.notices:
                rec.notices.append(note)
        if ok:
            out.append(f.path)
    return out


def _summary(rec: source.Recording, by_host: dict[str, list[files.ClosedFile]], state: RollupState) -> pd.DataFrame:
    """Per host: first/last sample, samples, MemTotal and used memory at the last sample. A (host, date) partition
    with a fresh rollup is read from host_minute; only the others (and the active segments) are read from the files
    (verified, exact): with every partition rolled up, no data file is opened."""
    pending = source._pending(rec.root, rec.current_dirs) if rec.current_dirs else set()
    fresh = set(state.fresh)
    unrolled: list[files.ClosedFile] = []
    rolled: set[str] = set()
    for mine in by_host.values():
        for f in mine:
            rel = f.path.parent.relative_to(rec.root / "system").as_posix()
            if rel in fresh:
                rolled.add(rel)
            elif (f.host, f.date, f.path.name) not in pending:
                unrolled.append(f)
    parts = []
    if unrolled or _has_active(rec):  # files without a fresh rollup, active segments: read them
        with query._tables(rec, paths=_readable(rec, unrolled), system=True) as t:
            parts.append(
                query._run(
                    f"""SELECT host, min(ts) AS first_sample, max(ts) AS last_sample, count(*)::BIGINT AS samples,
                        arg_max(mem_total_bytes, ts) AS mem_total_bytes, arg_max({_USED_SQL}, ts) AS mem_used_bytes
                    FROM {t["system"]} GROUP BY host"""
                )
            )
    if rolled:
        paths = [rec.root / rollup.ROLLUP_DIR / "host_minute" / rel / "part.parquet" for rel in sorted(rolled)]
        parts.append(
            query._run(
                f"""SELECT host, min(first_ts) AS first_sample, max(last_ts) AS last_sample,
                    sum(samples)::BIGINT AS samples, arg_max(mem_total_bytes_last, last_ts) AS mem_total_bytes,
                    arg_max(mem_used_bytes_last, last_ts) AS mem_used_bytes
                FROM {_read_parquet(paths)} GROUP BY host"""
            )
        )
    parts = [p.astype({"host": object}) for p in parts if len(p)]
    if not parts:
        return pd.DataFrame()
    rows = pd.concat(parts, ignore_index=True)
    last = rows.loc[rows.groupby("host", sort=True)["last_sample"].idxmax()].set_index("host")  # the newest part
    out = rows.groupby("host", sort=True).agg(
        first_sample=("first_sample", "min"), last_sample=("last_sample", "max"), samples=("samples", "sum")
    )
    out["mem_total_bytes"] = last["mem_total_bytes"]
    out["mem_used_bytes"] = last["mem_used_bytes"]
    return out.reset_index()


def hosts(rec: source.Recording, now: object = None, stale_after_s: float | None = None,
          state: RollupState | None = None) -> Hosts:  # fmt: skip
    """Every host of the store -> Hosts: status ``ok`` or ``stale`` (stale_since = its last sample) measured against
    `now` (default: the newest sample of the whole store), first/last sample, samples, segment period, MemTotal and
    used memory (MemTotal - MemAvailable) at its last sample, behind_s (reference - last sample).

    Each (host, date) partition whose rollup is fresh is read from host_minute (`state`: rollup_state(rec) when
    known), the others and the active segments from the files: with every partition rolled up, no data file is
    opened."""
    if rec.kind == "empty":
        return Hosts(pd.DataFrame(columns=HOST_COLUMNS), None, [f"no data in {rec.shown}"])
    by_host = _host_files(rec)
    rows = _summary(rec, by_host, rollup_state(rec) if state is None else state)
    if rows.empty:
        return Hosts(pd.DataFrame(columns=HOST_COLUMNS), None, [f"no samples in {rec.shown}"])
    notes: list[str] = []
    rows = rows.sort_values("host", kind="stable").reset_index(drop=True)
    newest = rows["last_sample"].max()
    reference = newest if now is None else (parse_time(now) if isinstance(now, str) else to_utc(now))
    per = _periods_of(rec, by_host)
    rows["period_s"] = rows["host"].map(lambda h: per.get(h, DEFAULT_PERIOD_S)).astype(float)
    rows["behind_s"] = (reference - rows["last_sample"]).dt.total_seconds()
    limit = (
        rows["period_s"].map(lambda p: stale_after(p, rec.interval_s))
        if stale_after_s is None
        else pd.Series(float(stale_after_s), index=rows.index)
    )
    is_stale = rows["behind_s"] > limit
    rows["status"] = np.where(is_stale, "stale", "ok")
    rows["stale_since"] = rows["last_sample"].where(is_stale)
    if now is None:
        wall = pd.Timestamp.now(tz="UTC")
        lag = (wall - newest).total_seconds()
        if lag > stale_after(float(rows["period_s"].max()), rec.interval_s):
            notes.append(
                f"the newest sample of the whole store is from {iso_z(newest)} ({lag / 3600:.1f} h before now): "
                "staleness is measured against it; no host has shipped since"
            )
    return Hosts(rows[HOST_COLUMNS].reset_index(drop=True), reference, notes)


# ------------------------------------------------------------------------------------------------ top at a moment


TOP_COLUMNS = [
    "rank", "host", "ts", "pid", "start_time", "name", "user", "rss_bytes", "subtree_rss_bytes", "descendants",
    "cmdline",
]  # fmt: skip


@dataclass(frozen=True)
class Top:
    """top() / top_rollup(): rows (ranked across hosts), where they came from, and notes (hosts left out, why)."""

    rows: pd.DataFrame
    data_from: DataFrom
    notes: list[str] = field(default_factory=list)


def _at(rec: source.Recording, at: object) -> pd.Timestamp:
    if at is None or (isinstance(at, str) and at.strip().lower() == "latest"):
        if rec.span is None:
            raise ValueError(f"no snapshots in {rec.shown}")
        return rec.span[1]
    return parse_time(at) if isinstance(at, str) else to_utc(at)


def host_moments(rec: source.Recording, at: object = None) -> tuple[list[query.Moment], list[str]]:
    """Each host's snapshot at or just before `at` (default: the newest sample of the store) -> (moments, notes).

    A host whose newest sample before `at` is older than its stale limit, or that has none, is left out and named."""
    want = _at(rec, at)
    per = periods(rec)
    lookback = pd.Timedelta(seconds=max([stale_after(p, rec.interval_s) for p in per.values()] or [0.0]))
    with query._tables(rec, want - lookback, want, system=True) as t:
        found = query._run(
            f"SELECT host, max(ts) AS ts FROM {t['system']} WHERE ts <= ? AND ts >= ? GROUP BY host ORDER BY host",
            [want, want - lookback],
        )
    moments, notes = [], []
    have = dict(zip(found["host"], found["ts"], strict=True))
    for host in rec.hosts:
        ts = have.get(host)
        limit = pd.Timedelta(seconds=stale_after(per.get(host, DEFAULT_PERIOD_S), rec.interval_s))
        if ts is None or want - ts > limit:
            notes.append(f"host {host}: no sample within {limit.total_seconds() / 60:.0f} min before {iso_z(want)}")
            continue
        moments.append(query.Moment(ts, host))
    return moments, notes


def top(rec: source.Recording, at: object = None, by: TopBy = "rss", limit: int = 10) -> Top:
    """The `limit` largest processes (by own RSS) or subtrees (by subtree RSS, processes below a root with
    descendants) across every host, each at its snapshot at or just before `at` -> Top (TOP_COLUMNS)."""
    moments, notes = host_moments(rec, at)
    parts = []
    for m in moments:
        fn = query.top_subtrees if by == "subtree" else query.top_processes
        got = fn(rec, m, "rss", limit)
        if len(got):
            parts.append(got.astype({c: object for c in ("host", "name", "user", "cmdline")}))
    if not parts:
        return Top(pd.DataFrame(columns=TOP_COLUMNS), "files", notes or ["no host has a sample at that moment"])
    rows = pd.concat(parts, ignore_index=True)
    key = "subtree_rss_bytes" if by == "subtree" else "rss_bytes"
    rows = rows.sort_values([key, "host", "pid"], ascending=[False, True, True], kind="stable", na_position="last")
    rows = rows.head(limit).reset_index(drop=True)
    rows.insert(0, "rank", np.arange(1, len(rows) + 1))
    return Top(rows[TOP_COLUMNS], "files", notes)


TOP_ROLLUP_COLUMNS = ["rank", "host", "minute", "pid", "start_time", "name", "user", "bytes"]


def top_rollups(rec: source.Recording, at: object = None, limit: int = 10,
                period_s: float | None = None) -> dict[TopBy, Top]:  # fmt: skip
    """The top_minute rollup at `at`, both kinds from one read: each host's latest rolled-up minute at or before `at`
    (within the fleet's stale limit; `period_s`: its longest segment period, default from the file names), its top
    processes ("rss": own RSS peak in the minute) and subtrees ("subtree"), each ranked across hosts ->
    {by: Top(TOP_ROLLUP_COLUMNS: minute, bytes = the peak within that minute)}."""
    want = _at(rec, at)
    longest = max(periods(rec).values() or [DEFAULT_PERIOD_S]) if period_s is None else period_s
    lookback = pd.Timedelta(seconds=stale_after(longest, rec.interval_s))
    paths = _rollup_files(rec, "top_minute", ((want - lookback).date(), want.date()))
    if not paths:
        none = Top(pd.DataFrame(columns=TOP_ROLLUP_COLUMNS), "rollups", ["no top_minute rollups for that moment"])
        return {"rss": none, "subtree": none}
    rows = query._run(
        f"""WITH r AS (SELECT * FROM {_read_parquet(paths)} WHERE minute <= ? AND minute >= ?),
            last AS (SELECT host, kind, max(minute) AS minute FROM r GROUP BY host, kind)
        SELECT r.kind, r.host, r.minute, r.pid, r.start_time, r.name, r."user", r.bytes FROM r JOIN last
            ON r.host = last.host AND r.kind = last.kind AND r.minute = last.minute
        QUALIFY row_number() OVER (PARTITION BY r.kind ORDER BY r.bytes DESC, r.host, r.pid) <= {int(limit)}
        ORDER BY r.kind, r.bytes DESC, r.host, r.pid""",
        [want, want - lookback],
    )
    out: dict[TopBy, Top] = {}
    for by, kind in (("rss", "process"), ("subtree", "subtree")):
        mine = rows[rows["kind"].to_numpy() == kind].reset_index(drop=True)
        mine.insert(0, "rank", np.arange(1, len(mine) + 1))
        note = [] if len(mine) else [f"no rolled-up minute near {iso_z(want)}"]
        out[by] = Top(mine[TOP_ROLLUP_COLUMNS], "rollups", note)  # type: ignore[index]
    return out


def top_rollup(rec: source.Recording, at: object = None, by: TopBy = "rss", limit: int = 10) -> Top:
    """One kind of top_rollups (by "rss": processes, "subtree": subtrees) -> Top(TOP_ROLLUP_COLUMNS)."""
    return top_rollups(rec, at, limit)[by]


# ------------------------------------------------------------------------------------------------ used memory


USED_COLUMNS = ["host", "ts", "mem_used_bytes", "mem_total_bytes", "samples"]


MINUTE_US = 60_000_000


def _grid(t_from: pd.Timestamp, t_to: pd.Timestamp, bins: int) -> tuple[int, int]:
    """(first bucket start, bucket width) in µs: at most `bins` buckets of whole minutes from t_from's minute, so the
    rollups' minutes and the files' samples fall into the same buckets."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    lo, hi = t_from.floor("min").value // 1000, t_to.value // 1000
    width = -(-(hi - lo + 1) // bins)
    return lo, max(1, -(-width // MINUTE_US)) * MINUTE_US


def _partition_files(rec: source.Recording, day_lo: object, day_hi: object) -> dict[str, list[files.ClosedFile]]:
    """``host=…/date=…`` -> its closed system files, for the dates in [day_lo, day_hi] (a directory listing)."""
    closed, _ = files.list_closed(rec.root, ["system"], days=(day_lo, day_hi))  # type: ignore[arg-type]
    out: dict[str, list[files.ClosedFile]] = {}
    for f in closed:
        out.setdefault(f.path.parent.relative_to(rec.root / "system").as_posix(), []).append(f)
    return out


def used_memory(rec: source.Recording, t_from: object = None, t_to: object = None, bins: int = 120,
                prefer: DataFrom = "rollups",
                state: RollupState | None = None) -> tuple[pd.DataFrame, DataFrom]:  # fmt: skip
    """Every host's used memory over [t_from, t_to] on one grid of at most `bins` equal buckets shared by all hosts
    -> (USED_COLUMNS rows: ts = the bucket's start, mem_used_bytes = the bucket's peak of MemTotal - MemAvailable,
    mem_total_bytes, samples; one row per host and bucket that has samples, by host then ts; where it came from:
    "rollups" when every partition of the window was read from host_minute).
    A bucket after a host stopped has no row (not zero). With `prefer` "rollups", each (host, date) partition with a
    fresh rollup is read from host_minute and only the others (and the active segments) from the files; else every
    row from the files (`state`: rollup_state(rec) when known). Both give the same rows."""
    if rec.span is None:
        return pd.DataFrame(columns=USED_COLUMNS), "files"
    lo = rec.span[0] if t_from is None else to_utc(t_from)
    hi = rec.span[1] if t_to is None else to_utc(t_to)
    t0, width = _grid(lo, hi, bins)
    if prefer != "rollups":
        fresh: set[str] = set()
    else:
        fresh = set((rollup_state(rec) if state is None else state).fresh)
    parts = _partition_files(rec, lo.date(), hi.date())
    rolled = sorted(rel for rel in parts if rel in fresh)
    out = []
    if rolled:
        paths = [rec.root / rollup.ROLLUP_DIR / "host_minute" / rel / "part.parquet" for rel in rolled]
        out.append(
            query._run(
                f"""SELECT host, make_timestamptz({t0} + ((epoch_us(minute) - {t0}) // {width}) * {width}) AS ts,
                    max(mem_used_bytes_max) AS mem_used_bytes, max(mem_total_bytes) AS mem_total_bytes,
                    sum(samples)::BIGINT AS samples
                FROM {_read_parquet(paths)} WHERE minute >= ? AND minute <= ? GROUP BY ALL""",
                [lo.floor("min"), hi],
            )
        )
    pending = source._pending(rec.root, rec.current_dirs) if rec.current_dirs else set()
    unrolled = [
        f
        for rel, mine in parts.items()
        if rel not in fresh
        for f in mine
        if (f.host, f.date, f.path.name) not in pending
    ]
    live = _has_active(rec)
    if unrolled or live or not rolled:
        with query._tables(rec, paths=_readable(rec, unrolled), system=True) as t:
            out.append(
                query._run(
                    f"""SELECT host, make_timestamptz({t0} + ((epoch_us(ts) - {t0}) // {width}) * {width}) AS ts,
                        max({_USED_SQL}) AS mem_used_bytes, max(mem_total_bytes) AS mem_total_bytes,
                        count(*)::BIGINT AS samples
                    FROM {t["system"]} WHERE ts >= ? AND ts <= ? GROUP BY ALL""",
                    [lo, hi],
                )
            )
    frames = [f.astype({"host": object}) for f in out if len(f)]
    if not frames:
        return pd.DataFrame(columns=USED_COLUMNS), "rollups" if rolled else "files"
    rows = pd.concat(frames, ignore_index=True)
    if len(frames) > 1:  # a bucket across midnight can take its minutes from a rollup and from files
        rows = rows.groupby(["host", "ts"], as_index=False, sort=False).agg(
            mem_used_bytes=("mem_used_bytes", "max"), mem_total_bytes=("mem_total_bytes", "max"),
            samples=("samples", "sum"),
        )  # fmt: skip
    rows = rows.sort_values(["host", "ts"], kind="stable").reset_index(drop=True).astype({"host": object})
    return rows[USED_COLUMNS], "rollups" if rolled and not unrolled and not live else "files"


# ------------------------------------------------------------------------------------------------ leaks


LEAK_COLUMNS = [
    "rank", "host", "boot_id", "pid", "start_time", "name", "user", "days", "samples", "first_seen", "last_seen",
    "rss_max_bytes", "floor_growth_bytes_per_hour", "floor_r2", "score",
]  # fmt: skip


@dataclass(frozen=True)
class Leaks:
    """leaks(): the ranking (LEAK_COLUMNS) and the rollups' state it was read from."""

    rows: pd.DataFrame
    state: RollupState

    @property
    def note(self) -> str | None:
        """Why the ranking may be incomplete or empty (rollups missing or older than the data), else None."""
        return self.state.note()


def leaks(rec: source.Recording, limit: int | None = 20, state: RollupState | None = None) -> Leaks:
    """The fleet's leak ranking from the process_day rollup -> Leaks.

    Per process (host, boot_id, pid, start_time) over its days: floor growth and r2 are the sample-weighted means of
    its daily values (floor = 10-minute minimum of RSS; memlib.rollup); score = floor growth (bytes/h) x r2, kept
    when positive, seen in >= LEAK_MIN_SAMPLES samples over >= LEAK_MIN_SPAN_S and its floor grew >= 1 MiB over that
    span. Most suspicious first. `state`: rollup_state(rec) when known."""
    state = rollup_state(rec) if state is None else state
    paths = _rollup_files(rec, "process_day")
    if not paths:
        return Leaks(pd.DataFrame(columns=LEAK_COLUMNS), state)
    rows = query._run(
        f"""WITH d AS (SELECT * FROM {_read_parquet(paths)} WHERE floor_r2 IS NOT NULL),
        p AS (SELECT host, boot_id, pid, start_time, arg_max(name, last_seen) AS name,
                arg_max("user", last_seen) AS "user", count(*)::BIGINT AS days, sum(samples)::BIGINT AS samples,
                min(first_seen) AS first_seen, max(last_seen) AS last_seen, max(rss_max_bytes) AS rss_max_bytes,
                sum(floor_growth_bytes_per_hour * samples) / sum(samples) AS floor_growth_bytes_per_hour,
                sum(floor_r2 * samples) / sum(samples) AS floor_r2
            FROM d GROUP BY host, boot_id, pid, start_time)
        SELECT *, floor_growth_bytes_per_hour * floor_r2 AS score FROM p
        WHERE samples >= {LEAK_MIN_SAMPLES} AND epoch(last_seen - first_seen) >= {LEAK_MIN_SPAN_S}
            AND floor_growth_bytes_per_hour > 0
            AND floor_growth_bytes_per_hour * epoch(last_seen - first_seen) / 3600 >= {LEAK_MIN_GROWTH_BYTES}
        ORDER BY score DESC, host, pid {"" if limit is None else f"LIMIT {int(limit)}"}"""
    )
    rows.insert(0, "rank", np.arange(1, len(rows) + 1))
    return Leaks(rows[LEAK_COLUMNS], state)


# ------------------------------------------------------------------------------------------------ groups


GROUP_COLUMNS = ["host", "ts", "group", "processes", "rss_bytes", "rss_bytes_min", "samples"]


def groups(rec: source.Recording, by: str = "name", match: str = "", t_from: object = None, t_to: object = None,
           bins: int = 120, top: int | None = 10) -> pd.DataFrame:  # fmt: skip
    """Group totals per host over time: the groups (by name, command, user or cgroup) whose label contains `match`
    (case-insensitive; "" = every group, then the `top` largest by their peak total across the fleet) -> GROUP_COLUMNS:
    per host, bucket (ts = its start, one grid for all hosts) and group, the peak and lowest per-sample total RSS of
    the group's processes on that host (rss_bytes, rss_bytes_min), the most processes at once, samples. By host, ts."""
    if by not in query._GROUP_KEY:
        raise ValueError(f"cannot group by {by!r}; expected one of {', '.join(groups_mod.GROUP_BY)}")
    if rec.span is None:
        return pd.DataFrame(columns=GROUP_COLUMNS)
    lo = rec.span[0] if t_from is None else to_utc(t_from)
    hi = rec.span[1] if t_to is None else to_utc(t_to)
    t0, width = _grid(lo, hi, bins)
    key = f"coalesce(nullif({query._GROUP_KEY[by]}, ''), '{groups_mod.UNKNOWN_GROUP}')"
    cond, params = "", [lo, hi]
    if match:
        cond = f"AND strpos(lower({key}), ?) > 0"
        params.append(match.lower())
    keep = ""
    if not match and top is not None:
        keep = f"""WHERE g IN (SELECT g FROM (SELECT g, max(rss_bytes) AS pk FROM per GROUP BY g)
                   ORDER BY pk DESC NULLS LAST, g LIMIT {int(top)})"""
    with query._tables(rec, lo, hi, procs=True) as t:
        out = query._run(
            f"""WITH per AS (SELECT host, ts, {key} AS g, count(*)::BIGINT AS processes,
                    sum(rss_bytes)::BIGINT AS rss_bytes
                FROM {t["procs"]} WHERE ts >= ? AND ts <= ? {cond} GROUP BY host, ts, g)
            SELECT host, make_timestamptz({t0} + ((epoch_us(ts) - {t0}) // {width}) * {width}) AS ts, g AS "group",
                max(processes)::BIGINT AS processes, max(rss_bytes)::BIGINT AS rss_bytes,
                min(rss_bytes)::BIGINT AS rss_bytes_min, count(*)::BIGINT AS samples
            FROM per {keep} GROUP BY ALL ORDER BY host, ts, "group\"""",
            params,
        )
    return out[GROUP_COLUMNS]
