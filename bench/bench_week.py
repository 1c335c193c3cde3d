"""Issue 7 item 4: seven days browsable, any page <= 1 s and peak RSS <= 2 GB.

A generated week (``bench.gen_week``: 7 days at 5 s, 300 processes, ~36 M process-samples in 168 hourly segments) is
written once into ``/tmp/pmi-bench-week-cache/week`` and reused while its marker matches (generating takes minutes).
Then, each in a fresh interpreter (peak RSS = VmHWM of that process):

a. ``memlib.load.load_dumps(path, window=(lo, hi))`` on the last 24 h: cold, then warm (same call again);
b. the window moved to another day (day 4: T0 + 72 h .. T0 + 96 h) in the same process: a cold load of those segments;
c. the dashboard (Streamlit AppTest, as bench/bench_dashboard.py: overview, level view, pid drill-down pid=1, then the
   overview with the URL ``from``/``to`` on day 4) with ``PMI_DUMPS`` on the week, as one session (caches cold once,
   then each page's first visit and warm reruns; the peak RSS of that session is the one judged), then each page's
   first load again on cleared caches. The dashboard loads the last 24 h of process rows by default.

The loader's ``window`` keyword is recent: without it the rows are reported with ok=None and the note "loader has no
window yet", and the full run skips the dashboard (it would load all 36 M rows). A watchdog kills a measuring process
whose RSS passes RSS_CAP_MIB (the machine is shared). ``run(quick=True)``: 2 days of half an hour at 60 s, never judged.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from bench.gen_week import read_marker, write_week
from bench.timing import row, timing_row

REPO = Path(__file__).resolve().parent.parent
CACHE = Path("/tmp/pmi-bench-week-cache")
FULL = {"days": 7, "interval_s": 5.0, "n_procs": 300, "seed": 0, "day_hours": 24.0}
QUICK = {"days": 2, "interval_s": 60.0, "n_procs": 30, "seed": 0, "day_hours": 0.5}
PAGE_TARGET_S = 1.0
RSS_TARGET_MIB = 2048
WRITER_TARGET_MIB = 3072
RSS_CAP_MIB = 6144  # watchdog: a measuring process above this is killed (it has failed the target anyway)
NO_WINDOW = "loader has no window yet"

# fresh interpreter: load_dumps with a window (last day cold, warm, then another day) -> one JSON line
LOAD_SCRIPT = """
import json, sys, time
import pandas as pd
t = time.perf_counter()
from memlib.load import load_dumps
imports = time.perf_counter() - t
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
args = json.loads(sys.argv[1])
path, warm_n = args["path"], args["warm"]
if not args["use_window"]:  # a loader without the window keyword (quick runs only: tiny recordings)
    _load = load_dumps
    load_dumps = lambda p, window=None: _load(p)
last = tuple(pd.Timestamp(x) for x in args["last"])
other = tuple(pd.Timestamp(x) for x in args["other"])
out = {"imports_s": imports, "rss_after_imports_mib": hwm()}
import gc
def shape(ds):
    ts = ds.procs["ts"]
    return {"rows": len(ds.procs), "snapshots": len(ds.snapshots), "system_rows": len(ds.system),
            "procs_from": ts.min().isoformat() if len(ts) else None,
            "procs_to": ts.max().isoformat() if len(ts) else None}
try:
    t = time.perf_counter()
    ds = load_dumps(path, window=last)
    out["cold_s"] = time.perf_counter() - t
except TypeError as e:
    if "window" not in str(e):
        raise
    out["no_window"] = str(e)
    print(json.dumps(out))
    sys.exit(0)
out["peak_after_cold_mib"] = hwm()
out["last"] = shape(ds)
out["warm_s"] = []
for _ in range(warm_n):
    t = time.perf_counter()
    load_dumps(path, window=last)
    out["warm_s"].append(time.perf_counter() - t)
