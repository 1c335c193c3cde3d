"""Native dump store: CRC-framed Arrow IPC active segments, compacted to zstd Parquet pairs; readers and retention.

Pure file I/O (no /proc, no streamlit). Layout, per dumps directory:

- ``seg-<YYYYmmddTHHMMSS.fff>Z-<host>.current``: active segment. 16-byte header (``PMISEG1\\n``, schema version as
  uint32 LE, 4 reserved bytes), then frames ``b"PMIF" + kind (P|S) + uint32 LE length + uint32 LE CRC32 + payload``;
  a payload is one Arrow IPC stream (schema + one record batch, zstd buffers) whose schema metadata carries
  ``pmi_schema_version``, ``host`` and ``boot_id``.
- ``seg-<...>Z-<host>.procs.parquet`` + ``.system.parquet``: a closed segment (zstd), published by temp file + rename
  (system first, procs last: the procs file's existence marks the pair complete).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import struct
import sys
import time
import zlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from memlib.schema import (
    CGROUP_MEM_FIELD_PREFIX,
    PROC_COLUMNS,
    SCHEMA_VERSION,
    STORED_PROC_COLUMNS,
    SYSTEM_KEY_COLUMNS,
    conform,
)

MAGIC = b"PMISEG1\n"
HEADER = struct.Struct("<8sII")  # magic, schema version, reserved
FRAME_MAGIC = b"PMIF"
FRAME = struct.Struct("<4scII")  # magic, kind, payload length, crc32
KIND_PROCS = b"P"
KIND_SYSTEM = b"S"
TMP_SUFFIX = ".tmp"

SEGMENT_RE = re.compile(r"^seg-(\d{8}T\d{6}\.\d{3})Z-(.+?)\.(current|procs\.parquet|system\.parquet)$")

_TS = pa.timestamp("ns", tz="UTC")
# the columns a writer receives per sample (STORED_PROC_COLUMNS minus ts/host/boot_id), with their Arrow types
PROC_ARROW_TYPES: dict[str, pa.DataType] = {
    "pid": pa.int32(),
    "ppid": pa.int32(),
    "start_time": _TS,
    "uid": pa.int64(),
    "user": pa.string(),
    "state": pa.string(),
    "name": pa.string(),
    "cmdline": pa.string(),
    "rss_bytes": pa.int64(),
    "vsz_bytes": pa.int64(),
    "threads": pa.int64(),
    "cgroup": pa.string(),
    "pss_bytes": pa.int64(),
    "uss_bytes": pa.int64(),
    "swap_bytes": pa.int64(),
    "smaps_ts": _TS,
}
SAMPLE_PROC_COLUMNS: list[str] = list(PROC_ARROW_TYPES)
_STRING_COLUMNS = ["host", "boot_id", "user", "state", "name", "cmdline", "cgroup"]
# integer columns that change slowly within one process once rows are sorted by (pid, start_time, ts)
_DELTA_COLUMNS = [
    "ts", "pid", "ppid", "start_time", "uid", "rss_bytes", "vsz_bytes", "threads",
    "pss_bytes", "uss_bytes", "swap_bytes", "smaps_ts",
]  # fmt: skip
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression=None)  # the whole payload is compressed at once (cheaper)
_CODEC = pa.Codec("zstd", compression_level=1)
_RAW_LEN = struct.Struct("<I")
STORED_PROC_DTYPES: dict[str, str] = {c: PROC_COLUMNS[c] for c in STORED_PROC_COLUMNS}


@dataclass(frozen=True)
class SegmentFile:
    """One visible segment: path (the .procs.parquet for closed ones), kind "parquet" | "current", sort key."""

    path: Path
    kind: str
    key: str


@dataclass
class SegmentRead:
    """What read_segment returns: procs (STORED_PROC_COLUMNS), system (ts, host, boot_id, meminfo...)."""

    procs: pd.DataFrame
    system: pd.DataFrame
    next_offset: int
    notices: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------- naming


def safe_host(host: str) -> str:
    """Host name made safe for a file name: anything outside [A-Za-z0-9._-] becomes '_' ('' -> 'unknown')."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", host)
    return cleaned or "unknown"


def segment_stem(key_stamp: str, host: str) -> str:
    """('20260101T000000.000', 'h') -> 'seg-20260101T000000.000Z-h'."""
    return f"seg-{key_stamp}Z-{safe_host(host)}"


