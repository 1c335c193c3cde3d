"""store: round trip into the partitioned layout, the active segment, damage, rotation, recovery, retention, size."""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import store
from memlib import source
from store import files, frames, schema
from store.current import read_current
from tests.store_samples import FAKE_T0 as T0
from tests.store_samples import fake_procs, meminfo, read_store, us
from tests.store_samples import writer as new_writer


def write_samples(d: Path, samples: int, n: int = 20, close: bool = True, **kw: object) -> store.SegmentWriter:
    w = new_writer(d, host="host-a", boot_id="boot-1", **kw)
    for k in range(samples):
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(n, k), meminfo(k))
    if close:
        w.close()
    return w


def _procs_files(root: Path) -> list[Path]:
    return sorted((root / "procs").rglob("*.parquet"))


def test_round_trip_closed_segment(tmp_path: Path) -> None:
    w = write_samples(tmp_path, 4, n=20)
    assert not list(tmp_path.glob("*.current")) and len(w.closed) == 2  # system and procs (no cgroups)
    (path,) = _procs_files(tmp_path)
    assert path.relative_to(tmp_path).as_posix() == "procs/host=host-a/date=2026-01-05/seg-20260105T100000.000Z.parquet"
    table = pq.read_table(path, partitioning=None)
    assert table.schema.names == schema.PROCS_COLUMNS
    assert table.column("ts").type == pa.timestamp("us", tz="UTC")
    meta = table.schema.metadata
    assert meta[b"pmi_schema_version"] == str(schema.SCHEMA_VERSION).encode() and meta[b"host"] == b"host-a"
    got = read_store(tmp_path)
    assert not got.notices and len(got.procs) == 80 and len(got.system) == 4
    row = got.procs[(got.procs["ts"] == T0 + pd.Timedelta(seconds=10)) & (got.procs["pid"] == 103)].iloc[0]
    src = fake_procs(20, 2)
    for c in schema.SAMPLE_COLUMNS:
        want, have = src[c][3], row[c]
        if c in ("start_time", "smaps_ts") and want is not None:
            want = us(pd.Timestamp(want, unit="ns", tz="UTC"))
        assert pd.isna(have) if want is None else have == want, c
    assert got.procs.loc[got.procs["pid"] % 3 == 0, "pss_bytes"].isna().all()  # unknown stays null
    assert (got.procs["boot_id"] == "boot-1").all() and (got.procs["host"] == "host-a").all()
    sysrow = got.system.iloc[1]
    assert sysrow["mem_free_bytes"] == (8 << 30) - 4096 and sysrow["active_anon_bytes"] == 1 << 30
    assert sysrow["huge_pages_total"] == 0 and pd.isna(sysrow["swap_total_bytes"])
    assert got.system["vmalloc_total_bytes"].iloc[0] == 34359738367 * 1024  # > 2**53, exact
    # rows sorted by (pid, start_time, ts): each process's series is contiguous
    pids = table.column("pid").to_numpy()
    assert (np.diff(pids) >= 0).all()


def test_active_equals_closed_and_reads_incrementally(tmp_path: Path) -> None:
    w = write_samples(tmp_path, 3, close=False)
    cur = w.current
    first = read_current(cur)
    assert first.procs.num_rows == 60 and first.system.num_rows == 3 and not first.problems
    assert first.next_offset == cur.stat().st_size
    w.append(T0 + pd.Timedelta(seconds=15), fake_procs(20, 3), meminfo(3))
    more = read_current(cur, first.next_offset)
    assert more.procs.num_rows == 20 and more.next_offset == cur.stat().st_size
    assert read_current(cur, more.next_offset).procs is None
    active = read_store(tmp_path).procs
    w.close()
    closed = read_store(tmp_path).procs
    key = ["ts", "pid"]
    cols = [c for c in closed.columns if c != "host"]
    pd.testing.assert_frame_equal(
        active.sort_values(key)[cols].reset_index(drop=True),
        closed.sort_values(key)[cols].reset_index(drop=True),
        check_dtype=False,
        check_categorical=False,
    )


def test_active_cache_reads_only_new_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = write_samples(tmp_path, 2, close=False)
    source.clear_cache()
    rec = source.open_recording(tmp_path)
    assert source.active(rec).procs.num_rows == 40
    offsets = []
    real = store.read_current

    def spy(path: Path, offset: int = 0, data: bytes | None = None) -> object:
        offsets.append(offset)
        return real(path, offset, data)

    monkeypatch.setattr(source.store, "read_current", spy)
    assert source.active(rec).procs.num_rows == 40 and offsets == []  # unchanged: nothing read
    w.append(T0 + pd.Timedelta(seconds=10), fake_procs(20, 2), meminfo(2))
    assert source.active(rec).procs.num_rows == 60 and offsets and offsets[0] > frames.HEADER.size