del ds
gc.collect()
t = time.perf_counter()
ds = load_dumps(path, window=other)
out["other_s"] = time.perf_counter() - t
out["other"] = shape(ds)
out["peak_mib"] = hwm()
print(json.dumps(out))
"""

# fresh interpreter: the dashboard pages through AppTest on PMI_DUMPS -> one JSON line
DASH_SCRIPT = """
import gc, json, sys
args = json.loads(sys.argv[1])
import streamlit as st
from bench.bench_dashboard import _ScriptTimer, _run_page, _check, _wait_for_background
from memlib import load
from ui import data
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
def release():  # the previous AppTest session (its page namespace holds the Dataset it showed) is closed, as a
    global at  # browser tab that moved on: a real session reruns in place instead of living on beside the next one
    at = None
    gc.collect()
def clear():
    st.cache_resource.clear()
    st.cache_data.clear()
    load.clear_cache()
    data._BACKGROUND.clear()
    gc.collect()
out = {"session": [], "cold": [], "rss_after_imports_mib": status("VmHWM:")}
with _ScriptTimer() as timer:
    # 1. one user's session as a server sees it: caches cold once, then every page (first visit, warm reruns)
    clear()
    for name, page, params in args["pages"]:
        release()
        first, at = _run_page(timer, page, params)
        _check(at, name)
        if _wait_for_background():  # the first paint showed the last hour: time the page once the window is in
            release()
            whole, at = _run_page(timer, page, params)
            _check(at, name)
        warm = []
        for _ in range(args["warm"]):
            release()
            t, at = _run_page(timer, page, params)
            _check(at, name)
            warm.append(t)
        out["session"].append({"name": name, "first_s": first, "warm_s": warm, "hwm_mib": status("VmHWM:")})
    out["session_peak_mib"] = status("VmHWM:")
    # 2. each other page's first load on cold caches (cleared before each; the peak above no longer grows only
    #    with what one session holds, so it is reported apart)
    for name, page, params in args["pages"][1:] if args["cold"] else []:
        clear()
        release()
        first, at = _run_page(timer, page, params)
        _check(at, name)
        out["cold"].append({"name": name, "first_s": first, "rss_after_mib": status("VmRSS:")})
    release()
    clear()
    out["rss_after_clear_mib"] = status("VmRSS:")
