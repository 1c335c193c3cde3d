"""The collector writing into the store under kill -9, a full disk, a clock stepping back and denied reads.

What a crash may cost is the sample being written (one interval); everything a reader can see loads.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from collector import run as run_mod
from collector.sampler import Sample, Sampler
from memlib import query, source
from store import frames
from tests.fakeproc import FailingReaders, FakeProcess, FakeProcFS
from tests.store_samples import FAKE_T0 as T0
from tests.store_samples import (
    fake_procs,
    fresh_current,
    meminfo,
    read_store,
    recover_by_restart,
    start_collector,
    us,
    whole_samples_in_currents,
)
from tests.store_samples import writer as new_writer


@pytest.mark.slow
def test_kill_9_at_20_random_moments(tmp_path: Path) -> None:
    """20 kills of a real `python -m collector` (real /proc, 0.1 s interval, a new segment every 0.25 s so kills
    also land in compactions; 4 of them during start-up and recovery): every visible file loads without a notice,
    everything visible before a kill is still there after it and after the next start's recovery, the active
    samples read back are exactly the whole frame pairs on disk, and the last one is close to the kill."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    interval, period = 0.1, 0.25
    rng = random.Random(20261127)
    seen: set[pd.Timestamp] = set()
    kills = 0
    for round_ in range(20):
        during_startup = round_ % 5 == 4
        old = set(os.listdir(dumps))
        proc = start_collector(dumps, interval, period)
        started = pd.Timestamp.now(tz="UTC")
        try:
            if during_startup:
                time.sleep(rng.uniform(0.05, 1.5))
            else:
                deadline = time.monotonic() + 60
                while not fresh_current(dumps, old):
                    assert time.monotonic() < deadline, "collector never wrote a sample"
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 4 * interval))
            killed_at = pd.Timestamp.now(tz="UTC")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            kills += 1
        got = read_store(dumps)
        assert not got.notices, (round_, got.notices)
        assert set(got.system["ts"]) == set(got.procs["ts"]), round_  # never half a sample
        assert not got.system.duplicated(["ts"]).any(), round_  # nor a sample twice (closed and active)
        after = set(got.system["ts"])
        assert seen <= after, f"round {round_}: samples visible before this run or kill are gone"
        mine = sorted(t for t in after if t > started)
        if not during_startup:
            assert mine, round_
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(mine)] or [interval]
            lag = (killed_at - mine[-1]).total_seconds()
            slack = 0.5 + 0.5 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
            assert lag < 2 * max(interval, *gaps) + slack, f"round {round_}: last sample {lag:.3f} s before the kill"
        whole_samples_in_currents(dumps)  # no damage in the active segments
        seen = after
    everything = recover_by_restart(dumps)
    assert not everything.notices and set(everything.system["ts"]) == seen and len(seen) >= 16
    # within one snapshot a pid appears once: no sample was written twice by a compaction and its rerun
    assert not everything.procs.duplicated(["ts", "pid"]).any()
    print(f"kill -9: {kills} kills, {len(seen)} samples kept, 0 visible samples lost")


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


@pytest.mark.parametrize("short", [None, 0, 7, 200, -1], ids=lambda s: f"short={s}")
def test_enospc_mid_sample_leaves_no_partial_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short) -> None:
    w = new_writer(tmp_path, host="h", boot_id="b")
    for k in range(3):
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(6, k), meminfo(k))
    size = w.current.stat().st_size
    frame_len = len(frames.encode_sample(T0, fake_procs(6, 3), meminfo(3), "h", "b"))
    fake = FailingWrite(fail_at=1, short=None if short is None else (frame_len - 1 if short == -1 else short))
    monkeypatch.setattr(os, "write", fake)
    with pytest.raises(OSError, match="No space left"):
        w.append(T0 + pd.Timedelta(seconds=15), fake_procs(6, 3), meminfo(3))
    monkeypatch.setattr(os, "write", fake.real)
    assert w.current.stat().st_size == size
    w.append(T0 + pd.Timedelta(seconds=20), fake_procs(6, 4), meminfo(4))
    w.close()
    got = read_store(tmp_path)
    assert not got.notices and set(got.system["ts"]) == {T0 + pd.Timedelta(seconds=s) for s in (0, 5, 10, 20)}


