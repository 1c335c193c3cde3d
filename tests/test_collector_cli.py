"""The collector CLI: schedule, signals, lock, kill -9, retention, bad input, systemd unit."""

from __future__ import annotations

import configparser
import itertools
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from collector import run as run_mod
from collector.sampler import Sample, Sampler
from store.current import read_current
from tests.fakeproc import FakeProcess, FakeProcFS
from tests.store_samples import read_store
from tests.test_alerts import meminfo, sample_columns

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def start_collector(dumps: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PY, "-m", "collector", "--dumps", str(dumps), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def current_samples(dumps: Path, exclude: frozenset[Path] = frozenset()) -> int:
    total = 0
    for cur in dumps.glob("*.current"):
        if cur not in exclude:
            try:
                got = read_current(cur)
            except FileNotFoundError:  # published meanwhile
                continue
            total += 0 if got.system is None else got.system.num_rows
    return total


def closed_segments(dumps: Path) -> list[Path]:
    """The closed procs files of the store, by name."""
    return sorted((dumps / "procs").rglob("*.parquet"))


# ---------------------------------------------------------------------------------------------------- subprocess


def test_duration_run_writes_a_closed_segment(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    proc = subprocess.run(
        [PY, "-m", "collector", "--dumps", str(dumps), "--interval", "0.2", "--duration", "1", "--smaps", "off"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(closed_segments(dumps)) == 1 and not list(dumps.glob("*.current"))
    got = read_store(dumps)
    assert got.procs["ts"].nunique() == 5 and len(got.system) == 5 and not got.notices
    assert (got.procs["pid"] == os.getpid()).any()  # this test process was recorded
    assert "recording into" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_second_collector_refused_and_signal_flushes(tmp_path: Path, sig: signal.Signals) -> None:
    dumps = tmp_path / "dumps"
    first = start_collector(dumps, "--interval", "0.2", "--smaps", "off")
    try:
        wait_for(lambda: current_samples(dumps) >= 2)
        second = subprocess.run(
            [PY, "-m", "collector", "--dumps", str(dumps)], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"another collector (pid {first.pid})" in lines[0] and str(dumps) in lines[0]
        first.send_signal(sig)
        _, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert sig.name in err
    assert len(closed_segments(dumps)) == 1 and not list(dumps.glob("*.current"))
    assert read_store(dumps).procs["ts"].nunique() >= 2


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_at_most_one_interval(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    rng = random.Random(7)
    for round_ in range(3):
        leftover = frozenset(dumps.glob("*.current"))
        proc = start_collector(dumps, "--interval", "0.05", "--smaps", "off")
        try:
            wait_for(lambda: current_samples(dumps, leftover) >= 3)  # noqa: B023 (used right here)
            time.sleep(rng.uniform(0.0, 0.2))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        # every file a reader can see loads, with at most a torn tail
        got = read_store(dumps)
        assert not got.notices, got.notices
        assert set(got.system["ts"]) == set(got.procs["ts"])
        cur = list(dumps.glob("*.current"))
        assert len(cur) == 1, round_  # the previous run's leftover was compacted at start
        assert read_current(cur[0]).system.num_rows >= 3
    # killed early too: during start-up, while the previous leftover is being compacted, at the first samples
    for _ in range(3):
        proc = start_collector(dumps, "--interval", "0.05", "--smaps", "off")
        time.sleep(rng.uniform(0.3, 0.9))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert not read_store(dumps).notices
    # each start compacted the previous run's leftover; the last one is compacted by the next run
    proc = subprocess.run(
        [PY, "-m", "collector", "--dumps", str(dumps), "--interval", "0.1", "--duration", "0.3", "--smaps", "off"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("compacted leftover") <= 1
    assert len(closed_segments(dumps)) >= 4
    assert not list(dumps.rglob("*.tmp")) and not list(dumps.glob("*.current"))
    everything = read_store(dumps)
    assert not everything.notices and everything.procs["ts"].nunique() >= 3 * 3 + 3


def test_bad_arguments_and_unusable_dumps_dir(tmp_path: Path) -> None:
    bad = subprocess.run(
        [PY, "-m", "collector", "--interval", "0"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "argument --interval: '0' is out of range" in bad.stderr
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    proc = subprocess.run(
        [PY, "-m", "collector", "--dumps", str(blocker / "dumps"), "--duration", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "cannot use dumps directory" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------------- in-process


class TimedSampler:
    """A /proc sampler over a fake procfs that records when each sample starts and can be made slow."""

    def __init__(self, root: Path, work_s: float = 0.0, slow: dict[int, float] | None = None) -> None:
        self.inner = Sampler(proc_root=str(root), smaps="off", clk_tck=100, host="h")
        self.host, self.boot_id = self.inner.host, self.inner.boot_id
        self.starts: list[float] = []
        self.work_s = work_s
        self.slow = slow or {}

    def sample(self):
        self.starts.append(time.monotonic())
        out = self.inner.sample()
        time.sleep(self.slow.get(len(self.starts) - 1, self.work_s))
        return out


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    fs = FakeProcFS(tmp_path / "proc")
    fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0))
    fs.add(FakeProcess(10, "app", ["app", "--serve"]))
    return fs.root


def run_with(tmp_path: Path, sampler: TimedSampler, *argv: str) -> int:
    args = run_mod.parse_args(["--dumps", str(tmp_path / "dumps"), *argv])
    return run_mod.run(args, sampler_factory=lambda smaps: sampler)


def test_schedule_has_no_drift(tmp_path: Path, fake_root: Path) -> None:
    sampler = TimedSampler(fake_root, work_s=0.03)  # "sleep after work" would drift 30 ms per sample
    assert run_with(tmp_path, sampler, "--interval", "0.1", "--duration", "1") == 0
    starts = sampler.starts
    assert len(starts) == 10
    t0 = starts[0]
    lateness = [s - (t0 + k * 0.1) for k, s in enumerate(starts)]
    assert max(abs(x) for x in lateness) < 0.05, lateness
    assert read_store(tmp_path / "dumps").procs["ts"].nunique() == 10


def test_overrun_warns_and_skips_missed_slots(tmp_path: Path, fake_root: Path, capsys) -> None:
    sampler = TimedSampler(fake_root, slow={2: 0.35})  # sample 2 takes ~3.5 intervals
    assert run_with(tmp_path, sampler, "--interval", "0.1", "--duration", "1") == 0
    err = capsys.readouterr().err
    assert "longer than the 0.1 s interval" in err and "skipping" in err
    starts = sampler.starts
    t0 = starts[0]
    slots = [(s - t0) / 0.1 for s in starts]
    # no burst: after the slow sample the next one starts on a later slot boundary, never twice in one slot
    assert all(b - a > 0.5 for a, b in itertools.pairwise(slots)), slots
    assert slots[3] > 3.4 and len(starts) < 10


def test_a_failing_sample_is_logged_and_skipped(tmp_path: Path, fake_root: Path, capsys) -> None:
    sampler = TimedSampler(fake_root)
    real = sampler.sample
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 2:
            raise OSError(24, "Too many open files")
        return real()

    sampler.sample = flaky
    assert run_with(tmp_path, sampler, "--interval", "0.05", "--duration", "0.25") == 0
    assert "sample failed (1 in a row): OSError" in capsys.readouterr().err
    # every sample but the failing one was written (how many fit in 0.25 s depends on the machine's load)
    assert len(calls) >= 3
    assert read_store(tmp_path / "dumps").procs["ts"].nunique() == len(calls) - 1


def test_retention_runs_after_each_compaction(tmp_path: Path, fake_root: Path, capsys) -> None:
    sampler = TimedSampler(fake_root)
    argv = ["--interval", "0.05", "--duration", "1", "--period", "0.2", "--retain-mb", "0.000001"]
    assert run_with(tmp_path, sampler, *argv) == 0
    err = capsys.readouterr().err
    assert err.count("retention: deleted") >= 4  # pairs deleted while running, not only at exit
    assert not list((tmp_path / "dumps").glob("*.current"))


# ---------------------------------------------------------------------------------------------------- unit file


def test_systemd_unit_runs_this_cli() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(REPO / "collector" / "pmi-collector.service")
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[1:3] == ["-m", "collector"]
    args = run_mod.parse_args(argv[3:])
    assert args.interval == 5 and args.retain_days and args.retain_mb
    assert service["KillSignal"] == "SIGTERM" and unit["Install"]["WantedBy"] == "multi-user.target"
    assert service["ReadWritePaths"] == args.dumps == "/var/lib/" + service["StateDirectory"]


# ---------------------------------------------------------------------------------------------------- alerts (issue 6)


class ScriptedSampler:
    """Samples from a script: process 50 holds 3 GiB at the calls listed in `big`, 10 MiB otherwise."""

    def __init__(self, big: set[int]) -> None:
        self.host, self.boot_id = "h", "b"
        self.big = big
        self.calls = 0

    def sample(self) -> Sample:
        i = self.calls
        self.calls += 1
        rss = 3 << 30 if i in self.big else 10 << 20
        procs = sample_columns([(1, 0, "init", 10 << 20), (50, 1, "hog", rss)])
        return Sample(pd.Timestamp.now(tz="UTC"), procs, meminfo())


def test_on_alert_runs_once_per_start_with_the_alert_as_json(tmp_path: Path, capsys) -> None:
    import json

    rules = tmp_path / "rules.toml"
    rules.write_text("[[rule]]\nname = 'hog'\nkind = 'size'\nabove = '1 GiB'\n[rule.select]\nname = 'hog'\n")
    out = tmp_path / "alerts.jsonl"
    sampler = ScriptedSampler(big={2, 3, 4, 7, 8})
    argv = ["--dumps", str(tmp_path / "dumps"), "--interval", "0.2", "--duration", "2.4", "--smaps", "off"]
    argv += ["--alert-rules", str(rules), "--on-alert", f"cat >> {shlex.quote(str(out))}", "--alert-every", "1"]
    assert run_mod.run(run_mod.parse_args(argv), sampler_factory=lambda smaps: sampler) == 0
    assert sampler.calls >= 9, sampler.calls  # both episodes were sampled
    lines = out.read_text().splitlines()
    assert len(lines) == 2, lines  # started at call 2 and again at call 7, not at every sample
    docs = [json.loads(line) for line in lines]
    assert all(d["rule"] == "hog" and d["pid"] == 50 and d["value"] == 3 << 30 for d in docs)
    assert docs[0]["ts"] < docs[1]["ts"]
    err = capsys.readouterr().err
    assert err.count("alert: hog:") == 2 and "evaluated every 1 sample(s)" in err
    assert read_store(tmp_path / "dumps").procs["ts"].nunique() == sampler.calls  # sampling went on as usual


def test_alert_options_are_checked_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rule]]\nname = 'x'\nkind = 'growth'\nrate = '5 MiB/h'\n")

    def start(*args: str) -> subprocess.CompletedProcess:
        cmd = [PY, "-m", "collector", "--dumps", str(tmp_path / "d"), "--duration", "0", *args]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)

    proc = start("--alert-rules", str(bad))
    assert proc.returncode == 2 and "bad --alert-rules" in proc.stderr and "missing 'for'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = start("--alert-rules", str(tmp_path / "missing.toml"))
    assert proc.returncode == 2 and "cannot read --alert-rules" in proc.stderr
    proc = start("--on-alert", "true")
    assert proc.returncode == 2 and "need --alert-rules" in proc.stderr
    assert not (tmp_path / "d").exists()  # refused before touching the dumps directory


def test_cgroup_memory_reaches_the_dumps(tmp_path: Path) -> None:
    """memory.current of each cgroup holding a process is recorded per sample and stored in cgroups/."""

    fs = FakeProcFS(tmp_path / "proc")
    mount = tmp_path / "sys" / "fs" / "cgroup"
    fs.mount_cgroups(v2=mount)
    fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0, cgroup="0::/init.scope\n"))
    fs.add(FakeProcess(10, "app", ["app"], cgroup="0::/system.slice/app.service\n"))
    FakeProcFS.set_cgroup_memory(mount, "/init.scope", 5 << 20)
    FakeProcFS.set_cgroup_memory(mount, "/system.slice/app.service", 42 << 20)
    sampler = Sampler(proc_root=str(fs.root), smaps="off", clk_tck=100, host="h")
    assert run_with(tmp_path, sampler, "--interval", "0.05", "--duration", "0.2") == 0
    cg = read_store(tmp_path / "dumps").cgroups
    last = cg[cg["ts"] == cg["ts"].max()].set_index("cgroup")["memory_current_bytes"]
    assert last["/system.slice/app.service"] == 42 << 20
    assert last["/init.scope"] == 5 << 20
