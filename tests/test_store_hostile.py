"""The store against bad luck and bad actors: flipped bits in closed files, orphans, files outside the root,
symlink loops, special files, a deleted lock file; old layouts and seed folders converted safely."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

import store
from memlib import source
from store import lock, migrate
from tests.store_samples import T0, read_store, write_simple
from tests.store_samples import writer as new_writer

REPO = Path(__file__).resolve().parents[1]
OLD = REPO / "tests" / "data" / "old_layout"
SEED = REPO / "tests" / "data" / "seed"


@pytest.fixture(autouse=True)
def _fresh() -> None:
    source.clear_cache()


def _two_segments(root: Path) -> tuple[Path, Path]:
    """Two closed segments (3 samples each); returns the first segment's procs and system files."""
    write_simple(root, n=3)
    w = new_writer(root)
    from tests.store_samples import MEMINFO, sample_procs

    for k in range(3):
        w.append(T0 + pd.Timedelta(hours=1, seconds=5 * k), sample_procs([(1, 0, 10), (10, 1, 20)]), MEMINFO)
    w.close()
    procs = sorted((root / "procs").rglob("*.parquet"))[0]
    return procs, Path(str(procs).replace("/procs/", "/system/", 1))


def _flip(path: Path, needle: bytes | None = None, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    pos = data.find(needle) + 1 if needle else at
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("table", ["procs", "system"])
def test_a_flipped_bit_in_a_closed_file_is_caught_and_named_the_rest_is_read(tmp_path: Path, table: str) -> None:
    """A flipped bit in one file of a segment: that file is left out with a notice naming it (relative path), the
    other table's file of the same segment and every other segment are still read."""
    procs, system = _two_segments(tmp_path)
    bad = procs if table == "procs" else system
    _flip(bad, at=40)  # inside the first data page
    rec = source.open_recording(tmp_path)
    listed = source.parquet_files(rec, table)
    assert bad not in listed and len(listed) == 1
    assert len(source.parquet_files(rec, "system" if table == "procs" else "procs")) == 2  # the good file stays
    rel = bad.relative_to(tmp_path).as_posix()
    assert any(n.startswith(f"{rel}: checksum mismatch") for n in rec.notices), rec.notices
    assert not any(str(tmp_path) in n for n in rec.notices)
    got = read_store(tmp_path)
    assert got.system["ts"].nunique() == (3 if table == "system" else 6)
    assert got.procs["ts"].nunique() == (3 if table == "procs" else 6)


def test_a_flipped_bit_in_a_string_page_would_change_names_silently_without_the_checksum(tmp_path: Path) -> None:
    """DuckDB reads a damaged dictionary page without complaint (it does not check page CRCs): the per-file
    checksum is what keeps altered command lines out."""
    procs, _ = _two_segments(tmp_path)
    table = pq.read_table(procs, partitioning=None)
    pq.write_table(table, procs, compression="none", use_dictionary=True)  # plain bytes for the flip, no digest
    assert store.check(procs, "procs") == (
        True,
        "no data checksum in the footer (written by another tool?): read unverified",
    )
    procs2 = tmp_path / "copy.parquet"
    store.segment._write_file(table, procs2, dict(table.schema.metadata), "procs")
    data = bytearray(procs2.read_bytes())
    assert store.verify(procs2) is None
    data[len(data) // 4] ^= 0x01
    procs2.write_bytes(bytes(data))
    assert "checksum mismatch" in store.verify(procs2)


def test_orphan_files_are_named_and_still_read(tmp_path: Path) -> None:
    procs, system = _two_segments(tmp_path)
    procs.unlink()
    rec = source.open_recording(tmp_path)
    rel = system.relative_to(tmp_path).as_posix()
    assert any(n.startswith(f"{rel}: no process file") for n in rec.notices)
    assert len(source.parquet_files(rec, "system")) == 2


def test_only_regular_files_inside_the_root_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "rec"
    procs, _ = _two_segments(root)
    part = procs.parent
    secret = tmp_path / "shadow.parquet"
    shutil.copy(procs, secret)
    (part / "seg-20260101T000000.000Z.parquet").symlink_to(secret)  # leaves the root
    (part / "seg-20260101T000001.000Z.parquet").symlink_to(part / "seg-20260101T000001.000Z.parquet")  # loop
    os.mkfifo(part / "seg-20260101T000002.000Z.parquet")
    sock = socket.socket(socket.AF_UNIX)
    monkeypatch.chdir(part)  # a socket path must be short
    sock.bind("seg-20260101T000003.000Z.parquet")
    (part / "seg-20260101T000004.000Z.parquet").symlink_to(procs)  # inside the root: fine
    (root / "system" / "host=evil").symlink_to(tmp_path)  # a partition folder leaving the root
    rec = source.open_recording(root)
    files = source.parquet_files(rec, "procs")
    assert secret not in [f.resolve() for f in files]
    assert len(files) == 3  # two real segments and the link to one of them
    text = "\n".join(rec.notices)
    assert "seg-20260101T000000.000Z.parquet: symlink to a file outside the recording, skipped" in text
    assert "seg-20260101T000001.000Z.parquet: symlink loop, skipped" in text
    assert "seg-20260101T000002.000Z.parquet: not a regular file" in text
    assert "seg-20260101T000003.000Z.parquet: not a regular file" in text
    assert "system/host=evil: symlink to a file outside the recording, skipped" in text
    assert str(tmp_path) not in text
    sock.close()


def test_a_symlinked_seed_csv_outside_the_folder_is_never_read(tmp_path: Path) -> None:
    folder = tmp_path / "seed"
    shutil.copytree(SEED, folder)
    outside = tmp_path / "shadow"
    outside.write_text("root:$6$secret:19000:0:99999:7:::\n")
    (folder / "time" / "process_mem_20261127_170500.csv").symlink_to(outside)
    rec = source.open_recording(folder, tz="UTC")
    text = "\n".join(rec.notices)
    assert "time/process_mem_20261127_170500.csv: symlink to a file outside the recording, skipped" in text
    assert "root:$6$" not in text and str(tmp_path) not in text
    assert rec.kind == "seed"


def test_a_deleted_lock_file_does_not_let_a_second_collector_in(tmp_path: Path) -> None:
    fds = lock.acquire(tmp_path)
    try:
        (tmp_path / lock.LOCK_NAME).unlink()
        with pytest.raises(lock.Locked, match="already recording"):
            lock.acquire(tmp_path)
        second = subprocess.run(
            [sys.executable, "-m", "collector", "--dumps", str(tmp_path), "--duration", "0"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1 and "already recording" in second.stderr
    finally:
        lock.release(fds)
    lock.release(lock.acquire(tmp_path))  # free again once released


# ---------------------------------------------------------------------------------------------------- migration


def test_migration_interrupted_at_every_step_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The conversion is killed after each file operation in turn (a write, a rename, a removal): a re-run always
    ends with every row of the original exactly once, and an original is gone only after its files exist."""
    want = duckdb.sql(f"select count(*) from '{OLD}/*.procs.parquet'").fetchall()[0][0]
    steps = 0
    while True:
        root = tmp_path / f"run{steps}"
        shutil.copytree(OLD, root)
        calls = {"n": 0}
        real_replace, real_unlink = os.replace, Path.unlink

        class Killed(Exception):
            pass

        def count(calls: dict = calls, steps: int = steps) -> None:
            calls["n"] += 1
            if calls["n"] > steps:
                raise Killed

        def replace(a, b, real=real_replace):
            count()
            return real(a, b)

        def unlink(self, missing_ok=False, real=real_unlink):
            if not str(self).endswith(".tmp"):
                count()
            return real(self, missing_ok=missing_ok)

        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(Path, "unlink", unlink)
        try:
            migrate.migrate(root, new_writer(tmp_path / "w").derive)
            finished = True
        except Killed:
            finished = False
        monkeypatch.setattr(os, "replace", real_replace)
        monkeypatch.setattr(Path, "unlink", real_unlink)
        originals = list(root.glob("seg-*.procs.parquet"))
        converted = list((root / "procs").rglob("*.parquet"))
        assert originals or converted, steps  # never both gone
        store.recover(root, new_writer(tmp_path / "w").derive)  # the next start resumes
        got = read_store(root)
        assert len(got.procs) == want and not got.procs.duplicated(["ts", "pid"]).any(), steps
        assert not list(root.glob("seg-*.parquet")) and not list(root.rglob("*.tmp")), steps
        if finished:
            break
        steps += 1
    assert steps >= 4  # system, procs, cgroups renames and the two removals were each interrupted


def test_read_only_old_store_is_converted_into_a_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A viewer without write access: converted into the user's cache once, originals untouched; the next opens
    reuse it (no second conversion); a new pair of the previous layout is converted alone."""
    root = tmp_path / "old"
    shutil.copytree(OLD, root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(source, "_writable", lambda folder: False)
    rec = source.open_recording(root)
    assert "converting" in capsys.readouterr().err
    assert rec.root.is_relative_to(tmp_path / "cache") and rec.kind == "native" and rec.hosts == ["vm"]
    assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in OLD.iterdir())  # untouched
    assert len(source.parquet_files(rec, "procs")) == 1
    source.clear_cache()
    again = source.open_recording(root)
    assert "converting" not in capsys.readouterr().err and again.root == rec.root
    for src in OLD.iterdir():  # another segment of the previous layout appears (an old collector still running)
        shutil.copy(src, root / src.name.replace("20261127T212009", "20261127T222009"))
    third = source.open_recording(root)
    assert "(1 segment(s))" in capsys.readouterr().err and len(source.parquet_files(third, "procs")) == 2


# ---------------------------------------------------------------------------------------------------- seed import


def test_seed_import_is_extended_when_later_csvs_appear(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Half the rounds imported, then the rest appear: only the new files are read, and processes running across
    the two imports keep their start time (identity continues)."""
    folder = tmp_path / "seed"
    shutil.copytree(SEED, folder)
    stamps = sorted({f.name.split("_mem_")[1] for f in (folder / "time").glob("*.csv")})
    later = [f for f in (folder / "time").glob("*.csv") if f.name.split("_mem_")[1] > stamps[40]]
    held = tmp_path / "held"
    held.mkdir()
    for f in later:
        shutil.move(f, held / f.name)
    first = source.open_recording(folder, tz="UTC")
    assert "importing" in capsys.readouterr().err
    before = read_store(first.root).procs
    for f in sorted(held.iterdir()):
        shutil.move(f, folder / "time" / f.name)
    source.clear_cache()
    second = source.open_recording(folder, tz="UTC")
    err = capsys.readouterr().err
    assert "extending" in err and f"{len(later)} seed CSV" in err
    after = read_store(second.root).procs
    # the same rows a one-go import gives
    whole = tmp_path / "whole"
    shutil.copytree(SEED, whole)
    ref = read_store(source.open_recording(whole, tz="UTC").root).procs
    key = ["ts", "pid"]
    cols = ["ts", "pid", "ppid", "start_time", "rss_bytes", "level", "subtree_rss_bytes"]
    pd.testing.assert_frame_equal(
        after.sort_values(key)[cols].reset_index(drop=True), ref.sort_values(key)[cols].reset_index(drop=True)
    )
    assert len(after) > len(before)
    # a changed CSV rebuilds the cache
    victim = sorted((folder / "time").glob("process_mem_*.csv"))[0]
    victim.write_text(victim.read_text())
    os.utime(victim, (time.time() + 5, time.time() + 5))
    source.clear_cache()
    source.open_recording(folder, tz="UTC")
    assert "importing" in capsys.readouterr().err


def test_a_crafted_store_of_the_previous_layout_converts_with_every_value(tmp_path: Path) -> None:
    """tests/native_crafted's recording written by the previous collector (a closed pair) plus a leftover active
    segment of a killed run: opening it converts both; values, nulls, cgroup memory and trees are as documented."""
    root = tmp_path / "old"
    shutil.copytree(REPO / "tests" / "data" / "old_layout_crafted", root)
    rec = source.open_recording(root)
    assert rec.kind == "native" and rec.hosts == ["vm"]
    assert sorted(p.name for p in root.iterdir()) == [".collector.lock", "cgroups", "procs", "system"]
    got = read_store(root)
    assert not got.notices
    assert got.system["ts"].nunique() == 5 and got.procs["ts"].nunique() == 5
    mib = 1 << 20
    at2 = got.procs[got.procs["ts"] == pd.Timestamp("2026-11-27T10:00:20Z")].set_index("pid")
    assert at2.loc[11, "rss_bytes"] == 50 * mib and at2.loc[11, "pss_bytes"] == 25 * mib
    assert pd.isna(at2.loc[20, "pss_bytes"]) and at2.loc[31, "ppid"] == 1
    assert at2.loc[1, "subtree_rss_bytes"] == (10 + 20 + 50 + 100 + 1) * mib and at2.loc[1, "descendants"] == 4
    assert at2.loc[11, "level"] == 2 and at2.loc[11, "parent_start_time"] == at2.loc[10, "start_time"]
    assert at2.loc[1, "subtree_pss_bytes"] == (5 + 10 + 25 + 1) * mib  # postgres' unknown PSS is not a 0
    cg = got.cgroups[got.cgroups["cgroup"] == "/system.slice/nginx.service"]
    assert len(cg) == 3 and (cg["memory_current_bytes"] == 80 * mib).all()
    sysrow = got.system.sort_values("ts").iloc[0]
    assert sysrow["mem_total_bytes"] == 4096 * mib and sysrow["swap_free_bytes"] == 1000 * mib


def test_two_viewers_opening_a_seed_folder_at_once_import_it_once(tmp_path: Path) -> None:
    import threading

    folder = tmp_path / "seed"
    shutil.copytree(SEED, folder)
    results = []

    def open_it() -> None:
        results.append(source.open_recording(folder, tz="UTC", progress=lambda line: None))

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.root for r in results}) == 1
    assert len(list((results[0].root / "procs").rglob("*.parquet"))) == 1
    got = read_store(results[0].root)
    assert not got.procs.duplicated(["ts", "pid"]).any() and got.system["ts"].nunique() == 75


def test_a_file_deleted_between_listing_and_reading_is_not_called_damaged(tmp_path: Path) -> None:
    assert store.check(tmp_path / "gone.parquet", "procs") == (False, None)
