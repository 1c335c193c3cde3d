"""Fleet rollups: small per-host tables computed from a store's closed segments by DuckDB or Apache Spark.

``rollup(store_root, engine="duckdb", top=10)`` reads the closed ``procs/`` and ``system/`` Parquet files of every
(host, date) partition whose files changed since its last rollup, computes three tables with the same SQL on either
engine, and writes them under ``<store>/rollups/<table>/host=<host>/date=<YYYY-MM-DD>/part.parquet`` (the store's own
Hive scheme, so the rollups are a dataset too). The active segment (``.current``) is not rolled up: a partition is
final once its segments are closed, and is recomputed whenever a file in it is added, removed or rewritten.

Tables (times ``timestamp[us, UTC]``, memory in bytes; ``host`` and ``date`` come from the directory names):

- ``host_minute``: minute (start), samples, mem_total_bytes (max), mem_used_bytes_max, mem_used_bytes_sum (sum over
  the minute's samples: mean = sum / samples), mem_available_bytes_min, swap_used_bytes_max, processes_max,
  first_ts and last_ts (the minute's first and last sample), mem_total_bytes_last and mem_used_bytes_last (at
  last_ts). used = MemTotal - MemAvailable, as ``free`` says (kernels without MemAvailable: MemTotal - MemFree -
  Buffers - Cached - SReclaimable, as memlib.fleet).
- ``top_minute``: minute, kind ("process" | "subtree"), rank (1..top), boot_id, pid, start_time, name, user,
  bytes: the process's highest RSS (kind process) or subtree RSS (kind subtree, processes below a root only) among
  the minute's samples; ties broken by pid, start_time.
- ``process_day``: boot_id, pid, start_time, name (the last one seen), user, samples, first_seen, last_seen,
  rss_min_bytes, rss_max_bytes, rss_sum_bytes, rss_p95_bytes (linear interpolation), subtree_rss_max_bytes,
  growth_bytes_per_hour (least-squares slope of RSS over the day), floor_growth_bytes_per_hour and floor_r2
  (least squares over the 10-minute floors, i.e. per-bin minima, the leak signal: a floor that keeps rising with r2
  near 1 is steady growth, not a burst; r2 is 1 for a flat floor, null with fewer than two bins).

Engines: ``duckdb`` (embedded, the default), ``local[N]`` (Spark in this process's JVM with N threads) and
``spark://HOST:PORT`` (a standalone Spark cluster; executors must see the store at the same path). The SQL is one
text with a handful of dialect words; integer sums make both engines' answers equal to the byte, floats to 1e-9.

Incremental: each written partition carries ``pmi_rollup_inputs`` (a digest of ROLLUP_VERSION and its input files'
relative paths, sizes and mtimes) in its Parquet metadata; a partition whose digest matches is skipped.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import store
from memlib import source

RollupTable = Literal["host_minute", "top_minute", "process_day"]
ROLLUP_TABLES: tuple[RollupTable, ...] = ("process_day", "top_minute", "host_minute")  # written in this order
DIGEST_KEY = b"pmi_rollup_inputs"
ROLLUP_VERSION = 2  # part of every partition's digest: rollups of an older version are recomputed
ROLLUP_DIR = source.ROLLUP_DIR
FLOOR_BIN_US = 600_000_000  # 10 minutes: the bin whose minimum is a floor
US_PER_HOUR = 3_600_000_000

_PARTITION = re.compile(r"^host=(?P<host>[^/]+)/date=(?P<date>\d{4}-\d{2}-\d{2})$")

# dialect words: {name} in the SQL below -> engine-specific text
_DIALECT: dict[str, dict[str, str]] = {
    "duckdb": {"us": "epoch_us({})", "div": "({} // {})", "p95": "quantile_cont({}, 0.95)", "user": '"user"'},
    "spark": {"us": "unix_micros({})", "div": "({} div {})", "p95": "percentile({}, 0.95)", "user": "`user`"},
}

_SQL: dict[RollupTable, str] = {
    "host_minute": """
        SELECT host, date, {minute} AS minute_us, count(*) AS samples,
               max(mem_total_bytes) AS mem_total_bytes,
               max(used) AS mem_used_bytes_max,
               sum(used) AS mem_used_bytes_sum,
               min(mem_available_bytes) AS mem_available_bytes_min,
               max(swap_total_bytes - swap_free_bytes) AS swap_used_bytes_max,
               max(processes) AS processes_max,
               min({ts_us}) AS first_ts_us, max({ts_us}) AS last_ts_us,
               max_by(mem_total_bytes, {ts_us}) AS mem_total_bytes_last, max_by(used, {ts_us}) AS mem_used_bytes_last
        FROM (SELECT s.*, p.processes,
                     coalesce(s.mem_total_bytes - s.mem_available_bytes, s.mem_total_bytes - s.mem_free_bytes
                              - s.buffers_bytes - s.cached_bytes - coalesce(s.sreclaimable_bytes, 0)) AS used
              FROM system s LEFT JOIN
              (SELECT host, ts, count(*) AS processes FROM procs GROUP BY host, ts) p
              ON s.host = p.host AND s.ts = p.ts) j
        GROUP BY host, date, {minute}
    """,
    "top_minute": """
        SELECT host, date, minute_us, kind, rank, boot_id, pid, start_time_us, name, {user}, bytes FROM (
          SELECT *, row_number() OVER (PARTITION BY host, date, minute_us, kind
                                       ORDER BY bytes DESC, pid, start_time_us) AS rank
          FROM (
            SELECT host, date, {minute} AS minute_us, 'process' AS kind, boot_id, pid, {start_us} AS start_time_us,
                   max(name) AS name, max({user}) AS {user}, max(rss_bytes) AS bytes
            FROM procs GROUP BY host, date, {minute}, boot_id, pid, {start_us}
            UNION ALL
            SELECT host, date, {minute} AS minute_us, 'subtree' AS kind, boot_id, pid, {start_us} AS start_time_us,
                   max(name) AS name, max({user}) AS {user}, max(subtree_rss_bytes) AS bytes
            FROM procs WHERE level > 0 GROUP BY host, date, {minute}, boot_id, pid, {start_us}
          ) c
        ) r WHERE rank <= {top}
    """,
    "process_day": """
        WITH r0 AS (
          SELECT host, date, boot_id, pid, {start_us} AS start_time_us, {ts_us} AS ts_us, name, {user},
                 rss_bytes, subtree_rss_bytes FROM procs
        ), floors AS (
          SELECT host, date, boot_id, pid, start_time_us, {bin} AS bin, min(rss_bytes) AS floor_bytes
          FROM r0 GROUP BY host, date, boot_id, pid, start_time_us, {bin}
        ), floor_fit AS (
          SELECT host, date, boot_id, pid, start_time_us,
                 regr_slope(floor_bytes, bin) AS floor_slope_per_bin,
                 CASE WHEN regr_count(floor_bytes, bin) < 2 OR regr_sxx(floor_bytes, bin) = 0 THEN NULL
                      WHEN regr_syy(floor_bytes, bin) = 0 THEN 1.0
                      ELSE regr_sxy(floor_bytes, bin) * regr_sxy(floor_bytes, bin)
                           / (regr_sxx(floor_bytes, bin) * regr_syy(floor_bytes, bin)) END AS floor_r2
          FROM floors GROUP BY host, date, boot_id, pid, start_time_us
        ), stats AS (
          SELECT host, date, boot_id, pid, start_time_us, max_by(name, ts_us) AS name, max_by({user}, ts_us) AS {user},
                 count(*) AS samples, min(ts_us) AS first_seen_us, max(ts_us) AS last_seen_us,
                 min(rss_bytes) AS rss_min_bytes, max(rss_bytes) AS rss_max_bytes, sum(rss_bytes) AS rss_sum_bytes,
                 {p95} AS rss_p95_bytes, max(subtree_rss_bytes) AS subtree_rss_max_bytes,
                 regr_slope(rss_bytes, ts_us) AS slope_per_us
          FROM r0 GROUP BY host, date, boot_id, pid, start_time_us
        )
        SELECT s.*, f.floor_slope_per_bin, f.floor_r2 FROM stats s JOIN floor_fit f
          ON s.host = f.host AND s.date = f.date AND s.boot_id = f.boot_id AND s.pid = f.pid
         AND s.start_time_us = f.start_time_us
    """,
}


def sql_for(table: RollupTable, dialect: Literal["duckdb", "spark"], top: int) -> str:
    """The rollup query of `table` in `dialect` (reads views ``procs`` and ``system`` with host and date columns)."""
    d = _DIALECT[dialect]
    ts_us = d["us"].format("ts")
    words = {
        "ts_us": ts_us,
        "start_us": d["us"].format("start_time"),
        "minute": d["div"].format(ts_us, 60_000_000) + " * 60000000",
        "bin": d["div"].format("ts_us", FLOOR_BIN_US),
        "p95": d["p95"].format("rss_bytes"),
        "top": str(int(top)),
        "user": d["user"],
    }
    return _SQL[table].format(**words)


# ------------------------------------------------------------------------------------------------ partitions


@dataclass(frozen=True)
class Partition:
    """One (host, date) of a store with its closed input files."""

    host: str
    date: str
    procs: tuple[Path, ...]
    system: tuple[Path, ...]

    @property
    def rel(self) -> str:
        """``host=<host>/date=<date>``: the partition's directory below a table."""
        return f"host={self.host}/date={self.date}"

    def digest(self, root: Path) -> str:
        """A digest of the rollup's version and the input files' relative paths, sizes and mtimes."""
        h = hashlib.sha256(f"pmi-rollup {ROLLUP_VERSION}\n".encode())
        for path in sorted(self.procs + self.system):
            st = path.stat()
            h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


