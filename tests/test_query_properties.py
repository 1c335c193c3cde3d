"""Property test: memlib.query's answers (snapshot trees, timelines, children, subtree peaks, stats) equal the slow
reference (tests/reference.py) on random histories written through the real writer: segments closed at random
samples (boundaries), the last one left active or closed, PID reuse, exec, orphans, and the wall clock stepping
back between samples."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlib import query
from tests import reference
from tests.strategies import T0, histories, write_store

HOST = "testhost"


@st.composite
def recordings(draw):
    """(PROCS frame with its sample times, closing points, keep the last segment active)."""
    procs = draw(histories(max_snaps=7, max_ops=6, pid_pool=8))
    n = int(procs["snap"].max()) + 1
    steps = draw(st.lists(st.integers(1, 9), min_size=n, max_size=n))
    back = draw(st.one_of(st.none(), st.integers(1, max(1, n - 1))))
    times, t = [], T0
    for k in range(n):
        t = t + pd.Timedelta(seconds=steps[k])
        if back is not None and k == back:
            t = t - pd.Timedelta(seconds=steps[k] + 3, microseconds=250)  # the clock stepped back
        while t in times:
            t = t + pd.Timedelta(microseconds=1)
        times.append(t)
    procs = procs.assign(ts=pd.to_datetime([times[s] for s in procs["snap"]], utc=True).astype(procs["ts"].dtype))
    closes = draw(st.sets(st.integers(0, n - 1)))
    return procs, times, closes, draw(st.booleans())


def _none(v):
    return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else int(v)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(recordings())
def test_query_answers_equal_the_reference(case) -> None:
    procs, times, closes, active = case
    with tempfile.TemporaryDirectory() as tmp:
        rec = write_store(Path(tmp) / "store", procs, closes, active, host=HOST)
        rows = reference.rows_of(procs)
        tr = reference.trees(procs)
        ident = {r["proc_id"]: (r["pid"], r["start_time"]) for r in rows}
        ts_of = dict(enumerate(times))

        # every snapshot's tree
        for snap, ts in enumerate(times):
            got = query.moment(rec, query.resolve(rec, ts)).set_index(["pid", "start_time"])
            want = [(rows[i], tr[i]) for i in range(len(rows)) if rows[i]["snap"] == snap]
            assert len(got) == len(want)
            for r, t in want:
                g = got.loc[(r["pid"], r["start_time"])]
                assert (int(g["level"]), int(g["descendants"])) == (t["level"], t["descendants"])
                for m in reference.METRICS:
                    assert _none(g["subtree_" + m]) == t["subtree_" + m], m
                parent = None if t["parent_row"] == -1 else ident[rows[t["parent_row"]]["proc_id"]]
                got_parent = None if pd.isna(g["parent_start_time"]) else (int(g["ppid"]), g["parent_start_time"])
                assert got_parent == parent

        pre = (rows, tr)
        want_stats = reference.stats(procs)
        got_stats = query.stats(rec).set_index(["pid", "start_time"])
        assert len(got_stats) == len(want_stats)
        for proc_id, (pid, start) in ident.items():
            p = query.Proc(HOST, "boot-1", pid, start)
            # timeline, in time order
            want_tl = sorted(reference.timeline(procs, proc_id, pre), key=lambda x: ts_of[x["snap"]])
            tl = query.timeline(rec, p)
            assert tl["ts"].tolist() == [ts_of[x["snap"]] for x in want_tl]
            for col in ("rss_bytes", "subtree_rss_bytes", "subtree_pss_bytes", "descendants", "level"):
                assert [_none(v) for v in tl[col]] == [x[col] for x in want_tl], col
            # direct children over time
            kids = query.children(rec, p, "rss")
            got_kids = sorted(zip(kids["ts"], kids["child_pid"], kids["child_start_time"],
                                  kids["subtree_rss_bytes"].astype(int), strict=True))  # fmt: skip
            want_kids = sorted((ts_of[s], cp, ident[cid][1], v) for s, cp, cid, v in
                               reference.children(procs, proc_id, "rss_bytes", pre))  # fmt: skip
            assert got_kids == want_kids
            # subtree peak: the max of per-moment sums
            for metric in ("rss", "pss"):
                peak, _ = query.subtree_peak(rec, p, metric)
                assert peak == reference.subtree_peak(procs, proc_id, f"{metric}_bytes", pre)
            # stats over the whole recording
            w, g = want_stats[proc_id], got_stats.loc[(pid, start)]
            assert int(g["samples"]) == w["samples"]
            for c in ("rss_min_bytes", "rss_max_bytes", "subtree_rss_min_bytes", "subtree_rss_max_bytes"):
                assert int(g[c]) == w[c], c
            for c in ("rss_mean_bytes", "rss_p95_bytes", "subtree_rss_p95_bytes"):
                assert math.isclose(float(g[c]), w[c], rel_tol=1e-9, abs_tol=1e-6), c
            mine = [x for x in rows if x["proc_id"] == proc_id]
            latest = max(mine, key=lambda x: x["ts"])
            assert int(g["rss_last_bytes"]) == latest["rss_bytes"]  # the value at the latest time
            assert g["first_seen"] == min(x["ts"] for x in mine) and g["last_seen"] == latest["ts"]
            slope = w["growth_bytes_per_hour"]
            if slope is None:
                assert pd.isna(g["growth_bytes_per_hour"])
            else:
                assert math.isclose(float(g["growth_bytes_per_hour"]), slope, rel_tol=1e-6, abs_tol=1e-3)
