"""Fault injection on the collector: bad arguments, a full disk (a real ENOSPC on a small tmpfs when this process
may mount one, else injected into the writer's writes), and kill -9 at every step (start-up, sampling,
compaction). Each test prints its figures (kills per step, samples skipped or lost) to the terminal, also without
`pytest -s`. Bit flips in stored files are the store's own tests.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from collector import run as run_mod
from collector.sampler import Sampler
from memlib import store
from memlib.schema import SKIPPED_SAMPLES_FIELD
from memlib.store import read_dumps_dir
from tests.fakeproc import FakeProcess, FakeProcFS
from tests.test_crash_safety import SegmentCache, _fresh_current, _whole_samples_in_currents, recover_by_restart

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Print one figures line to the terminal, past pytest's capture."""
    with capsys.disabled():
        print(f"\n[faults] {line}", flush=True)


# ---------------------------------------------------------------------------------------------------- arguments

BAD_ARGS: list[tuple[list[str], str]] = [
    (["--interval", "inf"], "--interval"),
    (["--interval", "1e308"], "--interval"),
    (["--interval", "1e-9"], "--interval"),
    (["--interval", "nan"], "--interval"),
    (["--interval", "-1"], "--interval"),
    (["--interval", "0"], "--interval"),
    (["--interval", "86401"], "--interval"),
    (["--interval", "five"], "--interval"),
    (["--duration", "nan"], "--duration"),
    (["--duration", "inf"], "--duration"),
    (["--duration", "-1"], "--duration"),
    (["--period", "nan"], "--period"),
    (["--period", "0"], "--period"),
    (["--period", "inf"], "--period"),
    (["--retain-mb", "nan"], "--retain-mb"),
    (["--retain-mb", "0"], "--retain-mb"),
    (["--retain-mb=-inf"], "--retain-mb"),
    (["--retain-days", "nan"], "--retain-days"),
    (["--retain-days", "0"], "--retain-days"),
    (["--retain-days", "1e400"], "--retain-days"),
]


