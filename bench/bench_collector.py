"""Cost of one sample of every process, in µs per process, against the floor and against psutil / ps; and the
smaps_rollup coverage (PSS/USS/swap) the collector reaches within its CPU budget.

With ``bench.proctree.ProcTree`` adding ~300 idle processes (a tree 4 levels deep), the methods run interleaved,
one call each per round (the order rotates every round), ≥ 15 rounds after a warm-up round; medians per process:
- floor: list /proc and read every /proc/<pid>/stat and /proc/<pid>/statm with os.open/os.read/os.close, nothing
  parsed (statm holds the precise RSS; stat's rss is an approximate per-CPU counter on current kernels);
- stat only: the previous floor (every /proc/<pid>/stat alone), for comparison;
- floor + smaps_rollup: the floor plus every /proc/<pid>/smaps_rollup (what full PSS/USS every sample would cost);
- ``collector.sampler.Sampler(smaps="off"|"on").sample()``, one long-lived sampler each (its caches warm, as in the
  collector); "on" reads the smaps_rollup files that are due (default target 60 s) within its CPU budget;
- ``psutil.process_iter`` with pid, ppid, memory_info, create_time, name, cmdline: warm (psutil's process cache kept)
  and cold (cache cleared before the call);
- ``ps -eo pid=,ppid=,uid=,stat=,rss=,vsz=,nlwp=,etimes=,args=`` run and parsed (wall time, ps included).
Whole process (judged against the floor's CPU time, not its wall time, which a busy machine inflates): CPU time
(RUSAGE_CHILDREN) of ``python -m collector --interval 0.05 --smaps off`` over a long and a short run;
(cpu_long - cpu_short) / (samples_long - samples_short) / processes is the steady-state cost per process and sample
(interpreter start-up and imports cancel out), the long run alone gives the all-in figure.
smaps coverage: with the tree plus BIG_COUNT processes of BIG_BYTES each (touched once), a
``Sampler(smaps="on", smaps_every=N, smaps_cpu=2 %)`` samples every second for N + a margin (N scaled down from the
default 60 s to keep the run short: a tighter target for the same budget); after the first N seconds every sample's
smaps_stale - smaps_unreadable must be 0 (every readable process alive >= N s has values <= N s old) and the CPU
spent on smaps_rollup (the sampler's own thread CPU count, smaps_cpu_us) must stay within the share. A second run
with a budget too small for everyone shows the shortfall being recorded while the big processes are read most.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from bench.proctree import BigProcesses, ProcTree, levels
from bench.timing import row
from collector.sampler import Sampler

REPO = Path(__file__).resolve().parent.parent
PSUTIL_ATTRS = ["pid", "ppid", "memory_info", "create_time", "name", "cmdline"]
PS_CMD = ["ps", "-eo", "pid=,ppid=,uid=,stat=,rss=,vsz=,nlwp=,etimes=,args="]

FULL = {"extra": 300, "rounds": 21, "long_s": 15.0, "short_s": 1.0, "interval": 0.05}
QUICK = {"extra": 20, "rounds": 3, "long_s": 1.5, "short_s": 0.3, "interval": 0.05}
# smaps coverage runs: target age N (s), samples 1 s apart for N + margin, big processes
SMAPS_FULL = {"every": 15.0, "margin": 15.0, "big_count": 3, "big_bytes": 1100 << 20, "small_cpu": 0.005}
SMAPS_QUICK = {"every": 1.0, "margin": 1.0, "big_count": 1, "big_bytes": 64 << 20, "small_cpu": 0.005}
SMAPS_CPU_SHARE = 0.02

SAMPLER_OFF_MAX = 1.5  # × floor
WHOLE_PROCESS_MAX = 2.0  # × floor
PSUTIL_MIN_RATIO = 4.0
PS_MIN_RATIO = 3.0


def read_all(leaves: tuple[str, ...], proc_root: str = "/proc") -> int:
    """Read every /proc/<pid>/<leaf> for each leaf (os.open/os.read/os.close), parse nothing -> number of processes
    whose first leaf was read."""
    n = 0
    for name in os.listdir(proc_root):
        if not name.isdigit():
            continue
        for leaf in leaves:
            try:
                fd = os.open(f"{proc_root}/{name}/{leaf}", os.O_RDONLY)
            except OSError:
                continue
            try:
                os.read(fd, 4096)
                n += leaf == leaves[0]
            except OSError:
                pass
            finally:
                os.close(fd)
    return n


def read_all_stat_statm(proc_root: str = "/proc") -> int:
    """The floor: read every /proc/<pid>/stat and statm, parse nothing -> number of processes read."""
    return read_all(("stat", "statm"), proc_root)


def read_all_stat(proc_root: str = "/proc") -> int:
    """The previous floor: every /proc/<pid>/stat alone -> number of processes read."""
    return read_all(("stat",), proc_root)


def read_all_stat_and_smaps(proc_root: str = "/proc") -> int:
    """Floor plus every readable /proc/<pid>/smaps_rollup -> number of processes whose stat was read."""
    n = 0
    for name in os.listdir(proc_root):
        if not name.isdigit():
            continue
        for leaf, size in (("stat", 4096), ("smaps_rollup", 65536)):
            try:
                fd = os.open(f"{proc_root}/{name}/{leaf}", os.O_RDONLY)
            except OSError:
                continue
            try:
                os.read(fd, size)
                n += leaf == "stat"
            except OSError:
                pass
            finally:
                os.close(fd)
    return n


def psutil_sample(cold: bool) -> int:
    """psutil.process_iter with PSUTIL_ATTRS, every value fetched -> number of processes."""
    if cold:
        psutil.process_iter.cache_clear()
    n = 0
    for p in psutil.process_iter(PSUTIL_ATTRS):
        if p.info["pid"] is not None:
            n += 1
    return n


def ps_sample() -> int:
    """Run PS_CMD and parse every line into typed fields -> number of processes."""
    out = subprocess.run(PS_CMD, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split(None, 8)
        if len(f) < 8:
            continue
        pid, ppid, uid, stat, rss, vsz, nlwp, etimes = f[:8]
        args = f[8] if len(f) > 8 else ""
        rows.append(
            (int(pid), int(ppid), int(uid), stat, int(rss) * 1024, int(vsz) * 1024, int(nlwp), int(etimes), args)
        )
    return len(rows)


def cpu_s(who: int) -> float:
    """User + system CPU seconds of RUSAGE_SELF or RUSAGE_CHILDREN."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def time_methods(methods: dict[str, Callable[[], int]], rounds: int) -> dict[str, dict[str, list[float]]]:
    """Call every method once per round, rotating the order -> {method: {"wall": µs/proc, "cpu": µs/proc, "n": …}}."""
    names = list(methods)
    for name in names:  # warm-up round, not timed
        methods[name]()
    out: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": [], "n": []} for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            c0 = cpu_s(resource.RUSAGE_SELF) + cpu_s(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            n = methods[name]()
            wall = time.perf_counter() - t0
            cpu = cpu_s(resource.RUSAGE_SELF) + cpu_s(resource.RUSAGE_CHILDREN) - c0
            out[name]["wall"].append(wall / max(n, 1) * 1e6)
            out[name]["cpu"].append(cpu / max(n, 1) * 1e6)
            out[name]["n"].append(n)
    return out


