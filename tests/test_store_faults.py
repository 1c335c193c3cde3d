"""Damaged and foreign files in a store: the valid data is read, every damaged file is named (relative to the root),
and nothing raises. The store counterpart of test_hostile_input's native fault table."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memlib import source
from store import frames, schema
from tests.store_samples import FAKE_T0 as T0
from tests.store_samples import fake_procs, meminfo, read_store
from tests.store_samples import writer as new_writer


def _good_store(d: Path) -> None:
    """One closed segment (T0, T0+5s) and one active segment (T0+60s, T0+65s), host h."""
    w = new_writer(d, host="h", boot_id="b")
    for k in range(2):
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(4, k), meminfo(k))
    w.close()
    w = new_writer(d, host="h", boot_id="b")
    for k in range(2):
        w.append(T0 + pd.Timedelta(seconds=60 + 5 * k), fake_procs(4, k), meminfo(k))
    os.close(w._fd)


GOOD_TS = {T0 + pd.Timedelta(seconds=s) for s in (0, 5, 60, 65)}
HOUR1 = {T0 + pd.Timedelta(hours=1, seconds=s) for s in (0, 5)}
HOUR2 = {T0 + pd.Timedelta(hours=2, seconds=s) for s in (0, 5)}
PART = "host=h/date=2026-01-05/seg-20260105T110000.000Z.parquet"


def _closed(d: Path) -> dict[str, Path]:
    """A second closed segment at T0 + 1 h -> {table: path}."""
    w = new_writer(d, host="h", boot_id="b")
    for k in range(2):
        w.append(T0 + pd.Timedelta(hours=1, seconds=5 * k), fake_procs(3, k), meminfo(k))
    w.close()
    return {t: d / t / PART for t in ("procs", "system")}


def _rewrite(path: Path, change) -> None:
    """Rewrite a closed file through pyarrow (no data digest: as another tool would) after `change(table)`."""
    table = pq.read_table(path, partitioning=None)
    pq.write_table(change(table), path)


def _current_bytes(samples: int = 2) -> bytes:
    data = frames.header_bytes()
    for k in range(samples):
        ts = T0 + pd.Timedelta(hours=2, seconds=5 * k)
        data += frames.encode_sample(ts, fake_procs(3, k), meminfo(k), "h", "b")
    return data


def _bad_utf8_frame() -> bytes:
    procs = fake_procs(2, 0)
    procs["cmdline"] = ["MARK1", "MARK2"]
    frame = frames.encode_sample(T0 + pd.Timedelta(hours=3), procs, meminfo(0), "h", "b")
    _, kind, length, _ = frames.FRAME.unpack_from(frame, 0)
    payload = frame[frames.FRAME.size : frames.FRAME.size + length]
    (raw_len,) = struct.unpack_from("<I", payload, 0)
    body = pa.Codec("zstd").decompress(payload[4:], decompressed_size=raw_len, asbytes=True)
    body = body.replace(b"MARK1", b"M\xff\xfeK1")
    new_payload = struct.pack("<I", len(body)) + pa.Codec("zstd").compress(body, asbytes=True)
    head = frames.FRAME.pack(frames.FRAME_MAGIC, kind, len(new_payload), zlib.crc32(new_payload))
    return head + new_payload + frame[frames.FRAME.size + length :]


def _fault(d: Path, kind: str) -> tuple[str | None, set[pd.Timestamp], set[pd.Timestamp]]:
    """Add one damaged file of `kind` -> (text a notice must carry or None, extra procs samples, extra system
    samples expected)."""
    cur = d / "seg-20260105T120000.000Z-h.current"
    if kind == "truncated procs file":
        f = _closed(d)["procs"]
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        return f"procs/{PART}: not a Parquet file", set(), HOUR1
    if kind == "truncated system file":
        f = _closed(d)["system"]
        f.write_bytes(f.read_bytes()[:-20])
        return f"system/{PART}: not a Parquet file", HOUR1, set()
    if kind == "empty procs file":
        _closed(d)["procs"].write_bytes(b"")
        return f"procs/{PART}: not a Parquet file", set(), HOUR1
    if kind == "missing system file":
        _closed(d)["system"].unlink()
        return f"procs/{PART}: no system file", HOUR1, set()
    if kind == "newer schema version":
        f = _closed(d)["procs"]
        newer = str(schema.SCHEMA_VERSION + 1)
        _rewrite(f, lambda t: t.replace_schema_metadata({**t.schema.metadata, b"pmi_schema_version": newer.encode()}))
        return f"procs/{PART}: schema version {newer} is newer", set(), HOUR1
    if kind == "unknown schema version":
        f = _closed(d)["procs"]
        _rewrite(f, lambda t: t.replace_schema_metadata({**t.schema.metadata, b"pmi_schema_version": b"v2-beta"}))
        return f"procs/{PART}: schema version v2-beta is newer", set(), HOUR1
    if kind == "written by another tool":
        _rewrite(_closed(d)["procs"], lambda t: t.replace_schema_metadata(None))
        return f"procs/{PART}: no data checksum", HOUR1, HOUR1
    if kind == "missing optional columns":
        _rewrite(_closed(d)["procs"], lambda t: t.drop_columns(["cmdline", "pss_bytes", "cgroup"]))
        return f"procs/{PART}: no data checksum", HOUR1, HOUR1
    if kind == "missing pid column":
        _rewrite(_closed(d)["procs"], lambda t: t.drop_columns(["pid"]))
        return f"procs/{PART}: missing column(s) pid", set(), HOUR1
    if kind == "missing tree columns":
        _rewrite(_closed(d)["procs"], lambda t: t.drop_columns(schema.TREE_COLUMNS))
        return f"procs/{PART}: missing column(s) level", set(), HOUR1
    if kind == "wrong type":

        def change(t: pa.Table) -> pa.Table:
            i = t.column_names.index("rss_bytes")
            return t.set_column(i, "rss_bytes", pa.array(["lots"] * t.num_rows))

        _rewrite(_closed(d)["procs"], change)
        return f"procs/{PART}: column(s) of the wrong type: rss_bytes", set(), HOUR1
    if kind == "flipped bit":
        f = _closed(d)["procs"]
        data = bytearray(f.read_bytes())
        data[30] ^= 0x04
        f.write_bytes(bytes(data))
        return f"procs/{PART}: checksum mismatch", set(), HOUR1
    if kind == "random bytes named like a segment":
        f = d / "procs" / PART
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(bytes(range(256)) * 8)
        return f"procs/{PART}: not a Parquet file", set(), set()
    if kind == "a folder named like a segment":
        (d / "procs" / PART).mkdir(parents=True)
        return None, set(), set()
    if kind == "stray files in partitions":
        (d / "procs" / "host=h" / "notes.txt").write_text("x")
        (d / "procs" / "junk").mkdir()
        return "procs/junk: not a host=<name> folder", set(), set()
    if kind == "empty current":
        cur.write_bytes(b"")
        return f"{cur.name}: empty file (zero bytes)", set(), set()
    if kind == "header-only current":
        cur.write_bytes(frames.header_bytes())
        return None, set(), set()
    if kind == "bad header current":
        cur.write_bytes(b"GIF89a" + _current_bytes()[6:])
        return f"{cur.name}: not a PMI segment", set(), set()
    if kind == "newer version current":
        cur.write_bytes(frames.HEADER.pack(frames.MAGIC, 8, 0) + _current_bytes()[frames.HEADER.size :])
        return f"{cur.name}: format version 8 is newer", set(), set()
    if kind == "trailing garbage current":
        cur.write_bytes(_current_bytes() + b"\x00garbage after the last sample, not a frame at all\n" * 3)
        return f"{cur.name}: damaged bytes", HOUR2, HOUR2
    if kind == "torn tail current":
        cur.write_bytes(_current_bytes(3)[:-7])
        return None, HOUR2, HOUR2
    if kind == "crc damage mid current":
        data = bytearray(_current_bytes(4))
        data[frames.HEADER.size + 40] ^= 0x55  # the first sample's procs frame
        cur.write_bytes(bytes(data))
        later = {T0 + pd.Timedelta(hours=2, seconds=s) for s in (5, 10, 15)}
        return f"{cur.name}: 1 sample(s) lost to damage", later, later
    if kind == "non-UTF-8 in a frame":
        cur.write_bytes(_current_bytes() + _bad_utf8_frame())
        return None, HOUR2 | {T0 + pd.Timedelta(hours=3)}, HOUR2 | {T0 + pd.Timedelta(hours=3)}
    raise AssertionError(kind)


FAULTS = [
    "truncated procs file", "truncated system file", "empty procs file", "missing system file",
    "newer schema version", "unknown schema version", "written by another tool", "missing optional columns",
    "missing pid column", "missing tree columns", "wrong type", "flipped bit", "random bytes named like a segment",
    "a folder named like a segment", "stray files in partitions", "empty current", "header-only current",
    "bad header current", "newer version current", "trailing garbage current", "torn tail current",
    "crc damage mid current", "non-UTF-8 in a frame",
]  # fmt: skip


@pytest.mark.parametrize("kind", FAULTS)
def test_store_fault_valid_data_is_read_damage_is_named(tmp_path: Path, kind: str) -> None:
    _good_store(tmp_path)
    named, extra_procs, extra_system = _fault(tmp_path, kind)
    got = read_store(tmp_path)
    text = "\n".join(got.notices)
    if named is None:
        assert not got.notices, got.notices
    else:
        assert named in text, (kind, got.notices)
    assert str(tmp_path) not in text
    assert set(got.procs["ts"]) == GOOD_TS | extra_procs, kind
    assert set(got.system["ts"]) == GOOD_TS | extra_system, kind
    assert not got.procs.duplicated(["ts", "pid"]).any()


def test_non_utf8_frame_is_read_with_replacement(tmp_path: Path) -> None:
    cur = tmp_path / "seg-20260105T120000.000Z-h.current"
    cur.write_bytes(_current_bytes() + _bad_utf8_frame())
    got = read_store(tmp_path)
    assert set(got.procs["cmdline"].astype(str)) >= {"M\ufffd\ufffdK1", "MARK2"}


def test_a_copied_store_keeps_working(tmp_path: Path) -> None:
    """A store copied elsewhere (names, partitions and digests travel with it) reads the same."""
    _good_store(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    source.clear_cache()
    a, b = read_store(tmp_path / "a"), read_store(tmp_path / "b")
    assert not a.notices and not b.notices and len(a.procs) == len(b.procs) == 16