out["peak_mib"] = status("VmHWM:")
print(json.dumps(out))
"""

PAGES = [
    ("overview", None, {}),
    ("level view", "pages/level.py", {"level": "2"}),
    ("pid drill-down (pid 1)", "pages/pid.py", {"pid": "1"}),
]


def value_row(name: str, value: float, unit: str, target: str = "", ok: bool | None = None, note: str = "") -> dict:
    """A single-valued result row (sizes, peak RSS)."""
    return row(name, [value], unit, target, ok, note)


def has_window() -> bool:
    """Whether memlib.load.load_dumps takes the `window` keyword (the contract this bench is written against)."""
    from memlib import load

    return "window" in inspect.signature(load.load_dumps).parameters


def run_json(script: str, args: dict, env: dict | None = None, timeout: float = 1800) -> dict:
    """Run `script` in a fresh interpreter with json(args) as argv[1] -> its last stdout line as JSON.

    A watchdog polls the child's RSS and kills it above RSS_CAP_MIB (RuntimeError naming the cap).
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(args)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # drain the pipes in threads so that a chatty child cannot block on a full pipe while we poll
    chunks: dict[str, list[str]] = {"out": [], "err": []}
    readers = [
        threading.Thread(target=lambda s=s, k=k: chunks[k].append(s.read()), daemon=True)
        for s, k in ((proc.stdout, "out"), (proc.stderr, "err"))
    ]
    for r in readers:
        r.start()
    deadline = time.monotonic() + timeout
    killed = ""
    while proc.poll() is None:
        rss = _rss_mib(proc.pid)
        if rss > RSS_CAP_MIB:
            killed = f"killed by the watchdog at {rss:.0f} MiB RSS (cap {RSS_CAP_MIB} MiB)"
        elif time.monotonic() > deadline:
            killed = f"killed after the {timeout:.0f} s timeout"
        if killed:
            proc.kill()
            break
        time.sleep(0.2)
    proc.wait()
    for r in readers:
        r.join(timeout=10)
    stdout, stderr = "".join(chunks["out"]), "".join(chunks["err"])
    if killed:
        raise RuntimeError(killed)
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed ({proc.returncode}): {stderr.strip()[-1500:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def cached_week(cfg: dict) -> tuple[Path, dict, bool]:
    """The full week under CACHE: reuse it when its marker matches cfg, else generate it (in a fresh interpreter, so
    the writer's peak RSS is its own) -> (path, generation summary, reused)."""
    path = CACHE / "week"
    summary = read_marker(path, **cfg)
    if summary is not None:
        return path, summary, True
    shutil.rmtree(path, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "bench.gen_week", str(path), "--days", str(cfg["days"])]
    cmd += ["--interval", str(cfg["interval_s"]), "--procs", str(cfg["n_procs"]), "--seed", str(cfg["seed"])]
    cmd += ["--day-hours", str(cfg["day_hours"])]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"gen_week failed: {done.stderr.strip()[-1500:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if read_marker(path, **cfg) is None:
        raise RuntimeError("gen_week finished but its marker does not match")
    return path, summary, False


def windows(summary: dict, cfg: dict) -> tuple[tuple[str, str], tuple[str, str]]:
    """(last day, another day) as (lo, hi) ISO UTC: the last `day_hours` of the recording, and day 4 (or day 1)."""
    last = pd.Timestamp(summary["last_ts"])
    first = pd.Timestamp(summary["first_ts"])
    day = pd.Timedelta(hours=cfg["day_hours"])
    step = pd.Timedelta(seconds=cfg["interval_s"])
    lo = last - day + step  # exactly one day of snapshots
    d = 3 if cfg["days"] > 4 else 0
    other = (first + d * day, first + (d + 1) * day - step)
    return (lo.isoformat(), last.isoformat()), (other[0].isoformat(), other[1].isoformat())


def run(quick: bool = False) -> list[dict]:
    """The week benchmark -> result rows (see the module docstring)."""
    cfg = QUICK if quick else FULL
    judge = not quick
    rows: list[dict] = []
    tmp = None
    try:
        if quick:
            tmp = Path(tempfile.mkdtemp(prefix="pmi-bench-week-"))
            path = tmp / "week"
            summary, reused = write_week(path, **cfg), False
        else:
            path, summary, reused = cached_week(cfg)
        size = (
            f"{cfg['days']} days of {cfg['day_hours']:g} h at {cfg['interval_s']:g} s, {summary['rows']:,} rows, "
            f"{summary['snapshots']:,} snapshots, {summary['segments']} hourly segments"
        )
        how = (
            f"cached copy reused ({CACHE / 'week'}); generated earlier in {summary['seconds']:.0f} s"
            if reused
            else f"generated now in {summary['seconds']:.0f} s" + ("" if quick else f" into {path}")
        )
        rows.append(
            value_row(
                "week on disk",
                summary["bytes"] / 2**20,
                "MiB",
                note=f"{size}; {summary['bytes'] / max(1, summary['rows']):.2f} B per process-sample; {how}",
            )
        )
        writer = summary["peak_rss_mib"]
        rows.append(
            value_row(
                "peak RSS of the week writer (one day in memory at a time)",
                writer,
                "MiB",
                f"< {WRITER_TARGET_MIB}",
                (writer < WRITER_TARGET_MIB) if judge else None,
                "VmHWM of the bench process (write_week in process)"
                if quick
                else "VmHWM of python -m bench.gen_week" + (" (from the cached run's marker)" if reused else ""),
            )
        )
        rows += _loader_rows(path, summary, cfg, judge)
        rows += _dashboard_rows(path, summary, cfg, judge, quick)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _loader_rows(path: Path, summary: dict, cfg: dict, judge: bool) -> list[dict]:
    last, other = windows(summary, cfg)
    window = has_window()
    if not window and judge:  # the whole week would be loaded: not measured (no verdict either way)
        return [value_row("(a) load_dumps, last 24 h window", float("nan"), "s", note=f"{NO_WINDOW}: not measured")]
    res = run_json(LOAD_SCRIPT, {"path": str(path), "warm": 3, "last": last, "other": other, "use_window": window})
    if "no_window" in res:  # the keyword is declared but refused
        note = f"{NO_WINDOW}: {res['no_window']}"
        return [value_row("(a) load_dumps, last 24 h window", float("nan"), "s", note=note)]
    if not window:
        judge = False
    got = res["last"]
    shape = (
        f"{got['rows']:,} process rows ({got['procs_from']} .. {got['procs_to']}), {got['system_rows']:,} system rows"
    )
    o = res["other"]
    return [
        timing_row(
            "(a) load_dumps, last 24 h window, cold (fresh process)",
            [res["cold_s"]],
            None,
            judge,
            f"window {last[0]} .. {last[1]}; {shape}; imports {res['imports_s']:.2f} s not counted"
            + ("" if window else f"; {NO_WINDOW}: loaded without it"),
        ),
        timing_row("(a) load_dumps, same window again (warm)", res["warm_s"], PAGE_TARGET_S, judge, "unchanged files"),
        timing_row(
            "(b) load_dumps, window moved to another day (cold for it)",
            [res["other_s"]],
            None,
            judge,
            f"window {other[0]} .. {other[1]} in the same process; {o['rows']:,} process rows "
            f"({o['procs_from']} .. {o['procs_to']})",
        ),
        value_row(
            "(a+b) peak RSS of the loading process",
            res["peak_mib"],
            "MiB",
            f"≤ {RSS_TARGET_MIB}",
            (res["peak_mib"] <= RSS_TARGET_MIB) if judge else None,
            f"VmHWM; {res['peak_after_cold_mib']:.0f} MiB after the first load, "
            f"{res['rss_after_imports_mib']:.0f} MiB after imports",
        ),
    ]


def _dashboard_rows(path: Path, summary: dict, cfg: dict, judge: bool, quick: bool) -> list[dict]:
    if not quick and not has_window():
        note = f"{NO_WINDOW}: skipped (the dashboard would load every row of the week)"
        return [value_row("(c) dashboard pages on the week", float("nan"), "s", note=note)]
    _, other = windows(summary, cfg)
    moved = {k: pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%SZ") for k, v in zip(("from", "to"), other, strict=True)}
    pages = PAGES[:1] if quick else [*PAGES, ("overview, window moved to another day", None, moved)]
    warm = 1 if quick else 3
    env = {"PMI_DUMPS": str(path), "PMI_TZ": "UTC"}
    res = run_json(DASH_SCRIPT, {"pages": pages, "warm": warm, "cold": not quick}, env=env)
    window_note = "" if has_window() else f"; {NO_WINDOW} (every row loaded)"
    rows = []
    for i, p in enumerate(res["session"]):
        how = "first load (cold caches)" if i == 0 else "first visit in the session (earlier pages' caches warm)"
        rows.append(timing_row(f"(c) {p['name']}: {how}", [p["first_s"]], None, judge, "server time"))
        rows.append(
            timing_row(
                f"(c) {p['name']}: rerun, warm cache",
                p["warm_s"],
                PAGE_TARGET_S,
                judge,
                f"server time of the script run; session peak RSS so far {p['hwm_mib']:.0f} MiB{window_note}",
            )
        )
    rows.append(
        value_row(
            "(c) peak RSS of the dashboard process (one session, every page)",
            res["session_peak_mib"],
            "MiB",
            f"≤ {RSS_TARGET_MIB}",
            (res["session_peak_mib"] <= RSS_TARGET_MIB) if judge else None,
            f"VmHWM after the session above; {res['rss_after_imports_mib']:.0f} MiB after imports",
        )
    )
    for p in res["cold"]:
        rows.append(
            timing_row(
                f"(c) {p['name']}: first load (cold caches)",
                [p["first_s"]],
                None,
                judge,
                f"caches cleared first; RSS after it {p['rss_after_mib']:.0f} MiB",
            )
        )
    if res["cold"]:
        rows.append(
            value_row(
                "(c) peak RSS of the dashboard process, caches cleared between pages",
                res["peak_mib"],
                "MiB",
                note=f"VmHWM over the session and the cold loads; RSS after clearing every cache and gc "
                f"{res['rss_after_clear_mib']:.0f} MiB (what clearing does not give back)",
            )
        )
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(f"{r['name']:<62} {r['value']:>10.3f} {r['unit']:<4} {r['target'] or '-':<8} ok={r['ok']}  {r['note']}")
