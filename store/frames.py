"""The active segment's file format (``.current``): CRC-framed samples, appended one at a time; encode and decode.

File: 16-byte header (``PMISEG1\\n``, format version uint32 LE, 4 reserved bytes), then frames
``b"PMIF" + kind (P|S) + uint32 LE length + uint32 LE CRC32 + payload``; one sample = a procs frame followed by its
system frame. A payload is uint32 LE raw length + zstd(body); the body is the small columnar layout below (what the
collector writes) or an Arrow IPC stream (``encode_frame``: tools and tests); both carry host and boot id.

Reading never trusts a length: a damaged frame (bad CRC, bad marker, undecodable body) is skipped and reading
resynchronises on the next ``PMIF`` whose frame checks out; ``scan_frames`` says how many samples were lost.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa

from store.schema import CURRENT_VERSION, SAMPLE_COLUMNS, SAMPLE_TYPES, TS_NS

MAGIC = b"PMISEG1\n"
HEADER = struct.Struct("<8sII")  # magic, format version, reserved
FRAME_MAGIC = b"PMIF"
FRAME = struct.Struct("<4scII")  # magic, kind, payload length, crc32
KIND_PROCS = b"P"
KIND_SYSTEM = b"S"
_TS = TS_NS
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression=None)  # the whole payload is compressed at once (cheaper)
_CODEC = pa.Codec("zstd", compression_level=1)
_RAW_LEN = struct.Struct("<I")


def header_bytes() -> bytes:
    """The 16-byte header of a new active segment."""
    return HEADER.pack(MAGIC, CURRENT_VERSION, 0)


def _ts_ns(ts: pd.Timestamp) -> int:
    """A sample time (pd.Timestamp / datetime; naive = UTC) -> ns since the epoch."""
    t = ts if isinstance(ts, pd.Timestamp) else pd.Timestamp(ts)
    return (t if t.tzinfo is None else t.tz_convert("UTC")).value


def _ts_array(values: Sequence[object] | pd.Series) -> pa.Array:
    """Timestamps as int ns since epoch (None = null), datetimes or pd.Timestamps -> Arrow timestamp[ns, UTC]."""
    try:
        return pa.array(values, type=_TS)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        conv = pd.to_datetime(pd.Series(list(values) if not isinstance(values, pd.Series) else values), utc=True)
        return pa.Array.from_pandas(conv.astype("datetime64[ns, UTC]")).cast(_TS)


def _file_metadata(host: str, boot_id: str) -> dict[bytes, bytes]:
    return {b"pmi_schema_version": str(CURRENT_VERSION).encode(), b"host": host.encode(), b"boot_id": boot_id.encode()}


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


def system_tables_wide(tables: list[pa.Table]) -> pa.Table | None:
    """System frames (long: ts, field, value; or wide: ts + one column per field) -> one wide table, or None."""
    long = concat([t for t in tables if "field" in t.column_names])
    parts = [t for t in [system_wide(long), concat([t for t in tables if "field" not in t.column_names])] if t]
    return concat(parts)


def concat(tables: list[pa.Table]) -> pa.Table | None:
    """Tables (columns may differ; missing ones null) -> one table without schema metadata, or None."""
    if not tables:
        return None
    tables = [t.replace_schema_metadata(None) for t in tables]
    return pa.concat_tables(tables, promote_options="default")


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
    name: (b"t" if typ == _TS else b"s" if typ == pa.string() else b"i") for name, typ in SAMPLE_TYPES.items()
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
    table = concat(tables)
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
    missing = [c for c in SAMPLE_COLUMNS if c not in procs]
    if missing:
        raise ValueError(f"procs is missing column(s): {', '.join(missing)}")
    n = len(procs["pid"])
    lengths = {c: len(procs[c]) for c in SAMPLE_COLUMNS}
    if any(v != n for v in lengths.values()):
        raise ValueError(f"procs columns differ in length: {lengths}")
    ts_ns = _ts_ns(ts)
    columns = [(c, PROC_COLUMN_CODES[c], procs[c]) for c in SAMPLE_COLUMNS]
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


Decoded: TypeAlias = ColumnarBody | pa.Table


def decode_payload(payload: bytes) -> Decoded:
    """Frame payload -> a parsed ColumnarBody or an Arrow table (see the module docstring); a bare IPC stream (the
    first development format) also reads. Raises ValueError / struct.error / pa.ArrowException when damaged."""
    if payload[:4] == b"\xff\xff\xff\xff":
        return pa.ipc.open_stream(payload).read_all()
    (raw_len,) = _RAW_LEN.unpack_from(payload, 0)
    raw = _CODEC.decompress(payload[_RAW_LEN.size :], decompressed_size=raw_len, asbytes=True)
    if raw[:4] == COLUMNAR_MAGIC:
        return parse_columns(raw)
    return pa.ipc.open_stream(raw).read_all()


@dataclass
class FrameScan:
    """scan_frames' result: whole samples' frames [(kind, decoded)] in file order, the byte offset (relative to the
    scanned data) after the last whole sample, samples lost to damage, problems (text), and a torn tail flag."""

    frames: list[tuple[bytes, Decoded]] = field(default_factory=list)
    end: int = 0
    lost_samples: int = 0
    problems: list[str] = field(default_factory=list)
    torn_tail: bool = False


def _frame_at(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """(kind, end) of a frame header at `pos` whose kind is known and whose length fits in `data`, else None."""
    if len(data) - pos < FRAME.size:
        return None
    magic, kind, length, _ = FRAME.unpack_from(data, pos)
    if magic != FRAME_MAGIC or kind not in (KIND_PROCS, KIND_SYSTEM) or pos + FRAME.size + length > len(data):
        return None
    return kind, pos + FRAME.size + length


def _good_frame(data: bytes, pos: int) -> tuple[bytes, int, Decoded] | None:
    """(kind, end, decoded) when a whole frame at `pos` has a matching CRC and decodes, else None."""
    head = _frame_at(data, pos)
    if head is None:
        return None
    kind, end = head
    payload = data[pos + FRAME.size : end]
    if zlib.crc32(payload) != FRAME.unpack_from(data, pos)[3]:
        return None
    try:
        return kind, end, decode_payload(payload)
    except (pa.ArrowException, OSError, struct.error, ValueError, IndexError):
        return None


def scan_frames(data: bytes, offset: int = 0) -> FrameScan:
    """Frames in data (the bytes after a header, `offset` = their position in the file, for messages) -> FrameScan.

    A damaged stretch is skipped up to the next frame that checks out (magic, kind, length, CRC, body); samples
    touched by damage (a procs frame without its system frame or the reverse, or a damaged frame recognisable by its
    header) are counted in lost_samples. An incomplete last frame is a torn tail (the writer mid-append), not damage.
    """
    out = FrameScan()
    seq: list[tuple[bytes, bool, int, Decoded | None]] = []  # (kind, good, end, decoded) in file order
    pos, n = 0, len(data)
    while pos < n:
        good = _good_frame(data, pos)
        if good is not None:
            kind, end, decoded = good
            seq.append((kind, True, end, decoded))
            pos = end
            continue
        nxt = _next_good(data, pos + 1)
        if nxt is None and _torn(data, pos):
            out.torn_tail = True
            break
        stop = n if nxt is None else nxt
        seq.extend((k, False, 0, None) for k in _bad_headers(data, pos, stop))
        out.problems.append(
            f"damaged bytes {offset + pos}..{offset + stop} skipped"
            + ("" if nxt is None else f", resynchronised on the next good frame at byte {offset + nxt}")
        )
        if nxt is None:
            break
        pos = nxt
    # pair procs frames with the system frame that follows them: a sample is kept only when both are good
    i = 0
    while i < len(seq):
        kind, ok, end, decoded = seq[i]
        if kind == KIND_PROCS and i + 1 < len(seq) and seq[i + 1][0] == KIND_SYSTEM:
            s_kind, s_ok, s_end, s_decoded = seq[i + 1]
            if ok and s_ok:
                out.frames += [(kind, decoded), (s_kind, s_decoded)]  # type: ignore[list-item]
                out.end = s_end
            else:
                out.lost_samples += 1
            i += 2
            continue
        if kind == KIND_PROCS and i + 1 == len(seq) and ok:
            break  # the last sample's system frame is not written yet (live file) or was torn off: read later
        out.lost_samples += 1
        i += 1
    return out


def _torn(data: bytes, pos: int) -> bool:
    """True when data[pos:] is the beginning of one frame cut short (a header prefix, or a header whose body runs
    past the end): the writer's append in progress, or the sample in flight at a crash."""
    rest = data[pos : pos + FRAME.size]
    if len(rest) < FRAME.size:
        return FRAME_MAGIC.startswith(rest[:4])
    magic, kind, length, _ = FRAME.unpack_from(data, pos)
    return magic == FRAME_MAGIC and kind in (KIND_PROCS, KIND_SYSTEM) and pos + FRAME.size + length > len(data)


