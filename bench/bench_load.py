"""Issue 8 item 6: concurrent viewers. N browser sessions (playwright contexts in one headless chromium) each open
every page of the dashboard at the same time over one generated recording; the server's memory must stay bounded
(the caches in ui/data.py are shared between sessions and capped by max_entries, so 10 viewers cost little more than
one).

Full run: a day at 5 s with 300 processes (``python -m bench.gen_day --hours 24``, cached by bench.bench_memlib),
10 sessions. Targets: server time per page run p50 <= 0.5 s and p95 <= 2 s, 0 errors. The server time is what the
server spends running the page script (ui.nav.run_router times every run into the file PMI_RUN_TIMES names); the
viewers' wall times in chromium are reported beside it (they include the browsers' own work). With two or more
cores the server is pinned to the first and the browsers to the others (sched_setaffinity, as `taskset` does), so
ten chromiums do not stand in the server's queue.
``run(quick=True)``: 3 min of 40 processes, server start and idle
RSS only, no browser (for the smoke test). Rows: server RSS idle / after one warm-up viewer / peak and after the N
concurrent viewers, page errors, p50 and p95 page time (navigation until the page has settled; every `goto` loads the
app afresh, i.e. a new Streamlit session), and the warm-up viewer's first (cold) page time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.timing import row as _row

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
FULL = {"hours": 24.0, "n_procs": 300, "sessions": 10}
QUICK = {"hours": 0.05, "n_procs": 40}  # server only (see quick_rows)
PAGE_PARAMS = {"pid": "?pid=1", "level": "?level=1"}  # url path -> query (pid 1 is init in every recording)
PAGE_TIMEOUT_MS = 180_000
RSS_GROWTH_TARGET = 1.5  # peak RSS with N viewers <= 1.5 x RSS after one viewer
P50_TARGET_S = 0.5
P95_TARGET_S = 2.0
SETTLED_JS = (
    "() => !!document.querySelector('[data-testid=\"stMainBlockContainer\"] h1')"
    " && !document.querySelector('[data-testid=\"stStatusWidget\"]')"
    " && !document.querySelector('[data-stale=\"true\"]')"
)


def page_urls(base: str) -> list[str]:
    """Base URL -> one URL per page file in pages/ (url path = file stem, the overview at `/`), with test params."""
    out = []
    for f in sorted((ROOT / "pages").glob("*.py")):
        path = "" if f.stem == "overview" else f.stem
        out.append(f"{base}/{path}{PAGE_PARAMS.get(path, '')}")
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A `streamlit run serve.py` subprocess (app.py behind the hardened server entry): base url, process, log file
    and the dumps it shows (the browser tests start theirs with this too, see tests/conftest.py)."""

    url: str
    process: subprocess.Popen
    log: Path
    dumps: Path | None = None

    def log_text(self) -> str:
        """The server's combined stdout/stderr so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """Terminate the server (kill after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def rss(self) -> int:
        """Resident bytes of the server process (its children included)."""
        import psutil

        try:
            proc = psutil.Process(self.process.pid)
            return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
        except psutil.Error:
            return 0


def start_server(dumps: Path, log_dir: Path, extra_env: dict[str, str] | None = None, timeout_s: float = 90,
                 cpus: set[int] | None = None) -> Server:  # fmt: skip
    """Start the dashboard on a free port over `dumps` (PMI_TZ=UTC; PMI_TOKEN only when `extra_env` sets it; on the
    CPUs `cpus` when given) and wait until /_stcore/health answers (RuntimeError with the server's log when it exits
    or times out)."""
    port = free_port()
    log = log_dir / f"streamlit-{port}.log"
    env = {**os.environ, "PMI_DUMPS": str(dumps), "PMI_TZ": "UTC", **(extra_env or {})}
    env.pop("PMI_TOKEN", None) if "PMI_TOKEN" not in (extra_env or {}) else None
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "serve.py"), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]  # fmt: skip
    with log.open("wb") as fh:
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=pin)
    server = Server(f"http://127.0.0.1:{port}", proc, log, dumps)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{server.log_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"streamlit did not become healthy in {timeout_s:g} s:\n{server.log_text()[-4000:]}")