def test_torn_tail_at_every_cut_loses_at_most_the_sample_in_flight(tmp_path: Path) -> None:
    w = write_samples(tmp_path, 3, n=5, close=False)
    data = w.current.read_bytes()
    starts = _frame_starts(data)
    sample_ends = [*starts[2::2], len(data)]
    for cut in sorted({0, 5, frames.HEADER.size, *range(starts[-2] - 1, len(data) + 1, 7), len(data)}):
        got = read_current(w.current, data=data[:cut])
        complete = sum(end <= cut for end in sample_ends)
        n = 0 if got.system is None else got.system.num_rows
        assert n == complete and got.lost_samples == 0, cut
        assert cut < frames.HEADER.size or not got.problems, (cut, got.problems)


def _frame_starts(data: bytes) -> list[int]:
    pos, starts = frames.HEADER.size, []
    while pos < len(data):
        starts.append(pos)
        pos += frames.FRAME.size + frames.FRAME.unpack_from(data, pos)[2]
    return starts


@pytest.mark.parametrize("where", ["procs payload", "system payload", "frame header", "length field"])
def test_a_flipped_bit_loses_one_sample_and_reading_resynchronises(tmp_path: Path, where: str) -> None:
    """One damaged byte in the second of six samples: the reader skips to the next good frame, reads the other five
    and says one sample was lost (it used to stop there and drop the rest)."""
    w = write_samples(tmp_path, 6, n=5, close=False)
    data = bytearray(w.current.read_bytes())
    starts = _frame_starts(bytes(data))
    offset = {"procs payload": starts[2] + frames.FRAME.size + 9, "system payload": starts[3] + frames.FRAME.size + 9,
              "frame header": starts[2] + 1, "length field": starts[2] + 6}[where]  # fmt: skip
    data[offset] ^= 0x10
    got = read_current(w.current, data=bytes(data))
    assert got.system.num_rows == 5 and got.procs.num_rows == 25
    assert got.lost_samples == 1 and any("1 sample(s) lost" in p for p in got.problems)
    assert T0 + pd.Timedelta(seconds=5) not in set(got.system.column("ts").to_pylist())


def test_recovery_keeps_a_damaged_original_aside(tmp_path: Path) -> None:
    """recover publishes the readable samples and renames the damaged .current instead of deleting it."""
    w = write_samples(tmp_path, 6, n=5, close=False)
    os.close(w._fd)
    data = bytearray(w.current.read_bytes())
    data[_frame_starts(bytes(data))[4] + 20] ^= 0xFF
    w.current.write_bytes(bytes(data))
    notes = store.recover(tmp_path, new_writer(tmp_path).derive)
    assert not w.current.exists()
    kept = w.current.with_name(w.current.name + ".damaged")
    assert kept.read_bytes() == bytes(data) and any("kept" in n and "aside" in n for n in notes)
    got = read_store(tmp_path)
    assert got.system["ts"].nunique() == 5
    assert got.notices == [f"{kept.name}: a damaged active segment kept aside (its readable samples were published)"]


def test_future_versions_and_zero_byte_current_are_named(tmp_path: Path) -> None:
    write_samples(tmp_path, 2, n=3)
    w = write_samples(tmp_path / "x", 1, n=3, close=False)
    newer = tmp_path / "seg-20260105T120000.000Z-host-a.current"
    newer.write_bytes(frames.HEADER.pack(frames.MAGIC, schema.CURRENT_VERSION + 1, 0) + w.current.read_bytes()[16:])
    (tmp_path / "seg-20260105T130000.000Z-host-a.current").write_bytes(b"")
    (path,) = _procs_files(tmp_path)
    table = pq.read_table(path, partitioning=None)
    future = path.with_name("seg-20260105T110000.000Z.parquet")
    meta = {**table.schema.metadata, b"pmi_schema_version": str(schema.SCHEMA_VERSION + 1).encode()}
    pq.write_table(table.replace_schema_metadata(meta), future)
    got = read_store(tmp_path)
    notices = "\n".join(got.notices)
    assert "seg-20260105T120000.000Z-host-a.current: format version 2 is newer" in notices
    assert "seg-20260105T130000.000Z-host-a.current: empty file (zero bytes)" in notices
    newer_schema = f"schema version {schema.SCHEMA_VERSION + 1} is newer"
    assert f"procs/host=host-a/date=2026-01-05/seg-20260105T110000.000Z.parquet: {newer_schema}" in notices
    assert got.system["ts"].nunique() == 2 and len(got.procs) == 6
    assert str(tmp_path) not in notices  # never an absolute path