def _next_good(data: bytes, start: int) -> int | None:
    """Position of the next frame at or after `start` that checks out, or None."""
    pos = data.find(FRAME_MAGIC, start)
    while pos >= 0:
        if _good_frame(data, pos) is not None:
            return pos
        pos = data.find(FRAME_MAGIC, pos + 1)
    return None


def _bad_headers(data: bytes, start: int, stop: int) -> list[bytes]:
    """Kinds of the recognisable (but damaged) frame headers in data[start:stop], skipping over each one's body."""
    kinds: list[bytes] = []
    pos = start
    while 0 <= pos < stop:
        if data[pos : pos + 4] == FRAME_MAGIC and len(data) - pos >= FRAME.size:
            kind = data[pos + 4 : pos + 5]
            if kind in (KIND_PROCS, KIND_SYSTEM):
                kinds.append(kind)
                length = FRAME.unpack_from(data, pos)[2]
                end = pos + FRAME.size + length
                pos = data.find(FRAME_MAGIC, end if start < end <= stop else pos + 1)
                continue
        pos = data.find(FRAME_MAGIC, pos + 1)
    return kinds


def frames_table(frames: list[tuple[bytes, Decoded]], kind: bytes) -> pa.Table | None:
    """The frames of one kind as one Arrow table (columnar bodies built in one go; system frames made wide), or None."""
    bodies = [d for k, d in frames if k == kind and isinstance(d, ColumnarBody)]
    tables = [d for k, d in frames if k == kind and not isinstance(d, ColumnarBody)]
    built = columnar_table(bodies)
    parts = ([built] if built is not None else []) + tables
    return system_tables_wide(parts) if kind == KIND_SYSTEM else concat(parts)


def frames_meta(frames: list[tuple[bytes, Decoded]]) -> tuple[str, str]:
    """(host, boot_id) recorded in the first frame."""
    first = frames[0][1]
    if isinstance(first, ColumnarBody):
        return first.host, first.boot_id
    meta = first.schema.metadata or {}
    return meta.get(b"host", b"").decode("utf-8", "replace"), meta.get(b"boot_id", b"").decode("utf-8", "replace")
