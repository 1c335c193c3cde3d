"""memlib.source.parquet_files prunes a window's edge days by the files' footer statistics: a file wholly outside the
window is not read (nor verified), a damaged file is still named and skipped by the first query that covers it, and
a footer that fails its own checksum gives no statistics to trust (the file is read and judged by its checksum)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import store
from memlib import query, source
from tests.strategies import MIB, make_procs, ts_of, write_store


def _store(tmp_path: Path):
    """12 samples of 3 processes in three closed segments (samples 0-3, 4-7, 8-11) of one day."""
    recs = [
        {"snap": s, "pid": pid, "ppid": 0 if pid == 1 else 1, "rss": (pid + s) * MIB}
        for s in range(12)
        for pid in (1, 2, 3)
    ]
    return write_store(tmp_path / "store", make_procs(recs), closes={3, 7, 11})


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_moment_reads_only_the_file_that_holds_it(tmp_path: Path) -> None:
    rec = _store(tmp_path)
    every = source.parquet_files(rec, "procs")
    assert len(every) == 3
    assert source.parquet_files(rec, "procs", ts_of(5), ts_of(5)) == [every[1]]
    assert source.parquet_files(rec, "procs", ts_of(3), ts_of(4)) == every[:2]
    assert source.parquet_files(rec, "procs", None, ts_of(0)) == every[:1]
    assert source.parquet_files(rec, "procs", ts_of(11) + pd.Timedelta(microseconds=2), None) == []
    spans = [store.ts_range(f) for f in every]
    assert spans[0] == (ts_of(0).value // 1000, ts_of(3).value // 1000)


def test_a_damaged_file_is_named_and_skipped_when_a_query_covers_it(tmp_path: Path) -> None:
    rec = _store(tmp_path)
    first = source.parquet_files(rec, "procs")[0]
    source.clear_cache()
    _flip(first, 20)  # in the data pages: the footer (and its statistics) stay intact
    rec = source.open_recording(rec.root)
    late = query.moment(rec, query.Moment(ts_of(10), rec.hosts[0]))
    assert len(late) == 3  # the damaged file lies outside this moment: not read
    assert not any("checksum" in n for n in rec.notices)
    series = query.system(rec)  # the process sums stored with the (intact) system file: no process row is read
    assert series["processes"].eq(3).all() and not any("checksum" in n for n in rec.notices)
    rows = query.window_rows(rec)
    assert any(n.startswith("procs/") and "checksum mismatch" in n for n in rec.notices)
    assert rows["ts"].min() == ts_of(4) and len(rows) == 8 * 3  # its rows are left out, not made up


def test_a_damaged_footer_gives_no_statistics(tmp_path: Path) -> None:
    rec = _store(tmp_path)
    first = source.parquet_files(rec, "procs")[0]
    size = first.stat().st_size
    _flip(first, size - 40)  # inside the footer
    assert store.ts_range(first) is None
    source.clear_cache()
    rec = source.open_recording(rec.root)
    assert first not in source.parquet_files(rec, "procs", ts_of(10), ts_of(10))
    assert any(n.startswith("procs/") and "damaged" in n for n in rec.notices)  # read (no span), judged, named


def test_opening_a_fleet_reads_the_footers_of_the_first_and_last_day_only(tmp_path: Path, monkeypatch) -> None:
    """The first sample lies in a file of the earliest day, the last in one of the latest day (a segment never crosses
    midnight): opening a store reads no footer of the days between, and its span is still exact."""
    day = pd.Timedelta(days=1)
    for host, days in (("a", (0, 1, 2)), ("b", (1,)), ("c", (0, 2))):
        recs = [
            {"snap": s, "pid": pid, "ppid": 0 if pid == 1 else 1, "rss": (pid + s) * MIB}
            for s in range(2)
            for pid in (1, 2)
        ]
        for d in days:
            frame = make_procs(recs)
            frame["ts"] = frame["ts"] + d * day
            write_store(tmp_path / "store", frame, closes={1}, host=host)
    read: list[Path] = []
    original = store.ts_range
    monkeypatch.setattr(store, "ts_range", lambda p: read.append(Path(p)) or original(p))
    source.clear_cache()
    rec = source.open_recording(tmp_path / "store")
    assert rec.hosts == ["a", "b", "c"]
    assert rec.span == (ts_of(0), ts_of(1) + 2 * day)
    dates = sorted({p.parent.name for p in read})
    assert dates == [f"date={ts_of(0).date()}", f"date={(ts_of(0) + 2 * day).date()}"]


def test_the_files_holding_some_moments_are_only_those(tmp_path: Path) -> None:
    rec = _store(tmp_path)
    every = source.parquet_files(rec, "procs")
    assert source.parquet_files_at(rec, "procs", [ts_of(1), ts_of(10)]) == [every[0], every[2]]  # not the middle one
    assert source.parquet_files_at(rec, "procs", [ts_of(5), ts_of(6)]) == [every[1]]
    assert source.parquet_files_at(rec, "procs", [ts_of(3), ts_of(8)]) == [every[0], every[2]]  # the edges count
    assert source.parquet_files_at(rec, "procs", []) == []
    assert source.parquet_files_at(rec, "procs", [ts_of(5)], hosts=["elsewhere"]) == []
    _flip(every[2], 20)
    source.clear_cache()
    rec = source.open_recording(rec.root)
    assert source.parquet_files_at(rec, "procs", [ts_of(1), ts_of(10)]) == [every[0]]
    assert any(n.startswith("procs/") and "checksum mismatch" in n for n in rec.notices)


def test_growers_names_read_from_the_files_that_hold_their_last_samples(tmp_path: Path) -> None:
    rec = _store(tmp_path)
    a, b = query.resolve(rec, ts_of(0)), query.resolve(rec, ts_of(11))
    got = query.window_changes(rec, a, b, limit=2).growers
    assert got["pid"].tolist() == [1, 2] and got["name"].notna().all()  # every process grew by 11 MiB: pid order


def test_a_system_series_over_files_with_and_without_stored_sums_is_the_same(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from store import segment
    from store.schema import PROC_SUM_COLUMNS

    rec = _store(tmp_path)  # three segments, their system files with the process sums
    want, binned = query.system(rec), query.system(rec, bins=4)
    older = source.parquet_files(rec, "system")[1]
    table = pq.read_table(older, partitioning=None)
    assert table.column("processes").to_pylist() == [3, 3, 3, 3]
    # the middle segment's system file as a store written before the sums has it (same rows, same checksums)
    segment._write_file(table.drop_columns(list(PROC_SUM_COLUMNS)), older, {b"pmi_schema_version": b"3"}, "system")
    source.clear_cache()
    rec = source.open_recording(rec.root)
    assert source.procs_files_without_sums(rec) == [source.parquet_files(rec, "procs")[1]]  # only its rows are read
    pd.testing.assert_frame_equal(query.system(rec), want)
    pd.testing.assert_frame_equal(query.system(rec, bins=4), binned)
