"""Synthetic recording of one machine for benchmarks and tests: a day of every process's memory with realistic churn.

What it contains: a stable base tree several levels deep (init, kthreadd and kernel threads, system services, a user
session with shells, an IDE and a browser), medium-lived services with children that get re-parented to init when
their parent exits, a short job every snapshot (1-60 s), PID reuse (pids allocated like the kernel, wrapping at
``pid_max``), one process that re-execs (new name/command line, same pid and start time), a leaker (RSS grows linearly
all day) and a spiker (1.5 GiB for 5 minutes every 2 hours). PSS/USS/swap are known only for the user's processes
(smaps_rollup of root processes is unreadable without root), as the collector would record them.

``python -m bench.gen_day --out DIR --hours H [--hosts N] [--interval S] [--jobs N]`` writes such a recording into a
store (docs/store.md) through the store's own segment code: hourly segments with tree columns, one partition per
host, any number of days (generated one day at a time, so memory stays that of one day per job), cgroup memory
included.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from memlib import schema

T0 = pd.Timestamp("2026-03-02 00:00:00", tz="UTC")
MIB = schema.MIB
MEM_TOTAL = 16 * 1024 * MIB


class _Plan:
    """Per-process attributes collected before expanding to rows (one entry per process)."""

    def __init__(self) -> None:
        self.parent: list[int] = []  # index of the parent process, -1 for a root
        self.birth: list[int] = []  # first snapshot
        self.death: list[int] = []  # first snapshot it is gone (exclusive)
        self.name: list[str] = []
        self.cmdline: list[str] = []
        self.user: list[str] = []
        self.rss: list[int] = []
        self.kind: list[str] = []
        self.fixed_pid: list[int] = []  # 0 = allocate
        self.n_base = 0  # the first n_base entries are the base tree (alive all recording, started before it)

    def add(self, parent: int, birth: int, death: int, name: str, cmd: str, user: str, rss: int, kind: str = "",
            pid: int = 0) -> int:  # fmt: skip
        self.parent.append(parent)
        self.birth.append(birth)
        self.death.append(death)
        self.name.append(name)
        self.cmdline.append(cmd)
        self.user.append(user)
        self.rss.append(rss)
        self.kind.append(kind)
        self.fixed_pid.append(pid)
        return len(self.parent) - 1


def _plan(n_snaps: int, n_procs: int, rng: np.random.Generator, churn_rng: np.random.Generator | None = None) -> _Plan:
    """The processes of one recording: the base tree from `rng`, then the churn from `churn_rng` (default: `rng`)."""
    p = _Plan()
    end = n_snaps
    init = p.add(-1, 0, end, "systemd", "/sbin/init splash", "root", 12 * MIB, pid=1)
    kthreadd = p.add(-1, 0, end, "kthreadd", "[kthreadd]", "root", 0, "kernel", pid=2)
    n_base = int(n_procs * 0.8)
    n_kernel = max(2, n_base // 5)
    for i in range(n_kernel):
        p.add(kthreadd, 0, end, f"kworker/{i}:0", f"[kworker/{i}:0]", "root", 0, "kernel")
    # system services, some with a worker pool below them
    services = []
    for i in range(max(2, n_base // 10)):
        s = p.add(init, 0, end, f"svc{i}d", f"/usr/sbin/svc{i}d --foreground", "root", int(rng.integers(2, 80)) * MIB)
        services.append(s)
        for j in range(int(rng.integers(0, 3))):
            p.add(
                s, 0, end, f"svc{i}-worker", f"/usr/sbin/svc{i}d --worker {j}", "root", int(rng.integers(1, 30)) * MIB
            )
    # user session: systemd --user -> shells -> tools, an IDE with language servers, a browser with renderers
    user_sd = p.add(init, 0, end, "systemd", "/lib/systemd/systemd --user", "alice", 10 * MIB)
    term = p.add(user_sd, 0, end, "gnome-terminal-", "/usr/libexec/gnome-terminal-server", "alice", 60 * MIB)
    shells = [p.add(term, 0, end, "bash", "bash", "alice", 5 * MIB) for _ in range(4)]
    tmux = p.add(shells[0], 0, end, "tmux: server", "tmux new -s work", "alice", 4 * MIB)
    deep = tmux
    for depth in range(4):  # a chain reaching level 8
        deep = p.add(deep, 0, end, "bash" if depth % 2 == 0 else "python3", f"nested-{depth}", "alice", 8 * MIB)
    browser = p.add(user_sd, 0, end, "firefox", "/usr/lib/firefox/firefox", "alice", 450 * MIB)
    ide = p.add(user_sd, 0, end, "code", "/usr/share/code/code --unity-launch", "alice", 300 * MIB)
    leaker = p.add(shells[1], 0, end, "leaky-worker", "python3 leaky_worker.py --queue jobs", "alice", 50 * MIB, "leak")
    spiker = p.add(shells[2], 0, end, "batch-report", "python3 report.py --nightly", "alice", 40 * MIB, "spike")
    p.add(shells[3], 0, end, "exec-demo", "sh -c exec-demo", "alice", 3 * MIB, "exec")
    del leaker, spiker
    parents = [browser, ide]
    while len(p.parent) < n_base:
        par = parents[len(p.parent) % 2]
        label = "Web Content" if par == browser else "node"
        p.add(par, 0, end, label, f"{label} -childID {len(p.parent)}", "alice", int(rng.integers(20, 250)) * MIB)
    base_parents = [*services, *shells, user_sd, term]
    p.n_base = len(p.parent)  # the base tree: the same for every call with the same seed and n_procs
    if churn_rng is not None:
        rng = churn_rng
    # medium-lived services (10 min - 3 h) with children that may outlive them (re-parented to init)
    n_medium = max(1, int(n_procs * 0.12))
    mean_life = 1080
    births = rng.integers(-mean_life, end, size=int(n_medium * (end + mean_life) / mean_life))
    for b in births:
        life = int(rng.integers(120, 2160))
        b0, d0 = max(0, int(b)), min(end, int(b) + life)
        if d0 <= b0:
            continue
        par = base_parents[int(rng.integers(len(base_parents)))]
        m = p.add(par, b0, d0, "gunicorn", f"gunicorn app:wsgi --bind :{8000 + len(p.parent) % 999}", "alice",
                  int(rng.integers(20, 200)) * MIB)  # fmt: skip
        if rng.random() < 0.3:
            cd = min(end, d0 + int(rng.integers(0, 600)))  # may outlive its parent
            p.add(
                m, min(b0 + 1, d0 - 1), cd, "gunicorn-wkr", "gunicorn worker", "alice", int(rng.integers(10, 90)) * MIB
            )
    # short jobs: about one per snapshot, 1-12 snapshots long, under a shell or a service
    for b in range(end):
        if rng.random() < 0.85:
            par = base_parents[int(rng.integers(len(base_parents)))]
            j = p.add(par, b, min(end, b + int(rng.integers(1, 13))), "sh", f"sh -c job-{b}", "root", 2 * MIB)
            if rng.random() < 0.3:
                p.add(j, b, p.death[j], "grep", f"grep -r pattern-{b}", "root", 3 * MIB)
    return p


def _allocate_pids(p: _Plan, pid_max: int) -> np.ndarray:
    """Kernel-like pid allocation: next free pid after the last one, wrapping to 300 at pid_max (PIDs get reused)."""
    order = sorted(range(len(p.birth)), key=lambda i: (p.birth[i], i))
    pids = np.zeros(len(p.birth), np.int32)
    live: set[int] = set()
    ends: list[tuple[int, int]] = []  # (death, pid) heap
    nxt = 300
    for i in order:
        while ends and ends[0][0] <= p.birth[i]:
            live.discard(heapq.heappop(ends)[1])
        if p.fixed_pid[i]:
            pid = p.fixed_pid[i]
        else:
            while nxt in live:
                nxt = nxt + 1 if nxt + 1 < pid_max else 300
            pid = nxt
            nxt = nxt + 1 if nxt + 1 < pid_max else 300
        pids[i] = pid
        live.add(pid)
        heapq.heappush(ends, (p.death[i], pid))
    return pids


def _codes(values: list[str]) -> tuple[np.ndarray, pd.Index]:
    codes, uniques = pd.factorize(pd.Series(values, dtype=object))
    return codes.astype(np.int32), pd.Index(uniques, dtype=object)


def generate(
    hours: float = 24,
    interval_s: float = 5,
    n_procs: int = 300,
    seed: int = 0,
    pid_max: int = 16384,
    *,
    t0: pd.Timestamp | None = None,
    epoch: pd.Timestamp | None = None,
    churn_seed: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(hours, interval, processes alive per snapshot, seed) -> (PROCS frame, SYSTEM frame) at schema dtypes.

    PROCS is sorted by snap, pid with ``snap`` and ``proc_id`` assigned as the loader would (proc_id dense over
    (pid, start_time) in order of first appearance); SYSTEM has one row per snapshot with common meminfo keys.

    One day of a longer recording (write_recording): `t0` is the part's first snapshot (default T0), `epoch` the
    recording's start and `churn_seed` seeds this part's short- and medium-lived processes and noise. With `epoch`
    the base tree (init, kthreadd, services, the user session: ``_Plan.n_base``) has the same pids and start times in
    every part generated with the same seed and n_procs, so it is one set of processes over all parts; the leaker's
    age, the spiker's phase and the re-exec point count from `epoch`; other processes alive at a later part's start
    began just before it. ``snap`` and ``proc_id`` stay local to the part. Without these keywords the output is
    exactly the historical one (pinned by tests/test_gen_day.py).
    """
    start = T0 if t0 is None else pd.Timestamp(t0)
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    rng = np.random.default_rng(seed)
    churn = None if churn_seed is None else np.random.default_rng(churn_seed)
    n_snaps = max(1, round(hours * 3600 / interval_s))
    p = _plan(n_snaps, n_procs, rng, churn)
    if churn is not None:
        rng = churn
    pids = _allocate_pids(p, pid_max)
    step = pd.Timedelta(seconds=interval_s)
    # the row columns are built in a helper so that its temporaries are freed before the frame is assembled
    procs = schema.conform(
        pd.DataFrame(_rows(p, pids, n_snaps, interval_s, seed, rng, start, epoch)), schema.PROC_COLUMNS
    )
    system = _system(procs, n_snaps, step, rng, start)
    return procs, system