@pytest.mark.parametrize(("argv", "option"), BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_bad_numbers_are_refused_at_parse_time(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """nan, inf, absurd and out-of-range numbers -> exit 2 naming the option and the accepted range."""
    with pytest.raises(SystemExit) as exc:
        run_mod.parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and ("expected a finite number" in err or "not a number" in err), err


GOOD_ARGS: list[tuple[list[str], str, float]] = [
    (["--interval", "0.05"], "interval", 0.05),
    (["--interval", "86400"], "interval", 86400.0),
    (["--duration", "0"], "duration", 0.0),
    (["--period", "0.1"], "period", 0.1),
    (["--retain-mb", "0.000001"], "retain_mb", 0.000001),
    (["--retain-days", "36500"], "retain_days", 36500.0),
]


@pytest.mark.parametrize(("argv", "name", "value"), GOOD_ARGS, ids=[" ".join(a) for a, _, _ in GOOD_ARGS])
def test_numbers_at_the_bounds_are_accepted(argv: list[str], name: str, value: float) -> None:
    assert getattr(run_mod.parse_args(argv), name) == value


def test_bad_argument_from_the_command_line_is_one_clear_line(tmp_path: Path, capsys) -> None:
    """The real entry point: exit 2, a usage message, no traceback, nothing created."""
    dumps = tmp_path / "dumps"
    codes = []
    for bad in (["--interval", "nan"], ["--duration", "inf"]):
        proc = subprocess.run(
            [PY, "-m", "collector", "--dumps", str(dumps), *bad], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert f"argument {bad[0]}: '{bad[1]}' is out of range" in proc.stderr
        codes.append(proc.returncode)
    assert not dumps.exists()
    report(capsys, f"arguments: {len(BAD_ARGS)} bad values refused (exit 2), {len(GOOD_ARGS)} bounds accepted")


# ---------------------------------------------------------------------------------------------------- full disk


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FullOnce:
    """A SegmentWriter stand-in that raises ENOSPC for appends [first, last) and records the others."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last, self.calls = first, last, 0
        self.written: list[dict] = []

    def append(self, ts, procs, meminfo, cgroup_mem=None) -> None:
        self.calls += 1
        if self.first <= self.calls < self.last:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written.append(meminfo)


class OneSample:
    """The smallest sample the writer accepts."""

    def __init__(self) -> None:
        self.ts = pd.Timestamp("2026-01-01", tz="UTC")
        self.procs: dict = {}
        self.meminfo = {"MemTotal": 1 << 30}
        self.cgroup_mem = None


def test_disk_full_warns_once_a_minute_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """200 samples on a full disk, 1 s apart: 4 warnings (one per minute), nothing raised, and the first sample
    written afterwards carries the count."""
    clock = FakeClock()
    full = run_mod.DiskFull(clock=clock)
    writer = FullOnce(first=3, last=203)
    results = []
    for _ in range(205):
        results.append(full.write(writer, OneSample()))
        clock.now += 1.0
    err = capsys.readouterr().err
    assert results.count(False) == 200 and full.total_skipped == 200
    assert err.count("disk full") == 4, err
    assert "writing again: 200 sample(s) skipped while the disk was full (200 s)" in err
    assert [m.get(SKIPPED_SAMPLES_FIELD) for m in writer.written] == [None, None, 200, None, None]


def test_other_write_errors_still_raise() -> None:
    class Broken:
        def append(self, *a, **k) -> None:
            raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output"):
        run_mod.DiskFull().write(Broken(), OneSample())


def _try_mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class Filler:
    """Fills a filesystem to the last byte and keeps grabbing whatever the collector frees (a writer cutting back
    a torn sample), until stopped; `stop` deletes the filler file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = path.open("wb", buffering=0)
        self._stop = threading.Event()
        self._fill(1 << 16)
        self.thread = threading.Thread(target=self._keep_full, daemon=True)
        self.thread.start()

    def _fill(self, chunk: int) -> None:
        block = b"\0" * chunk
        while chunk >= 512:
            try:
                self.fh.write(block[:chunk])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2

    def _keep_full(self) -> None:
        while not self._stop.wait(0.02):
            self._fill(4096)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)
        self.fh.close()
        self.path.unlink()


def _samples_now(dumps: Path) -> int:
    return _whole_samples_in_currents(dumps)[0]


def test_collector_rides_out_a_real_full_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real `python -m collector` on an 8 MB tmpfs that is filled to the last byte for 2.5 s (25 slots, past the
    old limit of 10 failures in a row): it keeps running, warns once, writes again by itself when the space
    frees, stores the number skipped with the next sample and exits 0 on SIGTERM. Without mount privileges the
    same run is made with ENOSPC injected into the writer's writes (test_collector_rides_out_an_injected_...)."""
    mnt = tmp_path / "mnt"
    if not _try_mount_tmpfs(mnt, "8m"):
        test_collector_rides_out_an_injected_full_disk(tmp_path, capsys, fallback=True)
        return
    log = tmp_path / "collector.log"
    dumps = mnt / "dumps"
    proc = None
    try:
        with log.open("w") as fh:
            proc = subprocess.Popen(
                [PY, "-m", "collector", "--dumps", str(dumps), "--interval", "0.1", "--smaps", "off"],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=fh,
            )
        deadline = time.monotonic() + 60
        while not (dumps.is_dir() and _samples_now(dumps) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        filler = Filler(mnt / "filler")
        before = _samples_now(dumps)
        time.sleep(2.5)
        during = _samples_now(dumps)
        assert proc.poll() is None, log.read_text()
        filler.stop()
        deadline = time.monotonic() + 30
        while _samples_now(dumps) < during + 3:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        text = log.read_text()
        got = read_dumps_dir(dumps)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)
    assert text.count("disk full") == 1, text
    assert "writing again:" in text
    skipped = int(text.split("writing again: ", 1)[1].split(" ", 1)[0])
    assert skipped >= 10 and during - before <= 1, (skipped, before, during)
    assert not got.notices
    counts = got.system[SKIPPED_SAMPLES_FIELD].dropna().tolist()
    assert counts == [skipped]
    report(
        capsys,
        f"full disk (real tmpfs ENOSPC, 2.5 s): {skipped} samples skipped, 1 warning, collector kept running, "
        f"{len(got.system)} samples stored, resumed by itself, exit 0",
    )


def test_collector_rides_out_an_injected_full_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fallback: bool = False
) -> None:
    """The collector loop (in process, fake procfs) while every write of the store raises ENOSPC for 1.5 s (30
    slots): it keeps running, warns once, resumes, stores the count and returns 0."""
    fs = FakeProcFS(tmp_path / "proc")
    fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0))
    fs.add(FakeProcess(10, "app", ["app", "--serve"]))
    sampler = Sampler(proc_root=str(fs.root), smaps="off", clk_tck=100, host="h")
    real_write = os.write
    full = threading.Event()

    def write(fd: int, data: bytes) -> int:
        if full.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    timers = [threading.Timer(0.5, full.set), threading.Timer(2.0, full.clear)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store.os, "write", write)
        args = run_mod.parse_args(["--dumps", str(tmp_path / "dumps"), "--interval", "0.05", "--duration", "3"])
        for t in timers:
            t.start()
        try:
            assert run_mod.run(args, sampler_factory=lambda smaps: sampler) == 0
        finally:
            for t in timers:
                t.cancel()
    err = capsys.readouterr().err
    assert err.count("disk full") == 1, err
    skipped = int(err.split("writing again: ", 1)[1].split(" ", 1)[0])
    got = read_dumps_dir(tmp_path / "dumps")
    assert skipped >= 10 and got.system[SKIPPED_SAMPLES_FIELD].dropna().tolist() == [skipped]
    how = "injected ENOSPC (no mount privilege for a tmpfs)" if fallback else "injected ENOSPC"
    report(capsys, f"full disk ({how}, 1.5 s): {skipped} samples skipped, 1 warning, {len(got.system)} stored, exit 0")