def test_enospc_when_a_new_segment_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk is full when the header of a new segment is written: no file (temp or visible) is left, no
    descriptor leaks, and once there is space again the next sample starts the segment."""
    w = new_writer(tmp_path, host="h", boot_id="b")
    fake = FailingWrite(fail_at=1, short=5)
    monkeypatch.setattr(os, "write", fake)
    fds_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match=r"short write|No space"):
        w.append(T0, fake_procs(3, 0), meminfo(0))
    monkeypatch.setattr(os, "write", fake.real)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"] == [] and w.current is None
    assert len(os.listdir("/proc/self/fd")) == fds_before
    w.append(T0 + pd.Timedelta(seconds=5), fake_procs(3, 1), meminfo(1))
    w.close()
    got = read_store(tmp_path)
    assert not got.notices and set(got.procs["ts"]) == {T0 + pd.Timedelta(seconds=5)}


def test_enospc_during_compaction_keeps_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishing fails on a full disk: no partial file is visible or left behind, the .current stays readable,
    the writer goes on in a new segment and the next start's recovery publishes the old one."""
    import store.segment as seg_mod
    from store import recover

    w = new_writer(tmp_path, host="h", boot_id="b")
    for k in range(3):
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(5, k), meminfo(k))
    first = w.current
    real = seg_mod.os.replace

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(seg_mod.os, "replace", full_disk)
    w._opened_at -= 7200
    with pytest.raises(OSError, match="No space left"):
        w.append(T0 + pd.Timedelta(seconds=15), fake_procs(5, 3), meminfo(3))
    monkeypatch.setattr(seg_mod.os, "replace", real)
    assert first.exists() and not [p for p in tmp_path.rglob("*.parquet*") if p.name.endswith(".tmp")]
    w.append(T0 + pd.Timedelta(seconds=20), fake_procs(5, 4), meminfo(4))
    want = {T0 + pd.Timedelta(seconds=s) for s in (0, 5, 10, 20)}
    assert set(read_store(tmp_path).system["ts"]) == want
    w.close()
    notes = recover(tmp_path, w.derive)
    assert any("compacted leftover" in n for n in notes) and not list(tmp_path.glob("*.current"))
    got = read_store(tmp_path)
    assert set(got.system["ts"]) == want and not got.notices


def test_collector_survives_a_full_disk_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fs = FakeProcFS(tmp_path / "proc")
    fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0))
    fs.add(FakeProcess(10, "app", ["app", "--serve"]))
    inner = Sampler(proc_root=str(fs.root), smaps="off", clk_tck=100, host="h")
    writes = {"n": 0}
    real = os.write

    def flaky_write(fd: int, data: bytes) -> int:
        writes["n"] += 1
        if writes["n"] in (3, 4):
            if writes["n"] == 4:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd, bytes(data)[:9])
        return real(fd, data)

    class Counting:
        host, boot_id = inner.host, inner.boot_id

        def __init__(self) -> None:
            self.times: list[pd.Timestamp] = []

        def sample(self) -> Sample:
            s = inner.sample()
            self.times.append(s.ts)
            return s

    sampler = Counting()
    monkeypatch.setattr(os, "write", flaky_write)
    args = run_mod.parse_args(["--dumps", str(tmp_path / "dumps"), "--interval", "0.05", "--duration", "0.4"])
    assert run_mod.run(args, sampler_factory=lambda smaps: sampler) == 0
    monkeypatch.setattr(os, "write", real)
    err = capsys.readouterr().err
    assert "disk full (No space left on device): 1 sample(s) skipped" in err and "writing again: 1 sample(s)" in err
    got = read_store(tmp_path / "dumps")
    assert not got.notices
    lost = {us(t) for t in sampler.times} - set(got.system["ts"])
    assert len(lost) == 1 and len(sampler.times) >= 4