def _data_files(folder: Path) -> list[Path]:
    """Regular ``*.parquet`` files of a partition folder (no hidden, temporary or linked files)."""
    if not folder.is_dir():
        return []
    out = []
    for entry in os.scandir(folder):
        if entry.name.startswith((".", "_")) or not entry.name.endswith(".parquet"):
            continue
        if entry.is_file(follow_symlinks=False):
            out.append(Path(entry.path))
    return sorted(out)


def partitions(root: Path) -> list[Partition]:
    """Every (host, date) partition that holds closed process or system files, sorted."""
    found: dict[str, dict[str, list[Path]]] = {}
    for table in ("procs", "system"):
        base = root / table
        if not base.is_dir():
            continue
        for host_dir in sorted(base.glob("host=*")):
            for date_dir in sorted(host_dir.glob("date=*")):
                rel = f"{host_dir.name}/{date_dir.name}"
                if not _PARTITION.match(rel):
                    continue
                files = _data_files(date_dir)
                if files:
                    found.setdefault(rel, {"procs": [], "system": []})[table] = files
    out = []
    for rel, by_table in sorted(found.items()):
        m = _PARTITION.match(rel)
        assert m is not None
        out.append(Partition(m["host"], m["date"], tuple(by_table["procs"]), tuple(by_table["system"])))
    return out


