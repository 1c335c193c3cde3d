"""Issue 7 §2: cost of one sample of every process, in µs per process, against the floor and against psutil / ps.

With ``bench.proctree.ProcTree`` adding ~300 idle processes (a tree 4 levels deep), the methods run interleaved,
one call each per round (the order rotates every round), ≥ 15 rounds after a warm-up round; medians per process:
- floor: list /proc and read every /proc/<pid>/stat with os.open/os.read/os.close, nothing parsed;
- floor + smaps_rollup: the same plus every /proc/<pid>/smaps_rollup (what full PSS/USS would cost);
- ``collector.sampler.Sampler(smaps="off"|"on").sample()``, one long-lived sampler each (its caches warm, as in the
  collector); "on" reads smaps_rollup within the sampler's per-sample time budget;
- ``psutil.process_iter`` with pid, ppid, memory_info, create_time, name, cmdline: warm (psutil's process cache kept)
  and cold (cache cleared before the call);
- ``ps -eo pid=,ppid=,uid=,stat=,rss=,vsz=,nlwp=,etimes=,args=`` run and parsed (wall time, ps included).
Whole process: CPU time (RUSAGE_CHILDREN) of ``python -m collector --interval 0.05 --smaps off`` over a long and a
short run; (cpu_long - cpu_short) / (samples_long - samples_short) / processes is the steady-state cost per process
and sample (interpreter start-up and imports cancel out), the long run alone gives the all-in figure.
"""

from __future__ import annotations

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
import pyarrow.parquet as pq

import store
from bench.proctree import ProcTree, levels
from bench.timing import row
from collector.sampler import Sampler

REPO = Path(__file__).resolve().parent.parent
PSUTIL_ATTRS = ["pid", "ppid", "memory_info", "create_time", "name", "cmdline"]
PS_CMD = ["ps", "-eo", "pid=,ppid=,uid=,stat=,rss=,vsz=,nlwp=,etimes=,args="]

FULL = {"extra": 300, "rounds": 21, "long_s": 15.0, "short_s": 1.0, "interval": 0.05}
QUICK = {"extra": 20, "rounds": 3, "long_s": 1.5, "short_s": 0.3, "interval": 0.05}

SAMPLER_OFF_MAX = 1.5  # × floor
WHOLE_PROCESS_MAX = 2.0  # × floor
PSUTIL_MIN_RATIO = 4.0
PS_MIN_RATIO = 3.0


def read_all_stat(proc_root: str = "/proc") -> int:
    """The floor: read every /proc/<pid>/stat (os.open/os.read), parse nothing -> number of processes read."""
    n = 0
    for name in os.listdir(proc_root):
        if not name.isdigit():
            continue
        try:
            fd = os.open(f"{proc_root}/{name}/stat", os.O_RDONLY)
        except OSError:
            continue
        try:
            os.read(fd, 4096)
            n += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return n


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
    closed, _ = store.list_closed(dumps)
    rows = {t: sum(pq.read_metadata(f.path).num_rows for f in closed if f.table == t) for t in ("procs", "system")}
    samples = rows["system"]
    if samples == 0:
        raise RuntimeError(f"collector wrote no sample into {dumps}: {done.stderr.strip()[-400:]}")
    return cpu, samples, rows["procs"] / samples


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
        "floor": read_all_stat,
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
    rows.append(method_row("floor", "(a) read every /proc/<pid>/stat (floor)", note=setting))
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
            f"{statistics.median(smaps_counts):.0f} processes per sample (time budget)",
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
            steady <= WHOLE_PROCESS_MAX * floor,
            f"{caveat}{steady / floor:.2f}× floor; --interval {cfg['interval']:g} --smaps off: {long_n} samples in "
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
    return rows
