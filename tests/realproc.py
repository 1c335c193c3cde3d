"""Helpers for tests on real processes: an independent read of /proc (not the collector's code), the memlib CLI's
JSON output, and a process tree with known shared and private memory (tests/sharedmem_tree.py).

The /proc readers here are deliberately written apart from collector/ (plain open().read()), so a test comparing
them with what the collector recorded checks the collector, not itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.proctree import Held

ROOT = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def statm_rss(pid: int) -> int:
    """RSS of `pid` in bytes: /proc/<pid>/statm resident pages x page size (what ps and top show)."""
    with open(f"/proc/{pid}/statm", "rb") as fh:
        return int(fh.read().split()[1]) * PAGE


def stat_fields(pid: int) -> tuple[int, int]:
    """(ppid, start ticks since boot) of `pid` from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        data = fh.read()
    rest = data[data.rindex(b")") + 2 :].split()
    return int(rest[1]), int(rest[19])


def boot_time_s() -> int:
    """btime from /proc/stat (seconds since the epoch)."""
    with open("/proc/stat") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("btime "))


def start_time_ns(start_ticks: int, btime: int) -> int:
    """Start ticks + boot time -> process start in ns since the epoch (exact integer math)."""
    return (btime * CLK_TCK + start_ticks) * 1_000_000_000 // CLK_TCK


def smaps_rollup(pid: int) -> dict[str, int]:
    """/proc/<pid>/smaps_rollup -> {"rss", "pss", "uss", "swap"} in bytes."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Private_Clean", "Private_Dirty", "Swap"):
                values[key] = int(rest.split()[0]) * 1024
    return {
        "rss": values["Rss"],
        "pss": values["Pss"],
        "uss": values["Private_Clean"] + values["Private_Dirty"],
        "swap": values["Swap"],
    }


def cli_json(command: str, dumps: Path, *args: str) -> list[dict]:
    """`python -m memlib COMMAND --dumps DUMPS --format json ARGS...` -> its rows (a failing command fails the test)."""
    cmd = [sys.executable, "-m", "memlib", command, "--dumps", str(dumps), "--format", "json", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd[2:])} failed ({done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout)


class SharedMemTree(Held):
    """`python -S tests/sharedmem_tree.py SHARED PRIVATE N` while the block runs: .parent and .children pids."""

    def __init__(self, shared_bytes: int, private_bytes: int, children: int) -> None:
        """Sizes in bytes; `children` processes each map the shared region and have a private one."""
        script = str(ROOT / "tests" / "sharedmem_tree.py")
        super().__init__([sys.executable, "-S", script, str(shared_bytes), str(private_bytes), str(children)], 30)
        self.n = children
        self.parent = 0
        self.children: list[int] = []

    def __enter__(self) -> SharedMemTree:
        super().__enter__()
        if len(self.words) != 1 + self.n:
            self.__exit__(None, None, None)
            raise RuntimeError(f"shared-memory tree did not start (got {self.words!r})")
        self.parent, self.children = int(self.words[0]), [int(p) for p in self.words[1:]]
        return self