def _stamp(ts: pd.Timestamp) -> str:
    ts = pd.Timestamp(ts)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y%m%dT%H%M%S.") + f"{ts.microsecond // 1000:03d}"


def _pair_paths(procs_parquet: Path) -> tuple[Path, Path]:
    stem = procs_parquet.name[: -len(".procs.parquet")]
    return procs_parquet, procs_parquet.with_name(stem + ".system.parquet")


def _stem_of(path: Path) -> str:
    m = SEGMENT_RE.match(path.name)
    if not m:
        raise ValueError(f"not a segment file name: {path.name}")
    return path.name[: path.name.index("." + m.group(3))]


# ---------------------------------------------------------------------------------------------------- encoding


def _ts_ns(ts: pd.Timestamp) -> int:
    """A sample time (pd.Timestamp / datetime; naive = UTC) -> ns since the epoch."""
    t = ts if isinstance(ts, pd.Timestamp) else pd.Timestamp(ts)
    return (t if t.tzinfo is None else t.tz_convert("UTC")).value


def _ts_array(values: object) -> pa.Array:
    """Timestamps as int ns since epoch (None = null), datetimes or pd.Timestamps -> Arrow timestamp[ns, UTC]."""
    try:
        return pa.array(values, type=_TS)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        conv = pd.to_datetime(pd.Series(list(values) if not isinstance(values, pd.Series) else values), utc=True)
        return pa.Array.from_pandas(conv.astype("datetime64[ns, UTC]")).cast(_TS)


def procs_table(ts: pd.Timestamp, procs: dict[str, Sequence]) -> pa.Table:
    """Per-sample procs columns (SAMPLE_PROC_COLUMNS; times as int ns or datetimes) -> Arrow table with a ts column
    (for Arrow IPC frames via encode_frame; the collector's writer uses encode_sample)."""
    missing = [c for c in SAMPLE_PROC_COLUMNS if c not in procs]
    if missing:
        raise ValueError(f"procs is missing column(s): {', '.join(missing)}")
    lengths = {c: len(procs[c]) for c in SAMPLE_PROC_COLUMNS}
    n = lengths["pid"]
    if any(v != n for v in lengths.values()):
        raise ValueError(f"procs columns differ in length: {lengths}")
    arrays = [pa.repeat(pa.scalar(_ts_ns(ts), type=_TS), n)]
    for name, typ in PROC_ARROW_TYPES.items():
        values = procs[name]
        if typ == _TS:
            arrays.append(_ts_array(values))
        elif isinstance(values, pd.Series):
            arrays.append(pa.Array.from_pandas(values, type=typ))
        else:
            arrays.append(pa.array(values, type=typ))
    return pa.Table.from_arrays(arrays, names=["ts", *SAMPLE_PROC_COLUMNS])


_FIELD_NAMES_CACHE: dict[tuple[str, ...], pa.Array] = {}


def system_table(ts: pd.Timestamp, meminfo: dict[str, int]) -> pa.Table:
    """meminfo {field: bytes or count} -> long Arrow table (ts, field, value int64), one row per field."""
    keys = tuple(meminfo)
    fields = _FIELD_NAMES_CACHE.get(keys)
    if fields is None:
        fields = pa.array([str(k) for k in keys], type=pa.string())
        if len(_FIELD_NAMES_CACHE) > 16:
            _FIELD_NAMES_CACHE.clear()
        _FIELD_NAMES_CACHE[keys] = fields
    return pa.Table.from_arrays(
        [
            pa.repeat(pa.scalar(_ts_ns(ts), type=_TS), len(keys)),
            fields,
            pa.array(list(meminfo.values()), type=pa.int64()),
        ],
        names=["ts", "field", "value"],
    )


def system_tables_wide(tables: list[pa.Table]) -> pa.Table | None:
    """System frames (long: ts, field, value; or wide: ts + one column per field) -> one wide table, or None."""
    long = _concat([t for t in tables if "field" in t.column_names])
    parts = [t for t in [system_wide(long), _concat([t for t in tables if "field" not in t.column_names])] if t]
    return _concat(parts)


def system_wide(long: pa.Table | None) -> pa.Table | None:
    """Long system rows (ts, field, value) -> one row per ts with one int64 column per field (first-seen order)."""
    if long is None or long.num_rows == 0:
        return None
    ts_codes, ts_values = pd.factorize(long.column("ts").to_pandas(), sort=True)
    f_codes, fields = pd.factorize(long.column("field").to_pandas())
    value_col = long.column("value")
    values = np.zeros((len(ts_values), len(fields)), dtype=np.int64)
    missing = np.ones_like(values, dtype=bool)
    values[ts_codes, f_codes] = value_col.fill_null(0).to_numpy()
    missing[ts_codes, f_codes] = value_col.is_null().to_numpy(zero_copy_only=False)
    arrays = [pa.array(pd.DatetimeIndex(ts_values)).cast(_TS)]
    arrays += [pa.array(values[:, j], mask=missing[:, j]) for j in range(len(fields))]
    fields = [str(f) for f in fields]
    return pa.Table.from_arrays(arrays, names=["ts", *fields])


def _file_metadata(host: str, boot_id: str) -> dict[bytes, bytes]:
    return {
        b"pmi_schema_version": str(SCHEMA_VERSION).encode(),
        b"host": host.encode(),
        b"boot_id": boot_id.encode(),
    }


# ---------------------------------------------------------------------------------------------------- columnar codec
# The collector's per-sample payloads use a small self-describing columnar body (building Arrow arrays from Python
# lists and an IPC stream per sample cost ~4x more CPU). Body, little endian:
#   b"PMC1", uint32 rows, int64 ts (ns), host and boot_id (each uint16 length + utf-8), uint16 columns, then per
#   column: uint8 name length + name, code (b"i" int64 / b"t" timestamp ns; null = INT64_MIN; b"s" utf-8 strings
#   joined by NUL), uint32 data length + data, uint32 mask length (0 or rows) + one byte per row (1 = null).
COLUMNAR_MAGIC = b"PMC1"
_I64_NULL = -(1 << 63)
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_BODY_HEAD = struct.Struct("<4sIq")
PROC_COLUMN_CODES: dict[str, bytes] = {
    name: (b"t" if typ == _TS else b"s" if typ == pa.string() else b"i") for name, typ in PROC_ARROW_TYPES.items()
}


def _le(arr: array) -> bytes:
    """int64 array -> little-endian bytes."""
    if sys.byteorder == "big":
        arr.byteswap()
    return arr.tobytes()


def _enc_ints(name: str, values: Sequence) -> bytes:
    try:
        return _le(array("q", values))
    except TypeError:
        pass
    except OverflowError as exc:
        raise ValueError(f"column {name!r}: value out of int64 range") from exc
    try:
        return _le(array("q", [_I64_NULL if v is None or v is pd.NA else v for v in values]))
    except TypeError:  # floats with NaN (a pandas column), numpy scalars of other kinds ...
        arr = pa.array(values, type=pa.int64(), from_pandas=True)
        return arr.fill_null(_I64_NULL).to_numpy().astype("<i8").tobytes()
    except OverflowError as exc:
        raise ValueError(f"column {name!r}: value out of int64 range") from exc


def _enc_times(name: str, values: Sequence) -> bytes:
    try:
        return _enc_ints(name, values)
    except (TypeError, ValueError, pa.ArrowException):
        arr = _ts_array(values).cast(pa.int64())
        return arr.fill_null(_I64_NULL).to_numpy().astype("<i8").tobytes()


def _enc_strings(values: Sequence) -> tuple[bytes, bytes]:
    try:
        joined = "\0".join(values)
        mask = b""
    except TypeError:  # None (null) or non-str items
        mask = bytes(v is None or v is pd.NA for v in values)
        joined = "\0".join("" if v is None or v is pd.NA else str(v) for v in values)
    if joined.count("\0") != max(len(values) - 1, 0):  # a NUL inside a value: replace it
        joined = "\0".join(("" if v is None or v is pd.NA else str(v)).replace("\0", "\ufffd") for v in values)
    return joined.encode("utf-8", "replace"), mask


def _str16(text: str) -> bytes:
    raw = text.encode("utf-8", "replace")[:65535]
    return _U16.pack(len(raw)) + raw


def encode_columns(ts_ns: int, host: str, boot_id: str, columns: list[tuple[str, bytes, Sequence]], rows: int) -> bytes:
    """(name, code b"i"/b"t"/b"s", values) columns of `rows` rows -> a columnar body (see COLUMNAR_MAGIC)."""
    parts = [_BODY_HEAD.pack(COLUMNAR_MAGIC, rows, ts_ns), _str16(host), _str16(boot_id), _U16.pack(len(columns))]
    for name, code, values in columns:
        raw_name = name.encode("utf-8")
        if code == b"s":
            data, mask = _enc_strings(values)
        else:
            data, mask = (_enc_times if code == b"t" else _enc_ints)(name, values), b""
        parts += [bytes((len(raw_name),)), raw_name, code, _U32.pack(len(data)), data, _U32.pack(len(mask)), mask]
    return b"".join(parts)


class ColumnarBody(NamedTuple):
    """A parsed columnar body: rows, ts (ns), host, boot_id, columns [(name, code, data, mask)]."""

    rows: int
    ts_ns: int
    host: str
    boot_id: str
    columns: list[tuple[str, bytes, bytes, bytes]]


def parse_columns(body: bytes) -> ColumnarBody:
    """Split a columnar body into its parts, checking every length (ValueError / struct.error when damaged)."""
    magic, rows, ts_ns = _BODY_HEAD.unpack_from(body, 0)
    if magic != COLUMNAR_MAGIC:
        raise ValueError("not a columnar body")
    pos = _BODY_HEAD.size
    texts = []
    for _ in range(2):
        (length,) = _U16.unpack_from(body, pos)
        texts.append(body[pos + 2 : pos + 2 + length].decode("utf-8", "replace"))
        pos += 2 + length
    (ncols,) = _U16.unpack_from(body, pos)
    pos += 2
    columns = []
    for _ in range(ncols):
        name_len = body[pos]
        name = body[pos + 1 : pos + 1 + name_len].decode("utf-8", "replace")
        pos += 1 + name_len
        code = body[pos : pos + 1]
        (data_len,) = _U32.unpack_from(body, pos + 1)
        data = body[pos + 5 : pos + 5 + data_len]
        pos += 5 + data_len
        (mask_len,) = _U32.unpack_from(body, pos)
        mask = body[pos + 4 : pos + 4 + mask_len]
        pos += 4 + mask_len
        if len(data) != data_len or len(mask) != mask_len or mask_len not in (0, rows):
            raise ValueError(f"column {name!r}: truncated")
        if code in (b"i", b"t"):
            if data_len != 8 * rows:
                raise ValueError(f"column {name!r}: {data_len} bytes for {rows} rows")
        elif code == b"s":
            if rows and data.count(0) != rows - 1:
                raise ValueError(f"column {name!r}: wrong number of strings for {rows} rows")
        else:
            raise ValueError(f"column {name!r}: unknown type code {code!r}")
        columns.append((name, code, data, mask))
    if pos != len(body):
        raise ValueError(f"{len(body) - pos} trailing bytes after the last column")
    return ColumnarBody(rows, ts_ns, texts[0], texts[1], columns)


def _strings_from_joined(joined: bytes, n: int, null: np.ndarray | None) -> pa.Array:
    """NUL-joined utf-8 of n strings -> Arrow string array (vectorised: no Python object per string)."""
    if n == 0:
        return pa.array([], type=pa.string())
    buf = np.frombuffer(joined, dtype=np.uint8)
    nul = np.flatnonzero(buf == 0)
    starts = np.empty(n + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:n] = nul + 1
    starts[n] = len(buf) + 1
    offsets = starts - np.arange(n + 1, dtype=np.int64)  # separators removed
    clean = buf[buf != 0] if len(nul) else buf
    validity = None
    if null is not None and null.any():
        validity = pa.array(~null, type=pa.bool_()).buffers()[1]
    if offsets[-1] < 2**31:
        arr = pa.Array.from_buffers(
            pa.string(), n, [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(clean.tobytes())]
        )
    else:
        arr = pa.Array.from_buffers(
            pa.large_string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(clean.tobytes())]
        )
    try:
        arr.validate(full=True)
    except pa.ArrowInvalid:  # bytes that are not UTF-8 (a damaged or foreign file): replace them, keep the rows
        fixed = joined.decode("utf-8", "replace").encode("utf-8")
        if fixed == joined:
            raise
        return _strings_from_joined(fixed, n, null)
    return arr