def rollup_path(root: Path, table: RollupTable, part: Partition) -> Path:
    """Where `table`'s rollup of `part` lives."""
    return root / ROLLUP_DIR / table / part.rel / "part.parquet"


def stored_digest(root: Path, part: Partition) -> str | None:
    """The input digest the partition's last complete rollup was computed from (None when there is none)."""
    path = rollup_path(root, ROLLUP_TABLES[-1], part)
    try:
        meta = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = meta.get(DIGEST_KEY)
    return value.decode() if value else None


# ------------------------------------------------------------------------------------------------ engines


class _Engine:
    """Runs the rollup SQL over a set of partitions and returns pandas frames."""

    dialect: Literal["duckdb", "spark"]

    def run(self, root: Path, parts: list[Partition], top: int) -> dict[RollupTable, pd.DataFrame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the engine's resources."""


class _DuckDB(_Engine):
    dialect = "duckdb"

    def __init__(self) -> None:
        import duckdb

        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")

    def _view(self, name: Literal["procs", "system"], files: list[Path]) -> None:
        listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        cols = read_columns(name, "duckdb")
        typed = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in [*cols, ("host", "VARCHAR"), ("date", "VARCHAR")])
        picked = ", ".join(f'"{c}"' for c, _ in cols)
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {picked}, host, date FROM ((SELECT {typed} WHERE false)"
            f" UNION ALL BY NAME (SELECT * FROM read_parquet([{listing}], hive_partitioning = true,"
            " union_by_name = true, hive_types = {'host': VARCHAR, 'date': VARCHAR})))"
        )

    def run(self, root: Path, parts: list[Partition], top: int) -> dict[RollupTable, pd.DataFrame]:
        self._view("procs", [f for p in parts for f in p.procs])
        self._view("system", [f for p in parts for f in p.system])
        return {t: self.con.execute(sql_for(t, "duckdb", top)).df() for t in ROLLUP_TABLES}

    def close(self) -> None:
        self.con.close()