def collector_cpu(duration_s: float, interval_s: float, dumps: Path) -> tuple[float, int, float]:
    """Run `python -m collector` for `duration_s` -> (CPU seconds, samples written, mean processes per sample)."""
    shutil.rmtree(dumps, ignore_errors=True)
    cmd = [sys.executable, "-m", "collector", "--dumps", str(dumps), "--interval", str(interval_s)]
    cmd += ["--duration", str(duration_s), "--smaps", "off"]
    c0 = cpu_s(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=duration_s + 120)
    cpu = cpu_s(resource.RUSAGE_CHILDREN) - c0
    if done.returncode != 0:
        raise RuntimeError(f"collector failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    cli = [sys.executable, "-m", "memlib", "system", "--dumps", str(dumps), "--format", "json"]
    listed = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, timeout=300)
    system = json.loads(listed.stdout) if listed.returncode == 0 else []
    if not system:
        raise RuntimeError(f"collector wrote no sample into {dumps}: {done.stderr.strip()[-400:]} {listed.stderr}")
    return cpu, len(system), sum(r["processes"] for r in system) / len(system)


def smaps_coverage(every_s: float, duration_s: float, cpu_share: float, big: list[int]) -> dict:
    """Sample every second for `duration_s` with smaps on -> figures: CPU share spent on smaps_rollup, the largest
    smaps_stale / smaps_eligible after the first `every_s` seconds, processes per sample, reads, and the oldest
    value of a `big` process after the first `every_s` seconds."""
    s = Sampler(proc_root="/proc", smaps="on", smaps_every=every_s, smaps_cpu=cpu_share)
    t0 = time.monotonic()
    spent_us = reads = 0
    stale: list[float] = []
    eligible: list[int] = []
    procs: list[int] = []
    big_age = 0.0
    unreadable = 0
    last_read: dict[int, int] = {}
    reads_of: dict[int, int] = {}
    k = 0
    try:
        while (due := t0 + k) <= t0 + duration_s:
            time.sleep(max(0.0, due - time.monotonic()))
            sample = s.sample()
            k += 1
            spent_us += sample.meminfo["smaps_cpu_us"]
            reads += int(sample.stats["smaps_read"])
            for pid, when in zip(sample.procs["pid"], sample.procs["smaps_ts"], strict=True):
                if when is not None and last_read.get(pid) != when:
                    last_read[pid] = when
                    reads_of[pid] = reads_of.get(pid, 0) + 1
            if time.monotonic() - t0 < every_s:
                continue
            stale.append(sample.meminfo["smaps_stale"] - sample.meminfo["smaps_unreadable"])
            unreadable = max(unreadable, sample.meminfo["smaps_unreadable"])
            eligible.append(sample.meminfo["smaps_eligible"])
            procs.append(int(sample.stats["processes"]))
            at = {pid: i for i, pid in enumerate(sample.procs["pid"])}
            for pid in big:
                if pid in at and sample.procs["smaps_ts"][at[pid]] is not None:
                    big_age = max(big_age, (sample.ts.value - sample.procs["smaps_ts"][at[pid]]) / 1e9)
                else:
                    big_age = math.inf
        wall = time.monotonic() - t0
    finally:
        s.close()
    return {
        "share": spent_us / 1e6 / wall,
        "stale_max": max(stale, default=0),
        "stale_mean": statistics.mean(stale) if stale else 0.0,
        "eligible": statistics.median(eligible) if eligible else 0,
        "procs": statistics.median(procs) if procs else 0,
        "reads": reads,
        "samples": k,
        "big_age": big_age,
        "unreadable": unreadable,
        "big_reads": statistics.mean(reads_of.get(pid, 0) for pid in big) if big else 0.0,
        "other_reads": statistics.mean([n for pid, n in reads_of.items() if pid not in big] or [0]),
    }


