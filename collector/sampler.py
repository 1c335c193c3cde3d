"""Linux sampler: one pass over /proc per sample, filling column lists for store.SegmentWriter.

Per process and sample /proc/<pid>/stat and /proc/<pid>/statm are read, through descriptors kept open between
samples (one pread each instead of open + read + close). RSS is statm's resident pages (precise: what ps, top and
status VmRSS show), not stat's approximate per-CPU counter. The command line, real uid (status) and cgroup are read
for a (pid, start time) not seen before and again when the process exec'd (comm or stat's arg_end changed); the
command line is also re-read once every REFRESH_EVERY samples per process (staggered by pid) to catch in-place
rewrites (setproctitle without a comm change).

smaps_rollup (PSS/USS/swap), when smaps is on: every process alive `smaps_every` seconds or more should have values
no older than that, within `smaps_cpu` (a share of one core, thread CPU time, as a token bucket holding at most
SMAPS_BURST of one period's budget, and at least one interval's; one slow read may overdraw it and is paid back
later). Each sample reads, while the bucket lasts: first the due processes (never read, or whose values would pass
that age before the next sample; an unreadable one is retried once per period), biggest (RSS + 1 MiB) x stalest
first; then, with what is left, those whose RSS moved by more than 1/8 (and 1 MiB) since their last read.
The coverage goes into the sample's meminfo dict as system fields (SMAPS_SYSTEM_FIELDS, absent when smaps is off):
``smaps_every_ms`` (the promised age, ms), ``smaps_eligible`` (processes alive >= that age whose smaps_rollup is
read: no kernel threads or zombies, own uid only with "auto" as non-root), ``smaps_stale`` (of those, how many lack
values read within that age), ``smaps_unreadable`` (of the stale ones, how many failed their last read, e.g. PID 1
denied in a container; stale - unreadable is the budget's shortfall) and ``smaps_cpu_us`` (thread CPU time spent on
smaps in this sample, µs).

cgroups: the recorded path is the one of the hierarchy that accounts memory (v1 memory controller when it is
mounted there, hybrid systems included; else the v2 unified path; mounts from /proc/self/mountinfo, read once).
Every `cgroup_mem_every`-th sample, each distinct cgroup holding a sampled process gets one read of its
memory.current (v2) / memory.usage_in_bytes (v1), through descriptors kept open like the stat ones
(`Sample.cgroup_mem`: path -> bytes; unreadable cgroups, e.g. permission denied or the v2 root, are left out).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from collector.procfs import (
    PF_KTHREAD,
    CgroupMounts,
    format_cmdline,
    parse_btime,
    parse_cgroup_mounts,
    parse_cgroup_paths,
    parse_cmdline,
    parse_meminfo,
    parse_memory_value,
    parse_smaps_rollup,
    parse_statm_resident,
    parse_status_uid,
    split_stat,
    start_time_ns,
)
from memlib.scrub import scrub_argv
from store.schema import SAMPLE_COLUMNS as SAMPLE_PROC_COLUMNS

REFRESH_EVERY = 60  # samples between two re-reads of a process's command line (exec is seen at once: arg_end)
SMAPS_MODES = ("auto", "on", "off")
SMAPS_EVERY_S = 60.0  # default: every process alive this long has smaps values no older than this
SMAPS_CPU = 0.02  # default smaps budget: share of one core
SMAPS_BURST = 0.1  # token bucket size, as a fraction of one period's budget (smaps_cpu x smaps_every)
SMAPS_SYSTEM_FIELDS = ("smaps_every_ms", "smaps_eligible", "smaps_stale", "smaps_unreadable", "smaps_cpu_us")
_MIB = 1 << 20
_GONE = (errno.ENOENT, errno.ESRCH)

Reader = Callable[[str], bytes]


def read_small(path: str) -> bytes:
    """Bytes of a small /proc file (one read of up to 4 KiB: enough for stat)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def read_whole(path: str) -> bytes:
    """All bytes of a /proc file, read until EOF."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _fd_budget(reserve: int = 256, want: int = 65536) -> int:
    """How many stat descriptors may stay open: raises the soft RLIMIT_NOFILE towards the hard one, keeps a reserve."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(hard, want)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    limit = want if soft == resource.RLIM_INFINITY else soft
    return max(0, min(limit, want) - reserve)


