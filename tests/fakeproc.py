"""A fake procfs in a temp dir: btime, meminfo, boot_id and per-pid stat, statm, cmdline, status, cgroup, smaps_rollup.

stat's rss field and statm's resident field are both `rss_pages` unless `stat_rss_pages` sets stat's apart (on real
kernels stat's is an approximate per-CPU counter and statm's the precise value).

Tests run as root, so permission errors and races are simulated with the readers `FailingReaders` wraps.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from collector import sampler as sampler_mod
from collector.procfs import PF_KTHREAD

BTIME = 1_700_000_000
BOOT_ID = "0f6c3f9e-5b7a-4c7e-9d1e-2a3b4c5d6e7f"
MEMINFO_KB = {
    "MemTotal": 16_000_000,
    "MemFree": 8_000_000,
    "MemAvailable": 12_000_000,
    "Buffers": 100_000,
    "Cached": 2_000_000,
    "Active(anon)": 1_500_000,
    "SwapTotal": 0,
    "SwapFree": 0,
}
MEMINFO_COUNTS = {"HugePages_Total": 4, "HugePages_Free": 2}


def stat_line(
    pid: int,
    comm: str,
    state: str = "S",
    ppid: int = 1,
    flags: int = 0x400100,
    threads: int = 1,
    start_ticks: int = 1000,
    vsize: int = 10_000_000,
    rss_pages: int = 100,
    arg_start: int = 140_000_000_000_000,
) -> bytes:
    """A /proc/<pid>/stat line in the kernel's layout (52 fields) with the given values."""
    after = (
        [
            state,
            ppid,
            pid,  # pgrp
            pid,  # session
            0,  # tty_nr
            -1,  # tpgid
            flags,
            10,  # minflt
            0,
            0,  # majflt
            0,
            1,  # utime
            1,  # stime
            0,
            0,
            20,  # priority
            0,  # nice
            threads,
            0,  # itrealvalue
            start_ticks,
            vsize,
            rss_pages,
            18446744073709551615,  # rsslim
        ]
        + [0] * 22
        + [arg_start, arg_start + 64, arg_start + 64, arg_start + 128, 0]
    )
    assert len(after) == 50
    return f"{pid} ({comm}) ".encode() + " ".join(str(v) for v in after).encode() + b"\n"


@dataclass
class FakeProcess:
    """What one fake process looks like; smaps_kb = None writes an empty smaps_rollup (kernel threads, zombies)."""

    pid: int
    comm: str = "proc"
    cmdline: list[str] = field(default_factory=lambda: ["/usr/bin/proc", "--flag"])
    state: str = "S"
    ppid: int = 1
    uid: int = 0
    start_ticks: int = 1000
    vsize: int = 10_000_000
    rss_pages: int = 100
    stat_rss_pages: int | None = None  # stat's own (approximate) rss field; None: the same as rss_pages
    threads: int = 1
    kthread: bool = False
    arg_start: int = 140_000_000_000_000  # argv address: a new value means the process exec'd
    cgroup: str = "0::/system.slice/proc.service\n"
    smaps_kb: dict[str, int] | None = field(
        default_factory=lambda: {"Pss": 300, "Private_Clean": 40, "Private_Dirty": 160, "Swap": 8}
    )