def columnar_table(bodies: list[ColumnarBody]) -> pa.Table | None:
    """Parsed columnar bodies -> one Arrow table (ts + their columns; host/boot_id of the first in the metadata).

    Bodies with different column lists are built separately and concatenated (missing columns null)."""
    if not bodies:
        return None
    groups: dict[tuple[tuple[str, bytes], ...], list[ColumnarBody]] = {}
    for body in bodies:
        groups.setdefault(tuple((c[0], c[1]) for c in body.columns), []).append(body)
    tables = []
    for signature, group in groups.items():
        rows = np.array([b.rows for b in group], dtype=np.int64)
        total = int(rows.sum())
        ts = np.repeat(np.array([b.ts_ns for b in group], dtype=np.int64), rows)
        arrays = [pa.array(ts).cast(_TS)]
        for j, (_, code) in enumerate(signature):
            masks = [b.columns[j][3] or bytes(b.rows) for b in group]
            null = np.frombuffer(b"".join(masks), dtype=np.uint8).astype(bool) if total else None
            if code == b"s":
                joined = b"\0".join(b.columns[j][2] for b in group if b.rows)
                arrays.append(_strings_from_joined(joined, total, null))
            else:
                ints = np.frombuffer(b"".join(b.columns[j][2] for b in group), dtype="<i8")
                arr = pa.array(ints, mask=(ints == _I64_NULL) | null if total else None)
                arrays.append(arr.cast(_TS) if code == b"t" else arr)
        tables.append(pa.Table.from_arrays(arrays, names=["ts", *(name for name, _ in signature)]))
    table = _concat(tables)
    assert table is not None
    return table.replace_schema_metadata(_file_metadata(bodies[0].host, bodies[0].boot_id))