class SteppingSampler:
    """A fake-procfs sampler whose wall clock steps back `step` after `after` samples."""

    def __init__(self, root: Path, after: int, step: pd.Timedelta) -> None:
        self.inner = Sampler(proc_root=str(root), smaps="off", clk_tck=100, host="h")
        self.host, self.boot_id = self.inner.host, self.inner.boot_id
        self.after, self.step = after, step
        self.written: list[pd.Timestamp] = []

    def sample(self) -> Sample:
        s = self.inner.sample()
        if len(self.written) >= self.after:
            s.ts = s.ts - self.step
        self.written.append(s.ts)
        return s


def test_clock_stepping_back_an_hour_overwrites_nothing(tmp_path: Path) -> None:
    fs = FakeProcFS(tmp_path / "proc")
    fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0))
    fs.add(FakeProcess(10, "app", ["app"]))
    sampler = SteppingSampler(fs.root, after=6, step=pd.Timedelta(hours=1))
    dumps = tmp_path / "dumps"
    args = run_mod.parse_args(["--dumps", str(dumps), "--interval", "0.05", "--duration", "0.7", "--period", "0.15"])
    assert run_mod.run(args, sampler_factory=lambda smaps: sampler) == 0
    assert len(sampler.written) >= 9
    names = [p.name for p in (dumps / "procs").rglob("*.parquet")]
    assert len(names) >= 3 and len(set(names)) == len(names)
    got = read_store(dumps)
    assert not got.notices and sorted(got.system["ts"]) == sorted(us(t) for t in sampler.written)
    assert (got.procs.groupby("ts")["pid"].size() == 2).all()
    # each snapshot's tree: init is the root of both processes
    assert (got.procs.loc[got.procs["pid"] == 1, "subtree_rss_bytes"] > 0).all()


@pytest.mark.parametrize("period_s", [0, 3600])  # a segment per sample, or all six in one closed file
def test_two_samples_with_the_same_time_stay_apart(tmp_path: Path, period_s: int) -> None:
    """A clock stepped back onto an earlier sample's exact time: the reader must not merge the two samples into one
    snapshot with every pid twice, nor sum a subtree over both."""
    w = new_writer(tmp_path, host="h", boot_id="b", period_s=period_s)
    for k in range(4):
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(4, k), meminfo(k))
    for k in range(2, 4):  # stepped back by 10 s: lands on the stamps of samples 2 and 3
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(4, k + 10), meminfo(k))
    w.close()
    source.clear_cache()
    rec = source.open_recording(tmp_path)
    assert len(query.snapshots(rec)) == 6  # 4 samples + the 2 that landed on earlier stamps
    frame = query.moment(rec, query.resolve(rec, T0 + pd.Timedelta(seconds=10)))
    assert len(frame) == 4 and not frame["pid"].duplicated().any()


@pytest.mark.parametrize("denied", ["cmdline", "status", "cgroup", "smaps_rollup", "stat"])
def test_access_denied_mid_read_is_null_or_skipped_never_a_crash(tmp_path: Path, denied: str) -> None:
    """A process whose file is denied (EACCES, e.g. another user's process, hidepid) while it is read: its row keeps
    what was readable and the rest is null (never 0); a denied stat skips the row and is counted; the sample is
    written and reads back."""
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
    w = new_writer(tmp_path / "dumps", host="h", boot_id=sampler.boot_id)
    w.append(sample.ts, sample.procs, sample.meminfo)
    w.close()
    got = read_store(tmp_path / "dumps")
    assert not got.notices
    rows = got.procs.set_index("pid")
    if denied == "stat":
        assert 10 not in rows.index and sample.stats["vanished"] == 1
        return
    assert rows.loc[10, "rss_bytes"] == 250 * os.sysconf("SC_PAGE_SIZE")  # what was readable is kept
    null_col = {"cmdline": "cmdline", "status": "uid", "cgroup": "cgroup", "smaps_rollup": "pss_bytes"}[denied]
    assert pd.isna(rows.loc[10, null_col])
    if denied == "smaps_rollup":
        assert sample.stats["smaps_failed"] >= 1
    assert rows.loc[1, "cmdline"] == "/sbin/init"  # the other processes are untouched
