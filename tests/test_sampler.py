"""collector.sampler.Sampler over a fake procfs (and one smoke run over the real /proc)."""

from __future__ import annotations

import errno
import os
import time as time_mod
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from collector import sampler as sampler_mod
from collector.procfs import start_time_ns
from collector.sampler import REFRESH_EVERY, SMAPS_SYSTEM_FIELDS, Sampler
from store.schema import SAMPLE_COLUMNS as SAMPLE_PROC_COLUMNS
from tests.fakeproc import BOOT_ID, BTIME, FailingReaders, FakeProcess, FakeProcFS
from tests.store_samples import read_store, us, writer

PAGE = os.sysconf("SC_PAGE_SIZE")


def rows(sample: sampler_mod.Sample) -> dict[int, dict]:
    """pid -> {column: value} of one sample."""
    cols = sample.procs
    return {pid: {c: cols[c][i] for c in cols} for i, pid in enumerate(cols["pid"])}


@pytest.fixture
def fs(tmp_path: Path) -> FakeProcFS:
    fake = FakeProcFS(tmp_path / "proc")
    fake.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0, start_ticks=1, rss_pages=300))
    fake.add(FakeProcess(2, "kthreadd", [], ppid=0, kthread=True, rss_pages=0, vsize=0, smaps_kb=None))
    fake.add(FakeProcess(50, "kworker/0:1", [], ppid=2, kthread=True, rss_pages=0, vsize=0, smaps_kb=None))
    fake.add(FakeProcess(100, "bash", ["-bash"], uid=1000, start_ticks=5000, rss_pages=1000))
    fake.add(FakeProcess(101, "(a) b)", ["./weird", "x y"], ppid=100, start_ticks=5100, rss_pages=50))
    fake.add(FakeProcess(102, "defunct", [], ppid=100, state="Z", rss_pages=0, vsize=0, smaps_kb=None))
    fake.add(FakeProcess(103, "mysql", ["mysql", "--password=hunter2", "-u", "root"], ppid=100, start_ticks=6000))
    return fake


def make(fs: FakeProcFS, smaps: str = "off", readers: FailingReaders | None = None, **kw: object) -> Sampler:
    if readers is not None:
        kw.update(read_small=readers.read_small, read_whole=readers.read_whole)
    return Sampler(proc_root=str(fs.root), smaps=smaps, clk_tck=100, host="testhost", **kw)


def unlimited(s: Sampler) -> Sampler:
    """No smaps CPU budget limit (the order and the due rules still apply)."""
    s.smaps_burst_s = s._smaps_credit = 1e9
    return s