def decode_columns(body: bytes) -> pa.Table:
    """One columnar body -> Arrow table (ts first, then its columns; host/boot_id/version in the metadata)."""
    table = columnar_table([parse_columns(body)])
    assert table is not None
    return table


def _compressed(body: bytes) -> bytes:
    return _RAW_LEN.pack(len(body)) + _CODEC.compress(body, asbytes=True)


def _framed(kind: bytes, payload: bytes) -> bytes:
    return FRAME.pack(FRAME_MAGIC, kind, len(payload), zlib.crc32(payload)) + payload


def encode_sample(
    ts: pd.Timestamp, procs: dict[str, Sequence], meminfo: dict[str, int], host: str, boot_id: str
) -> bytes:
    """One sample -> its procs frame + system frame (columnar bodies, zstd). ValueError for bad procs columns."""
    missing = [c for c in SAMPLE_PROC_COLUMNS if c not in procs]
    if missing:
        raise ValueError(f"procs is missing column(s): {', '.join(missing)}")
    n = len(procs["pid"])
    lengths = {c: len(procs[c]) for c in SAMPLE_PROC_COLUMNS}
    if any(v != n for v in lengths.values()):
        raise ValueError(f"procs columns differ in length: {lengths}")
    ts_ns = _ts_ns(ts)
    columns = [(c, PROC_COLUMN_CODES[c], procs[c]) for c in SAMPLE_PROC_COLUMNS]
    procs_body = encode_columns(ts_ns, host, boot_id, columns, n)
    keys = [str(k) for k in meminfo]
    system_body = encode_columns(
        ts_ns, host, boot_id, [("field", b"s", keys), ("value", b"i", list(meminfo.values()))], len(keys)
    )
    return _framed(KIND_PROCS, _compressed(procs_body)) + _framed(KIND_SYSTEM, _compressed(system_body))


def encode_frame(kind: bytes, table: pa.Table, host: str, boot_id: str) -> bytes:
    """One frame: header (magic, kind, length, CRC32) + an Arrow IPC stream of `table` (zstd)."""
    table = table.replace_schema_metadata(_file_metadata(host, boot_id))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    raw = sink.getvalue()
    payload = _RAW_LEN.pack(raw.size) + _CODEC.compress(raw, asbytes=True)
    return FRAME.pack(FRAME_MAGIC, kind, len(payload), zlib.crc32(payload)) + payload


Decoded = ColumnarBody | pa.Table


def decode_payload(payload: bytes) -> Decoded:
    """Frame payload -> a parsed ColumnarBody or an Arrow table. Payload = uint32 LE raw length + zstd(body); the
    body is columnar (COLUMNAR_MAGIC, what the collector writes) or an Arrow IPC stream (encode_frame). A bare IPC
    stream (starts with the 0xFFFFFFFF continuation marker, the first development format) also reads."""
    if payload[:4] == b"\xff\xff\xff\xff":
        return pa.ipc.open_stream(payload).read_all()
    (raw_len,) = _RAW_LEN.unpack_from(payload, 0)
    raw = _CODEC.decompress(payload[_RAW_LEN.size :], decompressed_size=raw_len, asbytes=True)
    if raw[:4] == COLUMNAR_MAGIC:
        return parse_columns(raw)
    return pa.ipc.open_stream(raw).read_all()


def decode_frames(data: bytes, start: int) -> tuple[list[tuple[bytes, Decoded]], list[int], str | None]:
    """Frames in data[start:] -> ([(kind, decoded)], [offset after each frame], problem or None)."""
    out: list[tuple[bytes, Decoded]] = []
    ends: list[int] = []
    pos = start
    end = len(data)
    while pos < end:
        if end - pos < FRAME.size:
            return out, ends, f"short frame header at byte {pos} (torn tail dropped)"
        magic, kind, length, crc = FRAME.unpack_from(data, pos)
        if magic != FRAME_MAGIC or kind not in (KIND_PROCS, KIND_SYSTEM):
            return out, ends, f"bad frame marker at byte {pos} (rest dropped)"
        body_start = pos + FRAME.size
        if end - body_start < length:
            return out, ends, f"short frame at byte {pos} (torn tail dropped)"
        payload = data[body_start : body_start + length]
        if zlib.crc32(payload) != crc:
            return out, ends, f"CRC mismatch in frame at byte {pos} (rest dropped)"
        try:
            decoded = decode_payload(payload)
        except (pa.ArrowException, OSError, struct.error, ValueError, IndexError) as exc:
            return out, ends, f"unreadable frame at byte {pos}: {exc}"
        out.append((kind, decoded))
        pos = body_start + length
        ends.append(pos)
    return out, ends, None


def frames_table(frames: list[tuple[bytes, Decoded]], kind: bytes) -> pa.Table | None:
    """The frames of one kind as one Arrow table (columnar bodies built in one go), or None."""
    bodies = [d for k, d in frames if k == kind and isinstance(d, ColumnarBody)]
    tables = [d for k, d in frames if k == kind and not isinstance(d, ColumnarBody)]
    if kind == KIND_SYSTEM:
        built = columnar_table(bodies)
        return system_tables_wide(([built] if built is not None else []) + tables)
    built = columnar_table(bodies)
    return _concat(([built] if built is not None else []) + tables)


def frames_meta(frames: list[tuple[bytes, Decoded]]) -> tuple[str, str]:
    """(host, boot_id) recorded in the first frame."""
    first = frames[0][1]
    if isinstance(first, ColumnarBody):
        return first.host, first.boot_id
    meta = first.schema.metadata
    return _meta_text(meta, b"host") or "", _meta_text(meta, b"boot_id") or ""


# ---------------------------------------------------------------------------------------------------- frames


