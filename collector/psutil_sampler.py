"""psutil sampler for platforms without /proc (a developer's Mac): the same Sample as collector.sampler.Sampler.

Differences from the /proc sampler: start time is psutil's create_time (float seconds, rounded to the microsecond so
it is identical across samples); cgroup is null; PSS is null where the platform has none (USS and swap come from
memory_full_info where permitted). smaps "auto" = own processes only unless root, "on" = try all, "off" = none.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

import pandas as pd
import psutil

from collector.procfs import format_cmdline
from collector.sampler import SMAPS_MODES, Sample
from memlib.scrub import scrub_argv

_ATTRS = ["pid", "ppid", "name", "status", "create_time", "uids", "username", "memory_info", "num_threads"]
_STATE = {
    psutil.STATUS_RUNNING: "R",
    psutil.STATUS_SLEEPING: "S",
    psutil.STATUS_DISK_SLEEP: "D",
    psutil.STATUS_STOPPED: "T",
    psutil.STATUS_TRACING_STOP: "t",
    psutil.STATUS_ZOMBIE: "Z",
    psutil.STATUS_DEAD: "X",
    psutil.STATUS_IDLE: "I",
}
MEMINFO_FIELDS = {  # psutil.virtual_memory / swap_memory attribute -> /proc/meminfo-style name
    "total": "MemTotal",
    "free": "MemFree",
    "available": "MemAvailable",
    "buffers": "Buffers",
    "cached": "Cached",
    "active": "Active",
    "inactive": "Inactive",
    "wired": "Wired",
}


def _boot_id() -> str:
    """A stable id for this boot: the boot time as a UUID (no boot_id file outside Linux)."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{socket.gethostname()}-{int(psutil.boot_time())}"))


class PsutilSampler:
    """Samples every process through psutil; `smaps` is "auto", "on" or "off" (USS/swap via memory_full_info)."""

    def __init__(self, smaps: str = "off", host: str | None = None) -> None:
        """Remember the identity cache between samples (cmdline read once per (pid, create_time))."""
        if smaps not in SMAPS_MODES:
            raise ValueError(f"smaps must be one of {', '.join(SMAPS_MODES)}, not {smaps!r}")
        self.smaps = smaps
        self.host = host if host is not None else socket.gethostname()
        self.boot_id = _boot_id()
        self._cmd: dict[tuple[int, int], str | None] = {}
        self._euid = os.geteuid() if hasattr(os, "geteuid") else -1

    def sample(self) -> Sample:
        """One pass over psutil.process_iter -> Sample (times as int ns since the epoch)."""
        t0 = time.perf_counter()
        ts = pd.Timestamp(time.time_ns(), unit="ns", tz="UTC")
        cols: dict[str, list] = {
            c: []
            for c in (
                "pid",
                "ppid",
                "start_time",
                "uid",
                "user",
                "state",
                "name",
                "cmdline",
                "rss_bytes",
                "vsz_bytes",
                "threads",
                "cgroup",
                "pss_bytes",
                "uss_bytes",
                "swap_bytes",
                "smaps_ts",
            )
        }
        cache: dict[tuple[int, int], str | None] = {}
        vanished = new = 0
        for proc in psutil.process_iter(_ATTRS, ad_value=None):
            info = proc.info
            if info["create_time"] is None or info["memory_info"] is None:
                vanished += 1
                continue
            start_ns = round(info["create_time"] * 1_000_000) * 1000
            key = (info["pid"], start_ns)
            if key in self._cmd:
                cmdline = self._cmd[key]
            else:
                try:
                    cmdline = format_cmdline(scrub_argv(proc.cmdline()), info["name"] or "")
                except psutil.NoSuchProcess:
                    vanished += 1
                    continue
                except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
                    cmdline = None
                new += 1
            cache[key] = cmdline
            uids = info["uids"]
            uid = uids.real if uids is not None else None
            pss = uss = swap = smaps_ts = None
            if self.smaps == "on" or (self.smaps == "auto" and (self._euid == 0 or uid == self._euid)):
                try:
                    full = proc.memory_full_info()
                    uss = getattr(full, "uss", None)
                    pss = getattr(full, "pss", None)
                    swap = getattr(full, "swap", None)
                    smaps_ts = time.time_ns()
                except (psutil.Error, OSError):
                    pass
            mem = info["memory_info"]
            cols["pid"].append(info["pid"])
            cols["ppid"].append(info["ppid"] or 0)
            cols["start_time"].append(start_ns)
            cols["uid"].append(uid)
            cols["user"].append(
                info["username"] if info["username"] is not None else (None if uid is None else str(uid))
            )
            cols["state"].append(_STATE.get(info["status"]))
            cols["name"].append(info["name"] or "")
            cols["cmdline"].append(cmdline)
            cols["rss_bytes"].append(mem.rss)
            cols["vsz_bytes"].append(mem.vms)
            cols["threads"].append(info["num_threads"])
            cols["cgroup"].append(None)
            cols["pss_bytes"].append(pss)
            cols["uss_bytes"].append(uss)
            cols["swap_bytes"].append(swap)
            cols["smaps_ts"].append(smaps_ts)
        self._cmd = cache
        meminfo = self._meminfo()
        elapsed = time.perf_counter() - t0
        stats = {"processes": len(cols["pid"]), "vanished": vanished, "new": new, "elapsed_s": elapsed}
        return Sample(ts, cols, meminfo, stats)

    @staticmethod
    def _meminfo() -> dict[str, int]:
        """System memory in /proc/meminfo names where they exist (bytes)."""
        vm = psutil.virtual_memory()
        out = {name: int(getattr(vm, attr)) for attr, name in MEMINFO_FIELDS.items() if hasattr(vm, attr)}
        sw = psutil.swap_memory()
        out["SwapTotal"] = int(sw.total)
        out["SwapFree"] = int(sw.free)
        return out
