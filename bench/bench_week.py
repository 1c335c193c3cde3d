"""The dashboard over generated stores of a day and of 30 days (bench.bench_memlib.recording), in AppTest.

Per page, in a fresh interpreter (a cold server: started as serve.py starts it, ui.nav.preload imports the pages'
libraries, nothing read yet): the server time of the first run of a deep link to the page (ui.nav.run_router timed,
as Streamlit runs app.py), then of a rerun (warm caches); the median of REPEATS fresh servers is judged. Targets: on
a day, every page's first paint <= 1 s and warm reruns <= 150 ms; the Level view's and the PID drill-down's first
paint on 30 days / on 1 day <= 1.5 (cost grows with what is shown, not with history); after visiting every page of
the 30-day recording in one process, its RSS <= 500 MB. ``run(quick=True)``: 0.1 h and 0.5 h, the PID page only,
not judged.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.bench_memlib import recording
from bench.timing import row as _row

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["pages/overview.py", "pages/level.py", "pages/pid.py", "pages/groups.py", "pages/cgroups.py",
         "pages/compare.py", "pages/leaks.py"]  # fmt: skip
PARAMS = {"pages/pid.py": {"pid": "1"}, "pages/level.py": {"level": "1"}}
FIRST_TARGET_S = 1.0
WARM_TARGET_S = 0.15
RATIO_TARGET = 1.5
RSS_TARGET_MB = 500
REPEATS = 5  # fresh servers per page and recording: the median is judged (one cold run varies by ±15 %)

SCRIPT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from streamlit.testing.v1 import AppTest
import ui.nav

ui.nav.preload()  # what serve.py does at server start
times = []
original = ui.nav.run_router
def timed():
    t = time.perf_counter()
    try:
        original()
    finally:
        times.append(time.perf_counter() - t)
ui.nav.run_router = timed

out = {}
for page, params in json.loads(sys.argv[2]):
    at = AppTest.from_file(sys.argv[1] + "/app.py", default_timeout=600)
    for k, v in params.items():
        at.query_params[k] = v
    if page != "pages/overview.py":
        at.switch_page(page)
    at.run()
    cold = times[-1]
    if at.exception:
        raise SystemExit(f"{page}: {at.exception[0].value}")
    at.run()
    out[page] = {"cold": cold, "warm": times[-1]}
status = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith(("VmRSS", "VmHWM")))
out["_rss_mib"] = int(status["VmRSS"].split()[0]) / 1024
out["_hwm_mib"] = int(status["VmHWM"].split()[0]) / 1024
print(json.dumps(out))
"""


def visit(dumps: Path, pages: list[str]) -> dict:
    """Run `pages` one after another in one fresh interpreter over `dumps` -> {page: {cold, warm}, _rss_mib, ...}."""
    env = {**os.environ, "PMI_DUMPS": str(dumps), "PMI_TZ": "UTC"}
    arg = json.dumps([(p, PARAMS.get(p, {})) for p in pages])
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), arg], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=3600, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"pages {pages} on {dumps}: {proc.stderr[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict]:
    """Cold and warm page runs on a day and on 30 days, ratios, RSS after every page -> result rows."""
    small_h, big_h = (0.1, 0.5) if quick else (24.0, 720.0)
    pages = ["pages/pid.py"] if quick else PAGES
    judge = not quick
    rows: list[dict] = []
    first: dict[str, dict[str, float]] = {}
    small, big = ("1 day", "30 days") if not quick else (f"{small_h:g} h", f"{big_h:g} h")
    for label, hours in ((small, small_h), (big, big_h)):
        dumps = recording(hours)
        for page in pages:
            runs = [visit(dumps, [page])[page] for _ in range(REPEATS if judge else 1)]  # each a fresh server
            cold, warm = [r["cold"] for r in runs], [r["warm"] for r in runs]
            first.setdefault(page, {})[label] = statistics.median(cold)
            day = label == small
            rows.append(_row(f"{label}: {page} first paint (cold server)", cold, "s",
                             f"<= {FIRST_TARGET_S} s" if day else "",
                             (statistics.median(cold) <= FIRST_TARGET_S) if judge and day else None))  # fmt: skip
            rows.append(_row(f"{label}: {page} warm rerun", warm, "s", f"<= {WARM_TARGET_S} s" if day else "",
                             (statistics.median(warm) <= WARM_TARGET_S) if judge and day else None))  # fmt: skip
    for page in [p for p in ("pages/level.py", "pages/pid.py") if p in pages]:
        ratio = first[page][big] / first[page][small]
        rows.append(_row(f"{big} / {small}: {page} first paint", [ratio], "x", f"<= {RATIO_TARGET}",
                         (ratio <= RATIO_TARGET) if judge else None))  # fmt: skip
    every = visit(recording(big_h), pages)
    rows.append(_row(f"{big}: dashboard RSS after every page", [every["_rss_mib"]], "MiB", f"<= {RSS_TARGET_MB} MB",
                     (every["_rss_mib"] <= RSS_TARGET_MB) if judge else None,
                     f"peak {every['_hwm_mib']:.0f} MiB; one process, pages in order"))  # fmt: skip
    return rows