def _frames_to_frames(frames: list[tuple[bytes, Decoded]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    host, boot_id = frames_meta(frames)
    procs = _procs_frame(frames_table(frames, KIND_PROCS), host, boot_id)
    system = _system_frame(frames_table(frames, KIND_SYSTEM), host, boot_id)
    return procs, system


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    if not tables:
        return None
    tables = [t.replace_schema_metadata(None) for t in tables]
    return pa.concat_tables(tables, promote_options="default")


def _procs_frame(table: pa.Table | None, host: str | None, boot_id: str | None) -> pd.DataFrame:
    if table is None or table.num_rows == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in STORED_PROC_DTYPES.items()})
    df = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    if "host" not in df.columns:
        df["host"] = host or ""
    if "boot_id" not in df.columns:
        df["boot_id"] = boot_id or ""
    for c in ("pid", "ppid", "rss_bytes", "vsz_bytes"):
        if c in df.columns and df[c].isna().any():
            df = df[df[c].notna()]
    out = conform(df.reset_index(drop=True), STORED_PROC_DTYPES)
    for c, dtype in STORED_PROC_DTYPES.items():  # same categories order whichever file kind the rows came from
        if dtype == "category":
            cats = out[c].cat.categories
            if not cats.is_monotonic_increasing:
                out[c] = out[c].cat.reorder_categories(sorted(cats))
    return out


def _system_frame(table: pa.Table | None, host: str | None, boot_id: str | None) -> pd.DataFrame:
    keys = {k: v for k, v in SYSTEM_KEY_COLUMNS.items() if k != "snap"}
    if table is None or table.num_rows == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in keys.items()})
    df = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    if "host" not in df.columns:
        df["host"] = host or ""
    if "boot_id" not in df.columns:
        df["boot_id"] = boot_id or ""
    out = conform(df, keys)
    # one frame built at once (a column insert per meminfo field cost ~10 ms per file)
    fields = {c: df[c] if str(df[c].dtype) == "Int64" else df[c].astype("Int64") for c in df.columns if c not in keys}
    return pd.DataFrame({**{c: out[c] for c in out.columns}, **fields}).reset_index(drop=True)


def _meta_text(meta: dict[bytes, bytes] | None, key: bytes) -> str | None:
    if not meta or key not in meta:
        return None
    return meta[key].decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------- writer


class SegmentWriter:
    """Appends one procs + one system frame per sample to the active `.current`; compacts it to Parquet per period."""

    def __init__(self, dumps_dir: Path, host: str, boot_id: str, period_s: int = 3600) -> None:
        """Writer for `dumps_dir` (created if missing); a new segment starts every `period_s` seconds of running."""
        self.dumps_dir = Path(dumps_dir)
        self.dumps_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.boot_id = boot_id
        self.period_s = period_s
        self.current: Path | None = None
        self._fd: int | None = None
        self._size = 0  # bytes of whole samples in the active segment (a failed write is cut back to this)
        self._opened_at = 0.0
        self.closed: list[Path] = []  # procs.parquet paths published by this writer, oldest first
        self.samples = 0

    def _new_current(self, ts: pd.Timestamp) -> None:
        base = pd.Timestamp(ts)
        base = base.tz_localize("UTC") if base.tzinfo is None else base.tz_convert("UTC")
        for bump in range(100_000):
            stem = segment_stem(_stamp(base + pd.Timedelta(milliseconds=bump)), self.host)
            if not any(self.dumps_dir.glob(glob_escape(stem) + ".*")):
                break
        else:
            raise RuntimeError(f"no free segment name in {self.dumps_dir}")
        path = self.dumps_dir / f"{stem}.current"
        tmp = self.dumps_dir / f"{stem}.current{TMP_SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            header = HEADER.pack(MAGIC, SCHEMA_VERSION, 0)
            if os.write(fd, header) != len(header):  # a short write of 16 bytes: the disk is full
                raise OSError(errno.ENOSPC, "short write of the segment header")
            os.rename(tmp, path)
        except BaseException:  # disk full, ...: no half-made segment is left behind (nor an open descriptor)
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        self._fd = fd
        self._size = HEADER.size
        self.current = path
        self._opened_at = time.monotonic()

    def append(
        self,
        ts: pd.Timestamp,
        procs: dict[str, Sequence],
        meminfo: dict[str, int],
        cgroup_mem: dict[str, int] | None = None,
    ) -> None:
        """Write one sample: procs (SAMPLE_PROC_COLUMNS, equal lengths; times int ns or datetimes), meminfo, and
        optionally {cgroup path: memory bytes} (stored as system fields CGROUP_MEM_FIELD_PREFIX + path)."""
        if cgroup_mem:
            meminfo = {**meminfo, **{CGROUP_MEM_FIELD_PREFIX + k: v for k, v in cgroup_mem.items()}}
        frame = encode_sample(ts, procs, meminfo, self.host, self.boot_id)
        if self.current is not None and time.monotonic() - self._opened_at >= self.period_s:
            self.close()
        if self.current is None:
            self._new_current(ts)
        assert self._fd is not None
        view = memoryview(frame)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except BaseException:
            self._undo_partial_write()
            raise
        self._size += len(frame)
        self.samples += 1

    def _undo_partial_write(self) -> None:
        """After a failed or short write (ENOSPC, EIO): cut the file back to its last whole sample, so the next
        sample follows whole frames; if even that fails, leave the segment (its torn tail is dropped by readers and
        by `recover`) and start a new one at the next append."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._size)
            os.lseek(self._fd, self._size, os.SEEK_SET)
        except OSError:
            os.close(self._fd)
            self._fd = None
            self.current = None

    def close(self) -> None:
        """Compact the active segment (if any) to its Parquet pair and delete it."""
        if self.current is None:
            return
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        current, self.current = self.current, None  # a failed compaction leaves a readable .current for `recover`
        published = compact_current(current)
        if published is not None:
            self.closed.append(published)


def glob_escape(text: str) -> str:
    """Escape glob metacharacters in `text`."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _write_parquet_atomic(table: pa.Table, path: Path, sorted_procs: bool) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        _write_parquet_tmp(table, tmp, sorted_procs)
    except BaseException:  # disk full, ...: no temp file left behind (readers ignore it anyway)
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _write_parquet_tmp(table: pa.Table, tmp: Path, sorted_procs: bool) -> None:
    if sorted_procs:
        dict_cols = [c for c in table.column_names if c in _STRING_COLUMNS]
        encodings = {c: "DELTA_BINARY_PACKED" for c in _DELTA_COLUMNS if c in table.column_names}
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            compression_level=3,
            use_dictionary=dict_cols,
            column_encoding=encodings,
        )
    else:
        pq.write_table(table, tmp, compression="zstd", compression_level=3)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())


