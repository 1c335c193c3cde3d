"""The previous store module (memlib.store) under a full disk, short writes and a clock stepping back.

The collector itself (kill -9, a full disk, clock steps) is tested against the store package in test_store_crash.py.

What a crash may cost is the sample being written (one interval); everything a reader can see loads.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from collector.sampler import Sampler
from memlib import store
from memlib.load import clear_cache, load_dumps
from memlib.store import SegmentWriter, list_segments, read_dumps_dir, read_segment
from tests.fakeproc import FailingReaders, FakeProcess, FakeProcFS
from tests.test_store import T0, fake_procs, meminfo

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


# ---------------------------------------------------------------------------------------------------- full disk


class FailingWrite:
    """os.write stand-in: the `fail_at`-th call writes `short` bytes of its data (really) and returns that count,
    the next one raises ENOSPC; every other call is the real write."""

    def __init__(self, fail_at: int, short: int | None) -> None:
        self.real = os.write
        self.calls = 0
        self.fail_at = fail_at
        self.short = short

    def __call__(self, fd: int, data: bytes) -> int:
        self.calls += 1
        if self.calls == self.fail_at and self.short is not None:
            return self.real(fd, bytes(data)[: self.short])
        if self.calls in (self.fail_at, self.fail_at + 1):
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(fd, data)


@pytest.mark.parametrize("short", [None, 0, 7, 13, 200, -1], ids=lambda s: f"short={s}")
def test_enospc_mid_sample_leaves_no_partial_sample_and_next_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short: int | None
) -> None:
    """A write that stops short and then fails with ENOSPC: the sample is not visible at all, the samples before it
    are intact and the next sample goes in whole (the writer cuts the file back to the last whole sample)."""
    w = SegmentWriter(tmp_path, "h", "b")
    for k in range(3):
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(6, k), meminfo(k))
    size = w.current.stat().st_size
    frame_len = len(store.encode_sample(T0, fake_procs(6, 3), meminfo(3), "h", "b"))
    cut = None if short is None else (frame_len - 1 if short == -1 else short)
    fake = FailingWrite(fail_at=1, short=cut)
    monkeypatch.setattr(store.os, "write", fake)
    with pytest.raises(OSError, match="No space left"):
        w.append(T0 + pd.Timedelta(seconds=15), fake_procs(6, 3), meminfo(3))
    assert fake.calls >= 1
    monkeypatch.setattr(store.os, "write", fake.real)
    assert w.current.stat().st_size == size  # nothing of the failed sample remains
    got = read_segment(w.current)
    assert not got.notices and got.procs["ts"].nunique() == 3
    w.append(T0 + pd.Timedelta(seconds=20), fake_procs(6, 4), meminfo(4))
    got = read_segment(w.current)
    assert not got.notices
    want = {T0 + pd.Timedelta(seconds=s) for s in (0, 5, 10, 20)}
    assert set(got.procs["ts"]) == want and set(got.system["ts"]) == want
    w.close()
    assert set(read_dumps_dir(tmp_path).procs["ts"]) == want


def test_enospc_when_a_new_segment_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk is full when the header of a new segment is written: no file (temp or visible) is left, no
    descriptor leaks, and once there is space again the next sample starts the segment."""
    w = SegmentWriter(tmp_path, "h", "b")
    fake = FailingWrite(fail_at=1, short=5)
    monkeypatch.setattr(store.os, "write", fake)
    fds_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match=r"short write|No space"):
        w.append(T0, fake_procs(3, 0), meminfo(0))
    monkeypatch.setattr(store.os, "write", fake.real)
    assert list(tmp_path.iterdir()) == [] and w.current is None
    assert len(os.listdir("/proc/self/fd")) == fds_before
    w.append(T0 + pd.Timedelta(seconds=5), fake_procs(3, 1), meminfo(1))
    w.close()
    assert set(read_dumps_dir(tmp_path).procs["ts"]) == {T0 + pd.Timedelta(seconds=5)}