def test_bad_append_input_is_a_clear_error(tmp_path: Path) -> None:
    w = new_writer(tmp_path)
    procs = fake_procs(3, 0)
    del procs["cgroup"]
    with pytest.raises(ValueError, match=r"missing column.*cgroup"):
        w.append(T0, procs, {})
    procs = fake_procs(3, 0)
    procs["rss_bytes"] = procs["rss_bytes"][:2]
    with pytest.raises(ValueError, match="differ in length"):
        w.append(T0, procs, {})
    assert not list(tmp_path.iterdir())


def test_segments_rotate_at_utc_midnight(tmp_path: Path) -> None:
    """A segment never crosses midnight UTC: samples on both sides of it land in two date partitions."""
    w = new_writer(tmp_path, period_s=10**9)
    night = pd.Timestamp("2026-01-05 23:59:50", tz="UTC")
    for k in range(5):
        w.append(night + pd.Timedelta(seconds=5 * k), fake_procs(4, k), meminfo(k))
    w.close()
    paths = [p.relative_to(tmp_path).as_posix() for p in _procs_files(tmp_path)]
    assert paths == [
        "procs/host=vm/date=2026-01-05/seg-20260105T235950.000Z.parquet",
        "procs/host=vm/date=2026-01-06/seg-20260106T000000.000Z.parquet",
    ]
    for p in _procs_files(tmp_path):
        day = p.parent.name[len("date=") :]
        ts = pq.read_table(p, partitioning=None).column("ts").to_pandas()
        assert (ts.dt.strftime("%Y-%m-%d") == day).all()


def test_compaction_splits_a_leftover_that_crosses_midnight(tmp_path: Path) -> None:
    night = pd.Timestamp("2026-01-05 23:59:55", tz="UTC")
    data = frames.header_bytes()
    for k in range(3):
        data += frames.encode_sample(night + pd.Timedelta(seconds=5 * k), fake_procs(3, k), meminfo(k), "h", "b")
    cur = tmp_path / "seg-20260105T235955.000Z-h.current"
    cur.write_bytes(data)
    published, _ = store.compact_current(cur, new_writer(tmp_path / "w").derive)
    dates = sorted({p.parent.name for p in published})
    assert dates == ["date=2026-01-05", "date=2026-01-06"] and not cur.exists()
    assert read_store(tmp_path).system["ts"].nunique() == 3


def test_clock_step_back_never_overwrites(tmp_path: Path) -> None:
    write_samples(tmp_path, 3, n=4, period_s=0)  # every sample its own segment
    write_samples(tmp_path, 3, n=4, period_s=0)  # a second run whose clock landed on the same instants
    assert len(_procs_files(tmp_path)) == 6
    got = read_store(tmp_path)
    assert len(got.procs) == 24 and len(got.system) == 6 and not got.notices


def test_recover_publishes_leftovers_and_never_duplicates(tmp_path: Path) -> None:
    w = write_samples(tmp_path, 4, n=6, close=False)
    os.close(w._fd)
    with open(w.current, "ab") as fh:  # a torn frame: the sample in flight at the kill
        fh.write(frames.FRAME.pack(frames.FRAME_MAGIC, b"P", 5000, 123) + b"x" * 100)
    kept = w.current.read_bytes()
    (tmp_path / "procs" / "host=host-a" / "date=2026-01-05").mkdir(parents=True)
    stale = tmp_path / "procs" / "host=host-a" / "date=2026-01-05" / "seg-x.parquet.tmp"
    stale.write_bytes(b"half")
    notes = store.recover(tmp_path, new_writer(tmp_path).derive)
    assert any("compacted leftover" in n for n in notes) and not w.current.exists() and not stale.exists()
    # killed after publishing, before deleting the .current: a rerun publishes the same names again
    w.current.write_bytes(kept)
    store.recover(tmp_path, new_writer(tmp_path).derive)
    got = read_store(tmp_path)
    assert len(_procs_files(tmp_path)) == 1 and len(got.procs) == 24 and got.system["ts"].nunique() == 4


def test_active_segment_already_published_is_not_read_twice(tmp_path: Path) -> None:
    w = write_samples(tmp_path, 2, n=3, close=False)
    kept = w.current.read_bytes()
    name = w.current.name
    w.close()
    (tmp_path / name).write_bytes(kept)  # a kill between publishing and deleting it
    got = read_store(tmp_path)
    assert len(got.procs) == 6


