"""memlib on generated stores queried in place: a day and 30 days (``python -m bench.gen_day``, 5 s, ~300 processes).

Targets: the CLI's ``snapshot --at T`` as a whole process (interpreter start, open, resolve, query, print) on 30 days
<= 1.5 s and peak RSS <= 300 MB; cost grows with what is shown, not with history: a moment's tree, one process's
timeline, its shell's children trends and the system series over the last 24 h (600 buckets, what the pages show
first) on 30 days / on 1 day <= 1.5. Timed for information (median of repeats, warm files): resolve, the timeline over
the process's whole life and the system series over the whole recording (these scan every row of the range), stats
of every process over the last hour, groups by user (600 buckets), leak scores over the last 6 hours.

Recordings are generated once into ``$PMI_BENCH_CACHE`` (default /tmp/pmi-bench) and reused while their parameters
match. ``run(quick=True)``: 0.1 h and 0.5 h recordings, one CLI run each, targets not judged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bench.timing import row as _value_row
from bench.timing import time_calls as _time
from bench.timing import timing_row as _row

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PMI_BENCH_CACHE", "/tmp/pmi-bench"))
CLI_TARGET_S = 1.5
CLI_RSS_TARGET_MB = 300
RATIO_TARGET = 1.5
BINS = 600


STORE_FORMAT = 2  # what the store writes (2: process sums in the system rows); a cached recording of another is remade


def recording(hours: float, procs: int = 300) -> Path:
    """A generated store of `hours` (bench.gen_day), made once and cached -> its directory."""
    out = CACHE / f"gen-{hours:g}h-{procs}p-f{STORE_FORMAT}"
    done = out / ".complete.json"  # files starting with '.' are not data
    if done.exists():
        return out
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    cmd = [sys.executable, "-m", "bench.gen_day", "--out", str(out), "--hours", f"{hours:g}", "--procs", str(procs)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    done.write_text(proc.stdout.strip().splitlines()[-1])
    return out


def summary_of(path: Path) -> dict:
    """The generator's summary line of a cached recording (rows, snapshots, bytes...)."""
    return json.loads((path / ".complete.json").read_text())


# `python -m memlib ARGV` that reports its own peak RSS (KiB) and CPU seconds on stderr when it exits. The peak is
# VmHWM of its own address space: ru_maxrss would also count the parent's RSS at fork (kept across exec on Linux).
_MEASURED = (
    "import resource, runpy, sys\n"
    "sys.argv = ['memlib', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('memlib', run_name='__main__')\n"
    "finally:\n    r = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
    "    print('rusage', hwm, r.ru_utime, r.ru_stime, file=sys.stderr)\n"
)


def cli_run(dumps: Path, *argv: str) -> tuple[float, float, int, float]:
    """`python -m memlib ARGV --dumps DUMPS` in a fresh interpreter -> (wall seconds, peak RSS MiB, output bytes,
    CPU seconds user + system)."""
    cmd = [sys.executable, "-c", _MEASURED, *argv, "--dumps", str(dumps)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.decode()[-500:]}")
    peak_kib, user, system = proc.stderr.decode().strip().splitlines()[-1].split()[1:]
    return wall, int(peak_kib) / 1024, len(proc.stdout), float(user) + float(system)


def _typed_time(rec, fraction: float) -> str:
    """A time a user would type: `fraction` into the recording, whole seconds, not necessarily a sample."""
    lo, hi = rec.span
    return (lo + (hi - lo) * fraction).floor("s").strftime("%Y-%m-%dT%H:%M:%SZ")


