"""A small native recording with PSS/USS/swap and cgroups whose answers are known (for the page tests).

Three samples 10 s apart from T0 (2026-11-27 10:00:00 UTC), host "vm". Per sample k (MiB):
    pid 1  init      root      /                                        rss 10, pss 5, uss 4, swap 0
    pid 10 nginx     root      /system.slice/nginx.service              rss 20, pss 10, uss 8, swap 1   (child of 1)
    pid 11 nginx     root      /system.slice/nginx.service              rss 30+10k, pss 15+5k, uss 12, swap 2 (of 10)
    pid 20 postgres  postgres  /system.slice/postgresql.service         rss 100, PSS/USS/swap unknown (of 1)
    pid 30 bash      alice     /user.slice/user-1000.slice/session-3.scope  rss 5, pss 4 (k < 2: exits before k=2)
    pid 31 sleep     alice     same scope                               rss 1, pss 1 (k >= 1: new at k=1, child of 30
                                                                         while 30 lives, then of 1)
memory.current of /system.slice/nginx.service: 80 MiB in every sample. smaps values are read 2 s before the sample.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.store_samples import writer

MIB = 1 << 20
T0 = pd.Timestamp("2026-11-27T10:00:00Z")
NGINX = "/system.slice/nginx.service"
PG = "/system.slice/postgresql.service"
SESSION = "/user.slice/user-1000.slice/session-3.scope"


def _rows(k: int) -> list[tuple]:
    """(pid, ppid, user, uid, name, cmdline, cgroup, rss, pss, uss, swap) in MiB for sample k (None = unknown)."""
    rows = [
        (1, 0, "root", 0, "init", "/sbin/init", "/", 10, 5, 4, 0),
        (10, 1, "root", 0, "nginx", "nginx: master process", NGINX, 20, 10, 8, 1),
        (11, 10, "root", 0, "nginx", "nginx: worker process", NGINX, 30 + 10 * k, 15 + 5 * k, 12, 2),
        (20, 1, "postgres", 115, "postgres", "/usr/lib/postgresql/bin/postgres -D /var/lib/pg", PG, 100, None, None,
         None),
    ]  # fmt: skip
    if k < 2:
        rows.append((30, 1, "alice", 1000, "bash", "-bash", SESSION, 5, 4, 3, 0))
    if k >= 1:
        rows.append((31, 30 if k < 2 else 1, "alice", 1000, "sleep", "sleep 600", SESSION, 1, 1, 1, 0))
    return rows


def write_native_crafted(folder: Path) -> Path:
    """Write the recording described in the module docstring into `folder` (one closed segment); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    w = writer(folder, "vm", "boot-1")
    for k in range(3):
        ts = T0 + pd.Timedelta(seconds=10 * k)
        rows = _rows(k)
        ago = {1: 3600, 10: 3000, 11: 3000, 20: 2400, 30: 300, 31: -5}  # seconds before T0
        start = {pid: T0 - pd.Timedelta(seconds=s) for pid, s in ago.items()}

        def mib(v: int | None) -> int | None:
            return None if v is None else v * MIB

        procs = {
            "pid": [r[0] for r in rows],
            "ppid": [r[1] for r in rows],
            "start_time": [start[r[0]].value for r in rows],
            "uid": [r[3] for r in rows],
            "user": [r[2] for r in rows],
            "state": ["S" for _ in rows],
            "name": [r[4] for r in rows],
            "cmdline": [r[5] for r in rows],
            "rss_bytes": [mib(r[7]) for r in rows],
            "vsz_bytes": [mib(r[7]) * 4 for r in rows],
            "threads": [1 for _ in rows],
            "cgroup": [r[6] for r in rows],
            "pss_bytes": [mib(r[8]) for r in rows],
            "uss_bytes": [mib(r[9]) for r in rows],
            "swap_bytes": [mib(r[10]) for r in rows],
            "smaps_ts": [None if r[8] is None else (ts - pd.Timedelta(seconds=2)).value for r in rows],
        }
        meminfo = {
            "MemTotal": 4096 * MIB,
            "MemFree": 2048 * MIB,
            "MemAvailable": 3000 * MIB,
            "Buffers": 10 * MIB,
            "Cached": 500 * MIB,
            "SReclaimable": 20 * MIB,
            "SwapTotal": 1024 * MIB,
            "SwapFree": 1000 * MIB,
        }
        w.append(ts, procs, meminfo, cgroup_mem={NGINX: 80 * MIB})
    w.close()
    return folder