@dataclass
class Sample:
    """One sample: ts (UTC), procs (SAMPLE_PROC_COLUMNS -> list; times as int ns since epoch), meminfo, stats."""

    ts: pd.Timestamp
    procs: dict[str, list]
    meminfo: dict[str, int]
    stats: dict[str, float] = field(default_factory=dict)
    cgroup_mem: dict[str, int] = field(default_factory=dict)  # cgroup path -> memory.current / usage_in_bytes


# per-identity cache entry (a list, mutated in place): indexes
(_COMM, _UID, _USER, _CMD, _CGROUP, _PSS, _USS, _SWAP, _SMAPS_TS, _START_NS, _KTHREAD, _SMAPS_TRY, _ARGV_AT,
 _CGFILE, _SMAPS_RSS) = range(15)  # fmt: skip


class Sampler:
    """Samples every process under `proc_root`; `smaps` is "auto" (all when root, own uid otherwise), "on" or "off"."""

    def __init__(
        self,
        proc_root: str = "/proc",
        smaps: str = "off",
        read_small: Reader | None = None,
        read_whole: Reader = read_whole,
        clk_tck: int | None = None,
        host: str | None = None,
        smaps_max_reads: int | None = None,
        cgroup_mem_every: int = 1,
        smaps_every: float = SMAPS_EVERY_S,
        smaps_cpu: float = SMAPS_CPU,
    ) -> None:
        """Reads btime, boot id and the cgroup mounts once; `cgroup_mem_every` = k reads cgroup memory every k-th
        sample (0: never); `smaps_every` (s) and `smaps_cpu` (share of one core) set the smaps coverage target and
        budget. Readers are injectable for tests (they raise OSError like os.open); without `read_small`, stat and
        statm are read through descriptors kept open between samples (one pread each per process)."""
        if smaps not in SMAPS_MODES:
            raise ValueError(f"smaps must be one of {', '.join(SMAPS_MODES)}, not {smaps!r}")
        if not smaps_every > 0 or not smaps_cpu > 0:
            raise ValueError(f"smaps_every and smaps_cpu must be > 0, not {smaps_every!r} and {smaps_cpu!r}")
        self.proc_root = proc_root.rstrip("/") or "/"
        self.smaps = smaps
        self._read_small = read_small
        self._read_whole = read_whole
        self.clk_tck = clk_tck or os.sysconf("SC_CLK_TCK")
        self.btime = parse_btime(read_whole(f"{self.proc_root}/stat"))
        try:
            self.boot_id = read_whole(f"{self.proc_root}/sys/kernel/random/boot_id").decode().strip()
        except OSError:
            self.boot_id = ""
        self.host = host if host is not None else socket.gethostname()
        if cgroup_mem_every < 0:
            raise ValueError(f"cgroup_mem_every must be >= 0, not {cgroup_mem_every}")
        self.cgroup_mem_every = cgroup_mem_every
        try:
            self.cgroup_mounts = parse_cgroup_mounts(read_whole(f"{self.proc_root}/self/mountinfo"))
        except OSError:
            self.cgroup_mounts = CgroupMounts(None, None)
        self._cg_fds: dict[str, int] = {}  # memory file path -> open fd
        self._cache: dict[tuple[int, int], list] = {}
        self._users: dict[int, str] = {}
        self._count = 0
        self._euid = os.geteuid()
        self.smaps_max_reads = smaps_max_reads  # optional cap on smaps_rollup reads per sample
        self.smaps_every = float(smaps_every)
        self.smaps_cpu = float(smaps_cpu)
        self.smaps_burst_s = self.smaps_cpu * self.smaps_every * SMAPS_BURST  # token bucket size (CPU seconds)
        self._smaps_credit = self.smaps_burst_s  # CPU seconds of smaps reading allowed now (negative: overspent)
        self._smaps_last: float | None = None  # monotonic time of the previous smaps pass
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._fds: dict[str, tuple[int, int]] = {}  # pid dir name -> open fds of its stat and statm files
        self._fd_budget = _fd_budget() // 2 if read_small is None else 0  # two descriptors per process

    # ------------------------------------------------------------------------------------------------ stat files

    def _stat_injected(self, name: str) -> tuple[bytes, bytes]:
        assert self._read_small is not None
        base = f"{self.proc_root}/{name}/"
        return self._read_small(base + "stat"), self._read_small(base + "statm")

    def _stat_cached(self, name: str) -> tuple[bytes, bytes]:
        """(stat, statm) of pid dir `name` via kept-open descriptors (pread at 0 re-renders a file: 1 syscall
        instead of 3 each)."""
        fds = self._fds.get(name)
        if fds is not None:
            try:
                return os.pread(fds[0], 4096, 0), os.pread(fds[1], 256, 0)
            except OSError:  # that task is gone (ESRCH); the pid may belong to a new process now: reopen
                del self._fds[name]
                os.close(fds[0])
                os.close(fds[1])
        base = f"{self.proc_root}/{name}/"
        fd = os.open(base + "stat", os.O_RDONLY)
        try:
            fdm = os.open(base + "statm", os.O_RDONLY)
        except BaseException:
            os.close(fd)
            raise
        try:
            data = os.pread(fd, 4096, 0), os.pread(fdm, 256, 0)
        except BaseException:
            os.close(fd)
            os.close(fdm)
            raise
        if len(self._fds) < self._fd_budget:
            self._fds[name] = (fd, fdm)
        else:
            os.close(fd)
            os.close(fdm)
        return data

    def close(self) -> None:
        """Close the kept-open stat, statm and cgroup descriptors (the sampler stays usable: reopened on demand)."""
        fds, self._fds = self._fds, {}
        cg_fds, self._cg_fds = self._cg_fds, {}
        for fd in [*(fd for pair in fds.values() for fd in pair), *cg_fds.values()]:
            os.close(fd)

    def __del__(self) -> None:
        """Descriptors are closed when the sampler goes away."""
        with contextlib.suppress(Exception):
            self.close()

    # ------------------------------------------------------------------------------------------------ identity

    def _user(self, uid: int | None) -> str | None:
        if uid is None:
            return None
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
        return name

    def _identify(self, pid: str, comm: str, flags: int, entry: list | None) -> list | None:
        """Read cmdline, uid and cgroup of one process into a (new or given) cache entry; None if it vanished.

        For a known process (`entry` given, same comm) only the command line is re-read; uid and cgroup are re-read
        when it changed (a re-exec)."""
        base = f"{self.proc_root}/{pid}/"
        try:
            argv = parse_cmdline(self._read_whole(base + "cmdline"))
            cmdline: str | None = format_cmdline(scrub_argv(argv), comm)
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            cmdline = None
        if entry is not None and entry[_COMM] == comm and entry[_CMD] == cmdline:
            return entry
        try:
            uid = parse_status_uid(self._read_whole(base + "status"))
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            uid = None
        try:
            paths = parse_cgroup_paths(self._read_whole(base + "cgroup"))
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            paths = None
        cgroup = cgfile = None
        if paths is not None:
            where = self.cgroup_mounts.memory_file(paths)
            if where is not None:
                cgroup, cgfile = where
            else:  # mounts unknown or outside our namespace: the v2 path, else the v1 memory one
                cgroup = paths.unified if paths.unified is not None else paths.memory_v1
        if entry is None:
            entry = [comm, uid, self._user(uid), cmdline, cgroup, None, None, None, None, 0, False, 0, b"", cgfile, 0]
        else:
            entry[_CGFILE] = cgfile
            entry[_COMM], entry[_UID], entry[_USER], entry[_CMD], entry[_CGROUP] = (
                comm,
                uid,
                self._user(uid),
                cmdline,
                cgroup,
            )
        entry[_KTHREAD] = bool(flags & PF_KTHREAD)
        return entry

    # ------------------------------------------------------------------------------------------------ sample

    def sample(self) -> Sample:
        """Read every process once -> Sample (rows in /proc listing order)."""
        t0 = time.perf_counter()
        ts = pd.Timestamp(time.time_ns(), unit="ns", tz="UTC")
        root = self.proc_root
        read = self._stat_cached if self._read_small is None else self._stat_injected
        old = self._cache
        cache: dict[tuple[int, int], list] = {}
        self._count += 1
        phase = self._count % REFRESH_EVERY
        page = self._page

        pid_l: list[int] = []
        ppid_l: list[int] = []
        state_l: list[str] = []
        threads_l: list[int] = []
        vsz_l: list[int] = []
        rss_l: list[int] = []
        entries: list[list] = []
        vanished = new = refreshed = 0

        listed = os.listdir(root)
        for name in listed:
            if not name.isdigit():
                continue
            try:
                stat, statm = read(name)
                pid, comm, state, ppid, flags, threads, start_ticks, vsize, _, argv_at = split_stat(stat)
                rss_pages = parse_statm_resident(statm)
            except (OSError, ValueError):
                vanished += 1
                continue
            key = (pid, start_ticks)
            entry = old.get(key)
            if entry is None:
                entry = self._identify(name, comm, flags, None)
                if entry is None:
                    vanished += 1
                    continue
                entry[_START_NS] = start_time_ns(self.btime, start_ticks, self.clk_tck)
                entry[_ARGV_AT] = argv_at
                new += 1
            elif entry[_COMM] != comm or entry[_ARGV_AT] != argv_at or pid % REFRESH_EVERY == phase:
                entry[_ARGV_AT] = argv_at
                if self._identify(name, comm, flags, entry) is not None:
                    refreshed += 1
            cache[key] = entry
            pid_l.append(pid)
            ppid_l.append(ppid)
            state_l.append(state)
            threads_l.append(threads)
            vsz_l.append(vsize)
            rss_l.append(rss_pages * page)
            entries.append(entry)
        self._cache = cache
        if self._fds:
            for name in self._fds.keys() - set(listed):  # exited since the last sample
                for fd in self._fds.pop(name):
                    os.close(fd)
        t_stat = time.perf_counter() - t0

        smaps: dict[str, int] = {}
        t1 = time.perf_counter()
        if self.smaps != "off":
            smaps = self._read_smaps(pid_l, state_l, rss_l, entries)
        t_smaps = time.perf_counter() - t1

        try:
            meminfo = parse_meminfo(self._read_whole(f"{root}/meminfo"))
        except OSError:
            meminfo = {}
        for key in SMAPS_SYSTEM_FIELDS:
            if key in smaps:
                meminfo[key] = smaps[key]

        t2 = time.perf_counter()
        cgroup_mem: dict[str, int] = {}
        cg_failed = 0
        if self.cgroup_mem_every and self._count % self.cgroup_mem_every == 0:
            cgroup_mem, cg_failed = self._read_cgroup_mem(entries)
        t_cg = time.perf_counter() - t2

        procs = {
            "pid": pid_l,
            "ppid": ppid_l,
            "start_time": [e[_START_NS] for e in entries],
            "uid": [e[_UID] for e in entries],
            "user": [e[_USER] for e in entries],
            "state": state_l,
            "name": [e[_COMM] for e in entries],
            "cmdline": [e[_CMD] for e in entries],
            "rss_bytes": rss_l,
            "vsz_bytes": vsz_l,
            "threads": threads_l,
            "cgroup": [e[_CGROUP] for e in entries],
            "pss_bytes": [e[_PSS] for e in entries],
            "uss_bytes": [e[_USS] for e in entries],
            "swap_bytes": [e[_SWAP] for e in entries],
            "smaps_ts": [e[_SMAPS_TS] for e in entries],
        }
        assert list(procs) == SAMPLE_PROC_COLUMNS
        stats = {
            "processes": len(pid_l),
            "vanished": vanished,
            "new": new,
            "refreshed": refreshed,
            "smaps_read": smaps.get("read", 0),
            "smaps_failed": smaps.get("failed", 0),
            "smaps_eligible": smaps.get("smaps_eligible", 0),
            "smaps_stale": smaps.get("smaps_stale", 0),
            "stat_s": t_stat,
            "smaps_s": t_smaps,
            "cgroups_read": len(cgroup_mem),
            "cgroups_failed": cg_failed,
            "cgroup_s": t_cg,
            "elapsed_s": time.perf_counter() - t0,
        }
        return Sample(ts, procs, meminfo, stats, cgroup_mem)

    def _read_cgroup_mem(self, entries: list[list]) -> tuple[dict[str, int], int]:
        """One read per distinct cgroup of the sampled processes -> ({path: bytes}, failed reads)."""
        files = {e[_CGFILE]: e[_CGROUP] for e in entries if e[_CGFILE] is not None}
        out: dict[str, int] = {}
        failed = 0
        for path, cgroup in files.items():
            try:
                data = self._cg_read(path)
            except OSError:  # permission denied, cgroup removed, no memory file (v2 root)
                failed += 1
                continue
            value = parse_memory_value(data)
            if value is None:
                failed += 1
            else:
                out[cgroup] = value
        for path in self._cg_fds.keys() - files.keys():  # cgroups no longer holding a sampled process
            os.close(self._cg_fds.pop(path))
        return out, failed

    def _cg_read(self, path: str) -> bytes:
        """A cgroup memory file's bytes: injected reader in tests, else a kept-open descriptor (pread at 0)."""
        if self._read_small is not None:
            return self._read_whole(path)
        fd = self._cg_fds.get(path)
        if fd is not None:
            try:
                return os.pread(fd, 64, 0)
            except OSError:
                del self._cg_fds[path]
                os.close(fd)
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.pread(fd, 64, 0)
        except BaseException:
            os.close(fd)
            raise
        if len(self._cg_fds) < 4096:
            self._cg_fds[path] = fd
        else:
            os.close(fd)
        return data

    def _read_smaps(self, pids: list[int], states: list[str], rss: list[int], entries: list[list]) -> dict[str, int]:
        """Read smaps_rollup of due (then moved) processes while the CPU budget lasts (see the module docstring).

        Returns {"read", "failed"} counts and the SMAPS_SYSTEM_FIELDS values of this sample."""
        cpu0 = time.thread_time()
        mono = time.monotonic()
        gap = 0.0 if self._smaps_last is None else max(0.0, mono - self._smaps_last)
        self._smaps_last = mono
        earned = self.smaps_cpu * gap  # the bucket holds at least one interval's worth, however short the period
        self._smaps_credit = min(self._smaps_credit + earned, max(self.smaps_burst_s, earned))
        now = time.time_ns()
        every_ns = int(self.smaps_every * 1e9)
        old = now - every_ns  # values read before this are too old; processes started before it are promised values
        horizon = old + int(gap * 1e9)  # tried before this: too old by the next sample, so due now
        never = now - 2 * every_ns  # staleness of a never-read process counts from its start, at most 2 periods
        own_only = self.smaps == "auto" and self._euid != 0
        euid = self._euid
        ref = now + 10**9  # staleness counts one second more, so that processes started just now still go by size
        due: list[tuple[float, int]] = []
        moved: list[tuple[float, int]] = []
        for i, e in enumerate(entries):
            if e[_KTHREAD] or states[i] == "Z" or (own_only and e[_UID] != euid):
                continue
            tried = e[_SMAPS_TRY]
            if not tried:
                due.append((-(rss[i] + _MIB) * float(ref - max(e[_START_NS], never)), i))
            elif tried < horizon:
                due.append((-(rss[i] + _MIB) * float(ref - tried), i))
            elif e[_SMAPS_TS] == tried and abs(rss[i] - e[_SMAPS_RSS]) > max(e[_SMAPS_RSS] >> 3, _MIB):
                moved.append((-(rss[i] + _MIB) * float(ref - tried), i))
        due.sort()
        moved.sort()
        order = [i for _, i in due] + [i for _, i in moved]
        if self.smaps_max_reads is not None:
            order = order[: self.smaps_max_reads]
        read_ok = failed = 0
        credit = self._smaps_credit
        for i in order:
            if credit - (time.thread_time() - cpu0) <= 0:
                break
            entry = entries[i]
            now_ns = time.time_ns()
            entry[_SMAPS_TRY] = now_ns
            try:
                parsed = parse_smaps_rollup(self._read_whole(f"{self.proc_root}/{pids[i]}/smaps_rollup"))
            except (OSError, ValueError):
                parsed = None
            if parsed is None:
                failed += 1
            else:
                entry[_PSS], entry[_USS], entry[_SWAP] = parsed
                entry[_SMAPS_TS] = now_ns
                entry[_SMAPS_RSS] = rss[i]
                read_ok += 1
        eligible = stale = unreadable = 0
        for i, e in enumerate(entries):
            if e[_START_NS] > old or e[_KTHREAD] or states[i] == "Z" or (own_only and e[_UID] != euid):
                continue
            eligible += 1
            if e[_SMAPS_TS] is None or e[_SMAPS_TS] < old:
                stale += 1
                unreadable += e[_SMAPS_TRY] != 0 and e[_SMAPS_TRY] != e[_SMAPS_TS]
        spent = time.thread_time() - cpu0
        self._smaps_credit = credit - spent
        return {
            "read": read_ok,
            "failed": failed,
            "smaps_every_ms": round(self.smaps_every * 1000),
            "smaps_eligible": eligible,
            "smaps_stale": stale,
            "smaps_unreadable": unreadable,
            "smaps_cpu_us": round(spent * 1e6),
        }