class FakeProcFS:
    """Builds and edits a fake procfs under `root`."""

    def __init__(self, root: Path, btime: int = BTIME, boot_id: str = BOOT_ID) -> None:
        """Create root with /stat, /meminfo and sys/kernel/random/boot_id."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "stat").write_text(f"cpu  1 2 3 4\nbtime {btime}\nprocesses 99\n")
        self.set_meminfo(MEMINFO_KB)
        rnd = self.root / "sys" / "kernel" / "random"
        rnd.mkdir(parents=True, exist_ok=True)
        (rnd / "boot_id").write_text(boot_id + "\n")
        (self.root / "self").mkdir(exist_ok=True)  # non-numeric entries are ignored

    def set_meminfo(self, kb: dict[str, int], counts: dict[str, int] | None = None) -> None:
        """Write /proc/meminfo with `kb` fields (in kB) and HugePages counts."""
        lines = [f"{k}:{v:>12} kB" for k, v in kb.items()]
        lines += [f"{k}:{v:>8}" for k, v in (MEMINFO_COUNTS if counts is None else counts).items()]
        (self.root / "meminfo").write_text("\n".join(lines) + "\n")

    def add(self, proc: FakeProcess) -> FakeProcess:
        """Create (or overwrite) /proc/<pid>/ for `proc`."""
        d = self.root / str(proc.pid)
        d.mkdir(exist_ok=True)
        flags = 0x400100 | (PF_KTHREAD if proc.kthread else 0)
        (d / "stat").write_bytes(
            stat_line(
                proc.pid,
                proc.comm,
                proc.state,
                proc.ppid,
                flags,
                proc.threads,
                proc.start_ticks,
                proc.vsize,
                proc.rss_pages if proc.stat_rss_pages is None else proc.stat_rss_pages,
                0 if proc.kthread else proc.arg_start,
            )
        )
        size_pages = proc.vsize // 4096
        (d / "statm").write_text(f"{size_pages} {proc.rss_pages} {min(proc.rss_pages, 50)} 10 0 {size_pages // 2} 0\n")
        argv = b"" if proc.kthread or proc.state == "Z" else b"\0".join(a.encode() for a in proc.cmdline) + b"\0"
        (d / "cmdline").write_bytes(argv)
        (d / "status").write_text(
            f"Name:\t{proc.comm}\nState:\t{proc.state}\nPid:\t{proc.pid}\nPPid:\t{proc.ppid}\n"
            f"Uid:\t{proc.uid}\t{proc.uid}\t{proc.uid}\t{proc.uid}\nGid:\t0\t0\t0\t0\n"
        )
        (d / "cgroup").write_text(proc.cgroup)
        if proc.smaps_kb is None or proc.kthread or proc.state == "Z":
            (d / "smaps_rollup").write_bytes(b"")
        else:
            body = "00400000-7fff00000000 ---p 00000000 00:00 0 [rollup]\n"
            body += "".join(f"{k}:{v:>12} kB\n" for k, v in {"Rss": proc.rss_pages * 4, **proc.smaps_kb}.items())
            (d / "smaps_rollup").write_text(body)
        return proc

    def mount_cgroups(self, v2: Path | None = None, v1_memory: Path | None = None, v2_root: str = "/") -> None:
        """Write /proc/self/mountinfo naming a cgroup2 mount at `v2` and/or a v1 memory mount at `v1_memory`."""
        lines = ["22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw"]
        if v2 is not None:
            lines.append(f"30 22 0:26 {v2_root} {v2} rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate")
        if v1_memory is not None:
            lines.append(f"35 22 0:32 / {v1_memory} rw,relatime - cgroup cgroup rw,memory")
            lines.append(f"36 22 0:33 / {v1_memory.parent / 'cpu'} rw,relatime - cgroup cgroup rw,cpu,cpuacct")
        (self.root / "self" / "mountinfo").write_text("\n".join(lines) + "\n")

    @staticmethod
    def set_cgroup_memory(mount: Path, path: str, value: int | None, v1: bool = False) -> Path:
        """Create cgroup `path` under `mount` with memory.current (v2) or memory.usage_in_bytes (v1); None: no file."""
        d = mount / path.strip("/") if path.strip("/") else mount
        d.mkdir(parents=True, exist_ok=True)
        f = d / ("memory.usage_in_bytes" if v1 else "memory.current")
        if value is None:
            f.unlink(missing_ok=True)
        else:
            f.write_text(f"{value}\n")
        return f

    def remove(self, pid: int) -> None:
        """The process exits: its directory disappears."""
        shutil.rmtree(self.root / str(pid), ignore_errors=True)


class FailingReaders:
    """Readers for Sampler(read_small=..., read_whole=...) that raise `errors[(pid, file)]` and count reads.

    `before[(pid, file)]` is called just before that file is read (e.g. to delete the pid's directory).
    """

    def __init__(self) -> None:
        """No failures until `errors` / `before` are filled."""
        self.errors: dict[tuple[int, str], OSError] = {}
        self.before: dict[tuple[int, str], Callable[[], None]] = {}
        self.reads: list[tuple[int, str]] = []

    def _check(self, path: str) -> None:
        parts = path.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2].isdigit():
            key = (int(parts[-2]), parts[-1])
            self.reads.append(key)
            hook = self.before.get(key)
            if hook is not None:
                hook()
            err = self.errors.get(key)
            if err is not None:
                raise err

    def read_small(self, path: str) -> bytes:
        """Like collector.sampler.read_small, with injected failures."""
        self._check(path)
        return sampler_mod.read_small(path)

    def read_whole(self, path: str) -> bytes:
        """Like collector.sampler.read_whole, with injected failures."""
        self._check(path)
        return sampler_mod.read_whole(path)