def test_retention_by_age_and_size_never_touches_current(tmp_path: Path) -> None:
    for k in range(3):
        w = new_writer(tmp_path)
        w.append(T0 + pd.Timedelta(hours=k), fake_procs(30, k), meminfo(k))
        w.close()
    active = write_samples(tmp_path, 1, n=30, close=False)
    segs = _procs_files(tmp_path)
    assert len(segs) == 3
    old = time.time() - 10 * 86400
    first = [p for p in tmp_path.rglob(segs[0].name)]
    for p in first:
        os.utime(p, (old, old))
    deleted = store.apply_retention(tmp_path, max_age_days=7, max_bytes=None)
    assert set(deleted) == set(first) and len(deleted) == 2
    deleted = store.apply_retention(tmp_path, max_age_days=None, max_bytes=1)
    assert len(deleted) == 4 and not _procs_files(tmp_path) and active.current.exists()
    assert store.apply_retention(tmp_path / "missing", 1, 1) == []


def test_closed_hour_bytes_per_process_sample_with_tree_columns(tmp_path: Path) -> None:
    """A closed hour (720 samples x 300 processes, strings and tree columns included) takes <= 8 B per row."""
    rng = np.random.default_rng(0)
    w = new_writer(tmp_path, host="host-a", boot_id="8b783d01-d140-430f-8dd4-b3348384e55d")
    samples, n = 720, 300
    for k in range(samples):
        ts = T0 + pd.Timedelta(seconds=5 * k) + pd.Timedelta(microseconds=int(rng.integers(0, 5000)))
        w.append(ts, fake_procs(n, k, rng), meminfo(k))
    w.close()
    total = sum(p.stat().st_size for p in tmp_path.rglob("*.parquet"))
    assert total / (samples * n) <= 8, f"{total / (samples * n):.2f} bytes per process-sample"


def test_frame_layout_is_as_documented(tmp_path: Path) -> None:
    w = write_samples(tmp_path, 1, n=2, close=False)
    data = w.current.read_bytes()
    assert data[:8] == b"PMISEG1\n" and struct.unpack_from("<I", data, 8)[0] == schema.CURRENT_VERSION
    magic, kind, length, crc = struct.unpack_from("<4scII", data, 16)
    payload = data[16 + 13 : 16 + 13 + length]
    assert (magic, kind) == (b"PMIF", b"P") and zlib.crc32(payload) == crc
    (raw_len,) = struct.unpack_from("<I", payload, 0)
    body = pa.Codec("zstd").decompress(payload[4:], decompressed_size=raw_len, asbytes=True)
    table = frames.decode_columns(body)
    assert table.num_rows == 2 and table.column_names == ["ts", *schema.SAMPLE_COLUMNS]


def test_safe_host_names() -> None:
    assert files.safe_host("web-1.example.com") == "web-1.example.com"
    assert (
        files.safe_host("a/b c") == "a_b_c" and files.safe_host("") == "unknown" and files.safe_host("..") == "unknown"
    )


def test_a_segment_being_published_is_read_once_from_its_current(tmp_path: Path) -> None:
    """Killed (or seen) between publishing the system file and the procs file: readers take the samples from the
    .current alone (no doubled system rows, no orphan notice), and recovery finishes the job."""
    w = write_samples(tmp_path, 3, n=4, close=False)
    os.close(w._fd)
    kept = w.current.read_bytes()
    name = w.current.name
    store.compact_current(w.current, w.derive)
    (tmp_path / name).write_bytes(kept)
    _procs_files(tmp_path)[0].unlink()  # the procs file, published last, is not there yet
    got = read_store(tmp_path)
    assert not got.notices and len(got.system) == 3 and len(got.procs) == 12
    store.recover(tmp_path, w.derive)
    got = read_store(tmp_path)
    assert not got.notices and len(got.system) == 3 and len(got.procs) == 12 and not list(tmp_path.glob("*.current"))


def test_timestamps_accepted_as_datetimes(tmp_path: Path) -> None:
    procs = fake_procs(3, 0)
    procs["start_time"] = [pd.Timestamp(v, unit="ns", tz="UTC") for v in procs["start_time"]]
    procs["smaps_ts"] = [None, pd.Timestamp("2026-01-05 09:59:00", tz="UTC"), None]
    w = new_writer(tmp_path, host="h", boot_id="b")
    w.append(T0, procs, meminfo(0))
    w.close()
    got = read_store(tmp_path).procs.set_index("pid")
    assert got.loc[101, "smaps_ts"] == pd.Timestamp("2026-01-05 09:59:00", tz="UTC")
    assert pd.isna(got.loc[100, "smaps_ts"])