def run(quick: bool = False) -> list[dict]:
    """Collector cost benchmarks -> rows (see the module docstring); `quick` uses few processes and rounds."""
    cfg = QUICK if quick else FULL
    off = Sampler(proc_root="/proc", smaps="off")
    on = Sampler(proc_root="/proc", smaps="on")
    smaps_counts: list[int] = []

    def sample_on() -> int:
        s = on.sample()
        smaps_counts.append(int(s.stats["smaps_read"]))
        return int(s.stats["processes"])

    methods: dict[str, Callable[[], int]] = {
        "floor": read_all_stat_statm,
        "stat_only": read_all_stat,
        "floor+smaps": read_all_stat_and_smaps,
        "sampler_off": lambda: int(off.sample().stats["processes"]),
        "sampler_on": sample_on,
        "psutil_warm": lambda: psutil_sample(cold=False),
        "psutil_cold": lambda: psutil_sample(cold=True),
        "ps": ps_sample,
    }
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="pmi-bench-collector-"))
    try:
        with ProcTree(cfg["extra"]) as tree:
            depth = levels(tree.pids, tree.pids[0])
            res = time_methods(methods, cfg["rounds"])
            alive = sum(os.path.exists(f"/proc/{pid}") for pid in tree.pids)
            long_cpu, long_n, long_procs = collector_cpu(cfg["long_s"], cfg["interval"], work / "long")
            short_cpu, short_n, _ = collector_cpu(cfg["short_s"], cfg["interval"], work / "short")
            sc = SMAPS_QUICK if quick else SMAPS_FULL
            with BigProcesses(sc["big_count"], sc["big_bytes"]) as big:
                span = sc["every"] + sc["margin"]
                cov = smaps_coverage(sc["every"], span, SMAPS_CPU_SHARE, big.pids)
                short = smaps_coverage(sc["every"], span, sc["small_cpu"], big.pids)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {name: statistics.median(r["wall"]) for name, r in res.items()}
    procs = statistics.median(res["floor"]["n"])
    setting = (
        f"{procs:.0f} processes ({cfg['extra']} extra in a tree {depth} levels deep, {alive} of them alive after the "
        f"timed rounds), {cfg['rounds']} rounds"
    )

    def method_row(name: str, label: str, target: str = "", ok: bool | None = None, note: str = "") -> dict:
        cpu = statistics.median(res[name]["cpu"])
        extra = f"CPU {cpu:.1f} µs/proc" + (f"; {note}" if note else "")
        return row(label, res[name]["wall"], "µs/proc", target, ok, extra)

    floor = med["floor"]
    floor_cpu = statistics.median(res["floor"]["cpu"])  # the whole-process figure is CPU time: compared with this
    rows.append(method_row("floor", "(a) read every /proc/<pid>/stat + statm (floor)", note=setting))
    rows.append(
        method_row(
            "stat_only",
            "(a-) read every /proc/<pid>/stat alone (previous floor)",
            note=f"the floor is {floor / med['stat_only']:.2f}× this",
        )
    )
    rows.append(method_row("floor+smaps", "(a') floor + every smaps_rollup"))
    rows.append(
        method_row(
            "sampler_off",
            "(b) Sampler(smaps='off').sample()",
            f"≤ {SAMPLER_OFF_MAX:g}× floor",
            med["sampler_off"] <= SAMPLER_OFF_MAX * floor,
            f"{med['sampler_off'] / floor:.2f}× floor",
        )
    )
    rows.append(
        method_row(
            "sampler_on",
            "(b') Sampler(smaps='on').sample()",
            note=f"{med['sampler_on'] / floor:.2f}× floor; smaps_rollup read for a median of "
            f"{statistics.median(smaps_counts):.0f} processes per sample (only those due within smaps_every, 60 s)",
        )
    )
    rows.append(method_row("psutil_warm", "(c) psutil.process_iter, warm"))
    rows.append(method_row("psutil_cold", "(c') psutil.process_iter, cold"))
    rows.append(method_row("ps", "(d) ps -eo ... + parse", note="wall time includes the ps process"))

    b = med["sampler_off"]
    for name, label, need in (
        ("psutil_warm", "(c) psutil warm ÷ (b) sampler", PSUTIL_MIN_RATIO),
        ("ps", "(d) ps ÷ (b) sampler", PS_MIN_RATIO),
    ):
        ratios = [x / y for x, y in zip(res[name]["wall"], res["sampler_off"]["wall"], strict=True)]
        rows.append(row(label, ratios, "×", f"≥ {need:g}", med[name] / b >= need, "per round, same process set"))

    all_in = long_cpu / long_n / long_procs * 1e6
    steady = (long_cpu - short_cpu) / max(1, long_n - short_n) / long_procs * 1e6
    caveat = ""
    if steady <= 0:  # runs too short (quick mode) or too noisy to subtract the start-up: the all-in upper bound
        steady, caveat = (
            all_in,
            "start-up not separable (the short run cost as much CPU): all-in figure, an upper bound; ",
        )
    rows.append(
        row(
            "collector process CPU per process-sample, steady state",
            [steady],
            "µs/proc",
            f"≤ {WHOLE_PROCESS_MAX:g}× floor",
            steady <= WHOLE_PROCESS_MAX * floor_cpu,
            f"{caveat}{steady / floor_cpu:.2f}× the floor's CPU ({floor_cpu:.1f} µs/proc; {steady / floor:.2f}× its "
            f"wall time); --interval {cfg['interval']:g} --smaps off: {long_n} samples in "
            f"{long_cpu:.2f} s CPU vs {short_n} in {short_cpu:.2f} s; {long_procs:.0f} processes per sample "
            "(includes writing and compaction)",
        )
    )
    rows.append(
        row(
            "collector process CPU per process-sample, all in",
            [all_in],
            "µs/proc",
            note=f"one {cfg['long_s']:g} s run including interpreter start-up and imports",
        )
    )
    big_note = f"{sc['big_count']} processes of {sc['big_bytes'] / 2**30:.2f} GiB (touched)"
    setting = (
        f"~{cov['procs']:.0f} processes ({cov['eligible']:.0f} eligible) incl. {big_note}; smaps_every "
        f"{sc['every']:g} s, 1 s samples for {span:g} s"
    )
    rows.append(
        row(
            f"smaps coverage at {SMAPS_CPU_SHARE:.0%} of a core: processes alive ≥ N s without values ≤ N s old "
            "(budget shortfall: smaps_stale - smaps_unreadable)",
            [cov["stale_max"]],
            "processes",
            "0",
            cov["stale_max"] == 0,
            f"{setting}; {cov['reads']} smaps_rollup reads in {cov['samples']} samples; oldest value of a big "
            f"process {cov['big_age']:.1f} s; unreadable (e.g. PID 1 in a container): {cov['unreadable']}",
        )
    )
    rows.append(
        row(
            "smaps CPU share (thread CPU reading smaps_rollup / wall time)",
            [cov["share"] * 100],
            "% of a core",
            f"≤ {SMAPS_CPU_SHARE * 100:g}",
            cov["share"] <= SMAPS_CPU_SHARE,
            setting,
        )
    )
    rows.append(
        row(
            f"smaps shortfall at {sc['small_cpu'] * 100:g} % of a core: mean smaps_stale - smaps_unreadable",
            [short["stale_mean"]],
            "processes",
            "> 0 (recorded), big read most",
            short["stale_mean"] > 0 and short["big_reads"] > short["other_reads"],
            f"of {short['eligible']:.0f} eligible; CPU share {short['share'] * 100:.3f} %; each big process read "
            f"{short['big_reads']:.1f} times, the others {short['other_reads']:.2f} on average (of those read at "
            f"all); oldest value of a big process {short['big_age']:.1f} s; {short['reads']} reads",
        )
    )
    return rows
