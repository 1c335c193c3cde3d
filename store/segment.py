"""Closed segments: turn one segment's decoded rows into the stored tables and publish them; verify and read them.

``build_tables`` makes the three stored tables of a segment (schema in store.schema): process rows with their tree
columns (from the caller's ``derive``: the store never imports the analysis code), system rows with fixed column
names, cgroup rows. ``publish`` writes them per UTC date into ``<table>/host=H/date=D/seg-<stamp>Z.parquet``: each
file is written to ``*.tmp``, fsynced and renamed, cgroups and system first, procs last; the footer's key-value
metadata carries ``pmi_schema_version``, host, boot id, ``pmi_data_crc32`` (CRC32 and length of every byte before
the footer) and ``pmi_footer_crc32`` (CRC32 of the footer itself, taken with that value set to ``ffffffff``), and
every page has its CRC (Parquet page checksums) for engines that check them. ``check`` tests one file without
decoding it: both digests, schema version, required columns and their types.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from store import files
from store.schema import (
    CGROUP_MEM_FIELD_PREFIX,
    CGROUPS_SCHEMA,
    COLLECTOR_FIELDS,
    FOOTER_DIGEST_SINCE,
    MEMINFO_COLUMNS,
    PROC_SUM_COLUMNS,
    PROCS_SCHEMA,
    SAMPLE_COLUMNS,
    SAMPLE_TYPES,
    SCHEMA_VERSION,
    SCHEMAS,
    STRING_COLUMNS,
    SYSTEM_SCHEMA,
    TREE_SCHEMA,
    TS,
    Table,
    meminfo_column,
)

Derive = Callable[[pa.Table], pa.Table]
"""Tree function: process rows of one host (ts, pid, ppid, start_time, the metric columns; any order, any number of
snapshots) -> TREE_SCHEMA columns for the same rows in the same order (memlib.tree.stored_tree)."""

DIGEST_KEY = b"pmi_data_crc32"
FOOTER_KEY = b"pmi_footer_crc32"  # CRC32 of the footer itself, computed with this value set to FOOTER_PENDING
FOOTER_PENDING = b"ffffffff"
_DELTA_COLUMNS = [
    "ts", "pid", "ppid", "start_time", "uid", "rss_bytes", "vsz_bytes", "threads", "pss_bytes", "uss_bytes",
    "swap_bytes", "smaps_ts", "level", "parent_start_time", "descendants", "subtree_rss_bytes", "subtree_pss_bytes",
    "subtree_uss_bytes", "subtree_swap_bytes",
]  # fmt: skip
_DICT = pa.dictionary(pa.int32(), pa.string())


@dataclass
class SegmentTables:
    """The stored tables of one segment of one host (procs sorted by pid, start_time, ts; system and cgroups by ts)."""

    host: str
    boot_id: str
    procs: pa.Table
    system: pa.Table
    cgroups: pa.Table
    notices: list[str] = field(default_factory=list)


def _times_us(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Any timestamp column -> timestamp[us, UTC] (finer digits truncated)."""
    return col.cast(pa.int64()).cast(pa.timestamp("ns", tz="UTC")).cast(TS, safe=False) if col.type != TS else col


def _constant(text: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([text], type=pa.string()))


