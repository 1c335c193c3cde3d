"""The server-time hook of the load benchmark: with PMI_RUN_TIMES set, every script run of the dashboard appends its
page and server seconds to that file (one JSON line); without it nothing is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.native_crafted import write_native_crafted

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def native_dumps(tmp_path: Path) -> Path:
    """The crafted native recording (see native_crafted.py)."""
    return write_native_crafted(tmp_path / "dumps")


def test_every_script_run_appends_its_page_and_time(run_page, native_dumps: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    out = tmp_path / "runs.jsonl"
    monkeypatch.setenv("PMI_RUN_TIMES", str(out))
    at = run_page(native_dumps, "pages/level.py", level="1")
    assert not at.exception
    runs = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [r["page"] for r in runs] == ["", "level"]  # the overview, then the switch to the Level view
    assert all(r["end"] == "done" and 0 < r["s"] < 120 for r in runs)


def test_nothing_is_timed_without_the_variable(run_page, native_dumps: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("PMI_RUN_TIMES", raising=False)
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert not run_page(native_dumps).exception
    assert sorted(tmp_path.rglob("*")) == before


def test_the_startup_heap_is_frozen_after_the_first_run(run_page, native_dumps: Path) -> None:
    """Full collections stop walking the imported libraries once a page ran (the first rerun no longer pays one)."""
    import gc

    assert not run_page(native_dumps).exception
    assert gc.get_freeze_count() > 0


def test_a_page_run_frees_frames_caught_in_reference_cycles(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a page run leaves in a reference cycle is freed when the run ends, not at some later full collection."""
    import weakref

    import pandas as pd

    from ui import nav

    class Holder:
        pass

    a, b = Holder(), Holder()
    a.other, b.other = b, a  # a cycle: reference counting alone never frees it
    a.frame = pd.DataFrame({"x": range(1000)})
    gone = weakref.ref(a)
    del a, b
    monkeypatch.setattr(nav, "_frozen", True)
    nav._collect()
    assert gone() is None


def test_a_page_run_closes_its_threads_cursor(run_page, native_dumps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each page runs in its own thread: its query cursor (and the memory it holds) is closed when the run ends."""
    from memlib import query

    closed: list[object] = []
    original = query.release_thread

    def spy() -> None:
        closed.append(getattr(query._local, "con", None))
        original()

    monkeypatch.setattr(query, "release_thread", spy)
    assert not run_page(native_dumps).exception
    assert closed and closed[-1] is not None  # the overview's queries opened a cursor in the run's thread
    query._con()
    original()
    assert query._local.con is None
    assert len(query.snapshots(query.source.open_recording(native_dumps))) > 0  # the next query opens another


def test_preload_imports_the_pages_libraries_and_opens_the_engine() -> None:
    """serve.py calls ui.nav.preload at server start: afterwards the first page run imports nothing heavy."""
    code = (
        "import sys; import ui.nav; ui.nav.preload(); from memlib import query; "
        "missing = [m for m in ('plotly.graph_objects', 'duckdb', 'ui.charts', 'ui.sidebar') if m not in sys.modules]; "
        "assert not missing and query._DB is not None, missing; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    assert "preload()" in (ROOT / "serve.py").read_text()