@dataclass
class SessionResult:
    """What one viewer saw: seconds per page (url -> s) and the errors met (texts)."""

    times: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def _view_pages(browser, urls: list[str], probe_js: str | None = None) -> SessionResult:
    """One viewer (own browser context = own Streamlit session) opening every url in turn; `probe_js` (a JS
    function returning a problem text or "") is evaluated on every settled page."""
    out = SessionResult()
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda exc: out.errors.append(f"page error: {exc}"))
    try:
        for url in urls:
            t = time.perf_counter()
            try:
                await page.goto(url, wait_until="domcontentloaded", timeout=PAGE_TIMEOUT_MS)
                await page.wait_for_function(SETTLED_JS, timeout=PAGE_TIMEOUT_MS, polling=100)
            except Exception as exc:  # a timeout is an error of this page, the other pages still run
                out.errors.append(f"{url}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            out.times[url] = time.perf_counter() - t
            for sel, what in (
                ('[data-testid="stException"]', "exception"),
                ('[data-testid="stAlertContentError"]', "st.error"),
            ):
                n = await page.locator(sel).count()
                if n:
                    text = (await page.locator(sel).first.inner_text())[:200]
                    out.errors.append(f"{url}: {n} {what}: {text}")
            if probe_js:
                problem = await page.evaluate(probe_js)
                if problem:
                    out.errors.append(f"{url}: {problem}")
    finally:
        await context.close()
    return out


async def _sessions(urls: list[str], n: int, probe_js: str | None, split: bool) -> list[SessionResult]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # viewer i starts at page i: every page is being rendered by someone at the same time
            orders = [urls[i % len(urls) :] + urls[: i % len(urls)] for i in range(n)]
            if split:  # every page once in all, dealt round-robin to the sessions
                orders = [urls[i::n] for i in range(n)]
            return list(await asyncio.gather(*(_view_pages(browser, o, probe_js) for o in orders)))
        finally:
            await browser.close()


def run_sessions(urls: list[str], n: int, probe_js: str | None = None, split: bool = False) -> list[SessionResult]:
    """Open every url in `n` concurrent browser sessions (one chromium; `split`: each url in one session only)
    -> one SessionResult per session."""
    # in a worker thread: the caller may already run an event loop (pytest's sync playwright does)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _sessions(urls, n, probe_js, split)).result()


class PeakRss:
    """Samples the server's RSS every 0.2 s in a thread while active; `.peak` is the maximum seen."""

    def __init__(self, server: Server) -> None:
        self.server, self.peak, self._stop = server, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss())
            self._stop.wait(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.rss())


def write_recording(out: Path, hours: float, n_procs: int) -> str:
    """A generated store of `hours` of about `n_procs` processes at 5 s (bench.gen_day, cached), copied into `out`
    -> a size description."""
    from bench.bench_memlib import recording, summary_of

    src = recording(hours, n_procs)
    shutil.copytree(src, out, dirs_exist_ok=True)
    s = summary_of(src)
    return f"{hours:g} h at 5 s, {s['rows']:,} rows, {s['snapshots']:,} snapshots"


def server_times(path: Path, skip: int = 0) -> list[float]:
    """The PMI_RUN_TIMES file -> seconds of every page script run after the first `skip` lines."""
    import json

    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()[skip:]
    return [float(json.loads(line)["s"]) for line in lines if line.strip()]


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


class _Pinned:
    """Context: this process (and the browsers it starts) on `cpus`, the previous affinity restored after."""

    def __init__(self, cpus: set[int] | None) -> None:
        self.cpus, self.before = cpus, os.sched_getaffinity(0)

    def __enter__(self) -> None:
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)

    def __exit__(self, *exc: object) -> None:
        os.sched_setaffinity(0, self.before)


def _p95(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))] if s else float("nan")