def procs_rows(table: pa.Table | None, boot_id: str) -> pa.Table:
    """Decoded process rows (ts + SAMPLE_COLUMNS, any types close to SAMPLE_TYPES; missing nullable columns null)
    -> the stored sample columns (PROCS_SCHEMA without the tree columns), rows with a null pid/ppid/rss/vsz dropped.
    KeyError naming a missing required column."""
    n = 0 if table is None else table.num_rows
    present = set() if table is None else set(table.column_names)
    cols: list[pa.ChunkedArray | pa.Array] = []
    names: list[str] = []
    for f in PROCS_SCHEMA:
        if f.name in TREE_SCHEMA.names:
            continue
        if f.name in present:
            col = table.column(f.name)  # type: ignore[union-attr]
            if pa.types.is_timestamp(f.type):
                col = _times_us(col) if pa.types.is_timestamp(col.type) else col.cast(f.type)
            elif f.name in STRING_COLUMNS:
                col = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col.cast(pa.string()))
                col = col.cast(_DICT)
            elif col.type != f.type:
                col = col.cast(f.type)
        elif f.name == "boot_id":
            col = _constant(boot_id, n)
        elif f.name in ("pid", "ppid", "rss_bytes", "vsz_bytes", "ts"):
            raise KeyError(f"missing required column {f.name!r}")
        else:
            col = pa.nulls(n, _DICT if f.name in STRING_COLUMNS else f.type)
        cols.append(col)
        names.append(f.name)
    out = pa.Table.from_arrays(cols, names=names)
    required = ("ts", "pid", "ppid", "rss_bytes", "vsz_bytes")
    if any(out.column(c).null_count for c in required):
        keep = pc.is_valid(out.column("ts"))
        for c in required[1:]:
            keep = pc.and_(keep, pc.is_valid(out.column(c)))
        out = out.filter(keep)
    return out


def with_tree(procs: pa.Table, derive: Derive) -> pa.Table:
    """Stored sample columns of one host -> the same rows sorted by (pid, start_time, ts) with the tree columns."""
    tree = derive(procs)  # rows still in sample order: the tree code needs no reordering
    if tree.num_rows != procs.num_rows:
        raise ValueError(f"derive returned {tree.num_rows} rows for {procs.num_rows}")
    for f in TREE_SCHEMA:
        col = tree.column(f.name)
        procs = procs.append_column(f.name, _times_us(col) if f.type == TS else col.cast(f.type))
    return procs.sort_by([("pid", "ascending"), ("start_time", "ascending"), ("ts", "ascending")])


def system_rows(table: pa.Table | None, boot_id: str) -> tuple[pa.Table, pa.Table]:
    """Wide decoded system rows (ts + one column per /proc/meminfo field under its kernel name, and cgroup memory as
    CGROUP_MEM_FIELD_PREFIX + path) -> (SYSTEM rows sorted by ts, CGROUPS rows sorted by cgroup, ts)."""
    if table is None or table.num_rows == 0:
        return SYSTEM_SCHEMA.empty_table(), CGROUPS_SCHEMA.empty_table()
    table = table.sort_by([("ts", "ascending")])
    n = table.num_rows
    ts = _times_us(table.column("ts"))
    fields = [c for c in table.column_names if c not in ("ts", "host", "boot_id")]
    by_column = {meminfo_column(f): f for f in fields if not f.startswith(CGROUP_MEM_FIELD_PREFIX)}
    arrays = [ts, _constant(boot_id, n)]
    names = ["ts", "boot_id"]
    for col in [*MEMINFO_COLUMNS.values(), *COLLECTOR_FIELDS.values()]:
        f = by_column.pop(col, None)
        arrays.append(pa.nulls(n, pa.int64()) if f is None else table.column(f).cast(pa.int64()))
        names.append(col)
    for col in PROC_SUM_COLUMNS:  # filled from the process rows by with_proc_sums
        by_column.pop(col, None)
        arrays.append(pa.nulls(n, pa.int64()))
        names.append(col)
    for col, f in by_column.items():  # fields this version does not know: kept under their generic name
        arrays.append(table.column(f).cast(pa.int64()))
        names.append(col)
    system = pa.Table.from_arrays(arrays, names=names)
    cg_fields = [f for f in fields if f.startswith(CGROUP_MEM_FIELD_PREFIX)]
    if not cg_fields:
        return system, CGROUPS_SCHEMA.empty_table()
    ts_np = ts.cast(pa.int64()).to_numpy()
    parts_ts, parts_cg, parts_v = [], [], []
    for f in cg_fields:
        col = table.column(f).cast(pa.int64())
        valid = col.is_valid().to_numpy(zero_copy_only=False)
        if not valid.any():
            continue
        parts_ts.append(ts_np[valid])
        parts_v.append(col.to_numpy(zero_copy_only=False)[valid].astype(np.int64))
        parts_cg.append(np.full(int(valid.sum()), f[len(CGROUP_MEM_FIELD_PREFIX) :], dtype=object))
    if not parts_ts:
        return system, CGROUPS_SCHEMA.empty_table()
    cts = np.concatenate(parts_ts)
    cgroups = pa.Table.from_arrays(
        [
            pa.array(cts).cast(pa.timestamp("us", tz="UTC")),
            _constant(boot_id, len(cts)),
            pa.array(np.concatenate(parts_cg), type=pa.string()),
            pa.array(np.concatenate(parts_v)),
        ],
        schema=pa.schema([(f.name, _DICT if f.name == "boot_id" else f.type) for f in CGROUPS_SCHEMA]),
    ).sort_by([("cgroup", "ascending"), ("ts", "ascending")])
    return system, cgroups.set_column(2, "cgroup", pc.dictionary_encode(cgroups.column("cgroup")))