class FakeClock:
    """A fake `time` for collector.sampler: wall clock and monotonic move with `advance`, thread CPU time with `spend`.

    Makes the smaps schedule depend on the rules only, not on this machine's speed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, wall_ns: int = (BTIME + 10**6) * 10**9) -> None:
        import types

        self.wall_ns, self.mono, self.cpu = wall_ns, 1000.0, 0.0
        fake = types.SimpleNamespace(**{k: getattr(time_mod, k) for k in dir(time_mod) if not k.startswith("_")})
        fake.time_ns = lambda: self.wall_ns
        fake.monotonic = lambda: self.mono
        fake.thread_time = lambda: self.cpu
        fake.perf_counter = lambda: self.mono + self.cpu
        monkeypatch.setattr(sampler_mod, "time", fake)

    def advance(self, seconds: float) -> None:
        self.wall_ns += round(seconds * 1e9)
        self.mono += seconds

    def spend(self, seconds: float) -> Callable[[], None]:
        """A FailingReaders.before hook: reading that file costs `seconds` of CPU time."""

        def hook() -> None:
            self.cpu += seconds

        return hook

    def ticks(self) -> int:
        """Now as 100 Hz clock ticks since the fake boot (a start_ticks for a process starting now)."""
        return (self.wall_ns - BTIME * 10**9) // 10**7


def test_sample_columns_and_values(fs: FakeProcFS) -> None:
    s = make(fs)
    assert (s.btime, s.boot_id, s.host) == (BTIME, BOOT_ID, "testhost")
    sample = s.sample()
    assert list(sample.procs) == SAMPLE_PROC_COLUMNS
    assert sample.ts.tzinfo is not None
    r = rows(sample)
    assert sorted(r) == [1, 2, 50, 100, 101, 102, 103]
    bash = r[100]
    assert bash["ppid"] == 1 and bash["state"] == "S" and bash["name"] == "bash" and bash["cmdline"] == "-bash"
    assert bash["rss_bytes"] == 1000 * PAGE and bash["vsz_bytes"] == 10_000_000 and bash["threads"] == 1
    assert bash["uid"] == 1000 and bash["user"] in ("1000", _user_name(1000))
    assert bash["cgroup"] == "/system.slice/proc.service"
    assert bash["start_time"] == start_time_ns(BTIME, 5000, 100) == (BTIME + 50) * 10**9
    assert r[1]["user"] == "root"
    assert r[101]["name"] == "(a) b)" and r[101]["cmdline"] == "./weird x y"
    assert sample.stats["processes"] == 7 and sample.stats["new"] == 7 and sample.stats["vanished"] == 0
    # smaps off: unknown is null, never 0
    assert all(v is None for c in ("pss_bytes", "uss_bytes", "swap_bytes", "smaps_ts") for v in sample.procs[c])
    assert sample.meminfo["MemTotal"] == 16_000_000 * 1024 and sample.meminfo["HugePages_Total"] == 4


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def test_kernel_threads_and_zombies(fs: FakeProcFS) -> None:
    r = rows(make(fs, smaps="on").sample())
    assert r[2]["cmdline"] == "[kthreadd]" and r[50]["cmdline"] == "[kworker/0:1]"
    assert r[102]["state"] == "Z" and r[102]["rss_bytes"] == 0 and r[102]["cmdline"] == "[defunct]"
    assert r[102]["pss_bytes"] is None and r[2]["pss_bytes"] is None


def test_cmdline_is_scrubbed(fs: FakeProcFS) -> None:
    cmd = rows(make(fs).sample())[103]["cmdline"]
    assert "hunter2" not in cmd
    assert cmd.startswith("mysql --password=") and cmd.endswith("-u root")


def test_start_time_identical_across_samples_and_restarts(fs: FakeProcFS) -> None:
    a = make(fs)
    first = rows(a.sample())
    second = rows(a.sample())
    again = rows(make(fs).sample())  # a new collector run
    for pid in first:
        assert first[pid]["start_time"] == second[pid]["start_time"] == again[pid]["start_time"]


def test_identity_files_read_only_for_new_processes(fs: FakeProcFS) -> None:
    readers = FailingReaders()
    s = make(fs, readers=readers)
    s.sample()
    readers.reads.clear()
    s.sample()
    cmdline_reads = [k for k in readers.reads if k[1] == "cmdline"]
    stat_reads = [k for k in readers.reads if k[1] == "stat"]
    assert len(stat_reads) == 7
    # only the staggered refresh slot (pid % REFRESH_EVERY == sample count % REFRESH_EVERY) is re-read
    assert all(pid % REFRESH_EVERY == 2 % REFRESH_EVERY for pid, _ in cmdline_reads)


def test_reexec_noticed_at_once_inplace_rewrite_by_refresh(fs: FakeProcFS) -> None:
    s = make(fs)
    s.sample()
    # exec of the same binary with new arguments: same pid, start time and comm, new argv address
    fs.add(FakeProcess(101, "(a) b)", ["./weird", "--new"], ppid=100, start_ticks=5100, arg_start=150_000_000_000_000))
    assert rows(s.sample())[101]["cmdline"] == "./weird --new"
    # exec of another binary: comm changes
    fs.add(FakeProcess(100, "python3", ["python3", "app.py"], uid=1000, start_ticks=5000))
    r = rows(s.sample())[100]
    assert (r["name"], r["cmdline"]) == ("python3", "python3 app.py")
    # setproctitle-style rewrite in place (nothing in stat changes): seen within REFRESH_EVERY samples
    fs.add(FakeProcess(103, "mysql", ["mysql: idle"], ppid=100, start_ticks=6000))
    seen = [rows(s.sample())[103]["cmdline"] for _ in range(REFRESH_EVERY)]
    assert seen[0] != "mysql: idle" and seen[-1] == "mysql: idle"


def test_pid_reuse_is_a_new_identity(fs: FakeProcFS) -> None:
    s = make(fs)
    before = rows(s.sample())[101]
    fs.add(FakeProcess(101, "(a) b)", ["other"], ppid=1, start_ticks=9000))
    after = rows(s.sample())[101]
    assert after["cmdline"] == "other" and after["start_time"] != before["start_time"]


def test_process_vanishing_between_stat_and_cmdline_is_skipped(fs: FakeProcFS) -> None:
    readers = FailingReaders()
    readers.errors[(101, "cmdline")] = ProcessLookupError(errno.ESRCH, "No such process")
    sample = make(fs, readers=readers).sample()
    assert 101 not in rows(sample)
    assert sample.stats["vanished"] == 1 and sample.stats["processes"] == 6


def test_pid_dir_really_disappears(fs: FakeProcFS) -> None:
    readers = FailingReaders()
    # one process exits after the listing but before its stat is read, another right after its stat was read
    readers.before[(103, "stat")] = lambda: fs.remove(103)
    readers.before[(101, "cmdline")] = lambda: fs.remove(101)
    sample = make(fs, readers=readers).sample()
    assert 103 not in rows(sample) and 101 not in rows(sample)
    assert sample.stats["vanished"] == 2 and sample.stats["processes"] == 5


def test_smaps_values_and_permission_denied(fs: FakeProcFS) -> None:
    readers = FailingReaders()
    readers.errors[(100, "smaps_rollup")] = PermissionError(errno.EACCES, "Permission denied")
    sample = unlimited(make(fs, smaps="on", readers=readers)).sample()
    r = rows(sample)
    assert r[1]["pss_bytes"] == 300 * 1024 and r[1]["uss_bytes"] == 200 * 1024 and r[1]["swap_bytes"] == 8 * 1024
    assert r[1]["smaps_ts"] is not None and r[1]["smaps_ts"] >= sample.ts.value
    assert r[100]["pss_bytes"] is None and r[100]["smaps_ts"] is None  # denied: null, not 0
    assert sample.stats["smaps_failed"] == 1
    coverage = [sample.meminfo[k] for k in ("smaps_eligible", "smaps_stale", "smaps_unreadable")]
    assert coverage == [4, 1, 1]  # bash is stale because it cannot be read, not for want of budget
    # kernel threads and zombies are not even tried
    assert not any(k in readers.reads for k in [(2, "smaps_rollup"), (50, "smaps_rollup"), (102, "smaps_rollup")])


def test_smaps_budget_visits_stalest_then_biggest(fs: FakeProcFS, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(monkeypatch)
    readers = FailingReaders()
    s = unlimited(make(fs, smaps="on", readers=readers, smaps_max_reads=1, smaps_every=1000))  # one read per sample
    order = []
    for step in (1, 1, 1, 1, 1, 1000, 1, 1):
        readers.reads.clear()
        clock.advance(step)
        sample = s.sample()
        order.append(_smaps_reads(readers))
    # all never read (and long alive): biggest RSS first: bash (1000 pages), init (300), mysql (100), (a) b) (50)
    assert order[:4] == [[100], [1], [103], [101]]
    assert order[4] == []  # nothing due (values younger than 1000 s)
    # 1000 s later all are due again: the stalest, bash, first, and so on
    assert order[5:] == [[100], [1], [103]]
    r = rows(sample)
    # values carried forward with their age
    assert r[101]["pss_bytes"] == 300 * 1024 and r[101]["smaps_ts"] < sample.ts.value


def _smaps_reads(readers: FailingReaders) -> list[int]:
    return [pid for pid, f in readers.reads if f == "smaps_rollup"]


def costly_smaps(
    fs: FakeProcFS, monkeypatch: pytest.MonkeyPatch, cpu: float
) -> tuple[FakeClock, FailingReaders, Sampler]:
    """A sampler on a fake clock with a 10 s smaps target and a `cpu` budget, where one smaps_rollup read costs 5 ms."""
    clock = FakeClock(monkeypatch)
    readers = FailingReaders()
    for pid in (1, 100, 101, 103):
        readers.before[(pid, "smaps_rollup")] = clock.spend(0.005)
    return clock, readers, make(fs, smaps="on", readers=readers, smaps_every=10, smaps_cpu=cpu)


def test_smaps_every_process_fresh_within_the_cpu_budget(fs: FakeProcFS, monkeypatch: pytest.MonkeyPatch) -> None:
    """Target 10 s, budget 2 % of a core, one smaps_rollup read costs 5 ms: 4 processes fit (20 ms per 10 s).

    Every value stays at most 10 s old, the coverage fields say so, each process is read about once per 10 s (not
    every sample) and the CPU spent stays within the budget."""
    clock, readers, s = costly_smaps(fs, monkeypatch, cpu=0.02)
    spent_us = 0
    for _ in range(60):
        sample = s.sample()
        r = rows(sample)
        for pid in (1, 100, 101, 103):
            assert r[pid]["pss_bytes"] == 300 * 1024
            assert sample.ts.value - r[pid]["smaps_ts"] <= 10 * 10**9
        assert {k: sample.meminfo[k] for k in SMAPS_SYSTEM_FIELDS if k != "smaps_cpu_us"} == {
            "smaps_every_ms": 10_000,
            "smaps_eligible": 4,
            "smaps_stale": 0,
            "smaps_unreadable": 0,
        }
        spent_us += sample.meminfo["smaps_cpu_us"]
        clock.advance(1.0)
    reads = _smaps_reads(readers)
    assert 24 <= len(reads) <= 4 * 8, reads  # about once per 10 s each; unbudgeted it would be 240
    assert spent_us / 1e6 <= 0.02 * 60 + s.smaps_burst_s + 0.005 + 1e-6


def test_smaps_shortfall_biggest_first_and_recorded(fs: FakeProcFS, monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget for two reads per 10 s while 4 are needed: the shortfall is counted in every sample's system fields,
    bigger processes are read more often without starving the small ones, and the CPU spent stays within budget."""
    clock, readers, s = costly_smaps(fs, monkeypatch, cpu=0.001)
    spent_us = 0
    stale = []
    for _ in range(200):
        sample = s.sample()
        spent_us += sample.meminfo["smaps_cpu_us"]
        stale.append(sample.meminfo["smaps_stale"])
        clock.advance(1.0)
    assert min(stale[20:]) >= 1 and max(stale) <= 4 and sum(stale[20:]) / 180 >= 1.5
    assert spent_us / 1e6 <= 0.001 * 200 + s.smaps_burst_s + 0.005 + 1e-6
    reads = _smaps_reads(readers)
    assert 35 <= len(reads) <= 42, reads  # one per 5 s
    # bash (1000 pages) > init (300) > mysql (100) >= (a) b) (50), and every one of them is read repeatedly
    assert reads.count(100) > reads.count(1) > reads.count(103) >= reads.count(101) >= 4, reads