def _query_rows(path: Path, label: str, repeats: int, judge: bool) -> tuple[list[dict], dict[str, float]]:
    from memlib import query, source

    source.clear_cache()
    t = time.perf_counter()
    rec = source.open_recording(path)
    open_s = time.perf_counter() - t
    at = _typed_time(rec, 0.5)
    m = query.resolve(rec, at)
    leaker = query.process(rec, int(query.moment(rec, m).query("name == 'leaky-worker'")["pid"].iloc[0]))
    shell = query.ancestors(rec, leaker, m).iloc[-2]
    shell_p = query.Proc(str(shell["host"]), str(shell["boot_id"]), int(shell["pid"]), shell["start_time"])
    end = rec.span[1]
    day = end - pd.Timedelta(hours=24)
    calls = {
        "resolve": lambda: query.resolve(rec, at),
        "moment (whole tree)": lambda: query.moment(rec, m),
        f"timeline, last 24 h, {BINS} buckets": lambda: query.timeline(rec, leaker, day, end, bins=BINS),
        f"children trends, last 24 h, {BINS} buckets": lambda: query.children(rec, shell_p, "rss", day, end, BINS),
        f"system series, last 24 h, {BINS} buckets": lambda: query.system(rec, day, end, bins=BINS),
        f"timeline, whole life, {BINS} buckets": lambda: query.timeline(rec, leaker, bins=BINS),
        f"system series, whole recording, {BINS} buckets": lambda: query.system(rec, bins=BINS),
        "stats of every process, last hour": lambda: query.stats(rec, end - pd.Timedelta(hours=1), end),
        f"groups by user, {BINS} buckets": lambda: query.groups(rec, "user", bins=BINS),
        "leak scores, last 6 h": lambda: query.leak_scores(rec, end - pd.Timedelta(hours=6), end),
    }
    rows = [_value_row(f"{label}: open_recording (unchanged files)", [open_s], "s", note="first call in the process")]
    medians = {}
    for name, fn in calls.items():
        values = _time(fn, repeats)
        medians[name] = sorted(values)[len(values) // 2]
        rows.append(_row(f"{label}: {name}", values, None, judge))
    return rows, medians


def run(quick: bool = False) -> list[dict]:
    """Generate (or reuse) a day and 30 days, run the CLI and the queries on both -> result rows."""
    small_h, big_h, repeats = (0.1, 0.5, 1) if quick else (24.0, 720.0, 5)
    judge = not quick
    small, big = recording(small_h), recording(big_h)
    small_label, big_label = ("1 day", "30 days") if not quick else (f"{small_h:g} h", f"{big_h:g} h")
    rows = []
    for label, path in ((small_label, small), (big_label, big)):
        s = summary_of(path)
        size = f"{s['snapshots']:,} snapshots, {s['bytes'] / 2**20:.0f} MiB, {s['bytes_per_row']} B/row"
        rows.append(_value_row(f"{label}: recording", [s["rows"]], "rows", note=size))
    from memlib import source

    for label, path, target in ((small_label, small, False), (big_label, big, judge)):
        rec = source.open_recording(path)
        at = _typed_time(rec, 0.5)
        runs = [cli_run(path, "snapshot", "--at", at, "--format", "csv") for _ in range(1 if quick else 3)]
        walls, peaks = [r[0] for r in runs], [r[1] for r in runs]
        cpu = sorted(r[3] for r in runs)[len(runs) // 2]
        note = f"--at {at}, {runs[0][2]:,} bytes printed, CPU {cpu:.2f} s (median), load {os.getloadavg()[0]:.1f}"
        rows.append(_value_row(f"CLI snapshot --at, {label}, whole process", walls, "s", f"<= {CLI_TARGET_S} s",
                               (max(walls) <= CLI_TARGET_S) if target else None, note))  # fmt: skip
        rows.append(_value_row(f"CLI snapshot --at, {label}, peak RSS", peaks, "MiB", f"<= {CLI_RSS_TARGET_MB} MB",
                               (max(peaks) <= CLI_RSS_TARGET_MB) if target else None))  # fmt: skip
    small_rows, small_t = _query_rows(small, small_label, repeats, judge)
    big_rows, big_t = _query_rows(big, big_label, repeats, judge)
    rows += small_rows + big_rows
    shown = [f"{what}, last 24 h, {BINS} buckets" for what in ("timeline", "children trends", "system series")]
    shown = ["moment (whole tree)", *shown]
    for name in shown:
        ratio = big_t[name] / small_t[name]
        rows.append(_value_row(f"{big_label} / {small_label}: {name}", [ratio], "x", f"<= {RATIO_TARGET}",
                               (ratio <= RATIO_TARGET) if judge else None))  # fmt: skip
    return rows