def build_tables(
    host: str, boot_id: str, procs: pa.Table | None, system: pa.Table | None, derive: Derive
) -> SegmentTables:
    """One segment's decoded rows (see procs_rows / system_rows) -> its stored tables, tree columns derived."""
    p = with_tree(procs_rows(procs, boot_id), derive)
    s, c = system_rows(system, boot_id)
    return SegmentTables(host, boot_id, p, with_proc_sums(s, p), c)


def with_proc_sums(system: pa.Table, procs: pa.Table) -> pa.Table:
    """SYSTEM rows and the PROCS rows of the same samples -> the system rows with PROC_SUM_COLUMNS filled per sample
    (a sample without process rows: processes 0, pss_known_processes 0, the sums null)."""
    if system.num_rows == 0:
        return system
    sys_ts = system.column("ts").cast(pa.int64()).to_numpy()
    out = {c: np.zeros(len(sys_ts), np.int64) for c in PROC_SUM_COLUMNS}
    seen = {c: np.zeros(len(sys_ts), bool) for c in PROC_SUM_COLUMNS}
    if procs.num_rows:
        rss = procs.column("rss_bytes")
        pss = procs.column("pss_bytes")
        grouped = (
            pa.table(
                {
                    "ts": procs.column("ts").cast(pa.int64()),
                    "rss": rss,
                    "pss": pss,
                    "krss": pc.if_else(pc.is_valid(pss), rss, None),
                }
            )
            .group_by("ts")
            .aggregate(
                [
                    ("rss", "count", pc.CountOptions(mode="all")),
                    ("rss", "sum"),
                    ("pss", "sum"),
                    ("pss", "count"),
                    ("krss", "sum"),
                ]
            )
        )
        at = np.searchsorted(sys_ts, grouped.column("ts").to_numpy())
        ok = (at < len(sys_ts)) & (sys_ts[np.minimum(at, len(sys_ts) - 1)] == grouped.column("ts").to_numpy())
        for col, agg in zip(
            PROC_SUM_COLUMNS, ("rss_count", "rss_sum", "pss_sum", "pss_count", "krss_sum"), strict=True
        ):
            values = grouped.column(agg)
            valid = values.is_valid().to_numpy(zero_copy_only=False) & ok
            out[col][at[valid]] = values.to_numpy(zero_copy_only=False)[valid]
            seen[col][at[valid]] = True
    for col in ("processes", "pss_known_processes"):  # counts: 0 where the sample has no process row
        seen[col][:] = True
    for col in PROC_SUM_COLUMNS:
        system = system.set_column(
            system.schema.get_field_index(col), col, pa.array(out[col], pa.int64(), mask=~seen[col])
        )
    return system


# ---------------------------------------------------------------------------------------------------- writing


class _CrcSink(io.RawIOBase):
    """A write-only file wrapper that keeps the CRC32 and count of every byte written through it."""

    def __init__(self, fh: io.BufferedWriter) -> None:
        self.fh = fh
        self.crc = 0
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.crc = zlib.crc32(b, self.crc)
        self.n += len(b)
        return self.fh.write(b)


