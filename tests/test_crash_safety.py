"""Issue 8 item 1: the collector under kill -9, a full disk, short writes and a clock stepping back.

What a crash may cost is the sample being written (one interval); everything a reader can see loads.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from collector import run as run_mod
from collector.sampler import Sample, Sampler
from memlib import store
from memlib.load import clear_cache, load_dumps
from memlib.store import HEADER, SegmentWriter, decode_frames, list_segments, read_dumps_dir, read_segment
from tests.fakeproc import FailingReaders, FakeProcess, FakeProcFS
from tests.test_store import T0, fake_procs, meminfo

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


# ---------------------------------------------------------------------------------------------------- kill -9


class SegmentCache:
    """Reads every visible segment, re-reading only files that changed since the last call (the kill test's
    directory grows every round)."""

    def __init__(self, dumps: Path) -> None:
        self.dumps = dumps
        self.known: dict[str, tuple[tuple[int, int], set[pd.Timestamp], str]] = {}

    def visible(self) -> dict[str, tuple[set[pd.Timestamp], str]]:
        """{file name: (sample times, kind)}; every file must load without a notice (a torn tail is not one)."""
        out = {}
        for seg in list_segments(self.dumps):
            try:
                st = seg.path.stat()
            except FileNotFoundError:  # compacted meanwhile: the next listing shows the parquet pair
                continue
            key = (st.st_size, st.st_mtime_ns)
            hit = self.known.get(seg.path.name)
            if hit is None or hit[0] != key:
                got = read_segment(seg.path)
                assert not got.notices, (seg.path.name, got.notices)
                assert set(got.system["ts"]) == set(got.procs["ts"]), seg.path.name  # never half a sample
                hit = (key, set(got.procs["ts"]), seg.kind)
                self.known[seg.path.name] = hit
            out[seg.path.name] = (hit[1], hit[2])
        return out

    def all_ts(self) -> set[pd.Timestamp]:
        """Sample times of every visible segment."""
        return set().union(*(ts for ts, _ in self.visible().values()))


def _whole_samples_in_currents(dumps: Path) -> tuple[int, int]:
    """(whole samples, torn bytes after them) over the visible .current files, from the raw frames."""
    whole = torn = 0
    for seg in list_segments(dumps):
        if seg.kind != "current":
            continue
        data = seg.path.read_bytes()
        if len(data) < HEADER.size:
            continue
        frames, ends, _ = decode_frames(data, HEADER.size)
        pairs = len(frames) // 2
        whole += pairs
        end = ends[2 * pairs - 1] if pairs else HEADER.size
        torn += len(data) - end
    return whole, torn


def _fresh_current(dumps: Path, old: set[str]) -> bool:
    """True once a .current not in `old` holds at least one whole sample (cheap: names and sizes only)."""
    for name in os.listdir(dumps):
        if name.endswith(".current") and name not in old:
            with contextlib.suppress(FileNotFoundError):
                if (dumps / name).stat().st_size > HEADER.size + 2 * store.FRAME.size:
                    return True
    return False


def recover_by_restart(dumps: Path) -> store.SegmentRead:
    """Run `python -m collector --duration 0` on `dumps` (its start compacts every leftover): exit 0, no .current or
    temp file left, and every segment reads without a notice -> everything read."""
    final = subprocess.run(
        [PY, "-m", "collector", "--dumps", str(dumps), "--duration", "0", "--smaps", "off"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr
    assert not list(dumps.glob("*.current")) and not list(dumps.glob(f"*{store.TMP_SUFFIX}"))
    everything = read_dumps_dir(dumps)
    assert not everything.notices
    return everything


def _start(dumps: Path, interval: float, period: float) -> subprocess.Popen:
    argv = ["--dumps", str(dumps), "--interval", str(interval), "--period", str(period), "--smaps", "off"]
    return subprocess.Popen(
        [PY, "-m", "collector", *argv], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_kill_9_at_20_random_moments(tmp_path: Path) -> None:
    """20 kills of a real `python -m collector` (real /proc, 0.1 s interval, a new segment every 0.25 s so kills
    also land in compactions; 4 of them during start-up, imports and the recovery of the previous leftovers):
    every visible file loads, everything visible before a kill is still there after it and after the next
    start's recovery, the samples read back are exactly the whole frame pairs on disk (only a torn tail -- the
    one sample being written, a single write -- is lost) and the last one is close to the kill."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    interval, period = 0.1, 0.25
    rng = random.Random(20261127)
    cache = SegmentCache(dumps)
    seen: set[pd.Timestamp] = set()
    for round_ in range(20):
        during_startup = round_ % 5 == 4
        old = set(os.listdir(dumps))
        proc = _start(dumps, interval, period)
        started = pd.Timestamp.now(tz="UTC")
        try:
            if during_startup:
                time.sleep(rng.uniform(0.05, 1.5))  # imports, lock, recover(), first samples
            else:
                deadline = time.monotonic() + 60
                while not _fresh_current(dumps, old):
                    assert time.monotonic() < deadline, "collector never wrote a sample"
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 4 * interval))
            killed_at = pd.Timestamp.now(tz="UTC")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        visible = cache.visible()
        after = set().union(*(ts for ts, _ in visible.values()))
        assert seen <= after, f"round {round_}: samples visible before this run or kill are gone"
        whole, _ = _whole_samples_in_currents(dumps)
        in_currents = set().union(*(ts for ts, kind in visible.values() if kind == "current"))
        assert len(in_currents) == whole, f"round {round_}: a whole sample on disk was not read back"
        mine = sorted(t for t in after if t > started)
        if not during_startup:
            assert mine, round_
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(mine)] or [interval]
            lag = (killed_at - mine[-1]).total_seconds()
            # lost: at most the sample in progress (one slot), plus scheduling noise that grows with the machine's
            # load (the exact bound -- only a torn tail, one write, is lost -- is the frame check above)
            slack = 0.5 + 0.5 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
            assert lag < 2 * max(interval, *gaps) + slack, f"round {round_}: last sample {lag:.3f} s before the kill"
        seen = after
    # the next start compacts every leftover and loses nothing that was visible
    everything = recover_by_restart(dumps)
    assert set(everything.procs["ts"]) == seen
    assert len(seen) >= 16
    clear_cache()
    ds = load_dumps(dumps)
    assert not ds.info.notices and len(ds.snapshots) == len(seen)
    # within one snapshot a pid appears once: no sample was written twice by a compaction and its rerun
    assert not ds.procs.duplicated(["snap", "pid"]).any()


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