def test_enospc_during_compaction_keeps_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction (period rollover) fails on a full disk: no partial Parquet file is visible or left behind, the
    .current stays readable with every sample, the writer goes on in a new segment and the next start's recovery
    compacts the old one."""
    w = SegmentWriter(tmp_path, "h", "b", period_s=3600)
    for k in range(3):
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(5, k), meminfo(k))
    first = w.current
    real = pq.write_table

    def full_disk(table, where, **kw):
        with open(where, "wb") as fh:  # some bytes reach the temp file before the disk is full
            fh.write(b"PAR1" + b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.pq, "write_table", full_disk)
    w._opened_at -= 7200  # the period is over: the next append compacts
    with pytest.raises(OSError, match="No space left"):
        w.append(T0 + pd.Timedelta(seconds=15), fake_procs(5, 3), meminfo(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # no .tmp, no half pair
    monkeypatch.setattr(store.pq, "write_table", real)
    w.append(T0 + pd.Timedelta(seconds=20), fake_procs(5, 4), meminfo(4))  # the next interval succeeds
    assert w.current is not None and w.current != first
    want = {T0 + pd.Timedelta(seconds=s) for s in (0, 5, 10, 20)}
    assert set(read_dumps_dir(tmp_path).procs["ts"]) == want
    w.close()
    notes = store.recover(tmp_path)
    assert any("compacted leftover" in n for n in notes)
    assert all(s.kind == "parquet" for s in list_segments(tmp_path))
    got = read_dumps_dir(tmp_path)
    assert set(got.procs["ts"]) == want and not got.notices


# ---------------------------------------------------------------------------------------------------- clock steps


def test_restart_after_clock_step_back_never_overwrites(tmp_path: Path) -> None:
    """Two runs, the second with a clock an hour behind that lands on the first run's exact segment name: the
    name moves to the next free millisecond and both runs' samples load."""
    first = SegmentWriter(tmp_path, "h", "b", period_s=0)
    for k in range(3):
        first.append(T0 + pd.Timedelta(seconds=k), fake_procs(3, k), meminfo(k))
    first.close()
    taken = sorted(p.name for p in tmp_path.iterdir())
    second = SegmentWriter(tmp_path, "h", "b", period_s=0)
    for k in range(3):  # clock stepped back: the same stamps again, plus one more
        second.append(T0 + pd.Timedelta(seconds=k, milliseconds=1), fake_procs(3, k), meminfo(k))
    second.close()
    now = sorted(p.name for p in tmp_path.iterdir())
    assert set(taken) <= set(now) and len(now) == 2 * len(taken)
    for name in taken:  # the first run's files are untouched (still readable, same samples)
        if name.endswith(".procs.parquet"):
            assert len(read_segment(tmp_path / name).procs) == 3
    assert read_dumps_dir(tmp_path).procs["ts"].nunique() == 6


@pytest.mark.parametrize("period_s", [0, 3600])  # a segment per sample, or all six in one compacted file
def test_two_samples_with_the_same_time_stay_apart(tmp_path: Path, period_s: int) -> None:
    """A clock stepped back onto an earlier sample's exact time (or a segment copied under another name): the
    loader must not merge the two samples into one snapshot with every pid twice."""
    w = SegmentWriter(tmp_path, "h", "b", period_s=period_s)
    for k in range(4):
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(4, k), meminfo(k))
    for k in range(2, 4):  # stepped back by 10 s: lands on the stamps of samples 2 and 3
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(4, k + 10), meminfo(k))
    w.close()
    clear_cache()
    ds = load_dumps(tmp_path)
    assert not ds.procs.duplicated(["snap", "pid"]).any()
    assert len(ds.snapshots) == 6  # 4 samples + the 2 that landed on earlier stamps
    assert ds.procs.groupby("snap")["pid"].size().tolist() == [4] * 6
    # each snapshot's tree sums only its own sample: subtree totals are not doubled
    roots = ds.procs[ds.procs["level"] == 0]
    per_snap = ds.procs.groupby("snap")["rss_bytes"].sum()
    assert (roots.groupby("snap")["subtree_rss_bytes"].sum() == per_snap).all()


# ---------------------------------------------------------------------------------------------------- denied reads


@pytest.mark.parametrize("denied", ["cmdline", "status", "cgroup", "smaps_rollup", "stat"])
def test_access_denied_mid_read_is_null_or_skipped_never_a_crash(tmp_path: Path, denied: str) -> None:
    """A process whose file is denied (EACCES, e.g. another user's process, hidepid) while it is read: its row keeps
    what was readable and the rest is null (never 0); a denied stat skips the row and is counted; the sample is
    written and loads."""
    fs = FakeProcFS(tmp_path / "proc")
    fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0))
    fs.add(FakeProcess(10, "app", ["app", "--serve"], uid=1000, rss_pages=250))
    readers = FailingReaders()
    readers.errors[(10, denied)] = PermissionError(errno.EACCES, "Permission denied")
    sampler = Sampler(
        proc_root=str(fs.root),
        smaps="on",
        clk_tck=100,
        host="h",
        read_small=readers.read_small,
        read_whole=readers.read_whole,
    )
    sample = sampler.sample()
    w = SegmentWriter(tmp_path / "dumps", "h", sampler.boot_id)
    w.append(sample.ts, sample.procs, sample.meminfo)
    w.close()
    clear_cache()
    ds = load_dumps(tmp_path / "dumps")
    assert not ds.info.notices
    rows = ds.procs.set_index("pid")
    if denied == "stat":
        assert 10 not in rows.index and sample.stats["vanished"] == 1
        return
    assert rows.loc[10, "rss_bytes"] == 250 * os.sysconf("SC_PAGE_SIZE")  # what was readable is kept
    null_col = {"cmdline": "cmdline", "status": "uid", "cgroup": "cgroup", "smaps_rollup": "pss_bytes"}[denied]
    assert pd.isna(rows.loc[10, null_col])
    if denied == "smaps_rollup":
        assert sample.stats["smaps_failed"] >= 1
    assert rows.loc[1, "cmdline"] == "/sbin/init"  # the other processes are untouched
