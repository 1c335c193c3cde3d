"""Parsers for /proc files. They take the file's bytes (never a path) and return plain Python values.

Fields of /proc/<pid>/stat after the closing parenthesis of comm (``rest`` below, 0-based):
0 state, 1 ppid, 6 flags, 17 num_threads, 19 starttime (clock ticks since boot), 20 vsize (bytes), 21 rss (pages),
and, counted from the end of a 52-field line, arg_end (field 49: address of argv's end; changes when the process execs).
stat's rss is the kernel's unsummed per-CPU counter (approximate on current kernels); the recorded RSS comes from
/proc/<pid>/statm field 2 (resident pages), the precise value that status VmRSS, smaps_rollup, ps and top show.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from memlib.schema import MEMINFO_COUNT_FIELDS

PF_KTHREAD = 0x00200000  # task flag of kernel threads (stat field 9)


class StatFields(NamedTuple):
    """The parts of /proc/<pid>/stat the collector records."""

    pid: int
    comm: str
    state: str
    ppid: int
    flags: int
    threads: int
    start_ticks: int
    vsize: int
    rss_pages: int
    exec_mark: bytes  # raw 4th field from the end (arg_end on Linux >= 3.5, b"" when absent): changes on exec


def split_stat(data: bytes) -> tuple[int, str, str, int, int, int, int, int, int, bytes]:
    """/proc/<pid>/stat bytes -> (pid, comm, state, ppid, flags, threads, start_ticks, vsize, rss_pages, exec_mark)
    as a plain tuple (the sampler's hot path); comm may hold spaces and parentheses ('(a) b)'). ValueError if bad."""
    close_at = data.rfind(b")")
    open_at = data.find(b" (")
    if open_at < 0 or close_at < open_at:
        raise ValueError(f"malformed stat line: {data[:80]!r}")
    rest = data[close_at + 2 :].split(None, 22)
    if len(rest) < 22:
        raise ValueError(f"stat line has {len(rest)} fields after comm, need 22: {data[:80]!r}")
    return (
        int(data[:open_at]),
        data[open_at + 2 : close_at].decode("utf-8", "replace"),
        rest[0].decode("ascii", "replace"),
        int(rest[1]),
        int(rest[6]),
        int(rest[17]),
        int(rest[19]),
        int(rest[20]),
        int(rest[21]),
        _exec_mark(rest),
    )


def _exec_mark(rest: list[bytes]) -> bytes:
    tail = rest[22].rsplit(None, 4) if len(rest) > 22 else []
    return tail[1] if len(tail) == 5 else b""


def parse_stat(data: bytes) -> StatFields:
    """/proc/<pid>/stat bytes -> StatFields (named); see split_stat. ValueError if malformed."""
    return StatFields(*split_stat(data))


def parse_statm_resident(data: bytes) -> int:
    """/proc/<pid>/statm bytes ('size resident shared text lib data dt', pages) -> resident pages; ValueError if bad."""
    fields = data.split(None, 2)
    if len(fields) < 2:
        raise ValueError(f"malformed statm line: {data[:80]!r}")
    return int(fields[1])


def parse_cmdline(data: bytes) -> list[str]:
    """/proc/<pid>/cmdline bytes (NUL-separated argv) -> argv list; [] for kernel threads and zombies."""
    if not data:
        return []
    if data.endswith(b"\0"):
        data = data[:-1]
    return [arg.decode("utf-8", "replace") for arg in data.split(b"\0")]


def format_cmdline(argv: list[str], comm: str) -> str:
    """Scrubbed argv -> the recorded command line: args joined by ' ', or '[comm]' when argv is empty."""
    if not argv or not any(argv):
        return f"[{comm}]"
    return " ".join(argv)


def parse_status_uid(data: bytes) -> int | None:
    """/proc/<pid>/status bytes -> real uid (first number of the 'Uid:' line), None when absent."""
    at = data.find(b"\nUid:")
    if at < 0:
        if not data.startswith(b"Uid:"):
            return None
        at = -1
    line_end = data.find(b"\n", at + 1)
    fields = data[at + 6 : line_end if line_end >= 0 else len(data)].split()
    try:
        return int(fields[0])
    except (IndexError, ValueError):
        return None


def parse_cgroup(data: bytes) -> str | None:
    """/proc/<pid>/cgroup bytes -> the cgroup v2 path ('0::/x'), else the v1 memory controller path, else None."""
    v1_memory = None
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            if path:
                return path
        elif "memory" in controllers.split(","):
            v1_memory = path
    return v1_memory


class SmapsRollup(NamedTuple):
    """PSS, USS (Private_Clean + Private_Dirty) and Swap from smaps_rollup, in bytes."""

    pss: int
    uss: int
    swap: int


