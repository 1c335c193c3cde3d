"""Shared fixtures: a `streamlit run serve.py` server on a free port, and a headless Debian chromium via playwright.

Under `CI=true` a missing browser (or playwright) is a test failure, never a skip (the CI entry point relies on it).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.bench_load import Server, start_server
from tests.spark_cluster import spark_cluster, spark_env  # noqa: F401  (fixtures for the Spark tests)

ROOT = Path(__file__).resolve().parent.parent
SEED_DUMPS = ROOT / "tests" / "data" / "seed"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT_S = 60


def in_ci() -> bool:
    """True when running under CI (browser tests must run there)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


StreamlitServer = Server  # a running `streamlit run app.py`: url, process, log, dumps, stop(), log_text()


def start_streamlit(dumps: Path, log_dir: Path, extra_env: dict[str, str] | None = None) -> StreamlitServer:
    """Start `streamlit run serve.py` on a free port showing `dumps` (PMI_TZ=UTC); wait for /_stcore/health."""
    return start_server(dumps, log_dir, extra_env, timeout_s=SERVER_START_TIMEOUT_S)


@pytest.fixture(scope="session")
def seed_dumps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the seed-format example dumps shipped with the tests (UTC stamps): opening it imports the CSVs into
    a store beside them, so the copy keeps that cache out of the repository."""
    if not (SEED_DUMPS / "time").is_dir():
        pytest.fail(f"missing test data: {SEED_DUMPS}/time")
    copy = tmp_path_factory.mktemp("seed") / "seed"
    shutil.copytree(SEED_DUMPS / "time", copy / "time")
    return copy


@pytest.fixture(scope="session")
def streamlit_server(seed_dumps: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    """One shared server over the seed dumps for the browser tests (started once per session)."""
    server = start_streamlit(seed_dumps, tmp_path_factory.mktemp("server"))
    yield server
    server.stop()


@pytest.fixture
def fresh_server(tmp_path: Path, seed_dumps: Path) -> Iterator[Callable[..., StreamlitServer]]:
    """Factory: start a brand-new server (e.g. for a deep link opened first; default: the seed dumps' copy);
    stopped after the test."""
    started: list[StreamlitServer] = []

    def start(dumps: Path | None = None, **env: str) -> StreamlitServer:
        server = start_streamlit(dumps or seed_dumps, tmp_path, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Debian chromium driven by playwright; skipped locally when missing, a failure under CI=true."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the machine
        missing = "python playwright is not installed (pip install -r requirements-dev.txt)"
    if missing is None and not (CHROMIUM.exists() or shutil.which("chromium")):
        missing = f"{CHROMIUM} not found (make browser installs Debian chromium)"
    if missing is not None:
        if in_ci():
            pytest.fail(f"browser tests must run under CI: {missing}")
        pytest.skip(missing)
    executable = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


HOSTILE_CMD = "**pwn**$x$<i>i ![x](http://example.invalid/p) $x$ <b>bold</b> --token=s3cr3t"
CRAFTED_STAMPS = ["20261127_100000", "20261127_100010", "20261127_100020", "20261127_100030"]


def _crafted_processes(i: int) -> list[tuple[int, int, str, int, str]]:
    """(pid, ppid, user, rss MiB, cmd) of snapshot i of the crafted recording."""
    rows = [
        (1, 0, "root", 10, "/sbin/init"),
        (100, 1, "app", 100 + 100 * i, "/usr/bin/python3 /srv/app.py --serve"),
        (101, 100, "app", 50, "/usr/bin/python3 /srv/worker.py"),
        (200, 1, "mallory", 20, HOSTILE_CMD),
        (2, 0, "root", 0, "[kthreadd]"),
        (50, 2, "root", 0, "[kworker/0:1]"),
    ]
    if i < 2:
        rows.append((300, 1, "alice", 5, "sleep 100"))
    if i == 3:  # pid 300 comes back as another process (reuse): new parent, user and command line
        rows.append((300, 100, "www", 30, "nginx: worker process"))
    return rows


def write_crafted_dumps(folder: Path) -> Path:
    """Write a small seed-format recording (4 snapshots, 10 s apart, UTC stamps) with a growing service, a hostile
    command line (Markdown/HTML/math) and a reused pid 300; returns `folder`."""
    time_dir = folder / "time"
    time_dir.mkdir(parents=True, exist_ok=True)
    for i, stamp in enumerate(CRAFTED_STAMPS):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["PID", "PPID", "USER", "RSS_MB", "VSZ_MB", "CMD"])
        for pid, ppid, user, rss, cmd in _crafted_processes(i):
            writer.writerow([pid, ppid, user, rss, rss * 3, cmd])
        (time_dir / f"process_mem_{stamp}.csv").write_text(out.getvalue())
        used = 1000 + 100 * i
        (time_dir / f"sys_mem_{stamp}.csv").write_text(
            "MemTotal_MB,MemFree_MB,MemAvailable_MB,Buffers_MB,Cached_MB,SwapCached_MB,SwapTotal_MB,SwapFree_MB,"
            "SReclaimable_MB\n"
            f"8000,{8000 - used - 500},{8000 - used},10,400,0,1024,1000,90\n"
        )
    return folder


@pytest.fixture
def crafted_dumps(tmp_path: Path) -> Path:
    """A fresh crafted seed-format recording in a temp folder (see write_crafted_dumps)."""
    return write_crafted_dumps(tmp_path / "dumps")


@pytest.fixture
def run_page(monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Factory: run app.py in AppTest on `page` ("pages/level.py"...) with URL `params`, over `dumps` (PMI_TZ=UTC)."""
    from streamlit.testing.v1 import AppTest

    def run(dumps: Path, page: str | None = None, **params: str) -> AppTest:
        monkeypatch.setenv("PMI_DUMPS", str(dumps))
        monkeypatch.setenv("PMI_TZ", "UTC")
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        for key, value in params.items():
            at.query_params[key] = value
        at.run()
        if page is not None and page != "pages/overview.py":
            at.switch_page(page)
            at.run()
        return at

    return run


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], object]]:
    """File name -> the data callable of every download button an AppTest run rendered (call it for the bytes)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    seen: dict[str, Callable[[], object]] = {}
    real = MediaFileManager.add_deferred

    def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        seen[str(file_name)] = data_callable
        return real(self, data_callable, mimetype, coordinates, file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return seen


def markdown_texts(at: object) -> list[str]:
    """Every text an AppTest run rendered through Markdown (markdown, captions, alerts, titles, labels)."""
    out: list[str] = []
    for kind in ("markdown", "caption", "title", "header", "subheader", "error", "warning", "info", "success"):
        out += [str(e.value) for e in getattr(at, kind)]
    out += [str(getattr(m, "label", "")) for m in at.metric]
    return out


@pytest.fixture(scope="session")
def sample_rec(tmp_path_factory: pytest.TempPathFactory) -> object:
    """The shipped recording (sample/dumps), copied and opened with memlib.source (a store of the previous layout is
    converted in the copy, never in the repository): a memlib.source.Recording for memlib.query."""
    import shutil

    from memlib import source

    folder = tmp_path_factory.mktemp("sample") / "dumps"
    shutil.copytree(ROOT / "sample" / "dumps", folder)
    return source.open_recording(folder)
