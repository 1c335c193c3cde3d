"""memlib.source: opening stores, old layouts and seed folders; closed files, active segments, DuckDB as is."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from memlib import source
from tests.store_samples import MEMINFO, MIB, T0, sample_procs, write_simple, writer

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "tests" / "data" / "seed"
OLD_SAMPLE = REPO / "tests" / "data" / "old_layout"


@pytest.fixture(autouse=True)
def _fresh() -> None:
    source.clear_cache()


def test_closed_segment_is_a_hive_dataset_duckdb_reads_as_is(tmp_path: Path) -> None:
    write_simple(tmp_path, n=3)
    rec = source.open_recording(tmp_path)
    assert rec.kind == "native" and rec.hosts == ["vm"] and rec.start_times_exact
    assert rec.interval_s == pytest.approx(5.0)
    assert rec.span == (T0, T0 + pd.Timedelta(seconds=10))
    files = source.parquet_files(rec, "procs")
    assert [f.relative_to(tmp_path).parts[:3] for f in files] == [("procs", "host=vm", "date=2026-11-27")]
    got = duckdb.sql(
        f"select host, date, pid, level, ppid, parent_start_time, descendants, subtree_rss_bytes "
        f"from read_parquet('{tmp_path}/procs/**/*.parquet', hive_partitioning=true) where ts = '{T0}' order by pid"
    ).fetchall()
    assert [(r[0], str(r[1]), r[2], r[3], r[4], r[6], r[7] // MIB) for r in got] == [
        ("vm", "2026-11-27", 1, 0, 0, 2, 60),
        ("vm", "2026-11-27", 10, 1, 1, 1, 50),
        ("vm", "2026-11-27", 11, 2, 10, 0, 30),
    ]
    assert got[0][5] is None and pd.Timestamp(got[1][5]) == T0 - pd.Timedelta(seconds=1)
    sysrows = duckdb.sql(f"select count(*), min(mem_total_bytes) from '{tmp_path}/system/**/*.parquet'").fetchall()
    assert sysrows == [(3, 4096 * MIB)]
    cg = duckdb.sql(f"select cgroup, memory_current_bytes from '{tmp_path}/cgroups/**/*.parquet'").fetchall()
    assert cg == [("/x", 5 * MIB)] * 3


def test_active_segment_read_with_tree_columns_and_cached_by_offset(tmp_path: Path) -> None:
    write_simple(tmp_path, n=2, close=False)
    rec = source.open_recording(tmp_path)
    assert rec.kind == "native" and rec.hosts == ["vm"]
    act = source.active(rec)
    assert act.procs.num_rows == 6 and act.system.num_rows == 2 and act.cgroups.num_rows == 2
    assert set(act.procs.column_names) >= {"host", "level", "parent_start_time", "subtree_rss_bytes"}
    first = act.procs.filter(pa.compute.equal(act.procs.column("ts"), pa.scalar(T0, pa.timestamp("us", "UTC"))))
    assert sorted(first.column("subtree_rss_bytes").to_pylist()) == [30 * MIB, 50 * MIB, 60 * MIB]
    assert source.parquet_files(rec, "procs") == []
    again = source.active(rec)
    assert again.procs.equals(act.procs)


def test_missing_and_empty_folders_say_why(tmp_path: Path) -> None:
    rec = source.open_recording(tmp_path / "nope")
    assert rec.kind == "empty" and "does not exist" in rec.notices[0]
    rec = source.open_recording(tmp_path)
    assert rec.kind == "empty" and "no recording" in rec.notices[-1]
    assert source.parquet_files(rec, "procs") == [] and source.active(rec).procs.num_rows == 0


def test_old_layout_is_converted_once_in_place(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shutil.copytree(OLD_SAMPLE, tmp_path / "old")
    rec = source.open_recording(tmp_path / "old")
    assert "converting" in capsys.readouterr().err
    assert rec.kind == "native" and rec.hosts == ["vm"]
    assert not list((tmp_path / "old").glob("seg-*.parquet"))
    n = duckdb.sql(f"select count(*) from '{tmp_path}/old/procs/**/*.parquet'").fetchall()[0][0]
    assert n == 28265
    again = source.open_recording(tmp_path / "old")
    assert capsys.readouterr().err == "" and again == rec


def test_seed_folder_imported_once_then_reused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shutil.copytree(SEED, tmp_path / "seed")
    rec = source.open_recording(tmp_path / "seed", tz="UTC")
    assert rec.kind == "seed" and not rec.start_times_exact and rec.interval_s == pytest.approx(2.0)
    assert rec.root == tmp_path / "seed" / ".pmi-store"
    assert "importing" in capsys.readouterr().err
    again = source.open_recording(tmp_path / "seed", tz="UTC")
    assert capsys.readouterr().err == "" and again.root == rec.root


def _sql_blocks(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [part.split("```", 1)[0] for part in text.split("```sql\n")[1:]]


def test_the_documented_duckdb_query_runs_on_a_generated_store(tmp_path: Path) -> None:
    """The DuckDB example of README.md and docs/store.md (the same query) runs as written on a generated store."""
    from bench.gen_day import write_recording

    (readme,) = _sql_blocks(REPO / "README.md")
    (doc,) = _sql_blocks(REPO / "docs" / "store.md")
    assert readme == doc
    write_recording(tmp_path, hours=0.1, n_procs=40)
    rows = duckdb.sql(readme.replace("DIR", str(tmp_path))).fetchall()
    assert len(rows) == 10 and rows[0][0] == "benchhost" and rows[0][5] >= rows[-1][5]
    assert rows[0][6] == 0  # the biggest subtree is a root's


def test_one_host_of_a_fleet_store_is_described_alone(tmp_path: Path) -> None:
    import os

    write_simple(tmp_path, n=3, host="a")  # a: T0 .. T0+10 s every 5 s
    write_simple(tmp_path, n=5, step_s=10.0, host="b")  # b: T0 .. T0+40 s every 10 s
    day = next((tmp_path / "procs" / "host=b").iterdir())
    os.mkfifo(day / "seg-20261127T100500.000Z.parquet")  # something in b's folder only its listing would name
    whole = source.open_recording(tmp_path)
    assert whole.scope is None and whole.hosts == ["a", "b"] and whole.span == (T0, T0 + pd.Timedelta(seconds=40))
    assert any("fifo" in n for n in whole.notices)
    a = source.open_recording(tmp_path, host="a")
    assert a.scope == "a" and a.hosts == ["a", "b"]  # every host is still offered
    assert a.span == (T0, T0 + pd.Timedelta(seconds=10)) and a.interval_s == pytest.approx(5.0)
    assert not any("fifo" in n for n in a.notices)  # b's partition was not listed
    b = source.open_recording(tmp_path, host="b")
    assert b.span == (T0, T0 + pd.Timedelta(seconds=40)) and b.interval_s == pytest.approx(10.0)
    assert any("fifo" in n for n in b.notices)
    assert source.partition_hosts(tmp_path) == ["a", "b"]
    write_simple(tmp_path / "other", n=1, host="b")  # nothing changes under tmp_path: both are cached
    assert source.open_recording(tmp_path, host="a") is a and source.open_recording(tmp_path, host="b") is b
    w = writer(tmp_path, host="b")  # a new segment of b: b is described again, a is not
    w.append(T0 + pd.Timedelta(hours=2), sample_procs([(1, 0, 10)]), MEMINFO)
    w.close()
    assert source.open_recording(tmp_path, host="a") is a
    assert source.open_recording(tmp_path, host="b").span[1] == T0 + pd.Timedelta(hours=2)
    assert source.open_recording(tmp_path).span[1] == T0 + pd.Timedelta(hours=2)


def test_a_seed_folder_is_described_whole_whatever_host_is_asked(tmp_path: Path) -> None:
    folder = tmp_path / "seed"
    shutil.copytree(SEED, folder)
    rec = source.open_recording(folder, host="elsewhere")
    assert rec.kind == "seed" and rec.scope is None and rec.span is not None
    assert source.partition_hosts(folder) == []