def parse_smaps_rollup(data: bytes) -> SmapsRollup | None:
    """/proc/<pid>/smaps_rollup bytes -> SmapsRollup in bytes; None when empty or without a Pss line."""
    values: dict[bytes, int] = {}
    for line in data.split(b"\n"):
        key, sep, rest = line.partition(b":")
        if not sep or key not in (b"Pss", b"Private_Clean", b"Private_Dirty", b"Swap"):
            continue
        parts = rest.split()
        if parts:
            values[key] = int(parts[0]) * 1024
    if b"Pss" not in values:
        return None
    return SmapsRollup(
        values[b"Pss"],
        values.get(b"Private_Clean", 0) + values.get(b"Private_Dirty", 0),
        values.get(b"Swap", 0),
    )


_MEMINFO_LINE = re.compile(rb"^([^:\n]+):[ \t]*(\d+)( kB)?[ \t]*$", re.MULTILINE)


def parse_meminfo(data: bytes) -> dict[str, int]:
    """/proc/meminfo bytes -> {field: bytes}, kB converted to bytes; HugePages_* (counts) kept as they are."""
    out: dict[str, int] = {}
    for key, value, kb in _MEMINFO_LINE.findall(data):
        name = key.strip().decode("ascii", "replace")
        out[name] = int(value) * 1024 if kb and name not in MEMINFO_COUNT_FIELDS else int(value)
    return out


def parse_btime(data: bytes) -> int:
    """/proc/stat bytes -> boot time in whole seconds since the epoch (the 'btime' line). ValueError if absent."""
    for line in data.split(b"\n"):
        if line.startswith(b"btime "):
            return int(line.split()[1])
    raise ValueError("no btime line in /proc/stat")


def start_time_ns(btime: int, start_ticks: int, clk_tck: int) -> int:
    """Boot time (s) + start ticks -> process start as ns since the epoch; pure integer math, so bit-identical."""
    return (btime * clk_tck + start_ticks) * 1_000_000_000 // clk_tck


class CgroupPaths(NamedTuple):
    """A process's cgroup paths: the v2 unified one ('0::/x') and the v1 memory controller one (None if absent)."""

    unified: str | None
    memory_v1: str | None


def _strip_deleted(path: str) -> str:
    """'/x (deleted)' (a removed v2 cgroup still holding a dying task) -> '/x'."""
    return path[: -len(" (deleted)")] if path.endswith(" (deleted)") else path


def parse_cgroup_paths(data: bytes) -> CgroupPaths:
    """/proc/<pid>/cgroup bytes -> CgroupPaths (v2 '0::/path', v1 'N:...memory...:/path'); ' (deleted)' removed."""
    unified = memory = None
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[2]:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            unified = _strip_deleted(path)
        elif "memory" in controllers.split(","):
            memory = _strip_deleted(path)
    return CgroupPaths(unified, memory)


class CgroupMounts(NamedTuple):
    """Where cgroup memory is accounted: the v2 mount (mount point, mount root) and the v1 memory mount, or None."""

    unified: tuple[str, str] | None
    memory_v1: tuple[str, str] | None

    def memory_file(self, paths: CgroupPaths) -> tuple[str, str] | None:
        """A process's CgroupPaths -> (recorded cgroup path, file holding that cgroup's memory use) or None.

        The v1 memory hierarchy wins when mounted and the process has a v1 memory path (hybrid systems: the memory
        controller is bound there, the unified tree has no memory.current); otherwise the v2 path. Paths outside
        the mount's root (another cgroup namespace) give None."""
        if self.memory_v1 is not None and paths.memory_v1 is not None:
            where, path, name = self.memory_v1, paths.memory_v1, "memory.usage_in_bytes"
        elif self.unified is not None and paths.unified is not None:
            where, path, name = self.unified, paths.unified, "memory.current"
        else:
            return None
        mount_point, mount_root = where
        if "/.." in path or path.startswith(".."):  # outside our cgroup namespace: no file of ours holds it
            return None
        if mount_root != "/":
            if path != mount_root and not path.startswith(mount_root.rstrip("/") + "/"):
                return None
            rel = path[len(mount_root.rstrip("/")) :]
        else:
            rel = path
        rel = rel.strip("/")
        return path, f"{mount_point.rstrip('/')}/{rel}/{name}" if rel else f"{mount_point.rstrip('/')}/{name}"


def _unescape_mount(text: str) -> str:
    """mountinfo octal escapes ('\\040' for a space) -> characters."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_cgroup_mounts(data: bytes) -> CgroupMounts:
    """/proc/self/mountinfo bytes -> CgroupMounts: the first cgroup2 mount and the first v1 mount with 'memory'."""
    unified = memory = None
    for line in data.decode("utf-8", "replace").splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 1:
            continue
        root, mount_point = _unescape_mount(fields[3]), _unescape_mount(fields[4])
        fstype = tail[0]
        if fstype == "cgroup2" and unified is None:
            unified = (mount_point, root)
        elif fstype == "cgroup" and memory is None and len(tail) >= 3 and "memory" in tail[2].split(","):
            memory = (mount_point, root)
    return CgroupMounts(unified, memory)


def parse_memory_value(data: bytes) -> int | None:
    """memory.current / memory.usage_in_bytes bytes -> the number (bytes), None when empty or not a number."""
    try:
        return int(data.strip())
    except ValueError:
        return None