def test_collector_survives_a_full_disk_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The collector loop with a disk that fills up mid-sample (a short write, then ENOSPC): that sample is logged
    and skipped, the run goes on, and every other sample is in the dumps."""
    fs = FakeProcFS(tmp_path / "proc")
    fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0))
    fs.add(FakeProcess(10, "app", ["app", "--serve"]))
    inner = Sampler(proc_root=str(fs.root), smaps="off", clk_tck=100, host="h")
    writes = {"n": 0}
    real = os.write

    def flaky_write(fd: int, data: bytes) -> int:
        writes["n"] += 1
        if writes["n"] in (3, 4):  # the second sample's frames: 9 bytes go in, then the disk is full
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
    monkeypatch.setattr(store.os, "write", flaky_write)
    args = run_mod.parse_args(["--dumps", str(tmp_path / "dumps"), "--interval", "0.05", "--duration", "0.4"])
    assert run_mod.run(args, sampler_factory=lambda smaps: sampler) == 0
    err = capsys.readouterr().err
    assert "disk full (No space left on device): 1 sample(s) skipped" in err and "writing again: 1 sample(s)" in err
    got = read_dumps_dir(tmp_path / "dumps")
    assert not got.notices
    lost = set(sampler.times) - set(got.procs["ts"])
    assert len(lost) == 1 and len(sampler.times) >= 4  # write 1 is the header, then one write per sample


# ---------------------------------------------------------------------------------------------------- clock steps


class SteppingSampler:
    """A fake-procfs sampler whose wall clock steps back `step` after `after` samples (the clock the collector uses
    for `ts` and so for segment names)."""

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
    """The wall clock steps back one hour mid-run, with a new segment every 0.15 s: the later segments get names an
    hour older than the earlier ones, yet no file is overwritten and every sample is kept. The loader orders
    snapshots by their recorded time (ts), so the samples taken after the step come first, in the order they
    were taken; write order within each side of the step is kept."""
    fs = FakeProcFS(tmp_path / "proc")
    fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0))
    fs.add(FakeProcess(10, "app", ["app"]))
    sampler = SteppingSampler(fs.root, after=6, step=pd.Timedelta(hours=1))
    dumps = tmp_path / "dumps"
    args = run_mod.parse_args(["--dumps", str(dumps), "--interval", "0.05", "--duration", "0.7", "--period", "0.15"])
    assert run_mod.run(args, sampler_factory=lambda smaps: sampler) == 0
    written = sampler.written
    assert len(written) >= 9
    segs = list_segments(dumps)
    assert len(segs) >= 3 and len({s.key for s in segs}) == len(segs)
    # the segment holding the first sample is not the first by name: later segments got older names
    holder = [i for i, s in enumerate(segs) if written[0] in set(read_segment(s.path).procs["ts"])]
    assert holder and holder[0] > 0, [s.path.name for s in segs]
    got = read_dumps_dir(dumps)
    assert not got.notices and sorted(got.procs["ts"].unique()) == sorted(written)
    clear_cache()
    ds = load_dumps(dumps)
    assert ds.snapshots["ts"].tolist() == sorted(written)
    assert ds.snapshots["ts"].is_monotonic_increasing
    before_step, after_step = written[:6], written[6:]
    order = ds.snapshots["ts"].tolist()
    assert order[: len(after_step)] == after_step and order[len(after_step) :] == before_step
    assert (ds.snapshots["processes"] == 2).all()
    # the identity of a process does not depend on the clock: one proc_id per pid across the step
    assert ds.procs.groupby("pid")["proc_id"].nunique().max() == 1


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