def _write_file(table: pa.Table, path: Path, meta: dict[bytes, bytes], kind: Table) -> None:
    """Write `table` to path + ".tmp" (digest in the footer), fsync, rename to `path`."""
    tmp = path.with_name(path.name + files.TMP_SUFFIX)
    table = table.replace_schema_metadata(meta)
    dict_cols = [c for c in table.column_names if pa.types.is_dictionary(table.schema.field(c).type)]
    options: dict = {
        "compression": "zstd",
        "compression_level": 3,
        "use_dictionary": dict_cols,
        "write_page_checksum": True,
        "write_statistics": True,
    }
    if kind == "procs":
        options["column_encoding"] = {c: "DELTA_BINARY_PACKED" for c in _DELTA_COLUMNS if c in table.column_names}
        options["sorting_columns"] = [pq.SortingColumn(table.schema.get_field_index(c)) for c in ("pid", "start_time")]
    try:
        with open(tmp, "wb") as fh:
            sink = _CrcSink(fh)
            writer = pq.ParquetWriter(sink, table.schema, **options)
            writer.write_table(table, row_group_size=1 << 20)
            writer.add_key_value_metadata(
                {DIGEST_KEY.decode(): f"{sink.crc:08x}:{sink.n}", FOOTER_KEY.decode(): FOOTER_PENDING.decode()}
            )
            writer.close()
            fh.flush()
        _seal_footer(tmp)
        os.replace(tmp, path)
    except BaseException:  # disk full, ...: no temp file left behind (readers skip it anyway)
        tmp.unlink(missing_ok=True)
        raise


def _footer_value_at(footer: bytes, value: bytes) -> int:
    """Where FOOTER_KEY's value (`value`, 8 bytes) sits in a Parquet footer (Thrift: key, field header, length 8,
    value); -1 when it is not there."""
    at = footer.find(FOOTER_KEY)
    if at < 0:
        return -1
    pos = footer.find(value, at + len(FOOTER_KEY), at + len(FOOTER_KEY) + 4 + len(value))
    return pos


def _seal_footer(path: Path) -> None:
    """Replace FOOTER_PENDING in the file's footer by the CRC32 of the footer as written (with FOOTER_PENDING in
    place): every byte of the file is then covered by a digest. Same length, so nothing else moves; fsynced."""
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(size - 8)
        (footer_len,) = struct.unpack("<I", fh.read(4))
        start = size - 8 - footer_len
        fh.seek(start)
        footer = fh.read(footer_len)
        pos = _footer_value_at(footer, FOOTER_PENDING)
        if pos < 0:
            raise RuntimeError(f"{path.name}: the footer digest placeholder was not written")
        fh.seek(start + pos)
        fh.write(f"{zlib.crc32(footer):08x}".encode())
        fh.flush()
        os.fsync(fh.fileno())


def _footer_intact(data: bytes, body: int, value: bytes) -> bool:
    """True when the footer's CRC32 (with its own digest value set back to FOOTER_PENDING) equals `value`."""
    footer = bytearray(data[body : len(data) - 8])
    pos = _footer_value_at(bytes(footer), value)
    if pos < 0 or len(value) != len(FOOTER_PENDING):
        return False
    footer[pos : pos + len(value)] = FOOTER_PENDING
    try:
        return zlib.crc32(footer) == int(value, 16)
    except ValueError:
        return False


