"""Growth within a window and leak floors against the slow references (tests/reference.py), on random recordings
written through the real writer (segment boundaries, PID reuse, exec, orphans, the clock stepping back): memlib.query
equals the reference, and the query's leak report equals the in-memory one (memlib.leaks) on the same rows."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlib import leaks, query
from tests import reference
from tests.strategies import MIB, T0, make_procs, write_store
from tests.test_query_properties import HOST, recordings


def _none(v):
    return None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else int(v)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(recordings(), st.data())
def test_growers_within_the_window_equal_the_reference(case, data) -> None:
    procs, times, closes, active = case
    ordered = sorted(times)
    i = data.draw(st.integers(0, len(ordered) - 1))
    j = data.draw(st.integers(i, len(ordered) - 1))
    a, b = ordered[i], ordered[j]
    want = reference.growers_in_window(procs, a, b)
    ident = procs.drop_duplicates("proc_id").set_index("proc_id")[["pid", "start_time"]]
    with tempfile.TemporaryDirectory() as tmp:
        rec = write_store(Path(tmp) / "store", procs, closes, active, host=HOST)
        got = query.growers(rec, query.Moment(a, HOST), query.Moment(b, HOST), limit=None)
        limited = query.growers(rec, query.Moment(a, HOST), query.Moment(b, HOST), limit=2)
    assert len(got) == len(want)
    by_ident = got.set_index(["pid", "start_time"])
    for proc_id, w in want.items():
        g = by_ident.loc[tuple(ident.loc[proc_id])]
        assert (g["first_seen"], g["last_seen"], str(g["status"])) == (w["first_seen"], w["last_seen"], w["status"])
        for key in ("before", "after", "delta", "subtree_before", "subtree_after", "subtree_delta"):
            assert _none(g[f"{key}_bytes"]) == w[key], key
    deltas = [_none(v) for v in got["delta_bytes"]]
    known = [d for d in deltas if d is not None]
    assert known == sorted(known, reverse=True) and deltas[: len(known)] == known  # largest first, unknown last
    pd.testing.assert_frame_equal(limited.drop(columns="proc_id"), got.head(2).drop(columns="proc_id"))


@st.composite
def long_histories(draw):
    """A few processes over 10-60 samples at uneven times (whole seconds plus microseconds): values that rise, fall
    and repeat, some unknown PSS, processes that start late or end early, a PID reused."""
    n = draw(st.integers(10, 60))
    steps = draw(st.lists(st.integers(1, 20), min_size=n, max_size=n))
    jitter = draw(st.lists(st.integers(0, 999_999), min_size=n, max_size=n))
    times, t = [], T0
    for k in range(n):
        t = t + pd.Timedelta(seconds=steps[k], microseconds=jitter[k])
        times.append(t)
    records = [{"snap": k, "pid": 1, "ppid": 0, "rss": 10 * MIB, "name": "init", "ts": times[k]} for k in range(n)]
    for pid in range(2, draw(st.integers(3, 5))):
        lo = draw(st.integers(0, n - 2))
        hi = draw(st.integers(lo + 1, n))
        reuse = draw(st.booleans()) and hi < n - 2
        values = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
        for k in range(n):
            alive = lo <= k < hi
            second = reuse and k >= hi + 1
            if not (alive or second):
                continue
            pss = None if values[k] % 7 == 0 else values[k] * MIB // 2
            records.append(
                {"snap": k, "pid": pid, "ppid": 1, "rss": (values[k] + k) * MIB, "pss": pss, "ts": times[k],
                 "start": times[hi + 1] if second else T0 - pd.Timedelta(hours=1)}
            )  # fmt: skip
    return make_procs(records)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(long_histories(), st.sampled_from([4, 5, 8, 100]), st.sampled_from(["rss", "pss"]))
def test_leak_floors_equal_the_reference(procs, max_points, metric) -> None:
    cand, floors, census = leaks.window_floors(procs, metric=metric, min_samples=2, min_duration_s=0.0,
                                               max_points=max_points)  # fmt: skip
    want = reference.leak_floors(procs, f"{metric}_bytes", max_points)
    got: dict[int, list] = {}
    ids = cand["proc_id"].to_numpy()
    for g, b, floor, n in zip(floors.g, floors.b, floors.floor, floors.samples, strict=True):
        got.setdefault(int(ids[g]), []).append((int(b), int(floor), int(n)))
    assert got == want
    assert census.processes == procs.loc[procs[f"{metric}_bytes"].notna(), "proc_id"].nunique()
    assert census.too_short == census.processes - len(want)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(long_histories(), st.sets(st.integers(0, 59), max_size=4), st.booleans())
def test_query_leak_report_equals_the_frame_one(procs, closes, active) -> None:
    kw = {"min_samples": 3, "min_duration_s": None, "max_points": 8}
    want = leaks.leak_report(procs, **kw)
    with tempfile.TemporaryDirectory() as tmp:
        rec = write_store(Path(tmp) / "store", procs, closes, active, host=HOST)
        got = query.leak_report(rec, **kw)
        half = procs["ts"].sort_values().iloc[len(procs) // 2]
        got_late = query.leak_report(rec, t_from=half, **kw)
    assert got.census == want.census
    assert got_late.census == leaks.leak_report(procs, t_from=half, **kw).census
    key = ["pid", "start_time"]
    m = got.scores.merge(want.scores, on=key, suffixes=("_q", "_f"))
    assert len(m) == len(got.scores) == len(want.scores)
    for c in ("rate_bytes_per_hour", "late_rate_bytes_per_hour", "rising_share", "fit_r2", "confidence", "score"):
        assert np.allclose(m[f"{c}_q"], m[f"{c}_f"], rtol=1e-9, atol=1e-9, equal_nan=True), c
    for c in ("samples", "growth_bytes", "first_seen", "last_seen", "growing_since"):
        assert (m[f"{c}_q"] == m[f"{c}_f"]).all(), c
    assert m["name_q"].astype(str).tolist() == m["name_f"].astype(str).tolist()
    trend_q = got.trends[[*key, "ts", "floor_bytes"]].reset_index(drop=True)
    trend_f = want.trends[[*key, "ts", "floor_bytes"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(trend_q, trend_f, check_dtype=False)
