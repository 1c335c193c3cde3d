"""Spikes on generated series: start/end/peak/size, a leak is not a spike, level shifts, system used memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memlib import spikes
from tests.strategies import MIB, make_procs, ts_of

N = 360  # 30 min at 5 s


def _series(pid: int, values, name: str) -> list[dict]:
    return [{"snap": i, "pid": pid, "ppid": 1, "rss": int(v), "name": name} for i, v in enumerate(values)]


def _procs() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 300 * 1024, N)
    t = np.arange(N)
    recs = [{"snap": i, "pid": 1, "ppid": 0, "rss": 10 * MIB, "name": "init"} for i in range(N)]
    spiky = 200 * MIB + noise
    spiky[100:112] += 300 * MIB  # 60 s
    spiky[105] += 100 * MIB  # the peak
    spiky[250:253] += 80 * MIB  # a second, smaller one
    recs += _series(10, spiky, "spiky")
    recs += _series(11, 100 * MIB + t * 1.5 * MIB + noise, "leaker")  # 1.5 MiB per sample: 1 GiB/h
    shift = np.where(t < 200, 100 * MIB, 400 * MIB) + noise
    recs += _series(12, shift, "shift")
    small = 50 * MIB + noise
    small[50:55] += 10 * MIB  # below the minimum size
    recs += _series(13, small, "small")
    return make_procs(recs)


def test_a_spike_has_start_end_peak_and_size() -> None:
    sp = spikes.process_spikes(_procs())
    assert list(sp.columns) == spikes.PROCESS_SPIKE_COLUMNS
    mine = sp[sp["name"].astype(str) == "spiky"].sort_values("start")
    assert len(mine) == 2
    first = mine.iloc[0]
    assert first["start"] == ts_of(100) and first["end"] == ts_of(111) and first["samples"] == 12
    assert first["peak_ts"] == ts_of(105) and first["duration_s"] == 55
    assert first["peak_bytes"] == pytest.approx(600 * MIB, abs=2 * MIB)
    assert first["baseline_bytes"] == pytest.approx(200 * MIB, abs=MIB)
    assert first["size_bytes"] == first["peak_bytes"] - first["baseline_bytes"]
    assert mine.iloc[1]["start"] == ts_of(250) and mine.iloc[1]["samples"] == 3
    assert sp["size_bytes"].is_monotonic_decreasing


def test_a_leak_and_small_wiggles_are_not_spikes() -> None:
    names = set(spikes.process_spikes(_procs())["name"].astype(str))
    assert "leaker" not in names and "small" not in names and "init" not in names
    # with a lower minimum size the small bump is found
    low = spikes.process_spikes(_procs(), min_size_bytes=5 * MIB)
    assert "small" in set(low["name"].astype(str)) and "leaker" not in set(low["name"].astype(str))


def test_a_level_shift_ends_within_half_the_baseline_window() -> None:
    sp = spikes.process_spikes(_procs(), baseline_s=600)
    shift = sp[sp["name"].astype(str) == "shift"]
    assert len(shift) == 1
    assert shift.iloc[0]["start"] == ts_of(200) and shift.iloc[0]["duration_s"] <= 300


def test_window_and_empty_inputs() -> None:
    procs = _procs()
    before = spikes.process_spikes(procs, t_to=ts_of(99))
    assert "spiky" not in set(before["name"].astype(str))
    late = spikes.process_spikes(procs, t_from=ts_of(240))
    assert list(late["start"]) == [ts_of(250)]
    none = spikes.process_spikes(procs.iloc[0:0])
    assert none.empty and list(none.columns) == spikes.PROCESS_SPIKE_COLUMNS
    with pytest.raises(ValueError, match="baseline_s"):
        spikes.process_spikes(procs, baseline_s=0)


def test_system_used_memory_spikes() -> None:
    total = 8192 * MIB
    avail = np.full(N, 6000 * MIB)
    avail[200:210] -= 1000 * MIB
    series = pd.DataFrame({"ts": [ts_of(i) for i in range(N)], "mem_used_bytes": pd.array(total - avail, "Int64")})
    sp = spikes.used_spikes(series)
    assert list(sp.columns) == spikes.SYSTEM_SPIKE_COLUMNS and len(sp) == 1
    row = sp.iloc[0]
    assert row["series"] == "mem_used" and row["start"] == ts_of(200) and row["end"] == ts_of(209)
    assert row["size_bytes"] == 1000 * MIB and row["baseline_bytes"] == total - 6000 * MIB


def test_system_spikes_take_a_window(sample_rec) -> None:
    """A window (t_from / t_to) narrows the series instead of failing on a read-only mask."""
    from memlib import query

    ts = query.snapshots(sample_rec)["ts"]
    lo, hi = ts.iloc[10], ts.iloc[-10]
    out = query.system_spikes(sample_rec, lo, hi)
    assert out.empty or ((out["start"] >= lo) & (out["end"] <= hi)).all()
    assert len(query.system_spikes(sample_rec)) >= 1  # the shipped recording's RAM spike
    # read from the system rows alone, they are the spikes of the full system series
    pd.testing.assert_frame_equal(out, spikes.used_spikes(query.system(sample_rec, lo, hi), lo, hi))


def test_the_query_finds_the_spikes_the_frame_analysis_finds(tmp_path) -> None:
    """query.process_spikes (candidates by numbers, then their rows) equals spikes.process_spikes on every row of
    the window, across segment boundaries, in a window that cuts a spike, and among given processes."""
    from memlib import query
    from tests.strategies import write_store

    procs = _procs()
    rec = write_store(tmp_path / "store", procs, closes={99, 180, 251})
    lo, hi = ts_of(40), ts_of(300)
    keys = ["pid", "start_time", "start", "end", "peak_ts", "peak_bytes", "baseline_bytes", "size_bytes", "samples"]
    for t_from, t_to in ((None, None), (lo, hi), (ts_of(104), None)):
        got = query.process_spikes(rec, t_from, t_to)
        want = spikes.process_spikes(query.window_rows(rec, t_from, t_to), t_from, t_to)
        assert len(want) >= (1 if t_from != ts_of(104) else 0)
        pd.testing.assert_frame_equal(got[keys].reset_index(drop=True), want[keys].reset_index(drop=True))
        assert got["name"].astype(str).tolist() == want["name"].astype(str).tolist()
    spiky = query.Proc("testhost", "boot-1", 10, procs.loc[procs["pid"] == 10, "start_time"].iloc[0])
    only = query.process_spikes(rec, procs=[spiky])
    assert set(only["pid"]) == {10} and len(only) == 2


def test_leaks_and_spikes_side_by_side_equal_each_alone(sample_rec) -> None:
    from memlib import query

    both = query.leaks_and_spikes(sample_rec)
    pd.testing.assert_frame_equal(both.report.scores, query.leak_report(sample_rec).scores)
    pd.testing.assert_frame_equal(both.spikes, query.process_spikes(sample_rec))
    assert both.report.census == query.leak_report(sample_rec).census