def quick_rows() -> list[dict]:
    """Smoke-test size (no browser: the smoke test's time budget is small; tests/test_sharing.py drives 3 browser
    sessions): serve a 3-minute recording -> server start time and idle RSS rows."""
    with tempfile.TemporaryDirectory(prefix="pmi-bench-load-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "dumps").mkdir()
        size = write_recording(tmp_path / "dumps", QUICK["hours"], QUICK["n_procs"])
        t = time.perf_counter()
        server = start_server(tmp_path / "dumps", tmp_path)
        started = time.perf_counter() - t
        try:
            rss_idle = server.rss()
        finally:
            server.stop()
    note = f"quick: no browser sessions; {size}"
    return [
        _row("server start until healthy", [started], "s", note=note),
        _row("server RSS idle (before any viewer)", [rss_idle / (1 << 20)], "MiB", note=note),
    ]


def run(quick: bool = False) -> list[dict]:
    """Serve a generated recording and open every page in N concurrent browser sessions -> result rows."""
    cfg = QUICK if quick else FULL
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return [_row("browser sessions run", [0.0], "count", note="skipped: python playwright is not installed")]
    if not (CHROMIUM.exists() or shutil.which("chromium")):
        return [_row("browser sessions run", [0.0], "count", note=f"skipped: {CHROMIUM} not found (make browser)")]
    if quick:
        return quick_rows()
    judge = not quick
    n = cfg["sessions"]
    with tempfile.TemporaryDirectory(prefix="pmi-bench-load-") as tmp:
        tmp_path = Path(tmp)
        dumps = tmp_path / "dumps"
        dumps.mkdir()
        size = write_recording(dumps, cfg["hours"], cfg["n_procs"])
        cores = sorted(os.sched_getaffinity(0))
        server_cpus, browser_cpus = ({cores[0]}, set(cores[1:])) if len(cores) > 1 else (None, None)
        run_times = tmp_path / "run_times.jsonl"
        server = start_server(dumps, tmp_path, {"PMI_RUN_TIMES": str(run_times)}, cpus=server_cpus)
        try:
            urls = page_urls(server.url)
            time.sleep(1.0)
            rss_idle = server.rss()
            with PeakRss(server) as warm_peak, _Pinned(browser_cpus):
                (warm,) = run_sessions(urls, 1)  # cold caches: load, index, first tables
            rss_one = server.rss()
            time.sleep(1.0)  # a page can look settled in the browser a moment before its script run has ended
            warm_runs = _line_count(run_times)
            with PeakRss(server) as peak, _Pinned(browser_cpus):
                results = run_sessions(urls, n)
            rss_after = server.rss()
            time.sleep(1.0)
            served = server_times(run_times, warm_runs)
            cold_served = server_times(run_times)[:warm_runs]
            log = server.log.read_text(errors="replace")
        finally:
            server.stop()
    pinned = f"server on CPU {sorted(server_cpus)}, browsers on {sorted(browser_cpus)}" if server_cpus else "unpinned"
    times = [t for r in results for t in r.times.values()]
    errors = [e for r in [warm, *results] for e in r.errors]
    errors += [f"server log: {line.strip()[:200]}" for line in log.splitlines() if "Traceback" in line]
    expected = len(urls) * n
    mib = 1 << 20
    note = f"{n} sessions x {len(urls)} pages; {size}"
    limit = rss_one * RSS_GROWTH_TARGET
    return [
        _row("server RSS idle (before any viewer)", [rss_idle / mib], "MiB", note=note),
        _row(
            "server RSS after one viewer (cold caches filled)",
            [rss_one / mib],
            "MiB",
            note=f"peak during it {warm_peak.peak / mib:.0f} MiB",
        ),
        _row(
            f"server RSS peak with {n} concurrent viewers",
            [peak.peak / mib],
            "MiB",
            f"≤ {RSS_GROWTH_TARGET:g} x after one viewer",
            (peak.peak <= limit) if judge else None,
            note=f"ratio {peak.peak / max(rss_one, 1):.2f}",
        ),
        _row(
            f"server RSS after {n} viewers", [rss_after / mib], "MiB", note=f"ratio {rss_after / max(rss_one, 1):.2f}"
        ),
        _row(
            "page errors (exceptions, st.error, timeouts, tracebacks)",
            [float(len(errors))],
            "count",
            "0",
            len(errors) == 0,
            note="; ".join(errors[:3]),
        ),
        _row("pages rendered", [float(len(times))], "count", f"{expected}", len(times) == expected),
        _row(
            f"server time per page run p50, {n} concurrent viewers",
            served,
            "s",
            f"≤ {P50_TARGET_S:g} s",
            (statistics.median(served) <= P50_TARGET_S) if (judge and served) else None,
            note=f"p95 {_p95(served):.2f} s; {len(served)} script runs; {pinned}",
        ),
        _row(
            f"server time per page run p95, {n} concurrent viewers",
            [_p95(served)] if served else [],
            "s",
            f"≤ {P95_TARGET_S:g} s",
            (_p95(served) <= P95_TARGET_S) if (judge and served) else None,
        ),
        _row(
            f"browser wall time per page p50, {n} concurrent viewers",
            times,
            "s",
            note=f"p95 {_p95(times):.2f} s; navigation until settled, in chromium; {pinned}",
        ),
        _row(
            "server time per page run, one viewer, cold caches",
            cold_served,
            "s",
            note=f"max {max(cold_served, default=float('nan')):.2f} s over {len(cold_served)} runs",
        ),
        _row(
            "page time, one viewer, cold caches (first page)",
            [next(iter(warm.times.values()), float("nan"))],
            "s",
            note=f"all pages of that viewer: {sum(warm.times.values()):.1f} s",
        ),
    ]


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