BATCH_BYTES = 256 << 20  # input files per batch: few fixed per-query costs, bounded result frames
SHUFFLE_PARTITIONS = 8  # Spark's default of 200 shuffle partitions is for far larger inputs than a batch of days
# the columns the rollup SQL reads, at their stored types: no engine infers or merges a schema from the footers, and
# a file written before a column existed gives null there
_READ_COLUMNS = {
    "procs": ("ts", "boot_id", "pid", "start_time", "name", "user", "rss_bytes", "level", "subtree_rss_bytes"),
    "system": ("ts", "mem_total_bytes", "mem_available_bytes", "mem_free_bytes", "buffers_bytes", "cached_bytes",
               "sreclaimable_bytes", "swap_total_bytes", "swap_free_bytes"),
}  # fmt: skip
_TYPE_WORDS = {
    "duckdb": {pa.int16(): "SMALLINT", pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.string(): "VARCHAR"},
    "spark": {pa.int16(): "BIGINT", pa.int32(): "BIGINT", pa.int64(): "BIGINT", pa.string(): "STRING"},  # widened
}
_TIMESTAMP_WORD = {"duckdb": "TIMESTAMPTZ", "spark": "TIMESTAMP"}


def read_columns(table: Literal["procs", "system"], dialect: Literal["duckdb", "spark"]) -> list[tuple[str, str]]:
    """The (column, SQL type) pairs the rollup reads from `table`, typed as the store schema says."""
    fields = store.schema.SCHEMAS[table]
    out = []
    for col in _READ_COLUMNS[table]:
        t = fields.field(col).type
        out.append((col, _TIMESTAMP_WORD[dialect] if pa.types.is_timestamp(t) else _TYPE_WORDS[dialect][t]))
    return out


