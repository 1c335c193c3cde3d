"""Linux sampler: one pass over /proc per sample, filling column lists for store.SegmentWriter.

Per process and sample only /proc/<pid>/stat is read, through a descriptor kept open between samples (one pread
instead of open + read + close: about half the cost of the floor). The command line, real uid (status) and cgroup
are read for a (pid, start time) not seen before and again when the process exec'd (comm or stat's arg_end
changed); the command line is also re-read once every REFRESH_EVERY samples per process (staggered by pid) to catch
in-place rewrites (setproctitle without a comm change). smaps_rollup (PSS/USS/swap) is read within a time budget
per sample, stalest first.

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
    parse_status_uid,
    split_stat,
    start_time_ns,
)
from memlib.scrub import scrub_argv
from store.schema import SAMPLE_COLUMNS as SAMPLE_PROC_COLUMNS

REFRESH_EVERY = 60  # samples between two re-reads of a process's command line (exec is seen at once: arg_end)
# smaps_rollup time as a fraction of the time spent reading stat (a running credit, see _read_smaps). 0.5 measured
# 2.4-2.5x the stat-only cost for the whole collector with --smaps auto here; 0.25 keeps it near the 2x target.
SMAPS_BUDGET = 0.25
SMAPS_MODES = ("auto", "on", "off")
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
 _CGFILE) = range(14)  # fmt: skip


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
    ) -> None:
        """Reads btime, boot id and the cgroup mounts once; `cgroup_mem_every` = k reads cgroup memory every k-th
        sample (0: never). Readers are injectable for tests (they raise OSError like os.open); without
        `read_small`, stat files are read through descriptors kept open between samples (one pread per process)."""
        if smaps not in SMAPS_MODES:
            raise ValueError(f"smaps must be one of {', '.join(SMAPS_MODES)}, not {smaps!r}")
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
        self._smaps_credit = 0.0  # seconds of smaps reading still allowed (negative: overspent earlier)
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._fds: dict[str, int] = {}  # pid dir name -> open fd of its stat file
        self._fd_budget = _fd_budget() if read_small is None else 0

    # ------------------------------------------------------------------------------------------------ stat files

    def _stat_injected(self, name: str) -> bytes:
        assert self._read_small is not None
        return self._read_small(f"{self.proc_root}/{name}/stat")

    def _stat_cached(self, name: str) -> bytes:
        """stat of pid dir `name` via a kept-open descriptor (pread at 0 re-renders it; 1 syscall instead of 3)."""
        fd = self._fds.get(name)
        if fd is not None:
            try:
                return os.pread(fd, 4096, 0)
            except OSError:  # that task is gone (ESRCH); the pid may belong to a new process now: reopen
                del self._fds[name]
                os.close(fd)
        fd = os.open(f"{self.proc_root}/{name}/stat", os.O_RDONLY)
        try:
            data = os.pread(fd, 4096, 0)
        except BaseException:
            os.close(fd)
            raise
        if len(self._fds) < self._fd_budget:
            self._fds[name] = fd
        else:
            os.close(fd)
        return data

    def close(self) -> None:
        """Close the kept-open stat and cgroup descriptors (the sampler stays usable: they are reopened on demand)."""
        fds, self._fds = self._fds, {}
        cg_fds, self._cg_fds = self._cg_fds, {}
        for fd in [*fds.values(), *cg_fds.values()]:
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
            entry = [comm, uid, self._user(uid), cmdline, cgroup, None, None, None, None, 0, False, 0, b"", cgfile]
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
                pid, comm, state, ppid, flags, threads, start_ticks, vsize, rss_pages, argv_at = split_stat(read(name))
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
                os.close(self._fds.pop(name))
        t_stat = time.perf_counter() - t0

        smaps_read = smaps_failed = 0
        t1 = time.perf_counter()
        if self.smaps != "off":
            smaps_read, smaps_failed = self._read_smaps(pid_l, state_l, rss_l, entries, t_stat * SMAPS_BUDGET)
        t_smaps = time.perf_counter() - t1

        try:
            meminfo = parse_meminfo(self._read_whole(f"{root}/meminfo"))
        except OSError:
            meminfo = {}

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
            "smaps_read": smaps_read,
            "smaps_failed": smaps_failed,
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

    def _read_smaps(
        self, pids: list[int], states: list[str], rss: list[int], entries: list[list], budget_s: float
    ) -> tuple[int, int]:
        """Read smaps_rollup, largest (RSS + 1 MiB) x staleness first, while the running credit
        lasts: each sample adds `budget_s` (capped at one sample's worth) and every read spends its duration, so one
        slow read (a few ms for a big process) is paid back over the next samples. Returns (read, failed)."""
        self._smaps_credit = min(self._smaps_credit + budget_s, budget_s)
        if self._smaps_credit <= 0:
            return 0, 0
        own_only = self.smaps == "auto" and self._euid != 0
        order = [
            i
            for i, e in enumerate(entries)
            if not e[_KTHREAD] and states[i] != "Z" and (not own_only or e[_UID] == self._euid)
        ]
        # biggest memory x staleness first: a new process counts as stale since it started (at most 10 min), so big
        # long-lived processes are not starved by a stream of small short-lived ones, and small ones still get a turn
        now = time.time_ns()
        floor = now - 600 * 10**9

        def priority(i: int) -> float:
            e = entries[i]
            last = e[_SMAPS_TRY] or max(e[_START_NS], floor)
            return -(rss[i] + (1 << 20)) * float(now - last)

        order.sort(key=priority)
        if self.smaps_max_reads is not None:
            order = order[: self.smaps_max_reads]
        read_ok = failed = 0
        for i in order:
            entry = entries[i]
            start = time.perf_counter()
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
                read_ok += 1
            self._smaps_credit -= time.perf_counter() - start
            if self._smaps_credit <= 0:
                break
        return read_ok, failed
