"""Long recordings: segment spans from footers, the window a view loads, windowed loads and the sidebar control."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.bench_store import write_via_compaction
from bench.gen_day import T0, generate
from memlib import load, store, window

HOUR = pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def four_hours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 h at 5 min, 12 processes, written as 4 hourly segments (as the collector's compaction writes them)."""
    out = tmp_path_factory.mktemp("four_hours")
    procs, system = generate(hours=4, interval_s=300, n_procs=12, seed=3)
    write_via_compaction(procs, system, out)
    return out


def test_segment_spans_are_the_first_and_last_sample_of_each_file(four_hours: Path) -> None:
    spans = window.segment_spans(four_hours)
    assert [s.kind for s in spans] == ["parquet"] * 4
    for s in spans:
        part = store.read_segment_tables(four_hours / f"seg-{s.key}.procs.parquet")
        ts = part.procs.column("ts").cast("int64").to_numpy()
        assert (s.first_ns, s.last_ns) == (ts.min(), ts.max())
    first, last = window.recording_span(spans)
    assert first == T0 and last == T0 + 4 * HOUR - pd.Timedelta(minutes=5)
    assert window.needs_window(spans, max_hours=3) and not window.needs_window(spans, max_hours=4)


def test_a_current_segment_spans_from_its_name_to_its_last_write(tmp_path: Path) -> None:
    path = tmp_path / f"{store.segment_stem('20260302T010000.000', 'h')}.current"
    path.write_bytes(b"")
    (span,) = window.segment_spans(tmp_path)
    assert span.kind == "current" and span.first_ns == pd.Timestamp("2026-03-02T01:00Z").value
    assert span.last_ns == path.stat().st_mtime_ns


def test_a_damaged_footer_overlaps_every_window(tmp_path: Path) -> None:
    (tmp_path / f"{store.segment_stem('20260302T010000.000', 'h')}.procs.parquet").write_bytes(b"not parquet")
    (span,) = window.segment_spans(tmp_path)
    assert span.first_ns is None
    far = pd.Timestamp("2030-01-01T00:00Z")
    assert window.selected_keys([span], far, far) == (span.key,)


def test_a_windowed_load_holds_exactly_the_overlapping_segments(four_hours: Path) -> None:
    full = load.load_dumps(four_hours, tz="UTC")
    part = load.load_dumps(four_hours, tz="UTC", window=(T0 + 1.5 * HOUR, T0 + 2.2 * HOUR))
    lo, hi = T0 + HOUR, T0 + 3 * HOUR  # the 2nd and 3rd hourly files, whole
    assert part.snapshots["ts"].min() == lo and part.snapshots["ts"].max() < hi
    inside = full.procs[(full.procs["ts"] >= lo) & (full.procs["ts"] < hi)]
    cols = ["ts", "pid", "ppid", "start_time", "rss_bytes", "subtree_rss_bytes", "descendants", "level"]
    pd.testing.assert_frame_equal(part.procs[cols].reset_index(drop=True), inside[cols].reset_index(drop=True))
    assert len(part.system) == len(part.snapshots)
    assert part.procs["name"].astype(str).tolist() == inside["name"].astype(str).tolist()


def test_open_ends_and_an_empty_window(four_hours: Path) -> None:
    tail = load.load_dumps(four_hours, tz="UTC", window=(T0 + 3.5 * HOUR, None))
    assert tail.snapshots["ts"].min() == T0 + 3 * HOUR
    head = load.load_dumps(four_hours, tz="UTC", window=(None, T0))
    assert head.snapshots["ts"].max() < T0 + HOUR
    none = load.load_dumps(four_hours, tz="UTC", window=(T0 + 10 * HOUR, None))
    assert none.procs.empty and none.info.kind == "empty"


def test_choose_window_hand_cases() -> None:
    span = (T0, T0 + 72 * HOUR)
    assert window.choose_window(span, None, None, None, 24) == (T0 + 48 * HOUR, T0 + 72 * HOUR)
    assert window.choose_window(span, None, T0 + 30 * HOUR, None, 24) == (T0 + 6 * HOUR, T0 + 30 * HOUR)
    assert window.choose_window(span, T0 + 10 * HOUR, None, None, 24) == (T0 + 10 * HOUR, T0 + 34 * HOUR)
    assert window.choose_window(span, T0, T0 + 72 * HOUR, None, 24) == (T0 + 48 * HOUR, T0 + 72 * HOUR)
    assert window.choose_window(span, None, None, T0 + 5 * HOUR, 24) == (T0, T0 + 24 * HOUR)
    short = (T0, T0 + 2 * HOUR)
    assert window.choose_window(short, None, None, None, 24) == short


_hours = st.floats(min_value=-10, max_value=110, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    length=st.floats(min_value=0, max_value=100),
    width=st.floats(min_value=1, max_value=48),
    f=st.none() | _hours,
    t=st.none() | _hours,
    a=st.none() | _hours,
)
def test_choose_window_properties(length: float, width: float, f, t, a) -> None:
    span = (T0, T0 + length * HOUR)

    def at(h):
        return None if h is None else T0 + h * HOUR

    lo, hi = window.choose_window(span, at(f), at(t), at(a), width)
    assert span[0] <= lo <= hi <= span[1]  # inside the recording
    assert hi - lo <= width * HOUR + pd.Timedelta(microseconds=1)  # never more than the budget
    if a is not None:
        moment = min(max(at(a), span[0]), span[1])
        assert lo <= moment <= hi  # the moment asked for is loaded
    elif t is not None and span[0] <= at(t) <= span[1]:
        assert hi == at(t)  # the window ends where the URL says