class _Spark(_Engine):
    dialect = "spark"

    def __init__(self, master: str) -> None:
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        self.spark = (
            SparkSession.builder.master(master)
            .appName("pmi-rollup")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.shuffle.partitions", str(SHUFFLE_PARTITIONS))
            .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "1000000")  # list files here
            .config("spark.driver.host", os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
            .config("spark.driver.bindAddress", os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
            .getOrCreate()
        )

    def _view(self, name: Literal["procs", "system"], root: Path, files: list[Path]) -> None:
        schema = ", ".join(f"`{c}` {t}" for c, t in read_columns(name, "spark"))
        reader = self.spark.read.schema(schema).option("basePath", str(root / name))
        reader.parquet(*[str(f) for f in files]).createOrReplaceTempView(name)

    def run(self, root: Path, parts: list[Partition], top: int) -> dict[RollupTable, pd.DataFrame]:
        self._view("procs", root, [f for p in parts for f in p.procs])
        self._view("system", root, [f for p in parts for f in p.system])
        return {t: self.spark.sql(sql_for(t, "spark", top)).toPandas() for t in ROLLUP_TABLES}

    def close(self) -> None:
        self.spark.stop()


def engine_kind(name: str) -> Literal["duckdb", "spark"]:
    """``duckdb`` | ``local[N]`` / ``local[*]`` | ``spark://HOST:PORT`` -> its dialect (ValueError on anything else)."""
    if name == "duckdb":
        return "duckdb"
    if re.fullmatch(r"local\[(\d+|\*)\]", name) or re.fullmatch(r"spark://[^\s/:]+:\d+", name):
        return "spark"
    raise ValueError(f"unknown engine {name!r}: use duckdb, local[N] or spark://HOST:PORT")


def engine_for(name: str) -> _Engine:
    """An engine name (engine_kind) -> the engine (ValueError on an unknown name)."""
    return _DuckDB() if engine_kind(name) == "duckdb" else _Spark(name)


# ------------------------------------------------------------------------------------------------ result shaping


def _utc_us(values: pd.Series) -> pa.Array:
    return pa.array(values.astype("int64").to_numpy(), pa.int64()).cast(pa.timestamp("us", tz="UTC"))


_INT_COLUMNS = {
    "host_minute": ["samples", "mem_total_bytes", "mem_used_bytes_max", "mem_used_bytes_sum",
                    "mem_available_bytes_min", "swap_used_bytes_max", "processes_max", "mem_total_bytes_last",
                    "mem_used_bytes_last"],
    "top_minute": ["rank", "pid", "bytes"],
    "process_day": ["pid", "samples", "rss_min_bytes", "rss_max_bytes", "rss_sum_bytes", "subtree_rss_max_bytes"],
}  # fmt: skip


def _process_columns(df: pd.DataFrame) -> dict[str, pa.Array]:
    """A rollup frame's process identity and labels -> boot_id, pid, start_time, name, user as Arrow columns."""
    return {
        "boot_id": pa.array(df["boot_id"].astype(str), pa.string()),
        "pid": pa.array(df["pid"], pa.int32()),
        "start_time": _utc_us(df["start_time_us"]),
        "name": pa.array(df["name"].astype(str), pa.string()),
        "user": pa.array(df["user"].astype(str), pa.string()),
    }


def shape(table: RollupTable, df: pd.DataFrame) -> pa.Table:
    """An engine's raw rows of `table` -> the stored Arrow table (times as timestamps, rates per hour), sorted."""
    df = df.copy()
    for c in _INT_COLUMNS[table]:
        if c in df:
            df[c] = df[c].astype("Int64")
    cols: dict[str, pa.Array] = {}
    if table == "host_minute":
        df = df.sort_values(["host", "date", "minute_us"], kind="stable")
        cols["minute"] = _utc_us(df["minute_us"])
        for c in _INT_COLUMNS[table]:
            cols[c] = pa.array(df[c], pa.int64())
        cols["first_ts"] = _utc_us(df["first_ts_us"])
        cols["last_ts"] = _utc_us(df["last_ts_us"])
    elif table == "top_minute":
        df = df.sort_values(["host", "date", "minute_us", "kind", "rank"], kind="stable")
        cols["minute"] = _utc_us(df["minute_us"])
        cols["kind"] = pa.array(df["kind"].astype(str), pa.string())
        cols["rank"] = pa.array(df["rank"], pa.int32())
        cols.update(_process_columns(df))
        cols["bytes"] = pa.array(df["bytes"], pa.int64())
    else:
        df = df.sort_values(["host", "date", "boot_id", "pid", "start_time_us"], kind="stable")
        cols.update(_process_columns(df))
        cols["samples"] = pa.array(df["samples"], pa.int64())
        cols["first_seen"] = _utc_us(df["first_seen_us"])
        cols["last_seen"] = _utc_us(df["last_seen_us"])
        for c in ("rss_min_bytes", "rss_max_bytes", "rss_sum_bytes", "subtree_rss_max_bytes"):
            cols[c] = pa.array(df[c], pa.int64())
        cols["rss_p95_bytes"] = pa.array(df["rss_p95_bytes"].astype("float64"), pa.float64())
        cols["growth_bytes_per_hour"] = pa.array(
            df["slope_per_us"].astype("float64") * US_PER_HOUR, pa.float64(), from_pandas=True
        )
        cols["floor_growth_bytes_per_hour"] = pa.array(
            df["floor_slope_per_bin"].astype("float64") * (US_PER_HOUR / FLOOR_BIN_US), pa.float64(), from_pandas=True
        )
        cols["floor_r2"] = pa.array(df["floor_r2"].astype("float64"), pa.float64(), from_pandas=True)
    out = pa.table(cols)
    keys = pa.table({"host": pa.array(df["host"].astype(str)), "date": pa.array(df["date"].astype(str))})
    return pa.Table.from_arrays(keys.columns + out.columns, names=keys.column_names + out.column_names)


def _write_atomic(table: pa.Table, path: Path, digest: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table = table.replace_schema_metadata({DIGEST_KEY: digest.encode()})
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _piece(table: pa.Table, part: Partition) -> pa.Table:
    """The rows of one partition, without the host and date columns (they are the directory names)."""
    mask = pc.and_(pc.equal(table["host"], part.host), pc.equal(table["date"], part.date))
    return table.filter(mask).drop_columns(["host", "date"])


# ------------------------------------------------------------------------------------------------ entry point


@dataclass(frozen=True)
class RollupReport:
    """What a rollup run did: partitions computed and skipped (unchanged), as ``host=…/date=…`` names, and the input
    files left out because they failed their checksum (named relative to the store, with the reason)."""

    computed: list[str]
    skipped: list[str]
    damaged: list[str] = field(default_factory=list)


def _verified(root: Path, part: Partition, damaged: list[str]) -> Partition:
    """`part` without its files that fail their data digest (store.check), each named in `damaged`."""
    kept: dict[str, tuple[Path, ...]] = {}
    for table in ("procs", "system"):
        ok_files = []
        for path in getattr(part, table):
            ok, problem = store.check(path)  # the data digest and footer; columns are the SQL's business
            if ok:
                ok_files.append(path)
            else:
                damaged.append(f"{path.relative_to(root).as_posix()}: {problem or 'unreadable'} (not rolled up)")
        kept[table] = tuple(ok_files)
    return Partition(part.host, part.date, kept["procs"], kept["system"])


def rollup(
    root: str | Path,
    engine: str = "duckdb",
    top: int = 10,
    progress: Callable[[str], None] | None = None,
    batch: int = 512,
    batch_bytes: int = BATCH_BYTES,
) -> RollupReport:
    """Compute the rollups of every changed (host, date) partition of the store at `root` with `engine`, in batches
    of at most `batch` partitions and about `batch_bytes` of input files (one batch = one query per table)."""
    root = Path(root)
    engine_kind(engine)  # a bad name is an error even when nothing changed
    if top < 1:
        raise ValueError("top must be at least 1")
    todo: list[tuple[Partition, str]] = []
    skipped: list[tuple[Partition, str]] = []
    for part in partitions(root):
        if not (part.procs and part.system):
            continue  # a segment still being published: rolled up once both tables are there
        digest = part.digest(root)
        (skipped if stored_digest(root, part) == digest else todo).append((part, digest))
    skipped_names = [p.rel for p, _ in skipped]
    if not todo:
        return RollupReport([], skipped_names)
    eng = engine_for(engine)
    damaged: list[str] = []
    chunks: list[list[tuple[Partition, str]]] = [[]]
    size = 0
    for item in todo:
        grow = sum(f.stat().st_size for f in item[0].procs + item[0].system)
        if chunks[-1] and (len(chunks[-1]) >= batch or size + grow > batch_bytes):
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += grow
    done = 0
    try:
        for chunk in chunks:
            done += len(chunk)
            parts = [p for p in (_verified(root, p, damaged) for p, _ in chunk) if p.procs and p.system]
            if not parts:
                continue
            frames = eng.run(root, parts, top)
            shaped = {t: shape(t, frames[t]) for t in ROLLUP_TABLES}
            for part, digest in chunk:
                for table in ROLLUP_TABLES:  # host_minute last: its digest marks the partition complete
                    _write_atomic(_piece(shaped[table], part), rollup_path(root, table, part), digest)
            if progress:
                progress(f"rolled up {done}/{len(todo)} partitions")
    finally:
        eng.close()
    return RollupReport([p.rel for p, _ in todo], skipped_names, damaged)


def read_rollup(root: str | Path, table: RollupTable) -> pd.DataFrame:
    """Every partition of a rollup table as one frame with host and date columns (empty frame when none)."""
    base = Path(root) / ROLLUP_DIR / table
    if not base.is_dir():
        return pd.DataFrame()
    import duckdb

    con = duckdb.connect()
    try:
        glob = str(base / "host=*" / "date=*" / "part.parquet").replace("'", "''")
        return con.execute(
            f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true,"
            " hive_types = {'host': VARCHAR, 'date': VARCHAR})"
        ).df()
    finally:
        con.close()