def compact_current(current: Path) -> Path | None:
    """Turn a `.current` into its Parquet pair (torn tail dropped) and delete it; returns the procs path or None."""
    stem = _stem_of(current)
    procs_path = current.with_name(stem + ".procs.parquet")
    system_path = current.with_name(stem + ".system.parquet")
    data = current.read_bytes()
    frames: list[tuple[bytes, Decoded]] = []
    if len(data) >= HEADER.size:
        magic, version, _ = HEADER.unpack_from(data, 0)
        if magic != MAGIC or version > SCHEMA_VERSION:
            return None  # not ours or from a newer version: leave it alone
        frames, _, _ = decode_frames(data, HEADER.size)
        if frames and frames[-1][0] == KIND_PROCS:
            frames = frames[:-1]  # a sample whose system frame was torn off is dropped whole
    if not frames:
        current.unlink(missing_ok=True)
        return None
    host, boot_id = frames_meta(frames)
    meta_out = _file_metadata(host, boot_id)
    procs = frames_table(frames, KIND_PROCS)
    system = frames_table(frames, KIND_SYSTEM)
    if procs is None:
        procs = pa.Table.from_arrays(
            [pa.array([], type=_TS)] + [pa.array([], type=t) for t in PROC_ARROW_TYPES.values()],
            names=["ts", *SAMPLE_PROC_COLUMNS],
        )
    if system is None:
        system = pa.Table.from_arrays([pa.array([], type=_TS)], names=["ts"])
    n = procs.num_rows
    procs = procs.append_column("host", pa.repeat(pa.scalar(host, type=pa.string()), n))
    procs = procs.append_column("boot_id", pa.repeat(pa.scalar(boot_id, type=pa.string()), n))
    procs = procs.select(STORED_PROC_COLUMNS)
    # strings as dictionaries first: the sort then moves small indices, and Parquet stores them as they are
    for i, name in enumerate(procs.column_names):
        if name in _STRING_COLUMNS:
            procs = procs.set_column(i, name, pc.dictionary_encode(procs.column(i)))
    procs = procs.sort_by([("pid", "ascending"), ("start_time", "ascending"), ("ts", "ascending")])
    system = system.sort_by([("ts", "ascending")])
    ns = system.num_rows
    system = system.add_column(1, "host", pa.array([host] * ns, type=pa.string()))
    system = system.add_column(2, "boot_id", pa.array([boot_id] * ns, type=pa.string()))
    _write_parquet_atomic(system.replace_schema_metadata(meta_out), system_path, sorted_procs=False)
    _write_parquet_atomic(procs.replace_schema_metadata(meta_out), procs_path, sorted_procs=True)
    current.unlink(missing_ok=True)
    return procs_path


def recover(dumps_dir: Path) -> list[str]:
    """At collector start (under the lock): compact leftover `.current` files, drop stale temp files; returns notes."""
    dumps_dir = Path(dumps_dir)
    notes: list[str] = []
    if not dumps_dir.is_dir():
        return notes
    for path in sorted(dumps_dir.iterdir()):
        name = path.name
        if name.startswith("seg-") and name.endswith(TMP_SUFFIX):
            path.unlink(missing_ok=True)
            notes.append(f"removed stale temp file {name}")
            continue
        m = SEGMENT_RE.match(name)
        if not m or m.group(3) != "current":
            continue
        stem = _stem_of(path)
        if (dumps_dir / f"{stem}.procs.parquet").exists():
            path.unlink(missing_ok=True)
            notes.append(f"removed {name}: already compacted")
            continue
        try:
            published = compact_current(path)
        except (OSError, pa.ArrowException) as exc:
            notes.append(f"could not compact {name}: {exc}")
            continue
        notes.append(f"compacted leftover {name}" if published else f"left {name} (empty or unreadable)")
    return notes


# ---------------------------------------------------------------------------------------------------- readers


def list_segments(dumps_dir: Path) -> list[SegmentFile]:
    """Visible segments in `dumps_dir`, sorted by key: closed ones (procs.parquet) and active ones without a pair."""
    dumps_dir = Path(dumps_dir)
    if not dumps_dir.is_dir():
        return []
    names = set(os.listdir(dumps_dir))
    out: list[SegmentFile] = []
    for name in names:
        m = SEGMENT_RE.match(name)
        if not m:
            continue
        stem = name[: name.index("." + m.group(3))]
        key = f"{m.group(1)}Z-{m.group(2)}"
        if m.group(3) == "procs.parquet":
            out.append(SegmentFile(dumps_dir / name, "parquet", key))
        elif m.group(3) == "current" and f"{stem}.procs.parquet" not in names:
            out.append(SegmentFile(dumps_dir / name, "current", key))
    out.sort(key=lambda s: (s.key, s.kind))
    return out


def stamp_time(key: str) -> pd.Timestamp | None:
    """A segment key ('20260101T000000.000Z-host') -> the UTC time its name starts with (None when malformed)."""
    try:
        return pd.Timestamp(datetime.strptime(key[:19], "%Y%m%dT%H%M%S.%f"), tz="UTC")
    except ValueError:
        return None


def segment_rows(segment: SegmentFile) -> int | None:
    """A closed segment -> its number of process rows from the Parquet footer (None for `.current` or unreadable)."""
    if segment.kind != "parquet":
        return None
    try:
        return int(pq.read_metadata(segment.path).num_rows)
    except (OSError, ValueError, pa.ArrowException):
        return None


def segment_span(segment: SegmentFile) -> tuple[int, int] | None:
    """A segment -> (first, last) sample time in ns since the epoch, from the Parquet footer's statistics of `ts`
    (no data read), or for a growing `.current` from its name's stamp to its modification time; None when unknown
    (unreadable footer, no statistics): such a segment must be treated as overlapping every window."""
    try:
        if segment.kind == "current":
            first = stamp_time(segment.key)
            return None if first is None else (first.value, segment.path.stat().st_mtime_ns)
        meta = pq.read_metadata(segment.path)
        col = meta.schema.names.index("ts")
        lo, hi = None, None
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(col).statistics
            if stats is None or not stats.has_min_max:
                return None
            a, b = pd.Timestamp(stats.min), pd.Timestamp(stats.max)
            lo = a.value if lo is None else min(lo, a.value)
            hi = b.value if hi is None else max(hi, b.value)
        return None if lo is None else (lo, hi)
    except (OSError, ValueError, pa.ArrowException):
        return None