def _rows(
    p: _Plan,
    pids: np.ndarray,
    n_snaps: int,
    interval_s: float,
    seed: int,
    rng: np.random.Generator,
    start: pd.Timestamp,
    epoch: pd.Timestamp | None,
) -> dict:
    """The planned processes expanded to one row per (process, snapshot): PROCS columns as arrays (see generate)."""
    parent = np.asarray(p.parent, np.int64)
    birth = np.asarray(p.birth, np.int64)
    death = np.asarray(p.death, np.int64)
    nproc = len(pids)
    # expand processes to rows
    lens = death - birth
    pidx = np.repeat(np.arange(nproc), lens)
    offs = np.repeat(np.cumsum(lens) - lens, lens)
    snap = (birth[pidx] + np.arange(pidx.size) - offs).astype(np.int32)
    order = np.argsort((snap.astype(np.int64) << 32) | pids[pidx].astype(np.int64), kind="stable")
    pidx, snap = pidx[order], snap[order]
    n = pidx.size
    step = pd.Timedelta(seconds=interval_s)
    ts_ns = start.value + snap.astype(np.int64) * step.value
    # start time: before the recording for the base tree, between two snapshots for the rest
    uptime = rng.integers(1, 86400, nproc) * 10**9
    before = rng.integers(0, step.value, nproc)
    start_ns = np.where(birth == 0, start.value - uptime, start.value + birth * step.value - before)
    start_ns[0:2] = start.value - 200_000 * 10**9  # init and kthreadd started at boot
    g = snap  # snapshot number counted from the recording's start (leak age, spike phase, re-exec, idle noise)
    if epoch is not None:
        ep = pd.Timestamp(epoch)
        ep = ep.tz_localize("UTC") if ep.tzinfo is None else ep.tz_convert("UTC")
        snap0 = round((start.value - ep.value) / step.value)
        g = snap.astype(np.int64) + snap0
        nb = p.n_base
        if snap0 > 0:  # a later part: what is alive at its start without being base began just before it
            start_ns = np.where(birth == 0, start.value - before, start_ns)
        start_ns[:nb] = ep.value - np.random.default_rng([seed, 1]).integers(1, 86400, nb) * 10**9
        start_ns[0:2] = ep.value - 200_000 * 10**9
    pr = parent[pidx]
    has_parent = pr >= 0
    pr_safe = np.where(has_parent, pr, 0)
    ppid = np.where(has_parent, np.where(snap < death[pr_safe], pids[pr_safe], 1), 0).astype(np.int32)
    # memory
    kind = np.asarray(p.kind)
    base = np.asarray(p.rss, np.int64)[pidx]
    # like real RSS: whole 4 KiB pages, and most processes idle most of the time (a sample changes by a few pages
    # for ~15 % of rows; the rest repeat the previous value because the noise is keyed on (process, minute))
    page = 4096
    minute = (g * interval_s) // 60
    jitter_key = (pidx.astype(np.int64) * 1_000_003 + minute) % 2_147_483_647
    jitter = (jitter_key * 2_654_435_761 % 256 - 128) * page  # stable within a minute
    busy = rng.random(n) < 0.15
    noise = np.where(busy, rng.integers(-32, 33, n) * page, 0) + jitter
    rss = np.where(base > 0, (base // page) * page + noise, 0)
    age_s = (g - birth[pidx]) * interval_s
    k = kind[pidx]
    rss = np.where(k == "leak", base + (age_s * (2000 * MIB / 86400)).astype(np.int64), rss)
    spike = (k == "spike") & ((g % max(1, int(7200 / interval_s))) < max(1, int(300 / interval_s)))
    rss = np.where(spike, rss + 1536 * MIB, rss).astype(np.int64)
    rss = (np.maximum(rss, 0) // page) * page
    del minute, jitter_key, jitter, busy, noise, age_s, spike, offs, order, lens  # bound the peak
    user_codes, users = _codes(p.user)
    ucode = user_codes[pidx]
    smaps_known = (users[ucode] == "alice") if len(users) else np.zeros(n, bool)
    smaps_known = np.asarray(smaps_known, bool)
    # smaps_rollup reports kB
    pss = pd.arrays.IntegerArray((rss * 6 // 10) // 1024 * 1024, ~smaps_known)
    uss = pd.arrays.IntegerArray((rss * 4 // 10) // 1024 * 1024, ~smaps_known)
    swap = pd.arrays.IntegerArray(np.zeros(n, np.int64), ~smaps_known)
    # names/command lines; the "exec" process re-execs half way (same pid and start time)
    name_codes, names = _codes([*p.name, "exec-demo-2"])
    cmd_codes, cmds = _codes([*p.cmdline, "/usr/bin/exec-demo --phase 2"])
    ncode = name_codes[:-1][pidx]
    ccode = cmd_codes[:-1][pidx]
    after_exec = (k == "exec") & (g >= n_snaps // 2)
    ncode = np.where(after_exec, name_codes[-1], ncode)
    ccode = np.where(after_exec, cmd_codes[-1], ccode)
    # proc_id: dense over (pid, start_time) in order of first appearance
    first_row = np.full(nproc, n, np.int64)
    np.minimum.at(first_row, pidx, np.arange(n))
    rank = np.empty(nproc, np.int64)
    rank[np.argsort(first_row, kind="stable")] = np.arange(nproc)
    kernel = k == "kernel"
    return {
        "snap": snap,
        "ts": pd.to_datetime(ts_ns, utc=True),
        "host": pd.Categorical.from_codes(np.zeros(n, np.int8), categories=["benchhost"]),
        "boot_id": pd.Categorical.from_codes(np.zeros(n, np.int8), categories=["0f0e-bench-boot"]),
        "pid": pids[pidx],
        "ppid": ppid,
        "start_time": pd.to_datetime(start_ns[pidx], utc=True),
        "proc_id": rank[pidx],
        "uid": pd.arrays.IntegerArray(np.where(users[ucode] == "alice", 1000, 0).astype(np.int64), np.zeros(n, bool)),
        "user": pd.Categorical.from_codes(ucode, categories=users),
        "state": pd.Categorical.from_codes(np.where(rng.random(n) < 0.05, 0, 1).astype(np.int8), categories=["R", "S"]),
        "name": pd.Categorical.from_codes(ncode, categories=names),
        "cmdline": pd.Categorical.from_codes(ccode, categories=cmds),
        "rss_bytes": rss,
        "vsz_bytes": np.where(kernel, 0, (base // MIB) * 3 * MIB + 200 * MIB),  # mappings change rarely
        "threads": pd.arrays.IntegerArray(np.where(kernel, 1, 4).astype(np.int64), np.zeros(n, bool)),
        "cgroup": pd.Categorical.from_codes(
            np.where(users[ucode] == "alice", 1, 0).astype(np.int8), categories=["/system.slice", "/user.slice"]
        ),
        "pss_bytes": pss,
        "uss_bytes": uss,
        "swap_bytes": swap,
        "smaps_ts": pd.to_datetime(np.where(smaps_known, ts_ns, np.iinfo(np.int64).min), utc=True),
    }


def _system(
    procs: pd.DataFrame, n_snaps: int, step: pd.Timedelta, rng: np.random.Generator, start: pd.Timestamp = T0
) -> pd.DataFrame:
    snap = procs["snap"].to_numpy()
    rss_sum = np.bincount(snap, weights=procs["rss_bytes"].to_numpy(), minlength=n_snaps).astype(np.int64)
    s = np.arange(n_snaps)
    anon = (rss_sum * 7) // 10
    cached = np.full(n_snaps, 3 * 1024 * MIB) + rng.integers(0, 256, n_snaps) * MIB
    srecl = np.full(n_snaps, 300 * MIB)
    buffers = np.full(n_snaps, 120 * MIB)
    kernel = np.full(n_snaps, 900 * MIB)
    free = np.maximum(MEM_TOTAL - anon - cached - srecl - buffers - kernel, 0)
    available = free + cached + buffers + srecl // 2
    out = {
        "snap": s.astype(np.int32),
        "ts": pd.to_datetime(start.value + s * step.value, utc=True),
        "host": pd.Categorical(["benchhost"] * n_snaps),
        "boot_id": pd.Categorical(["0f0e-bench-boot"] * n_snaps),
    }
    meminfo = {
        "MemTotal": np.full(n_snaps, MEM_TOTAL),
        "MemFree": free,
        "MemAvailable": available,
        "Buffers": buffers,
        "Cached": cached,
        "SwapCached": np.zeros(n_snaps, np.int64),
        "SwapTotal": np.zeros(n_snaps, np.int64),
        "SwapFree": np.zeros(n_snaps, np.int64),
        "AnonPages": anon,
        "SReclaimable": srecl,
        "SUnreclaim": np.full(n_snaps, 200 * MIB),
    }
    for key, values in meminfo.items():
        out[key] = pd.array(values.astype(np.int64), dtype="Int64")
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------------ writing a store


def _day_tables(procs: pd.DataFrame, system: pd.DataFrame) -> tuple[pa.Table, pa.Table]:
    """A generated part -> (process rows as a .current holds them: ts + store.schema.SAMPLE_COLUMNS; system rows:
    ts + meminfo fields under their kernel names + cgroup memory fields), both in snapshot order."""
    from store.schema import CGROUP_MEM_FIELD_PREFIX, SAMPLE_COLUMNS

    p = pa.Table.from_pandas(procs[["ts", *SAMPLE_COLUMNS]], preserve_index=False)
    fields = [c for c in system.columns if c not in ("snap", "ts", "host", "boot_id")]
    arrays = [pa.Array.from_pandas(system["ts"])] + [pa.Array.from_pandas(system[c], type=pa.int64()) for c in fields]
    names = ["ts", *fields]
    # memory.current of each cgroup: its processes' RSS plus 10 % page cache (the kernel's figure is larger)
    snap = procs["snap"].to_numpy()
    codes = procs["cgroup"].cat.codes.to_numpy()
    rss = procs["rss_bytes"].to_numpy()
    for j, cg in enumerate(procs["cgroup"].cat.categories):
        mine = codes == j
        used = np.bincount(snap[mine], weights=rss[mine], minlength=len(system)).astype(np.int64)
        arrays.append(pa.array(used + used // 10))
        names.append(CGROUP_MEM_FIELD_PREFIX + str(cg))
    return p, pa.Table.from_arrays(arrays, names=names)


def _hour_slices(ts: pa.ChunkedArray) -> list[tuple[int, int]]:
    """Rows sorted by time -> [start, end) row ranges of each UTC hour."""
    hours = ts.cast(pa.int64()).to_numpy() // 3_600_000_000_000
    cuts = np.flatnonzero(np.diff(hours)) + 1
    bounds = [0, *cuts.tolist(), len(hours)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _write_day(out: Path, hosts: int, h: int, d: int, days: int, hours: float, interval_s: float, n_procs: int,
               seed: int) -> tuple[int, int, int]:  # fmt: skip
    """Generate day `d` of host number `h` and publish it as hourly segments -> (rows, samples, files)."""
    from memlib.tree import stored_tree
    from store import segment

    host = "benchhost" if hosts == 1 else f"benchhost-{h + 1:02d}"
    boot_id = "0f0e-bench-boot" if hosts == 1 else f"0f0e-bench-boot-{h + 1:02d}"
    host_seed = seed + 1000 * h
    part = min(24.0, hours - 24 * d)
    if days == 1:
        procs, system = generate(hours=part, interval_s=interval_s, n_procs=n_procs, seed=host_seed)
    else:
        day0 = T0 + pd.Timedelta(days=d)
        churn = host_seed * 1000 + d + 1
        procs, system = generate(part, interval_s, n_procs, host_seed, t0=day0, epoch=T0, churn_seed=churn)
    p_all, s_all = _day_tables(procs, system)
    rows, snaps, files = len(procs), len(system), 0
    del procs, system
    s_cuts = _hour_slices(s_all.column("ts"))
    for (a, b), (sa, sb) in zip(_hour_slices(p_all.column("ts")), s_cuts, strict=True):
        tables = segment.build_tables(host, boot_id, p_all.slice(a, b - a), s_all.slice(sa, sb - sa), stored_tree)
        files += len(segment.publish(out, tables))
    return rows, snaps, files


def write_recording(
    out: Path,
    hours: float,
    hosts: int = 1,
    interval_s: float = 5,
    n_procs: int = 300,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> dict:
    """Write a generated recording of `hours` per host into the store at `out` -> summary (rows, snapshots, files,
    bytes, seconds). One host partition per host (``benchhost`` alone, else ``benchhost-01`` ...); each day is
    generated on its own (the base tree keeps its identity across days) and published as hourly segments through
    the store's own segment code (store.segment.build_tables with memlib.tree.stored_tree, then publish), the path
    a collector's compaction takes. `jobs` > 1 writes that many days at once (separate processes; ~1.5 GB each)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    days = max(1, math.ceil(hours / 24))
    tasks = [(out, hosts, h, d, days, hours, interval_s, n_procs, seed) for h in range(hosts) for d in range(days)]
    totals = [0, 0, 0]
    if jobs > 1 and len(tasks) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = pool.map(_write_day, *zip(*tasks, strict=True))
            for k, res in enumerate(results, 1):
                totals = [a + b for a, b in zip(totals, res, strict=True)]
                if progress is not None:
                    progress(f"{k}/{len(tasks)} host-days written ({time.perf_counter() - t:.0f} s)")
    else:
        for k, task in enumerate(tasks, 1):
            totals = [a + b for a, b in zip(totals, _write_day(*task), strict=True)]
            if progress is not None:
                progress(f"{k}/{len(tasks)} host-days written ({time.perf_counter() - t:.0f} s)")
    rows, snaps, files = totals
    total = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    return {"rows": rows, "snapshots": snaps, "hosts": hosts, "files": files, "bytes": total,
            "bytes_per_row": round(total / max(rows, 1), 3), "seconds": round(time.perf_counter() - t, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.gen_day --out DIR --hours H [--hosts N] [--interval S] [--procs N] [--seed N]``."""
    p = argparse.ArgumentParser(prog="python -m bench.gen_day", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="store directory to write (empty or missing)")
    p.add_argument("--hours", type=float, default=24.0, help="length of the recording per host (default 24)")
    p.add_argument("--hosts", type=int, default=1, help="number of hosts, one partition each (default 1)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    p.add_argument("--procs", type=int, default=300, help="processes alive per sample, about (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="days written at once, one process each (default 1)")
    args = p.parse_args(argv)
    if not (args.hours > 0 and math.isfinite(args.hours)) or args.hosts < 1 or not (args.interval > 0):
        p.error("--hours and --interval must be > 0, --hosts >= 1")
    if args.out.is_dir() and any(args.out.iterdir()):
        p.error(f"{args.out} is not empty: remove it or choose another directory")

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    summary = write_recording(
        args.out, args.hours, args.hosts, args.interval, args.procs, args.seed, progress=say, jobs=max(1, args.jobs)
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
