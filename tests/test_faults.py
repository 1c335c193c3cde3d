"""Fault injection on the collector and the store: bad arguments, a full disk (a real ENOSPC on a small tmpfs when
this process may mount one, else injected into the writer's writes), kill -9 at every step (start-up, sampling,
compaction) and flipped bits in every kind of stored file (the active `.current`, the procs, system and cgroups
Parquet files). Each test prints its figures (kills per step, flips, samples skipped or lost) as a `[faults] ...`
line in pytest's normal output, also without `pytest -s`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import store
import store.segment
import store.writer
from collector import run as run_mod
from collector.sampler import Sampler
from memlib import query, source
from memlib.schema import SKIPPED_SAMPLES_FIELD
from memlib.tree import stored_tree
from store import files, frames
from store.files import TMP_SUFFIX
from store.schema import TABLES, meminfo_column
from tests.fakeproc import FakeProcess, FakeProcFS
from tests.store_samples import FAKE_T0 as T0_FAULTS
from tests.store_samples import (
    REPO,
    T0,
    StoreRead,
    fresh_current,
    read_store,
    recover_by_restart,
    start_collector,
    whole_samples_in_currents,
    write_simple,
)
from tests.test_store_faults import _current_bytes
from tests.test_store_hostile import _flip, _two_segments

PY = sys.executable
SKIPPED_COLUMN = meminfo_column(SKIPPED_SAMPLES_FIELD)  # the stored system column carrying the count
T0_HOUR1 = T0 + pd.Timedelta(hours=1)  # test_store_hostile._two_segments: first segment before, second from here


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
        while not (dumps.is_dir() and whole_samples_in_currents(dumps) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        filler = Filler(mnt / "filler")
        before = whole_samples_in_currents(dumps)
        time.sleep(2.5)
        during = whole_samples_in_currents(dumps)
        assert proc.poll() is None, log.read_text()
        filler.stop()
        deadline = time.monotonic() + 30
        while whole_samples_in_currents(dumps) < during + 3:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        text = log.read_text()
        got = read_store(dumps)
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
    counts = got.system[SKIPPED_COLUMN].dropna().tolist()
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
        mp.setattr(store.writer.os, "write", write)
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
    got = read_store(tmp_path / "dumps")
    assert not got.notices, got.notices
    assert skipped >= 10 and got.system[SKIPPED_COLUMN].dropna().tolist() == [skipped]
    how = "injected ENOSPC (no mount privilege for a tmpfs)" if fallback else "injected ENOSPC"
    report(capsys, f"full disk ({how}, 1.5 s): {skipped} samples skipped, 1 warning, {len(got.system)} stored, exit 0")


# ---------------------------------------------------------------------------------------------------- kill -9


def _in_compaction(dumps: Path) -> bool:
    """True while a segment is being published: a Parquet temp file in a partition, or a `.current` whose closed
    files (same stamp) already exist (published, not yet deleted)."""
    with contextlib.suppress(FileNotFoundError):
        if any(dumps.glob(f"*/host=*/date=*/*.parquet{TMP_SUFFIX}")):
            return True
        for name in os.listdir(dumps):
            if name.startswith("seg-") and name.endswith(".current"):
                stamp = name[len("seg-") :].split("Z-", 1)[0]
                if any(dumps.glob(f"*/host=*/date=*/seg-{stamp}Z.parquet")):
                    return True
    return False


def _half_published(dumps: Path) -> list[str]:
    """System files of segments killed between their system and procs renames (the procs file not published yet,
    the `.current` still there), relative to `dumps`."""
    out = []
    for cur in dumps.glob("seg-*.current"):
        stamp = cur.name[len("seg-") :].split("Z-", 1)[0]
        for system in dumps.glob(f"system/host=*/date=*/seg-{stamp}Z.parquet"):
            if not Path(str(system).replace("/system/", "/procs/", 1)).exists():
                out.append(system.relative_to(dumps).as_posix())
    return out


def _wait_for_compaction(dumps: Path, proc: subprocess.Popen, timeout: float) -> bool:
    """Poll for a compaction in progress; True when one is seen (the collector still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if _in_compaction(dumps):
            return True
        time.sleep(0.001)
    return False


@pytest.mark.slow
def test_kill_9_at_every_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """15 kill -9 of a real collector (0.1 s interval, a new segment every 0.3 s): 5 during start-up (imports, lock,
    recovery of the previous leftovers), 5 while sampling, 5 inside a compaction (a segment being published).
    After each kill every visible file loads without a notice, no sample is half there, nothing visible before is
    gone, and the last sample is within two slots of the kill; the next clean start publishes every leftover and
    keeps every sample."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    log = tmp_path / "collector.log"
    interval = 0.1
    rng = random.Random(uuid.UUID(int=18).int)
    seen: set[pd.Timestamp] = set()
    kills = {"startup": 0, "sampling": 0, "compaction": 0}
    lags: list[float] = []
    window = 0  # kills that left a segment half published (system file out, procs file not)
    for round_ in range(15):
        step = ("sampling", "compaction", "startup")[round_ % 3]  # start-up kills find a store to recover
        old = set(os.listdir(dumps))
        with log.open("a") as fh:
            proc = start_collector(dumps, interval, 0.3, stderr=fh)
        try:
            if step == "startup":
                time.sleep(rng.uniform(0.02, 1.2))
            else:
                deadline = time.monotonic() + 60
                while not fresh_current(dumps, old):
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
        got = read_store(dumps)
        window += bool(_half_published(dumps))
        assert not got.notices, (round_, step, got.notices)
        assert not got.system.duplicated(["ts"]).any(), round_
        assert not got.procs.duplicated(["ts", "pid"]).any(), round_
        after = set(got.system["ts"])
        assert set(got.procs["ts"]) == after, f"round {round_} ({step}): half a sample visible"
        assert seen <= after, f"round {round_} ({step}): samples visible before the kill are gone"
        whole_samples_in_currents(dumps)  # no damage in the active segments either
        if step != "startup" and after:
            lags.append((killed_at - max(after)).total_seconds())
        seen = after
    everything = recover_by_restart(dumps)  # the next clean start publishes every leftover
    assert not everything.notices and set(everything.system["ts"]) == seen
    assert not everything.procs.duplicated(["ts", "pid"]).any()
    assert kills["compaction"] >= 1, kills
    worst = max(lags)
    slack = 0.5 + 0.5 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    assert worst < 2 * interval + slack, lags
    report(
        capsys,
        f"kill -9: {sum(kills.values())} kills ({kills['startup']} start-up, {kills['sampling']} sampling, "
        f"{kills['compaction']} compaction); visible samples lost: 0 of {len(seen)}; last sample before a kill: "
        f"at most {worst:.2f} s (~{worst / interval:.1f} slots of {interval} s: the sample in flight); {window} "
        "kill(s) between a segment's system and procs renames (each sample read once, no notice)",
    )


def test_a_kill_between_the_system_and_procs_renames_reads_each_sample_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collector killed after publishing a segment's cgroups and system files but before its procs file: until
    the next start, every sample is read once (from the `.current` or the closed files) and nothing is called
    missing."""
    write_simple(tmp_path, n=3, close=False)
    current = next(tmp_path.glob("*.current"))
    real = os.replace

    class Killed(BaseException):
        pass

    def replace(src: object, dst: object) -> None:
        if "/procs/" in str(dst):
            raise Killed
        real(src, dst)

    monkeypatch.setattr(store.segment.os, "replace", replace)
    with pytest.raises(Killed):
        store.compact_current(current, stored_tree)
    monkeypatch.undo()
    assert current.exists() and len(list(tmp_path.glob("system/*/*/*.parquet"))) == 1
    assert not list(tmp_path.glob("procs/*/*/*.parquet"))
    got = read_store(tmp_path)
    assert got.system["ts"].nunique() == 3 and set(got.procs["ts"]) == set(got.system["ts"])
    assert not got.system.duplicated(["ts"]).any() and not got.cgroups.duplicated(["ts", "cgroup"]).any()
    assert not got.notices, got.notices


# ---------------------------------------------------------------------------------------------------- bit flips

Key = tuple[str, pd.Timestamp]  # a sample: (host, ts)


def _flip_store(root: Path) -> dict[str, Path]:
    """Two closed segments of host vm (the first with all three tables) and a 4-sample `.current` of host h -> the
    damaged-file candidates {kind: path} (the first segment's procs, system and cgroups files, the .current)."""
    root.mkdir()
    procs, system = _two_segments(root)
    current = root / files.current_name(files.stamp(T0_ACTIVE), "h")
    current.write_bytes(_current_bytes(4))
    cgroups = Path(str(procs).replace("/procs/", "/cgroups/", 1))
    return {".current": current, "procs": procs, "system": system, "cgroups": cgroups}


T0_ACTIVE = T0_FAULTS + pd.Timedelta(hours=2)  # the first sample of test_store_faults._current_bytes


def _samples(got: StoreRead) -> dict[str, set[Key]]:
    """Each table's samples {table: {(host, ts)}}."""
    frames_ = {"procs": got.procs, "system": got.system, "cgroups": got.cgroups}
    return {t: set(zip(frames_[t]["host"], frames_[t]["ts"], strict=True)) for t in TABLES}


@contextlib.contextmanager
def _flipped(path: Path, pos: int) -> Iterator[None]:
    """One bit of `path` flipped at byte `pos` (test_store_hostile._flip) for the duration; then the original bytes."""
    original = path.read_bytes()
    _flip(path, at=pos)
    try:
        yield
    finally:
        path.write_bytes(original)


def _spread(start: int, stop: int, n: int) -> list[int]:
    """n byte positions spread evenly over [start, stop)."""
    return sorted({start + (stop - start) * k // n for k in range(n)})


def _parquet_body(path: Path) -> int:
    """Bytes before a Parquet file's footer (what its data digest covers)."""
    data = path.read_bytes()
    return len(data) - 8 - int.from_bytes(data[-8:-4], "little")


def _frame_spots(data: bytes) -> list[tuple[int, int]]:
    """Per frame of a .current: (its start, its end) in file order."""
    spots, pos = [], frames.HEADER.size
    while pos + frames.FRAME.size <= len(data):
        length = frames.FRAME.unpack_from(data, pos)[2]
        spots.append((pos, pos + frames.FRAME.size + length))
        pos += frames.FRAME.size + length
    return spots


def test_bit_flips_in_every_file_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One flipped bit at a time in each kind of stored file: the active `.current` (its header; each frame's
    magic, kind, length, CRC and payload) and a closed procs, system and cgroups Parquet file (magic, data pages,
    footer length, end magic). A flip in a closed file leaves that file out with a notice naming it (relative to
    the root) and keeps every row of every other file, its segment siblings included; a flip in a frame loses that
    one sample (named, or read as a torn tail when it is the last), the reader resynchronising on the next frame;
    a flip in the header leaves the file unread and named. A restart's recovery after a frame flip publishes every
    readable sample and keeps the damaged original aside."""
    root = tmp_path / "store"
    victims = _flip_store(root)
    pristine = read_store(root)
    assert not pristine.notices, pristine.notices
    base = _samples(pristine)
    active = {k for k in base["system"] if k[0] == "h"}
    assert len(active) == 4 and len(base["system"]) == 10 and len(base["cgroups"]) == 3
    flips = dict.fromkeys(victims, 0)
    lost = dict.fromkeys(victims, 0)
    torn = header_flips = recovered = 0
    for kind, path in victims.items():
        rel = path.relative_to(root).as_posix()
        size = path.stat().st_size
        if kind == ".current":
            spots = [0]  # the header's magic
            for start, end in _frame_spots(path.read_bytes()):
                spots += [start, start + 4, start + 5, start + 9, (start + frames.FRAME.size + end) // 2]
        else:
            spots = [0, *_spread(4, _parquet_body(path), 10), size - 8, size - 1]
        for pos in spots:
            with _flipped(path, pos):
                got = read_store(root)
            flips[kind] += 1
            now = _samples(got)
            text = "\n".join(got.notices)
            assert str(root) not in text
            named = any(n.startswith(rel) for n in got.notices)
            if kind != ".current":
                table = kind
                gone = base[table] - now[table]
                assert named and ("checksum mismatch" in text or "not a Parquet file" in text or "footer" in text), (
                    kind,
                    pos,
                    got.notices,
                )
                assert gone == {k for k in base[table] if k[0] == "vm" and k[1] < T0_HOUR1}, (kind, pos)
                assert all(now[t] == base[t] for t in TABLES if t != table), (kind, pos)  # other files all read
                lost[kind] += len(gone)
                continue
            assert all(now[t] >= base[t] - active for t in TABLES), pos  # the closed files are untouched
            gone = active - now["system"]
            assert gone == active - now["procs"], pos  # never half a sample
            if pos < frames.HEADER.size:
                header_flips += 1
                assert named and gone == active, (pos, got.notices)  # unread, named, kept on disk
            else:
                assert len(gone) == 1, (pos, gone, got.notices)  # the damaged frame's sample, no other
                if not named:
                    assert gone == {max(active)}, (pos, got.notices)  # a damaged last frame reads as a torn tail
                    torn += 1
            lost[kind] += len(gone)
    # a restart after a flip in each frame's payload: every readable sample published, the original kept aside
    current = victims[".current"]
    for start, end in _frame_spots(current.read_bytes()):
        case = tmp_path / f"recover{start}"
        shutil.copytree(root, case)
        _flip(case / current.name, at=(start + frames.FRAME.size + end) // 2)
        before = _samples(read_store(case))
        notes = store.recover(case, stored_tree)
        after = read_store(case)
        assert _samples(after) == before, (start, notes)
        assert after.notices == [f"{current.name}{files.DAMAGED_SUFFIX}: a damaged active segment kept aside (its "
                                 "readable samples were published)"], after.notices  # fmt: skip
        assert (case / (current.name + files.DAMAGED_SUFFIX)).is_file() and not (case / current.name).exists()
        assert any("kept" in n and "aside" in n for n in notes), notes
        recovered += 1
    frame_flips = flips[".current"] - header_flips
    report(
        capsys,
        f"bit flips: {sum(flips.values())} single-bit flips in 4 file kinds (.current {flips['.current']}, "
        f"procs {flips['procs']}, system {flips['system']}, cgroups {flips['cgroups']}), every damaged file named, "
        f"0 rows of other files lost; samples lost: .current {lost['.current']} ({frame_flips} frame flips: 1 each, "
        f"{torn} of them a last frame read as a torn tail; {header_flips} header flip(s): the file's {len(active)} "
        f"unread, kept on disk), procs {lost['procs']}, system {lost['system']}, cgroups {lost['cgroups']} (the "
        f"damaged file's 3 samples each); {recovered} restarts after a frame flip lost nothing more, original kept "
        f"aside",
    )


def _rows(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame | None:
    """A table's rows in a fixed order, restricted to `columns` (None when one of them is missing)."""
    if not set(columns) <= set(frame.columns):
        return None
    return frame[columns].sort_values(columns[:4]).reset_index(drop=True)


def test_bit_flips_in_a_parquet_footer_are_caught(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One flipped bit at a time in the footer of a closed procs, system and cgroups file (40 spread over it, and
    the first byte of the `boot_id` column's name): each flip either leaves the file out with a notice naming it
    or changes nothing; never changed values without a notice, never a read that raises."""
    root = tmp_path / "store"
    victims = _flip_store(root)
    pristine = read_store(root)
    frames_ = {"procs": pristine.procs, "system": pristine.system, "cgroups": pristine.cgroups}
    outcome: dict[str, list[tuple[str, int]]] = {"named": [], "harmless": [], "changed": [], "raised": []}
    query_raised: list[tuple[str, int]] = []  # of those raising, the ones the pages' queries (DuckDB) raise on
    for table in TABLES:
        path = victims[table]
        rel = path.relative_to(root).as_posix()
        columns = list(frames_[table].columns)
        want = _rows(frames_[table], columns)
        body, data = _parquet_body(path), path.read_bytes()
        spots = [*_spread(body, len(data) - 8, 40), data.find(b"boot_id", body)]  # and a column name
        for pos in spots:
            with _flipped(path, pos):
                try:
                    got = read_store(root)
                except Exception:  # any exception is the finding
                    outcome["raised"].append((table, pos))
                    with contextlib.suppress(Exception):
                        rec = source.open_recording(root)
                        query.snapshots(rec), query.system(rec)
                        continue
                    query_raised.append((table, pos))
                    continue
            mine = {"procs": got.procs, "system": got.system, "cgroups": got.cgroups}[table]
            if any(n.startswith(rel) for n in got.notices):
                outcome["named"].append((table, pos))
            elif (rows := _rows(mine, columns)) is not None and rows.equals(want):
                outcome["harmless"].append((table, pos))
            else:
                outcome["changed"].append((table, pos))
    total = sum(len(v) for v in outcome.values())
    report(
        capsys,
        f"bit flips in Parquet footers: {total} flips (procs, system, cgroups): {len(outcome['named'])} named, "
        f"{len(outcome['harmless'])} harmless, {len(outcome['changed'])} changed rows without a notice, "
        f"{len(outcome['raised'])} made the read raise ({len(query_raised)} of them the pages' queries too)",
    )
    assert not outcome["changed"] and not outcome["raised"], outcome