def _empty_read(offset: int, notices: list[str]) -> SegmentRead:
    return SegmentRead(_procs_frame(None, None, None), _system_frame(None, None, None), offset, notices)


def read_segment(path: Path, offset: int = 0) -> SegmentRead:
    """Load one segment (a .procs.parquet, a .system.parquet or a .current from byte `offset`) into frames.

    procs: STORED_PROC_COLUMNS at schema dtypes; system: ts, host, boot_id + one Int64 column per meminfo field.
    next_offset: for a .current, where to continue reading later; for parquet, the procs file size.
    Damage never raises: it is reported in `notices` naming the file.
    """
    path = Path(path)
    name = path.name
    try:
        if name.endswith(".current"):
            return _read_current(path, offset)
        if name.endswith(".system.parquet"):
            path = path.with_name(name[: -len(".system.parquet")] + ".procs.parquet")
        return _read_parquet_pair(path)
    except FileNotFoundError:
        return _empty_read(offset, [])  # compacted or deleted by retention meanwhile: the next listing has it right
    except (OSError, pa.ArrowException, ValueError, KeyError) as exc:
        return _empty_read(offset, [f"{name}: unreadable ({exc})"])


def _read_current_frames(path: Path, offset: int) -> tuple[list[tuple[bytes, Decoded]], int, list[str]]:
    """A .current from byte `offset` -> (whole samples' decoded frames, next_offset, notices)."""
    with open(path, "rb") as fh:
        head = fh.read(HEADER.size)
        if len(head) < HEADER.size:
            return [], 0, []
        magic, version, _ = HEADER.unpack(head)
        if magic != MAGIC:
            return [], 0, [f"{path.name}: not a PMI segment (bad header)"]
        if version > SCHEMA_VERSION:
            return [], 0, [f"{path.name}: schema version {version} is newer than this reader ({SCHEMA_VERSION})"]
        start = max(offset, HEADER.size)
        fh.seek(start)
        data = fh.read()
    frames, ends, problem = decode_frames(data, 0)
    # a frame pair is one sample: never hand out a procs frame without its system frame
    if frames and frames[-1][0] == KIND_PROCS:
        frames, ends = frames[:-1], ends[:-1]
    end = ends[-1] if ends else 0
    # a torn tail on a live file is the writer mid-append (a later read picks it up): not worth a notice
    notices = [f"{path.name}: {problem}"] if problem and "torn tail" not in problem else []
    return frames, start + end, notices


def _read_current(path: Path, offset: int) -> SegmentRead:
    frames, next_offset, notices = _read_current_frames(path, offset)
    if not frames:
        return _empty_read(next_offset, notices)
    procs, system = _frames_to_frames(frames)
    return SegmentRead(procs, system, next_offset, notices)


def _pair_meta(procs_path: Path) -> tuple[str | None, str | None, str | None]:
    """A procs.parquet's (host, boot_id, notice naming a too-new schema version or None)."""
    meta = pq.read_schema(procs_path).metadata or {}
    version = int(_meta_text(meta, b"pmi_schema_version") or "0")
    if version > SCHEMA_VERSION:
        return None, None, f"{procs_path.name}: schema version {version} is newer than this reader ({SCHEMA_VERSION})"
    return _meta_text(meta, b"host"), _meta_text(meta, b"boot_id"), None


def _read_pair_system(system_path: Path, procs_name: str, host: str | None, boot_id: str | None, notices: list[str]):
    try:
        return _system_frame(pq.read_table(system_path), host, boot_id)
    except FileNotFoundError:
        notices.append(f"{procs_name}: its system file {system_path.name} is missing")
        return _system_frame(None, None, None)


def _read_parquet_pair(procs_path: Path) -> SegmentRead:
    procs_path, system_path = _pair_paths(procs_path)
    notices: list[str] = []
    host, boot_id, too_new = _pair_meta(procs_path)
    if too_new:
        return _empty_read(0, [too_new])
    procs = _procs_frame(pq.read_table(procs_path), host, boot_id)
    system = _read_pair_system(system_path, procs_path.name, host, boot_id, notices)
    return SegmentRead(procs, system, procs_path.stat().st_size, notices)


# ---------------------------------------------------------------------------------------------------- Arrow readers
# The loader's fast path: procs stay Arrow tables (strings as dictionaries) until the whole day is concatenated, so
# strings are never materialised per row and each value is converted to pandas once.

_DICT = pa.dictionary(pa.int32(), pa.string())
PROC_TABLE_SCHEMA = pa.schema(
    [(c, _DICT if c in _STRING_COLUMNS else _TS if c == "ts" else PROC_ARROW_TYPES[c]) for c in STORED_PROC_COLUMNS]
)
_REQUIRED_PROC_COLUMNS = ("pid", "ppid", "rss_bytes", "vsz_bytes")  # rows with a null here are dropped


@dataclass
class SegmentTables:
    """read_segment_tables' result: procs as Arrow (PROC_TABLE_SCHEMA; None when no rows), system as in SegmentRead."""

    procs: pa.Table | None
    system: pd.DataFrame
    next_offset: int
    notices: list[str] = field(default_factory=list)


def _single_value_dictionary(text: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([text], type=pa.string()))