def test_smaps_rereads_a_process_whose_rss_moved(fs: FakeProcFS, monkeypatch: pytest.MonkeyPatch) -> None:
    """Values are not due for 1000 s, but a process whose RSS grew by more than 1/8 is read again at once."""
    clock = FakeClock(monkeypatch)
    readers = FailingReaders()
    s = unlimited(make(fs, smaps="on", readers=readers, smaps_every=1000))
    s.sample()
    assert sorted(_smaps_reads(readers)) == [1, 100, 101, 103]
    readers.reads.clear()
    clock.advance(1.0)
    s.sample()
    assert _smaps_reads(readers) == []
    fs.add(FakeProcess(100, "bash", ["-bash"], uid=1000, start_ticks=5000, rss_pages=1500, smaps_kb={"Pss": 4000}))
    fs.add(FakeProcess(103, "mysql", ["mysql"], ppid=100, start_ticks=6000, rss_pages=110))  # +10 %: not moved
    clock.advance(1.0)
    r = rows(s.sample())
    assert _smaps_reads(readers) == [100] and r[100]["pss_bytes"] == 4000 * 1024


def test_smaps_new_process_read_at_once_and_counted_once_old_enough(
    fs: FakeProcFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(monkeypatch)
    s = unlimited(make(fs, smaps="on", smaps_every=10))
    assert s.sample().meminfo["smaps_eligible"] == 4
    fs.add(FakeProcess(300, "job", ["job"], start_ticks=clock.ticks()))
    clock.advance(1.0)
    sample = s.sample()
    assert rows(sample)[300]["pss_bytes"] == 300 * 1024  # read in its first sample
    assert sample.meminfo["smaps_eligible"] == 4  # not yet alive 10 s: not part of the promise
    clock.advance(10.0)
    assert s.sample().meminfo["smaps_eligible"] == 5


def test_smaps_off_records_no_coverage_fields(fs: FakeProcFS) -> None:
    assert not set(SMAPS_SYSTEM_FIELDS) & set(make(fs, smaps="off").sample().meminfo)


def test_smaps_auto_as_non_root_reads_own_uid_only(fs: FakeProcFS) -> None:
    readers = FailingReaders()
    s = unlimited(make(fs, smaps="auto", readers=readers))
    s._euid = 1000
    sample = s.sample()
    assert _smaps_reads(readers) == [100]
    assert sample.meminfo["smaps_eligible"] == 1 and sample.meminfo["smaps_stale"] == 0


def test_smaps_off_reads_no_smaps(fs: FakeProcFS) -> None:
    readers = FailingReaders()
    make(fs, smaps="off", readers=readers).sample()
    assert not [k for k in readers.reads if k[1] == "smaps_rollup"]


def test_bad_smaps_mode_is_a_clear_error(fs: FakeProcFS) -> None:
    with pytest.raises(ValueError, match="smaps must be one of"):
        make(fs, smaps="sometimes")
    for bad in ({"smaps_every": 0}, {"smaps_cpu": -0.01}, {"smaps_every": float("nan")}):
        with pytest.raises(ValueError, match="smaps_every and smaps_cpu must be > 0"):
            make(fs, smaps="on", **bad)


def test_sample_round_trips_through_store(fs: FakeProcFS, tmp_path: Path) -> None:
    s = make(fs, smaps="on")
    w = writer(tmp_path / "dumps", s.host, s.boot_id)
    samples = [s.sample() for _ in range(3)]
    for smp in samples:
        w.append(smp.ts, smp.procs, smp.meminfo)
    w.close()
    got = read_store(tmp_path / "dumps")
    assert len(got.procs) == 21 and len(got.system) == 3 and not got.notices
    first = got.procs[got.procs["ts"] == us(samples[0].ts)].set_index("pid")
    assert first.loc[101, "name"] == "(a) b)"
    assert first.loc[100, "start_time"] == pd.Timestamp((BTIME + 50) * 10**9, unit="ns", tz="UTC")
    assert str(first.loc[100, "host"]) == "testhost" and str(first.loc[100, "boot_id"]) == BOOT_ID
    assert got.system["mem_total_bytes"].iloc[0] == 16_000_000 * 1024
    # the smaps coverage of every sample is stored with its system row
    assert list(got.system["smaps_every_ms"]) == [60_000] * 3 and list(got.system["smaps_eligible"]) == [4] * 3


def test_real_proc_smoke() -> None:
    s = Sampler(smaps="auto")
    sample = s.sample()
    r = rows(sample)
    me = r[os.getpid()]
    assert "python" in me["cmdline"] or "pytest" in me["cmdline"]
    assert me["rss_bytes"] > 0 and me["ppid"] == os.getppid()
    assert sample.meminfo["MemTotal"] > 0
    again = rows(s.sample())[os.getpid()]
    assert again["start_time"] == me["start_time"]


def test_psutil_sampler_same_schema_as_proc_sampler() -> None:
    from collector.psutil_sampler import PsutilSampler

    ps = PsutilSampler(smaps="auto")
    first = ps.sample()
    assert list(first.procs) == SAMPLE_PROC_COLUMNS
    me = rows(first)[os.getpid()]
    assert me["rss_bytes"] > 0 and me["ppid"] == os.getppid() and "python" in me["cmdline"] + me["name"]
    assert me["uss_bytes"] is not None and me["smaps_ts"] is not None  # own process: readable
    assert first.meminfo["MemTotal"] > 0
    # identity: stable across samples, and matching the /proc sampler's start time to the clock tick
    assert rows(ps.sample())[os.getpid()]["start_time"] == me["start_time"]
    proc_start = rows(Sampler().sample())[os.getpid()]["start_time"]
    assert abs(proc_start - me["start_time"]) <= 10_000_000
    with pytest.raises(ValueError, match="smaps must be one of"):
        PsutilSampler(smaps="yes")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_kept_open_stat_descriptors_follow_process_exits() -> None:
    import subprocess

    s = Sampler(smaps="off")
    s.sample()
    children = [subprocess.Popen(["sleep", "30"]) for _ in range(5)]
    try:
        r = rows(s.sample())
        assert all(c.pid in r for c in children)
        held = _open_fds()
        for c in children:
            c.kill()
            c.wait()
        r = rows(s.sample())
        assert not any(c.pid in r for c in children)
        assert _open_fds() <= held - 5  # their descriptors were closed
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()
    before_close = _open_fds()
    s.close()
    assert _open_fds() < before_close
    assert rows(s.sample())[os.getpid()]["rss_bytes"] > 0  # still usable after close()
    s.close()


def test_cached_descriptor_of_a_reused_pid_reads_the_new_process(fs: FakeProcFS) -> None:
    s = make(fs)  # no injected reader: stat files are read through kept-open descriptors
    before = rows(s.sample())[101]
    assert s._fds  # descriptors are kept
    fs.remove(101)
    assert 101 not in rows(s.sample())
    fs.add(FakeProcess(101, "newcomer", ["newcomer"], start_ticks=99999))
    after = rows(s.sample())[101]
    assert after["name"] == "newcomer" and after["start_time"] != before["start_time"]


# ------------------------------------------------------------------------------------------------ cgroups (issue 5)


def test_cgroup_v2_paths_and_memory_current_one_read_per_cgroup(fs: FakeProcFS, tmp_path: Path) -> None:
    v2 = tmp_path / "cg2"
    fs.mount_cgroups(v2=v2)
    fs.set_cgroup_memory(v2, "/system.slice/proc.service", 123_456_789)
    fs.set_cgroup_memory(v2, "/user.slice/user-1000.slice/session-2.scope", 55_000)
    fs.add(FakeProcess(100, "bash", ["-bash"], uid=1000, start_ticks=5000,
                       cgroup="0::/user.slice/user-1000.slice/session-2.scope\n"))  # fmt: skip
    fs.add(FakeProcess(104, "gone", ["x"], start_ticks=7000, cgroup="0::/system.slice/old.service (deleted)\n"))
    fs.add(FakeProcess(2, "kthreadd", [], ppid=0, kthread=True, rss_pages=0, vsize=0, smaps_kb=None, cgroup="0::/\n"))
    readers = FailingReaders()
    memory_reads: list[str] = []

    def read_whole(path: str) -> bytes:
        if path.endswith("/memory.current"):
            memory_reads.append(path)
        return readers.read_whole(path)

    s = Sampler(proc_root=str(fs.root), clk_tck=100, host="h", read_small=readers.read_small, read_whole=read_whole)
    sample = s.sample()
    assert len(memory_reads) == len(set(memory_reads)) == 4  # one read per distinct cgroup, 5 processes share one
    r = rows(sample)
    assert r[100]["cgroup"] == "/user.slice/user-1000.slice/session-2.scope"
    assert r[104]["cgroup"] == "/system.slice/old.service"  # ' (deleted)' removed
    assert r[2]["cgroup"] == "/"
    assert sample.cgroup_mem == {
        "/system.slice/proc.service": 123_456_789,
        "/user.slice/user-1000.slice/session-2.scope": 55_000,
    }  # the removed cgroup and the v2 root have no memory.current: left out, not 0
    assert sample.stats["cgroups_read"] == 2 and sample.stats["cgroups_failed"] == 2
    fs.set_cgroup_memory(v2, "/system.slice/proc.service", 7)
    assert s.sample().cgroup_mem["/system.slice/proc.service"] == 7  # read again every sample


def test_cgroup_v1_and_hybrid_use_the_memory_hierarchy(fs: FakeProcFS, tmp_path: Path) -> None:
    v1 = tmp_path / "cg" / "memory"
    fs.mount_cgroups(v2=tmp_path / "cg" / "unified", v1_memory=v1)
    fs.set_cgroup_memory(v1, "/docker/abc", 4096, v1=True)
    fs.set_cgroup_memory(v1, "/user.slice/user-1000.slice", 8192, v1=True)
    hybrid = "9:name=systemd:/system.slice/docker-abc.scope\n4:memory,cpu:/docker/abc\n0::/\n"
    fs.add(FakeProcess(100, "bash", ["-bash"], uid=1000, start_ticks=5000, cgroup=hybrid))
    v1_only = "12:pids:/user.slice\n4:memory:/user.slice/user-1000.slice\n1:name=systemd:/x\n"
    fs.add(FakeProcess(103, "mysql", ["mysql"], ppid=100, start_ticks=6000, cgroup=v1_only))
    sample = make(fs).sample()
    r = rows(sample)
    assert r[100]["cgroup"] == "/docker/abc" and r[103]["cgroup"] == "/user.slice/user-1000.slice"
    assert sample.cgroup_mem == {"/docker/abc": 4096, "/user.slice/user-1000.slice": 8192}


def test_cgroup_without_mounts_keeps_the_v2_path_and_reads_nothing(fs: FakeProcFS) -> None:
    fs.add(FakeProcess(100, "bash", ["-bash"], start_ticks=5000, cgroup="4:memory:/docker/abc\n0::/x.slice\n"))
    sample = make(fs).sample()
    assert rows(sample)[100]["cgroup"] == "/x.slice" and sample.cgroup_mem == {}


def test_cgroup_memory_permission_denied_and_cadence(fs: FakeProcFS, tmp_path: Path) -> None:
    v2 = tmp_path / "cg2"
    fs.mount_cgroups(v2=v2)
    denied = fs.set_cgroup_memory(v2, "/system.slice/proc.service", 1000)
    fs.set_cgroup_memory(v2, "/user.slice", 2000)
    fs.add(FakeProcess(100, "bash", ["-bash"], start_ticks=5000, cgroup="0::/user.slice\n"))
    readers = FailingReaders()
    real = readers.read_whole

    def read_whole(path: str) -> bytes:
        if path == str(denied):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real(path)

    s = Sampler(proc_root=str(fs.root), clk_tck=100, host="h", read_small=readers.read_small, read_whole=read_whole,
                cgroup_mem_every=3)  # fmt: skip
    got = [s.sample() for _ in range(6)]
    assert [bool(g.cgroup_mem) for g in got] == [False, False, True, False, False, True]
    assert got[2].cgroup_mem == {"/user.slice": 2000} and got[2].stats["cgroups_failed"] == 1
    assert Sampler(proc_root=str(fs.root), clk_tck=100, cgroup_mem_every=0).sample().cgroup_mem == {}
    with pytest.raises(ValueError, match="cgroup_mem_every"):
        Sampler(proc_root=str(fs.root), cgroup_mem_every=-1)


def test_cgroup_memory_through_kept_open_descriptors(fs: FakeProcFS, tmp_path: Path) -> None:
    v2 = tmp_path / "cg2"
    fs.mount_cgroups(v2=v2)
    fs.set_cgroup_memory(v2, "/system.slice/proc.service", 10)
    s = Sampler(proc_root=str(fs.root), clk_tck=100, host="h")
    assert s.sample().cgroup_mem == {"/system.slice/proc.service": 10}
    fs.set_cgroup_memory(v2, "/system.slice/proc.service", 2_000_000)  # same file rewritten: pread sees new text
    assert s.sample().cgroup_mem == {"/system.slice/proc.service": 2_000_000}
    s.close()
    assert s.sample().cgroup_mem == {"/system.slice/proc.service": 2_000_000}
    s.close()


def test_cgroup_mem_real_proc_smoke() -> None:
    s = Sampler(smaps="off")
    sample = s.sample()
    s.close()
    assert all(isinstance(v, int) and v >= 0 for v in sample.cgroup_mem.values())
    assert set(sample.cgroup_mem) <= {c for c in sample.procs["cgroup"] if c is not None}


def test_cgroup_parsers_mountinfo_namespaces_and_deleted() -> None:
    from collector.procfs import CgroupMounts, parse_cgroup_mounts, parse_cgroup_paths, parse_memory_value

    info = (
        b"24 1 0:22 / /sys rw - sysfs sysfs rw\n"
        b"30 24 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
        b"35 24 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
        b"36 24 0:33 / /sys/fs/cgroup/my\\040mem rw - cgroup cgroup rw,memory\n"  # second memory mount ignored
    )
    mounts = parse_cgroup_mounts(info)
    assert mounts == CgroupMounts(("/sys/fs/cgroup/unified", "/"), ("/sys/fs/cgroup/memory", "/"))
    assert parse_cgroup_mounts(b"36 24 0:33 / /m\\040x rw - cgroup2 cgroup2 rw\n").unified == ("/m x", "/")
    assert parse_cgroup_mounts(b"garbage\n\n") == CgroupMounts(None, None)
    paths = parse_cgroup_paths(b"4:memory,cpu:/docker/abc\n0::/system.slice/docker-abc.scope (deleted)\n")
    assert paths == ("/system.slice/docker-abc.scope", "/docker/abc")
    assert parse_cgroup_paths(b"") == (None, None)
    assert mounts.memory_file(paths) == ("/docker/abc", "/sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes")
    v2_only = CgroupMounts(("/sys/fs/cgroup", "/"), None)
    assert v2_only.memory_file(paths) == (
        "/system.slice/docker-abc.scope",
        "/sys/fs/cgroup/system.slice/docker-abc.scope/memory.current",
    )
    assert v2_only.memory_file(parse_cgroup_paths(b"0::/\n")) == ("/", "/sys/fs/cgroup/memory.current")
    # a container whose cgroup2 mount is rooted at its own cgroup: paths below it map inside, others are not ours
    inner = CgroupMounts(("/sys/fs/cgroup", "/kubepods/pod1/c1"), None)
    assert (
        inner.memory_file(parse_cgroup_paths(b"0::/kubepods/pod1/c1/app\n"))[1] == "/sys/fs/cgroup/app/memory.current"
    )
    assert inner.memory_file(parse_cgroup_paths(b"0::/kubepods/pod2\n")) is None
    assert v2_only.memory_file(parse_cgroup_paths(b"0::/../../system.slice/x\n")) is None
    assert CgroupMounts(None, None).memory_file(paths) is None
    assert parse_memory_value(b"123456\n") == 123456 and parse_memory_value(b"") is None
    assert parse_memory_value(b"max\n") is None


def test_big_long_lived_process_is_not_starved_by_new_small_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Room for two smaps reads per sample, samples 5 s apart, values due every 10 s, a new small process every
    sample: the big one is still re-read every 10 s, and the small ones still get a turn."""
    clock = FakeClock(monkeypatch)
    fs = FakeProcFS(tmp_path / "proc")
    fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0, start_ticks=1, rss_pages=300))
    fs.add(FakeProcess(200, "postgres", ["postgres"], start_ticks=clock.ticks(), rss_pages=500_000))
    readers = FailingReaders()
    s = unlimited(make(fs, smaps="on", readers=readers, smaps_max_reads=2, smaps_every=10))
    for k in range(12):
        fs.add(FakeProcess(1000 + k, "job", ["job"], start_ticks=clock.ticks(), rss_pages=10))
        sample = s.sample()
        assert sample.ts.value - rows(sample)[200]["smaps_ts"] <= 10 * 10**9
        clock.advance(5.0)
    smaps_reads = _smaps_reads(readers)
    assert smaps_reads.count(200) >= 6, smaps_reads
    assert any(pid >= 1000 for pid in smaps_reads), smaps_reads  # small ones still get a turn


# ------------------------------------------------------------------------------------------------ precise RSS (statm)


def test_rss_comes_from_statm_not_stat(fs: FakeProcFS) -> None:
    """stat's rss field (an approximate per-CPU counter on current kernels) and statm disagree: statm is recorded,
    through the injected readers and through the kept-open descriptors alike, and a new statm value is seen."""
    fs.add(FakeProcess(100, "bash", ["-bash"], uid=1000, start_ticks=5000, rss_pages=1000, stat_rss_pages=960))
    readers = FailingReaders()
    injected, kept = make(fs, readers=readers), make(fs)
    assert rows(injected.sample())[100]["rss_bytes"] == rows(kept.sample())[100]["rss_bytes"] == 1000 * PAGE
    assert (100, "statm") in readers.reads
    fs.add(FakeProcess(100, "bash", ["-bash"], uid=1000, start_ticks=5000, rss_pages=1234, stat_rss_pages=1000))
    assert rows(kept.sample())[100]["rss_bytes"] == 1234 * PAGE  # same descriptor, new text
    kept.close()


def test_process_gone_between_stat_and_statm_is_skipped(fs: FakeProcFS) -> None:
    readers = FailingReaders()
    readers.before[(101, "statm")] = lambda: fs.remove(101)
    sample = make(fs, readers=readers).sample()
    assert 101 not in rows(sample) and sample.stats["vanished"] == 1


def test_live_rss_equals_statm_for_idle_processes() -> None:
    """Idle `sleep`s: the recorded RSS equals statm's resident pages x page size, read just before and just after
    the sample (stat's own rss field is usually some pages lower on a kernel with per-CPU RSS counters)."""
    import subprocess

    children = [subprocess.Popen(["sleep", "60"]) for _ in range(5)]
    s = Sampler(smaps="off")
    try:
        time_mod.sleep(0.3)  # let them reach their sleep
        s.sample()
        for _ in range(3):
            before = {c.pid: _statm_rss(c.pid) for c in children}
            r = rows(s.sample())
            after = {c.pid: _statm_rss(c.pid) for c in children}
            for c in children:
                assert before[c.pid] == after[c.pid], "an idle sleep changed its RSS"
                assert r[c.pid]["rss_bytes"] == after[c.pid], (c.pid, r[c.pid]["rss_bytes"], after[c.pid])
    finally:
        s.close()
        for c in children:
            c.kill()
            c.wait()


def _statm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as fh:
        return int(fh.read().split()[1]) * PAGE