# ---------------------------------------------------------------------------------------------------- kill -9


def _start(dumps: Path, log: Path) -> subprocess.Popen:
    with log.open("a") as fh:
        return subprocess.Popen(
            [PY, "-m", "collector", "--dumps", str(dumps), "--interval", "0.1", "--period", "0.3", "--smaps", "off"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )


def _wait_for_compaction(dumps: Path, proc: subprocess.Popen, timeout: float) -> bool:
    """Poll for a compaction temp file (a Parquet pair being written); True when one is seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(FileNotFoundError):
            if any(n.endswith(store.TMP_SUFFIX) and ".parquet" in n for n in os.listdir(dumps)):
                return True
        time.sleep(0.001)
    return False


@pytest.mark.slow
def test_kill_9_at_every_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """15 kill -9 of a real collector: 5 during start-up (imports, lock, recovery of the previous leftovers), 5
    while sampling, 5 inside a compaction (a Parquet temp file on disk). After each kill every visible file loads,
    nothing visible before is gone, and the last sample is within two slots of the kill; the next clean start
    compacts every leftover and keeps every sample."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    log = tmp_path / "collector.log"
    rng = random.Random(uuid.UUID(int=18).int)
    cache = SegmentCache(dumps)
    seen: set[pd.Timestamp] = set()
    kills = {"startup": 0, "sampling": 0, "compaction": 0}
    lags: list[float] = []
    for round_ in range(15):
        step = ("startup", "sampling", "compaction")[round_ % 3]
        old = set(os.listdir(dumps))
        proc = _start(dumps, log)
        try:
            if step == "startup":
                time.sleep(rng.uniform(0.02, 1.2))
            else:
                deadline = time.monotonic() + 60
                while not _fresh_current(dumps, old):
                    assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-2000:]
                    time.sleep(0.01)
                if step == "sampling":
                    time.sleep(rng.uniform(0.0, 0.3))
                elif not _wait_for_compaction(dumps, proc, timeout=10):
                    step = "sampling"  # no compaction caught in time: counted as what it was
            killed_at = pd.Timestamp.now(tz="UTC")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        kills[step] += 1
        after = cache.all_ts()
        assert seen <= after, f"round {round_} ({step}): samples visible before the kill are gone"
        if step != "startup" and after:
            lags.append((killed_at - max(after)).total_seconds())
        seen = after
    everything = recover_by_restart(dumps)  # the next clean start compacts every leftover
    assert set(everything.procs["ts"]) == seen
    assert kills["compaction"] >= 1, kills
    worst = max(lags)
    slack = 0.5 + 0.5 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    assert worst < 0.2 + slack, lags
    report(
        capsys,
        f"kill -9: {sum(kills.values())} kills ({kills['startup']} start-up, {kills['sampling']} sampling, "
        f"{kills['compaction']} compaction); visible samples lost: 0 of {len(seen)}; last sample before a kill: "
        f"at most {worst:.2f} s (~{worst / 0.1:.1f} slots of 0.1 s: the sample in flight)",
    )
