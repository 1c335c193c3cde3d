"""memlib.store: round trip, torn tails, atomic publishing, recovery, naming, retention, size per row."""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memlib import store
from memlib.schema import SCHEMA_VERSION, STORED_PROC_COLUMNS
from memlib.store import (
    HEADER,
    SAMPLE_PROC_COLUMNS,
    SegmentWriter,
    apply_retention,
    list_segments,
    read_dumps_dir,
    read_segment,
    recover,
)

T0 = pd.Timestamp("2026-01-05 10:00:00", tz="UTC")


def fake_procs(n: int, k: int, rng: np.random.Generator | None = None) -> dict[str, list]:
    """Sample k of n processes: realistic-looking columns (times as int ns), some smaps nulls."""
    pid = list(range(100, 100 + n))
    rss = [(1000 + 37 * p + (k * p) % 97) * 4096 for p in pid]
    if rng is not None:
        rss = [int(r + rng.integers(0, 3) * 4096) for r in rss]
    start = [int(T0.value - 3600 * 10**9 + p * 10**7) for p in pid]
    has_smaps = [p % 3 != 0 for p in pid]
    return {
        "pid": pid,
        "ppid": [1 if p < 110 else 100 + (p % 10) for p in pid],
        "start_time": start,
        "uid": [0 if p % 2 else 1000 for p in pid],
        "user": ["root" if p % 2 else "alice" for p in pid],
        "state": ["S" if (p + k) % 7 else "R" for p in pid],
        "name": [f"proc-{p % 40}" for p in pid],
        "cmdline": [
            f"/usr/lib/app/bin/proc-{p % 40} --config /etc/app/{p}.toml --workers 4 --log-level info" for p in pid
        ],
        "rss_bytes": rss,
        "vsz_bytes": [r * 5 for r in rss],
        "threads": [1 + p % 9 for p in pid],
        "cgroup": [f"/system.slice/app-{p % 12}.service" for p in pid],
        "pss_bytes": [r // 2 if h else None for r, h in zip(rss, has_smaps, strict=True)],
        "uss_bytes": [r // 3 if h else None for r, h in zip(rss, has_smaps, strict=True)],
        "swap_bytes": [0 if h else None for h in has_smaps],
        "smaps_ts": [
            int(T0.value + (k - p % 12) * 5 * 10**9) if h else None for p, h in zip(pid, has_smaps, strict=True)
        ],
    }


def meminfo(k: int) -> dict[str, int]:
    return {
        "MemTotal": 16 << 30,
        "MemFree": (8 << 30) - k * 4096,
        "Active(anon)": 1 << 30,
        "HugePages_Total": 0,
        "VmallocTotal": 34359738367 * 1024,  # > 2**53: must survive exactly
    }


def write_samples(d: Path, samples: int, n: int = 20, close: bool = True, **kw: object) -> SegmentWriter:
    w = SegmentWriter(d, "host-a", "boot-1", **kw)
    for k in range(samples):
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(n, k), meminfo(k))
    if close:
        w.close()
    return w


def test_round_trip_parquet(tmp_path: Path) -> None:
    w = write_samples(tmp_path, 4, n=20)
    assert len(w.closed) == 1 and not list(tmp_path.glob("*.current"))
    (seg,) = list_segments(tmp_path)
    assert seg.kind == "parquet" and seg.path.name.endswith(".procs.parquet") and "host-a" in seg.key
    got = read_segment(seg.path)
    assert not got.notices
    assert list(got.procs.columns) == STORED_PROC_COLUMNS
    assert str(got.procs["ts"].dtype) == "datetime64[ns, UTC]" and str(got.procs["pss_bytes"].dtype) == "Int64"
    assert len(got.procs) == 80 and len(got.system) == 4
    row = got.procs[(got.procs["ts"] == T0 + pd.Timedelta(seconds=10)) & (got.procs["pid"] == 103)].iloc[0]
    src = fake_procs(20, 2)
    for c in SAMPLE_PROC_COLUMNS:
        want = src[c][3]
        have = row[c]
        if c in ("start_time", "smaps_ts"):
            want = pd.Timestamp(want, unit="ns", tz="UTC") if want is not None else None
        if want is None:
            assert pd.isna(have), c
        else:
            assert have == want, c
    # unknown stays null, never 0
    assert got.procs.loc[got.procs["pid"] % 3 == 0, "pss_bytes"].isna().all()
    assert (got.procs["host"] == "host-a").all() and (got.procs["boot_id"] == "boot-1").all()
    sysrow = got.system.iloc[1]
    assert sysrow["ts"] == T0 + pd.Timedelta(seconds=5) and sysrow["MemFree"] == (8 << 30) - 4096
    assert list(got.system.columns) == ["ts", "host", "boot_id", *meminfo(0)]
    assert got.system["VmallocTotal"].iloc[0] == 34359738367 * 1024
    # the parquet pair carries the schema version, host and boot id
    import pyarrow.parquet as pq

    meta = pq.read_schema(seg.path).metadata
    assert meta[b"pmi_schema_version"] == str(SCHEMA_VERSION).encode() and meta[b"host"] == b"host-a"


def test_current_readable_and_incremental(tmp_path: Path) -> None:
    w = write_samples(tmp_path, 3, close=False)
    (seg,) = list_segments(tmp_path)
    assert seg.kind == "current"
    first = read_segment(seg.path)
    assert len(first.procs) == 60 and len(first.system) == 3 and not first.notices
    assert first.next_offset == seg.path.stat().st_size
    w.append(T0 + pd.Timedelta(seconds=15), fake_procs(20, 3), meminfo(3))
    more = read_segment(seg.path, first.next_offset)
    assert len(more.procs) == 20 and (more.procs["ts"] == T0 + pd.Timedelta(seconds=15)).all()
    assert read_segment(seg.path, more.next_offset).procs.empty
    # readers agree between active and closed forms
    whole = read_segment(seg.path)
    w.close()
    closed = read_segment(list_segments(tmp_path)[0].path)
    key = ["ts", "pid"]
    pd.testing.assert_frame_equal(
        whole.procs.sort_values(key).reset_index(drop=True), closed.procs.sort_values(key).reset_index(drop=True)
    )


def test_torn_tail_at_every_cut_loses_at_most_one_sample(tmp_path: Path) -> None:
    write_samples(tmp_path, 3, n=5, close=False)
    (seg,) = list_segments(tmp_path)
    data = seg.path.read_bytes()
    full = read_segment(seg.path)
    cut_dir = tmp_path / "cut"
    cut_dir.mkdir()
    target = cut_dir / seg.path.name
    # every cut inside the last sample (both frames), plus the header region
    last_start = _frame_starts(data)[-2]
    all_starts = _frame_starts(data)
    sample_ends = [*all_starts[2::2], len(data)]
    starts = all_starts[-2:]
    near = [s + d for s in starts for d in (-1, 0, 1, store.FRAME.size - 1, store.FRAME.size, store.FRAME.size + 1)]
    spread = range(last_start, len(data) + 1, max(1, (len(data) - last_start) // 20))
    for cut in sorted({0, 5, HEADER.size, *near, *spread, len(data) - 1, len(data)}):
        target.write_bytes(data[:cut])
        got = read_segment(target)
        assert not got.notices, (cut, got.notices)
        complete = sum(end <= cut for end in sample_ends)  # samples whose two frames are whole
        assert got.procs["ts"].nunique() == complete
        if cut >= last_start:
            assert complete >= 2  # at most the sample being written is lost
        assert set(got.system["ts"]) == set(got.procs["ts"])  # never a procs frame without its system frame
    assert full.procs["ts"].nunique() == 3


def _frame_starts(data: bytes) -> list[int]:
    pos, starts = HEADER.size, []
    while pos < len(data):
        starts.append(pos)
        _, _, length, _ = store.FRAME.unpack_from(data, pos)
        pos += store.FRAME.size + length
    return starts


def test_crc_damage_is_reported_and_stops(tmp_path: Path) -> None:
    write_samples(tmp_path, 3, n=5, close=False)
    (seg,) = list_segments(tmp_path)
    data = bytearray(seg.path.read_bytes())
    starts = _frame_starts(bytes(data))
    data[starts[2] + store.FRAME.size + 10] ^= 0xFF  # inside the second sample's procs payload
    seg.path.write_bytes(bytes(data))
    got = read_segment(seg.path)
    assert got.procs["ts"].nunique() == 1
    assert any("CRC mismatch" in n and seg.path.name in n for n in got.notices)


def test_newer_schema_version_is_named_not_read(tmp_path: Path) -> None:
    write_samples(tmp_path, 1, n=3, close=False)
    (seg,) = list_segments(tmp_path)
    data = seg.path.read_bytes()
    seg.path.write_bytes(HEADER.pack(store.MAGIC, SCHEMA_VERSION + 1, 0) + data[HEADER.size :])
    got = read_segment(seg.path)
    assert got.procs.empty and "newer" in got.notices[0] and seg.path.name in got.notices[0]


def test_garbage_files_give_notices_not_crashes(tmp_path: Path) -> None:
    (tmp_path / "seg-20260101T000000.000Z-h.current").write_bytes(b"not a segment at all, really")
    (tmp_path / "seg-20260101T010000.000Z-h.procs.parquet").write_bytes(b"PAR1garbage")
    (tmp_path / "seg-20260101T020000.000Z-h.current").write_bytes(b"")  # just created
    out = read_dumps_dir(tmp_path)
    assert out.procs.empty
    assert any("bad header" in n for n in out.notices) and any("unreadable" in n for n in out.notices)
    # compacted / deleted between listing and reading: empty, silent (the next listing is right)
    gone = read_segment(tmp_path / "seg-20260101T030000.000Z-h.current", 100)
    assert gone.procs.empty and gone.next_offset == 100 and not gone.notices


def test_bad_append_input_is_a_clear_error(tmp_path: Path) -> None:
    w = SegmentWriter(tmp_path, "h", "b")
    procs = fake_procs(3, 0)
    del procs["cgroup"]
    with pytest.raises(ValueError, match=r"missing column.*cgroup"):
        w.append(T0, procs, {})
    procs = fake_procs(3, 0)
    procs["rss_bytes"] = procs["rss_bytes"][:2]
    with pytest.raises(ValueError, match="differ in length"):
        w.append(T0, procs, {})
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_timestamps_accepted_as_datetimes(tmp_path: Path) -> None:
    procs = fake_procs(3, 0)
    procs["start_time"] = [pd.Timestamp(v, unit="ns", tz="UTC") for v in procs["start_time"]]
    procs["smaps_ts"] = [None, pd.Timestamp("2026-01-05 09:59:00", tz="UTC"), None]
    w = SegmentWriter(tmp_path, "h", "b")
    w.append(T0, procs, meminfo(0))
    w.close()
    got = read_segment(list_segments(tmp_path)[0].path).procs.set_index("pid")
    assert got.loc[101, "smaps_ts"] == pd.Timestamp("2026-01-05 09:59:00", tz="UTC")
    assert pd.isna(got.loc[100, "smaps_ts"])


def test_period_rollover_and_names_never_collide(tmp_path: Path) -> None:
    w = write_samples(tmp_path, 3, n=4, period_s=0)  # every sample starts a new segment
    assert len(w.closed) == 3
    # a second run whose clock stepped back to the same instant must not overwrite anything
    write_samples(tmp_path, 3, n=4, period_s=0)
    segs = list_segments(tmp_path)
    assert len(segs) == 6 and len({s.path for s in segs}) == 6
    assert read_dumps_dir(tmp_path).procs.shape[0] == 6 * 4


def test_list_segments_hides_tmp_unknown_and_compacted_current(tmp_path: Path) -> None:
    write_samples(tmp_path, 2, n=3)
    (seg,) = list_segments(tmp_path)
    stem = seg.path.name[: -len(".procs.parquet")]
    (tmp_path / f"{stem}.current").write_bytes(b"left over after a kill between rename and unlink")
    (tmp_path / f"{stem}.procs.parquet.tmp").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "time").mkdir()
    assert [s.path for s in list_segments(tmp_path)] == [seg.path]
    notes = recover(tmp_path)
    assert not (tmp_path / f"{stem}.current").exists() and not (tmp_path / f"{stem}.procs.parquet.tmp").exists()
    assert any("already compacted" in n for n in notes)
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "time").is_dir()


def test_recover_compacts_leftover_current_dropping_torn_tail(tmp_path: Path) -> None:
    w = write_samples(tmp_path, 4, n=6, close=False)
    os.close(w._fd)  # the process "dies": no close()
    cur = w.current
    with open(cur, "ab") as fh:  # a torn frame header + partial payload
        fh.write(store.FRAME.pack(store.FRAME_MAGIC, b"P", 5000, 123) + b"x" * 100)
    # a compaction killed after publishing only the system file
    notes = recover(tmp_path)
    assert any("compacted leftover" in n for n in notes) and not cur.exists()
    (seg,) = list_segments(tmp_path)
    got = read_segment(seg.path)
    assert seg.kind == "parquet" and got.procs["ts"].nunique() == 4 and len(got.system) == 4


def test_orphan_system_file_from_killed_compaction(tmp_path: Path) -> None:
    w = write_samples(tmp_path, 2, n=3, close=False)
    os.close(w._fd)
    stem = w.current.name[: -len(".current")]
    (tmp_path / f"{stem}.system.parquet").write_bytes(b"stale")
    (seg,) = list_segments(tmp_path)  # the procs file is missing: readers keep using the .current
    assert seg.kind == "current" and read_segment(seg.path).procs["ts"].nunique() == 2
    recover(tmp_path)
    (seg,) = list_segments(tmp_path)
    assert seg.kind == "parquet" and len(read_segment(seg.path).system) == 2


def test_retention_by_age_and_size_never_touches_current(tmp_path: Path) -> None:
    for _ in range(3):
        write_samples(tmp_path, 2, n=30)
    active = write_samples(tmp_path, 1, n=30, close=False)
    pairs = [s.path for s in list_segments(tmp_path) if s.kind == "parquet"]
    assert len(pairs) == 3
    old = time.time() - 10 * 86400
    for p in store._pair_paths(pairs[0]):
        os.utime(p, (old, old))
    deleted = apply_retention(tmp_path, max_age_days=7, max_bytes=None)
    assert set(deleted) == set(store._pair_paths(pairs[0]))
    assert active.current.exists()
    # size: keep deleting oldest pairs until under the cap; the .current survives even if alone over the cap
    deleted = apply_retention(tmp_path, max_age_days=None, max_bytes=1)
    assert set(deleted) == set(store._pair_paths(pairs[1])) | set(store._pair_paths(pairs[2]))
    assert [s.kind for s in list_segments(tmp_path)] == ["current"]
    assert apply_retention(tmp_path / "missing", 1, 1) == []


def test_retention_keeps_newest_within_cap(tmp_path: Path) -> None:
    for _ in range(3):
        write_samples(tmp_path, 2, n=30)
        time.sleep(0.01)
    pairs = [s.path for s in list_segments(tmp_path)]
    sizes = [sum(p.stat().st_size for p in store._pair_paths(x)) for x in pairs]
    deleted = apply_retention(tmp_path, None, sizes[1] + sizes[2])
    assert set(deleted) == set(store._pair_paths(pairs[0]))
    assert [s.path for s in list_segments(tmp_path)] == pairs[1:]


def test_closed_period_bytes_per_process_sample(tmp_path: Path) -> None:
    """A closed hour (720 samples x 300 processes, strings included) takes <= 8 bytes per process-sample."""
    rng = np.random.default_rng(0)
    w = SegmentWriter(tmp_path, "host-a", "8b783d01-d140-430f-8dd4-b3348384e55d")
    samples, n = 720, 300
    for k in range(samples):
        ts = T0 + pd.Timedelta(seconds=5 * k) + pd.Timedelta(microseconds=int(rng.integers(0, 5000)))
        w.append(ts, fake_procs(n, k, rng), meminfo(k))
    w.close()
    (seg,) = list_segments(tmp_path)
    total = sum(p.stat().st_size for p in store._pair_paths(seg.path))
    per_row = total / (samples * n)
    assert per_row <= 8, f"{per_row:.2f} bytes per process-sample"
    assert len(read_segment(seg.path).procs) == samples * n


def test_frame_layout_is_as_documented(tmp_path: Path) -> None:
    write_samples(tmp_path, 1, n=2, close=False)
    data = next(tmp_path.glob("*.current")).read_bytes()
    assert data[:8] == b"PMISEG1\n" and struct.unpack_from("<I", data, 8)[0] == SCHEMA_VERSION
    magic, kind, length, crc = struct.unpack_from("<4scII", data, 16)
    payload = data[16 + 13 : 16 + 13 + length]
    assert (magic, kind) == (b"PMIF", b"P") and zlib.crc32(payload) == crc
    (raw_len,) = struct.unpack_from("<I", payload, 0)
    body = pa.Codec("zstd").decompress(payload[4:], decompressed_size=raw_len, asbytes=True)
    assert body[:4] == b"PMC1" and struct.unpack_from("<I", body, 4)[0] == 2
    table = store.decode_columns(body)
    assert table.num_rows == 2 and table.schema.metadata[b"host"] == b"host-a"
    assert table.column_names == ["ts", *SAMPLE_PROC_COLUMNS]


def _arrow_frames(tmp_path: Path, bare: bool) -> Path:
    """A .current written with Arrow IPC frames (encode_frame; `bare`: the first, uncompressed dev format) and a
    wide system table."""
    path = tmp_path / "seg-20260105T100000.000Z-old.current"
    data = HEADER.pack(store.MAGIC, SCHEMA_VERSION, 0)
    for k in range(2):
        ts = T0 + pd.Timedelta(seconds=5 * k)
        procs = store.procs_table(ts, fake_procs(3, k))
        system = pa.table({"ts": pa.array([ts.value], type=pa.int64()).cast(store._TS), "MemTotal": [1 << 30]})
        for kind, table in ((store.KIND_PROCS, procs), (store.KIND_SYSTEM, system)):
            frame = store.encode_frame(kind, table, "old", "b0")
            if bare:
                sink = pa.BufferOutputStream()
                meta_table = table.replace_schema_metadata({b"host": b"old", b"boot_id": b"b0"})
                with pa.ipc.new_stream(sink, meta_table.schema) as w:
                    w.write_table(meta_table)
                payload = sink.getvalue().to_pybytes()
                frame = store.FRAME.pack(store.FRAME_MAGIC, kind, len(payload), zlib.crc32(payload)) + payload
            data += frame
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("bare", [False, True])
def test_arrow_ipc_frames_still_read(tmp_path: Path, bare: bool) -> None:
    path = _arrow_frames(tmp_path, bare)
    got = read_segment(path)
    assert not got.notices and len(got.procs) == 6 and list(got.system["MemTotal"]) == [1 << 30] * 2
    assert (got.procs["host"] == "old").all()
    assert store.compact_current(path) is not None
    closed = read_segment(list_segments(tmp_path)[0].path)
    assert len(closed.procs) == 6 and len(closed.system) == 2


def test_columnar_codec_edge_values() -> None:
    cols = [
        ("n", b"i", [1, None, -5, 2**62]),
        ("t", b"t", [None, 10**18, pd.Timestamp("2026-01-01", tz="UTC"), None]),
        ("s", b"s", ["a b", None, "", "x\0y"]),
        ("u", b"s", ["ü", 7, "(a) b)", "\u2603"]),
    ]
    table = store.decode_columns(store.encode_columns(123, "h", "b", cols, 4))
    assert table.column("n").to_pylist() == [1, None, -5, 2**62]
    t = table.column("t").cast(pa.int64()).to_pylist()
    assert t == [None, 10**18, pd.Timestamp("2026-01-01", tz="UTC").value, None]
    assert table.column("s").to_pylist() == ["a b", None, "", "x\ufffdy"]
    assert table.column("u").to_pylist() == ["ü", "7", "(a) b)", "\u2603"]
    empty = store.decode_columns(store.encode_columns(1, "h", "b", [("s", b"s", []), ("n", b"i", [])], 0))
    assert empty.num_rows == 0
    with pytest.raises(ValueError, match="out of int64 range"):
        store.encode_columns(1, "h", "b", [("n", b"i", [2**64])], 1)
    series = pd.Series([1, None, 3], dtype="Int64")
    assert store.decode_columns(store.encode_columns(1, "h", "b", [("n", b"i", series)], 3)).column(
        "n"
    ).to_pylist() == [1, None, 3]


_texts = st.one_of(st.none(), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
_ints = st.one_of(st.none(), st.integers(-(2**63) + 1, 2**63 - 1))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(_ints, _texts), max_size=12), ts=st.integers(0, 2**62))
def test_columnar_codec_round_trip(rows: list[tuple[int | None, str | None]], ts: int) -> None:
    ints = [r[0] for r in rows]
    texts = [r[1] for r in rows]
    body = store.encode_columns(ts, "hôst", "b", [("n", b"i", ints), ("s", b"s", texts), ("t", b"t", ints)], len(rows))
    table = store.decode_columns(body)
    assert table.num_rows == len(rows)
    assert table.column("n").to_pylist() == ints
    assert table.column("t").cast(pa.int64()).to_pylist() == ints
    assert table.column("s").to_pylist() == [None if t is None else t.replace("\0", "\ufffd") for t in texts]
    assert table.schema.metadata[b"host"] == "hôst".encode()
    if rows:
        assert set(table.column("ts").cast(pa.int64()).to_pylist()) == {ts}