def procs_arrow(table: pa.Table | None, host: str | None, boot_id: str | None) -> pa.Table | None:
    """Stored/decoded procs table -> table at PROC_TABLE_SCHEMA (the rows and values read_segment's procs frame holds:
    missing host/boot_id from the file metadata, other missing columns null, rows with null pid/ppid/rss/vsz dropped,
    unknown columns ignored); None when no rows. KeyError naming a missing required column."""
    if table is None or table.num_rows == 0:
        return None
    n = table.num_rows
    present = set(table.column_names)
    cols = []
    for f in PROC_TABLE_SCHEMA:
        if f.name in present:
            col = table.column(f.name)
            if col.type != f.type:
                if pa.types.is_dictionary(f.type) and not pa.types.is_dictionary(col.type):
                    col = pc.dictionary_encode(col.cast(pa.string()))
                col = col.cast(f.type)
        elif f.name in ("host", "boot_id"):
            col = _single_value_dictionary((host if f.name == "host" else boot_id) or "", n)
        elif f.name in _REQUIRED_PROC_COLUMNS:
            raise KeyError(f"missing required column {f.name!r}")
        else:
            col = pa.nulls(n, f.type)
        cols.append(col)
    out = pa.Table.from_arrays(cols, schema=PROC_TABLE_SCHEMA)
    if any(out.column(c).null_count for c in _REQUIRED_PROC_COLUMNS):
        keep = pc.and_(
            pc.and_(pc.is_valid(out.column("pid")), pc.is_valid(out.column("ppid"))),
            pc.and_(pc.is_valid(out.column("rss_bytes")), pc.is_valid(out.column("vsz_bytes"))),
        )
        out = out.filter(keep)
    return out if out.num_rows else None


def _read_current_tables(path: Path, offset: int) -> SegmentTables:
    frames, next_offset, notices = _read_current_frames(path, offset)
    if not frames:
        return SegmentTables(None, _system_frame(None, None, None), next_offset, notices)
    host, boot_id = frames_meta(frames)
    procs = procs_arrow(frames_table(frames, KIND_PROCS), host, boot_id)
    system = _system_frame(frames_table(frames, KIND_SYSTEM), host, boot_id)
    return SegmentTables(procs, system, next_offset, notices)


def _read_parquet_pair_tables(procs_path: Path) -> SegmentTables:
    procs_path, system_path = _pair_paths(procs_path)
    notices: list[str] = []
    host, boot_id, too_new = _pair_meta(procs_path)
    if too_new:
        return SegmentTables(None, _system_frame(None, None, None), 0, [too_new])
    names = pq.read_schema(procs_path).names
    # pre_buffer off: reading a day of hourly files took 4x longer with it on (measured, pyarrow 26)
    table = pq.read_table(procs_path, read_dictionary=[c for c in _STRING_COLUMNS if c in names], pre_buffer=False)
    procs = procs_arrow(table, host, boot_id)
    system = _read_pair_system(system_path, procs_path.name, host, boot_id, notices)
    return SegmentTables(procs, system, procs_path.stat().st_size, notices)


def read_segment_tables(path: Path, offset: int = 0) -> SegmentTables:
    """read_segment with procs as an Arrow table at PROC_TABLE_SCHEMA (None when no rows): same rows, values,
    next_offset and notices; damage never raises."""
    path = Path(path)
    name = path.name
    try:
        if name.endswith(".current"):
            return _read_current_tables(path, offset)
        if name.endswith(".system.parquet"):
            path = path.with_name(name[: -len(".system.parquet")] + ".procs.parquet")
        return _read_parquet_pair_tables(path)
    except FileNotFoundError:
        return SegmentTables(None, _system_frame(None, None, None), offset, [])
    except (OSError, pa.ArrowException, ValueError, KeyError) as exc:
        return SegmentTables(None, _system_frame(None, None, None), offset, [f"{name}: unreadable ({exc})"])


def read_dumps_dir(dumps_dir: Path) -> SegmentRead:
    """Every visible segment of `dumps_dir` concatenated (procs sorted by ts, pid); notices gathered."""
    parts = [read_segment(s.path) for s in list_segments(dumps_dir)]
    notices = [n for p in parts for n in p.notices]
    if not parts:
        return _empty_read(0, notices)
    procs = pd.concat([p.procs for p in parts], ignore_index=True)
    system = pd.concat([p.system for p in parts], ignore_index=True)
    procs = conform(procs, STORED_PROC_DTYPES).sort_values(["ts", "pid"], kind="stable").reset_index(drop=True)
    system = system.sort_values("ts", kind="stable").reset_index(drop=True)
    return SegmentRead(procs, system, 0, notices)


# ---------------------------------------------------------------------------------------------------- retention


def _closed_pairs(dumps_dir: Path) -> list[tuple[float, int, list[Path]]]:
    pairs = []
    for seg in list_segments(dumps_dir):
        if seg.kind != "parquet":
            continue
        files = [p for p in _pair_paths(seg.path) if p.exists()]
        stats = [p.stat() for p in files]
        if not stats:
            continue
        pairs.append((max(s.st_mtime for s in stats), sum(s.st_size for s in stats), files))
    pairs.sort(key=lambda p: p[0])
    return pairs


def store_bytes(dumps_dir: Path) -> int:
    """Bytes taken by every segment file (closed pairs and active segments) in `dumps_dir`."""
    total = 0
    for name in os.listdir(dumps_dir):
        if SEGMENT_RE.match(name):
            with contextlib.suppress(FileNotFoundError):
                total += (Path(dumps_dir) / name).stat().st_size
    return total


def apply_retention(dumps_dir: Path, max_age_days: float | None, max_bytes: int | None) -> list[Path]:
    """Delete whole closed Parquet pairs older than `max_age_days` (by mtime) or, oldest first, until the store
    takes <= `max_bytes`; never touches `.current` files. Returns the deleted paths."""
    dumps_dir = Path(dumps_dir)
    if not dumps_dir.is_dir():
        return []
    deleted: list[Path] = []
    pairs = _closed_pairs(dumps_dir)
    keep: list[tuple[float, int, list[Path]]] = []
    now = time.time()
    for mtime, size, files in pairs:
        if max_age_days is not None and now - mtime > max_age_days * 86400:
            deleted.extend(_delete(files))
        else:
            keep.append((mtime, size, files))
    if max_bytes is not None:
        total = store_bytes(dumps_dir)
        for _, size, files in keep:
            if total <= max_bytes:
                break
            deleted.extend(_delete(files))
            total -= size
    return deleted


def _delete(files: Iterable[Path]) -> list[Path]:
    # procs file first: once it is gone the pair is no longer visible to readers
    out = []
    for p in sorted(files, key=lambda p: not p.name.endswith(".procs.parquet")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            out.append(p)
    return out