def test_retention_keeps_the_newest_segments_within_the_cap(tmp_path: Path) -> None:
    for k in range(3):
        w = new_writer(tmp_path)
        w.append(T0 + pd.Timedelta(hours=k), fake_procs(30, k), meminfo(k))
        w.close()
    segs = _procs_files(tmp_path)
    sizes = [sum(p.stat().st_size for p in tmp_path.rglob(s.name)) for s in segs]
    deleted = store.apply_retention(tmp_path, None, sizes[1] + sizes[2])
    assert {p.name for p in deleted} == {segs[0].name} and len(deleted) >= 2
    assert _procs_files(tmp_path) == segs[1:]


def test_columnar_codec_edge_values() -> None:
    cols = [
        ("n", b"i", [1, None, -5, 2**62]),
        ("t", b"t", [None, 10**18, pd.Timestamp("2026-01-01", tz="UTC"), None]),
        ("s", b"s", ["a b", None, "", "x\0y"]),
        ("u", b"s", ["ü", 7, "(a) b)", "\u2603"]),
    ]
    table = frames.decode_columns(frames.encode_columns(123, "h", "b", cols, 4))
    assert table.column("n").to_pylist() == [1, None, -5, 2**62]
    t = table.column("t").cast(pa.int64()).to_pylist()
    assert t == [None, 10**18, pd.Timestamp("2026-01-01", tz="UTC").value, None]
    assert table.column("s").to_pylist() == ["a b", None, "", "x\ufffdy"]
    assert table.column("u").to_pylist() == ["ü", "7", "(a) b)", "\u2603"]
    empty = frames.decode_columns(frames.encode_columns(1, "h", "b", [("s", b"s", []), ("n", b"i", [])], 0))
    assert empty.num_rows == 0
    with pytest.raises(ValueError, match="out of int64 range"):
        frames.encode_columns(1, "h", "b", [("n", b"i", [2**64])], 1)
    series = pd.Series([1, None, 3], dtype="Int64")
    body = frames.encode_columns(1, "h", "b", [("n", b"i", series)], 3)
    assert frames.decode_columns(body).column("n").to_pylist() == [1, None, 3]


_texts = st.one_of(st.none(), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
_ints = st.one_of(st.none(), st.integers(-(2**63) + 1, 2**63 - 1))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(_ints, _texts), max_size=12), ts=st.integers(0, 2**62))
def test_columnar_codec_round_trip(rows: list[tuple[int | None, str | None]], ts: int) -> None:
    ints = [r[0] for r in rows]
    texts = [r[1] for r in rows]
    cols = [("n", b"i", ints), ("s", b"s", texts), ("t", b"t", ints)]
    table = frames.decode_columns(frames.encode_columns(ts, "hôst", "b", cols, len(rows)))
    assert table.num_rows == len(rows)
    assert table.column("n").to_pylist() == ints
    assert table.column("t").cast(pa.int64()).to_pylist() == ints
    assert table.column("s").to_pylist() == [None if t is None else t.replace("\0", "\ufffd") for t in texts]
    assert table.schema.metadata[b"host"] == "hôst".encode()
    if rows:
        assert set(table.column("ts").cast(pa.int64()).to_pylist()) == {ts}


def test_arrow_ipc_frames_still_read(tmp_path: Path) -> None:
    """An active segment whose frames are Arrow IPC streams (encode_frame: tools and tests) reads and publishes."""
    data = frames.header_bytes()
    for k in range(2):
        ts = T0 + pd.Timedelta(seconds=5 * k)
        procs = pa.table({"ts": pa.array([ts.value] * 3, pa.int64()).cast(frames.TS_NS), **fake_procs(3, k)})
        system = pa.table({"ts": pa.array([ts.value], pa.int64()).cast(frames.TS_NS), "MemTotal": [1 << 30]})
        data += frames.encode_frame(frames.KIND_PROCS, procs, "old", "b0")
        data += frames.encode_frame(frames.KIND_SYSTEM, system, "old", "b0")
    (tmp_path / "seg-20260105T100000.000Z-old.current").write_bytes(data)
    got = read_store(tmp_path)
    assert not got.notices and len(got.procs) == 6 and list(got.system["mem_total_bytes"]) == [1 << 30] * 2
    assert (got.procs["host"] == "old").all()
    store.recover(tmp_path, new_writer(tmp_path).derive)
    assert not list(tmp_path.glob("*.current"))
    closed = read_store(tmp_path)
    assert not closed.notices and len(closed.procs) == 6 and len(closed.system) == 2
