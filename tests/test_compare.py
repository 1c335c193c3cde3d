"""Comparing two moments (issue 5, item 5): new, exited, pid reuse, grown, shrunk, unknown; per process and subtree."""

from __future__ import annotations

import pandas as pd
import pytest

from memlib import compare
from tests.strategies import MIB, T0, make_procs


def _history() -> pd.DataFrame:
    old, new = T0 - pd.Timedelta(hours=2), T0 + pd.Timedelta(seconds=3)
    recs = []
    for s in (0, 1):
        recs += [{"snap": s, "pid": 1, "ppid": 0, "rss": 10 * MIB, "pss": 4 * MIB}]  # unchanged
        recs += [{"snap": s, "pid": 10, "ppid": 1, "rss": (100 + 50 * s) * MIB, "pss": 80 * MIB}]  # grows
        recs += [{"snap": s, "pid": 11, "ppid": 10, "rss": (40 - 30 * s) * MIB, "pss": None if s else MIB}]  # shrinks
    recs += [{"snap": 0, "pid": 30, "ppid": 1, "rss": 300 * MIB, "start": old, "name": "old"}]  # pid 30 exits...
    recs += [{"snap": 1, "pid": 30, "ppid": 10, "rss": 5 * MIB, "start": new, "name": "reborn"}]  # ...and is reused
    recs += [{"snap": 0, "pid": 50, "ppid": 1, "rss": 7 * MIB}]  # exits
    recs += [{"snap": 1, "pid": 60, "ppid": 11, "rss": 9 * MIB}]  # new below 11
    return make_procs(recs)


def test_changes_per_process_with_deltas():
    out = compare.compare_processes(_history(), 0, 1)
    assert list(out.columns) == compare.COMPARE_COLUMNS
    by = {(r.pid, r.name): r for r in out.itertuples()}
    assert by[(10, "p10")].change == "grown" and by[(10, "p10")].delta_bytes == 50 * MIB
    assert by[(11, "p11")].change == "shrunk" and by[(11, "p11")].delta_bytes == -30 * MIB
    assert by[(1, "p1")].change == "unchanged" and by[(1, "p1")].delta_bytes == 0
    assert by[(50, "p50")].change == "exited" and by[(50, "p50")].after_bytes == 0
    assert by[(60, "p60")].change == "new" and by[(60, "p60")].before_bytes == 0
    # pid 30 reused between the moments: one exited process and one new process
    assert by[(30, "old")].change == "exited" and by[(30, "old")].delta_bytes == -300 * MIB
    assert by[(30, "reborn")].change == "new" and by[(30, "reborn")].delta_bytes == 5 * MIB
    assert by[(30, "old")].start_time != by[(30, "reborn")].start_time
    assert compare.change_counts(out) == {
        "new": 2, "exited": 2, "grown": 1, "shrunk": 1, "unchanged": 1, "unknown": 0,
    }  # fmt: skip
    assert out["delta_bytes"].abs().tolist() == sorted(out["delta_bytes"].abs().tolist(), reverse=True)


def test_subtree_changes():
    out = compare.compare_processes(_history(), 0, 1).set_index("name")
    # 11's subtree: 40 MiB -> 10 + 9 (new child) = 19 MiB
    assert out.loc["p11", "subtree_delta_bytes"] == -21 * MIB and out.loc["p11", "subtree_change"] == "shrunk"
    # 10's subtree: 140 -> 150 + 10 + 9 + 5 (reborn 30 moved under 10) = 174
    assert out.loc["p10", "subtree_before_bytes"] == 140 * MIB and out.loc["p10", "subtree_after_bytes"] == 174 * MIB
    subs = compare.compare_subtrees(_history(), 0, 1)
    assert set(subs["name"]) == {"p1", "p10", "p11"}  # only processes with descendants
    assert subs["name"].iloc[0] == "p1"  # largest |subtree delta| first


def test_unknown_pss_is_labelled_not_zero():
    out = compare.compare_processes(_history(), 0, 1, metric="pss").set_index("name")
    assert out.loc["p11", "change"] == "unknown" and pd.isna(out.loc["p11", "delta_bytes"])
    assert out.loc["p10", "change"] == "unchanged"
    totals = compare.change_totals(compare.compare_processes(_history(), 0, 1)).set_index("change")
    assert totals.loc["new", "processes"] == 2 and totals.loc["new", "delta_bytes"] == 14 * MIB
    assert totals.loc["unknown", "processes"] == 0


def test_same_moment_is_all_unchanged_and_bad_metric_raises():
    out = compare.compare_processes(_history(), 1, 1)
    assert set(out["change"].astype(str)) == {"unchanged"}
    with pytest.raises(ValueError, match="unknown memory metric"):
        compare.compare_processes(_history(), 0, 1, metric="heap")
