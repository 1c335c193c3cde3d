"""Dashboard page server time (issue 4, item 10): a day of 5 s history (~5 M rows) in the native store, each page run
through Streamlit's AppTest (the script's server-side time, no browser).

Targets: a page rerun on a warm cache <= 300 ms; the first load of the app (cold caches: load the store, build the
tree index, the system summary and the page's tables) <= 2 s. `run(quick=True)` uses a quarter of an hour and does not
judge the targets (ok is None).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.timing import timing_row as _row

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    ("overview", None, {}),
    ("level view", "pages/level.py", {"level": "2"}),
    ("level view, filtered", "pages/level.py", {"level": "1", "min_rss_mb": "10", "match": "a"}),
    ("pid drill-down", "pages/pid.py", {"pid": "1"}),
]
WARM_TARGET_S = 0.3
FIRST_TARGET_S = 2.0


def _write_recording(out: Path, hours: float) -> str:
    from bench.bench_store import write_via_compaction
    from bench.gen_day import generate

    procs, system = generate(hours=hours)
    write_via_compaction(procs, system, out)
    return f"{len(procs):,} rows, {procs['snap'].nunique():,} snapshots"


def _app(page: str | None, params: dict[str, str]):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for k, v in params.items():
        at.query_params[k] = v
    return at, page


class _ScriptTimer:
    """Wraps ui.nav.run_router (what app.py calls) to record the script's own server time of each run."""

    def __init__(self) -> None:
        import ui.nav

        self.module = ui.nav
        self.original = ui.nav.run_router
        self.times: list[float] = []

    def __enter__(self) -> _ScriptTimer:
        def timed() -> None:
            t = time.perf_counter()
            try:
                self.original()
            finally:
                self.times.append(time.perf_counter() - t)

        self.module.run_router = timed
        return self

    def __exit__(self, *exc: object) -> None:
        self.module.run_router = self.original


def _run_page(timer: _ScriptTimer, page: str | None, params: dict[str, str]) -> tuple[float, object]:
    """Run app.py straight on `page` (a deep link) with URL `params` -> (server seconds of the run, the AppTest)."""
    at, page = _app(page, params)
    if page is not None:
        at.switch_page(page)
    at.run()
    return timer.times[-1], at


def _check(at: object, name: str) -> None:
    if at.exception:  # type: ignore[attr-defined]
        raise RuntimeError(f"{name}: the page raised: {at.exception[0].value}")  # type: ignore[attr-defined]


def _wait_for_background() -> bool:
    """Wait for the dashboard's background loads (ui.data) -> True when the first paint was a partial one."""
    from ui import data

    futures = list(data._BACKGROUND.values())
    for fut in futures:
        fut.result()
    return bool(futures)


def run(quick: bool = False) -> list[dict]:
    """Time each page's first load (cold caches) and warm reruns on a generated day -> result rows."""
    hours, repeats = (0.25, 3) if quick else (24, 5)
    judge = not quick
    tmp = Path(tempfile.mkdtemp(prefix="pmi-bench-dash-"))
    saved = {k: os.environ.get(k) for k in ("PMI_DUMPS", "PMI_TZ")}
    try:
        size = _write_recording(tmp, hours)
        os.environ["PMI_DUMPS"], os.environ["PMI_TZ"] = str(tmp), "UTC"
        rows = []
        with _ScriptTimer() as timer:
            rows += _measure(timer, repeats, judge, size)
        return rows
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(timer: _ScriptTimer, repeats: int, judge: bool, size: str) -> list[dict]:
    import streamlit as st

    from memlib import load
    from ui import data

    rows = []
    for name, page, params in PAGES:
        st.cache_resource.clear()
        st.cache_data.clear()
        load.clear_cache()
        data._BACKGROUND.clear()
        t0 = time.perf_counter()
        first, at = _run_page(timer, page, params)
        _check(at, name)
        partial = _wait_for_background()
        whole, at = _run_page(timer, page, params)
        _check(at, name)
        total = time.perf_counter() - t0
        how = "the last hour, the rest loading in the background" if partial else "the whole recording"
        rows.append(_row(f"{name}: first load (cold caches)", [first], FIRST_TARGET_S, judge, f"{size}; shows {how}"))
        if partial:
            rows.append(
                _row(f"{name}: whole recording on screen (cold start)", [total], None, judge,
                     f"first paint + background load + the rerun that shows it (that rerun: {whole:.2f} s)")
            )  # fmt: skip
        warm = []
        for _ in range(repeats):
            t, at = _run_page(timer, page, params)
            _check(at, name)
            warm.append(t)
        rows.append(_row(f"{name}: rerun, warm cache", warm, WARM_TARGET_S, judge, "server time of the script run"))
    return rows


if __name__ == "__main__":
    import sys

    for r in run(quick="--quick" in sys.argv):
        print(
            f"{r['name']:<45} median {r['median_s'] * 1000:8.1f} ms  (min {r['min_s'] * 1000:.1f}, "
            f"max {r['max_s'] * 1000:.1f}, n={r['repeats']})  target {r['target']}  ok={r['ok']}"
        )