def _page(run_page, dumps: Path, monkeypatch: pytest.MonkeyPatch, page: str | None = None, **params: str):
    monkeypatch.setenv("PMI_WINDOW_HOURS", "1")
    return run_page(dumps, page, **params)


def test_the_app_loads_the_last_window_and_says_so(run_page, four_hours: Path, monkeypatch) -> None:
    at = _page(run_page, four_hours, monkeypatch)
    assert not at.exception
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "process detail is loaded for 1 h at a time" in captions
    assert "2026-03-02 03:55:00 UTC" in captions  # the latest snapshot of the last part
    part = at.select_slider(key="w_part")
    assert part.value == T0 + 4 * HOUR - pd.Timedelta(minutes=5)


def test_moving_the_loaded_part_writes_the_url_and_a_copied_url_loads_it(
    run_page, four_hours: Path, monkeypatch
) -> None:
    at = _page(run_page, four_hours, monkeypatch)
    at.select_slider(key="w_part").set_value(T0 + 2 * HOUR).run()
    assert not at.exception
    assert at.query_params.get("from") == "2026-03-02T01:00:00Z"
    assert at.query_params.get("to") == "2026-03-02T02:00:00Z"
    assert "Snapshot 2026-03-02 02:55:00 UTC" in " ".join(c.value for c in at.sidebar.caption)
    again = _page(run_page, four_hours, monkeypatch, "pages/level.py", **{"from": "2026-03-02T01:00:00Z",
                                                                           "to": "2026-03-02T02:00:00Z"})  # fmt: skip
    assert not again.exception
    assert again.select_slider(key="w_part").value == T0 + 2 * HOUR


def test_a_moment_outside_the_loaded_part_moves_it(run_page, four_hours: Path, monkeypatch) -> None:
    at = _page(run_page, four_hours, monkeypatch, "pages/level.py", at="2026-03-02T00:20:00Z")
    assert not at.exception
    assert "Snapshot 2026-03-02 00:20:00 UTC" in " ".join(c.value for c in at.sidebar.caption)
    table = at.main.dataframe[0].value
    full = load.load_dumps(four_hours, tz="UTC")
    snap = full.snapshots.loc[full.snapshots["ts"] == T0 + pd.Timedelta(minutes=20), "snap"].iloc[0]
    expected = full.procs[(full.procs["snap"] == snap) & (full.procs["level"] == 0)]
    assert sorted(table["pid"]) == sorted(expected["pid"].tolist())
    assert np.isin(table["pid"], expected["pid"]).all()


@pytest.fixture
def held_back(monkeypatch):
    """The dashboard treats the 4 h recording as big; its whole load waits for the returned Event."""
    from ui import data

    load.clear_cache()
    data._BACKGROUND.clear()
    monkeypatch.setattr(data, "FIRST_PAINT_ROWS", 10)
    gate = threading.Event()
    real = load.load_dumps

    def slow_whole(path, tz=None, window=None):  # the background load waits until the first paint was checked
        if window is None:
            gate.wait(30)
        return real(path, tz=tz, window=window)

    monkeypatch.setattr(data.load, "load_dumps", slow_whole)
    yield gate
    gate.set()
    for fut in list(data._BACKGROUND.values()):  # let the whole load finish here, not in the next test
        fut.result(timeout=60)
    data._BACKGROUND.clear()
    load.clear_cache()


def test_a_deep_link_to_a_moment_paints_the_hour_around_it_first(run_page, four_hours: Path, held_back) -> None:
    at = run_page(four_hours, "pages/level.py", at="2026-03-02T00:20:00Z")
    assert not at.exception
    assert any("while the rest of the recording loads" in i.value for i in at.sidebar.info)
    assert "Snapshot 2026-03-02 00:20:00 UTC" in " ".join(c.value for c in at.sidebar.caption)
    assert "12 snapshots" in next(e for e in at.sidebar.expander if e.label.startswith("Data:")).label


def test_a_big_load_paints_the_last_hour_first_then_the_whole_recording(run_page, four_hours: Path, held_back) -> None:
    from ui import data

    gate = held_back
    at = run_page(four_hours, "pages/level.py")
    assert not at.exception
    assert any("while the rest of the recording loads" in i.value for i in at.sidebar.info)
    assert "Snapshot 2026-03-02 03:55:00 UTC" in " ".join(c.value for c in at.sidebar.caption)
    expander = next(e for e in at.sidebar.expander if e.label.startswith("Data:"))
    assert "24 snapshots" in expander.label  # the files overlapping the last hour: 2 of 4 (5 min samples)
    gate.set()
    for fut in list(data._BACKGROUND.values()):
        fut.result(timeout=60)
    at.run()
    assert not at.exception and not at.sidebar.info
    assert "48 snapshots" in next(e for e in at.sidebar.expander if e.label.startswith("Data:")).label


def test_the_cli_loads_only_the_files_of_a_window(four_hours: Path, capsys) -> None:
    from memlib.cli import main

    assert main(["system", "--dumps", str(four_hours), "--load-from", "2026-03-02T02:30:00Z", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(lines) == 24 and lines[0].startswith("2026-03-02T02:00:00")  # the last two hourly files, whole
    assert main(["system", "--dumps", str(four_hours), "--load-to", "yesterday-ish"]) == 2
    assert "is not a time" in capsys.readouterr().err