def _by_date(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """Rows -> [(UTC date 'YYYY-MM-DD', rows of that date)] in date order (a stable split: row order kept)."""
    if table.num_rows == 0:
        return []
    lo, hi = pc.min_max(table.column("ts").cast(pa.int64())).values()
    if lo.as_py() // 86_400_000_000 == hi.as_py() // 86_400_000_000:  # the usual case: one day
        return [(str(np.datetime64(lo.as_py() // 86_400_000_000, "D")), table)]
    days = pc.cast(pc.floor_temporal(table.column("ts"), unit="day"), pa.timestamp("us", tz="UTC"))
    days_np = days.cast(pa.int64()).to_numpy() // 86_400_000_000
    out = []
    for d in np.unique(days_np):
        mask = days_np == d
        text = str(np.datetime64(int(d), "D"))
        out.append((text, table if mask.all() else table.filter(pa.array(mask))))
    return out


def publish(root: Path, seg: SegmentTables, stamp: str | None = None, overwrite: bool = False) -> list[Path]:
    """Write a segment's tables under `root`, split by UTC date; returns the published paths (procs last per date).

    Each date's files are named ``seg-<stamp>Z.parquet`` in every table: `stamp` (the segment's name) for the first
    date, the first sample's stamp for later ones; an existing name gets ``-1``, ``-2``, ... unless `overwrite`
    (re-publishing the same segment after a crash, or a migration re-run, writes the same names again)."""
    meta = {
        b"pmi_schema_version": str(SCHEMA_VERSION).encode(),
        b"host": seg.host.encode("utf-8", "replace"),
        b"boot_id": seg.boot_id.encode("utf-8", "replace"),
    }
    parts: dict[str, dict[Table, pa.Table]] = {}
    for kind, table in (("procs", seg.procs), ("system", seg.system), ("cgroups", seg.cgroups)):
        for day, part in _by_date(table):
            parts.setdefault(day, {})[kind] = part  # type: ignore[index]
    published: list[Path] = []
    for i, (day, tables) in enumerate(sorted(parts.items())):
        first = files.stamp(min(pc.min(t.column("ts")).as_py() for t in tables.values()))
        name = _free_name(Path(root), seg.host, day, stamp if i == 0 and stamp else first, overwrite, list(tables))
        for kind in ("cgroups", "system", "procs"):
            if kind not in tables:
                continue
            folder = files.partition_dir(root, kind, seg.host, day)  # type: ignore[arg-type]
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            _write_file(tables[kind], path, meta, kind)  # type: ignore[arg-type]
            files.fsync_dir(folder)
            published.append(path)
    return published


def _free_name(root: Path, host: str, day: str, stamp_text: str, overwrite: bool, kinds: list[Table]) -> str:
    for bump in range(10_000):
        name = f"seg-{stamp_text}Z.parquet" if bump == 0 else f"seg-{stamp_text}Z-{bump}.parquet"
        if overwrite or not any((files.partition_dir(root, k, host, day) / name).exists() for k in kinds):
            return name
    raise RuntimeError(f"no free segment name for {stamp_text} in date={day}")


# ---------------------------------------------------------------------------------------------------- reading


REQUIRED: dict[Table, tuple[str, ...]] = {
    "procs": ("ts", "pid", "ppid", "start_time", "rss_bytes", "vsz_bytes", "level", "parent_start_time",
              "descendants", "subtree_rss_bytes"),
    "system": ("ts",),
    "cgroups": ("ts", "cgroup", "memory_current_bytes"),
}  # fmt: skip


def _kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_timestamp(t):
        return "time"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    return str(t)


def _schema_problem(schema: pa.Schema, table: Table) -> str | None:
    want = SCHEMAS[table]
    missing = [c for c in REQUIRED[table] if c not in schema.names]
    if missing:
        return f"missing column(s) {', '.join(missing)}, skipped"
    wrong = [f.name for f in want if f.name in schema.names and _kind(schema.field(f.name).type) != _kind(f.type)]
    if wrong:
        return f"column(s) of the wrong type: {', '.join(wrong)}, skipped"
    return None


def ts_range(path: Path) -> tuple[int, int] | None:
    """A closed file -> (min, max) of its ``ts`` in µs since the epoch from its footer's statistics, reading only the
    footer (what lets a reader skip files outside a time window without reading them); None when the footer is
    unreadable, its own checksum (sealed files) does not match, or a row group lacks the statistic."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size < 12:
                return None
            fh.seek(size - 8)
            tail = fh.read(8)
            (footer_len,) = struct.unpack_from("<I", tail)
            if tail[4:] != b"PAR1" or footer_len > size - 12:
                return None
            fh.seek(size - 8 - footer_len)
            footer = fh.read(footer_len) + tail
        meta = pq.read_metadata(pa.BufferReader(b"PAR1" + footer))
        kv = meta.metadata or {}
        version = kv.get(b"pmi_schema_version", b"0").decode("ascii", "replace")
        sealed = not version.isdigit() or int(version) >= FOOTER_DIGEST_SINCE or FOOTER_KEY in kv
        if sealed and not _footer_intact(footer, 0, kv.get(FOOTER_KEY, b"")):
            return None
        col = meta.schema.names.index("ts")
        lo: int | None = None
        hi: int | None = None
        for i in range(meta.num_row_groups):
            st = meta.row_group(i).column(col).statistics
            if st is None or not st.has_min_max:
                return None
            a, b = _micros(st.min), _micros(st.max)
            lo, hi = a if lo is None else min(lo, a), b if hi is None else max(hi, b)
        return None if lo is None or hi is None else (lo, hi)
    except (OSError, ValueError, struct.error, pa.ArrowException):
        return None


def _micros(v: object) -> int:
    """A ts statistic (datetime or integer µs) -> µs since the epoch."""
    if isinstance(v, int):
        return v
    if isinstance(v, datetime):
        v = v.replace(tzinfo=None) if v.tzinfo is not None else v  # (pyarrow gives UTC for a UTC column)
        return int(np.datetime64(v, "us").astype(np.int64))
    raise ValueError(f"not a time statistic: {type(v).__name__}")


def check(path: Path, table: Table | None = None, data: bytes | None = None) -> tuple[bool, str | None]:
    """One closed file -> (readable, note). Not readable: damaged (digest mismatch, cut short, unreadable footer), a
    newer schema version, or (given its `table`) a missing required column or a column of the wrong type. Readable
    with a note: a file without the data digest (written by another tool): read unverified."""
    try:
        if data is None:
            data = Path(path).read_bytes()
    except FileNotFoundError:
        return False, None  # deleted meanwhile (retention): the next listing is right
    except OSError as exc:
        return False, f"unreadable ({exc.strerror or exc}), skipped"
    try:
        if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
            return False, "not a Parquet file (damaged or cut short), skipped"
        (footer_len,) = struct.unpack_from("<I", data, len(data) - 8)
        body = len(data) - 8 - footer_len
        if body < 4:
            return False, "damaged Parquet footer, skipped"
        file_meta = pq.read_metadata(pa.BufferReader(data))
        meta = file_meta.metadata or {}
        schema = file_meta.schema.to_arrow_schema()
    except (OSError, pa.ArrowException, ValueError):
        return False, "damaged Parquet footer (unreadable), skipped"
    version = meta.get(b"pmi_schema_version", b"0").decode("ascii", "replace")
    if not version.isdigit() or int(version) > SCHEMA_VERSION:
        return False, f"schema version {version} is newer than this reader ({SCHEMA_VERSION}), skipped"
    if table is not None:
        problem = _schema_problem(schema, table)
        if problem:
            return False, problem
    digest = meta.get(DIGEST_KEY, b"").decode("ascii", "replace")
    try:
        crc_text, n_text = digest.split(":")
        crc, n = int(crc_text, 16), int(n_text)
    except ValueError:
        return True, "no data checksum in the footer (written by another tool?): read unverified"
    if n != body or zlib.crc32(memoryview(data)[:n]) != crc:
        return False, "checksum mismatch (the file is damaged), skipped"
    sealed = int(version) >= FOOTER_DIGEST_SINCE or FOOTER_KEY in meta  # one flipped bit cannot unseal it
    if sealed and not _footer_intact(data, body, meta.get(FOOTER_KEY, b"")):
        return False, "footer checksum mismatch (the file is damaged), skipped"
    return True, None


def verify(path: Path, table: Table | None = None) -> str | None:
    """One closed file -> None when it is readable and verified, else the problem or note (see check)."""
    ok, note = check(path, table)
    return note if not ok or note else None


def read_file(path: Path) -> pa.Table:
    """One closed file -> its rows (page checksums verified; raises pa.ArrowException / OSError when damaged)."""
    return pq.read_table(path, page_checksum_verification=True, partitioning=None)


def file_meta(path: Path) -> dict[str, str]:
    """The footer's key-value metadata of one file as text (host, boot_id, pmi_schema_version, ...)."""
    meta = pq.read_metadata(path).metadata or {}
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in meta.items() if k != b"ARROW:schema"}


SAMPLE_ARROW_COLUMNS = ["ts", *SAMPLE_COLUMNS]
SAMPLE_ARROW_SCHEMA = pa.schema([("ts", pa.timestamp("ns", tz="UTC")), *SAMPLE_TYPES.items()])
