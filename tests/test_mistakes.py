"""One hand-made case per mistake of the original tool that lives in the analysis code (design.md §3, 1-5)."""

from __future__ import annotations

import pandas as pd

from memlib import filters, stats, timeline, tree
from tests.strategies import MIB, T0, make_procs, ts_of


def _id(procs: pd.DataFrame, pid: int, snap: int) -> int:
    return int(procs.loc[(procs["pid"] == pid) & (procs["snap"] == snap), "proc_id"].iloc[0])


def test_1_subtree_peak_is_max_of_per_moment_sums_not_sum_of_maxima():
    # parent 100 MiB; child A peaks at 1000 while B is at 0..., B peaks at 800 while A is low: true peak 1100, not 1900
    recs = []
    for snap, (a, b) in enumerate([(1000, 0), (100, 800), (200, 200)]):
        recs += [{"snap": snap, "pid": 1, "ppid": 0, "rss": 0}, {"snap": snap, "pid": 10, "ppid": 1, "rss": 100 * MIB}]
        recs += [
            {"snap": snap, "pid": 11, "ppid": 10, "rss": a * MIB},
            {"snap": snap, "pid": 12, "ppid": 10, "rss": b * MIB},
        ]
    procs = make_procs(recs)
    peak = timeline.subtree_peak(procs, _id(procs, 10, 0))
    assert peak.bytes == 1100 * MIB and peak.snap == 0 and peak.ts == ts_of(0)
    per_process_max = procs.groupby("pid")["rss_bytes"].max().loc[[10, 11, 12]].sum()
    assert per_process_max == 1900 * MIB  # what the old tool showed


def test_2_identity_is_pid_and_start_time():
    start_a, start_b = T0 - pd.Timedelta(minutes=5), T0 + pd.Timedelta(seconds=7)
    recs = [
        # pid 50 execs (new name and command line), keeps pid and start: one process
        {"snap": 0, "pid": 50, "ppid": 40, "rss": MIB, "start": start_a, "name": "sh", "cmdline": "sh -c run"},
        {
            "snap": 1,
            "pid": 50,
            "ppid": 40,
            "rss": 2 * MIB,
            "start": start_a,
            "name": "python3",
            "cmdline": "python3 w.py",
        },
        # its parent exits; re-parented to init: still the same process
        {
            "snap": 2,
            "pid": 50,
            "ppid": 1,
            "rss": 3 * MIB,
            "start": start_a,
            "name": "python3",
            "cmdline": "python3 w.py",
        },
        # pid 50 is reused by a stranger with another start time: another process
        {
            "snap": 3,
            "pid": 50,
            "ppid": 60,
            "rss": 9 * MIB,
            "start": start_b,
            "name": "python3",
            "cmdline": "python3 w.py",
        },
    ]
    recs += [{"snap": s, "pid": 1, "ppid": 0, "rss": 0} for s in range(4)]
    recs += [{"snap": s, "pid": 40, "ppid": 1, "rss": MIB} for s in range(2)]
    recs += [{"snap": 3, "pid": 60, "ppid": 1, "rss": MIB, "start": start_b}]
    procs = make_procs(recs)
    first, stranger = _id(procs, 50, 0), _id(procs, 50, 3)
    assert first == _id(procs, 50, 1) == _id(procs, 50, 2) != stranger
    tl = timeline.process_timeline(procs, first)
    assert tl["snap"].tolist() == [0, 1, 2] and tl["rss_bytes"].tolist() == [MIB, 2 * MIB, 3 * MIB]
    st = stats.process_stats(procs).set_index("proc_id")
    assert st.loc[first, "samples"] == 3 and st.loc[first, "name"] == "python3"
    assert st.loc[stranger, "samples"] == 1
    # the shell's children: the original process only while it was its child; init adopts it from snapshot 2
    assert timeline.children_trends(procs, _id(procs, 40, 0))["snap"].tolist() == [0, 1]
    init_kids = timeline.children_trends(procs, _id(procs, 1, 0))
    assert init_kids.loc[init_kids["child_proc_id"] == first, "snap"].tolist() == [2]
    # the stranger belongs to pid 60's subtree, never to the original process's history
    assert timeline.children_trends(procs, _id(procs, 60, 3))["child_proc_id"].tolist() == [stranger]


def test_3_row_limit_comes_after_choosing_the_level():
    # many big level-1 processes, one small level-3 process: a limit must not make level 3 vanish
    recs = [{"snap": 0, "pid": 1, "ppid": 0, "rss": 0}]
    recs += [{"snap": 0, "pid": p, "ppid": 1, "rss": 500 * MIB} for p in range(10, 30)]
    recs += [{"snap": 0, "pid": 40, "ppid": 10, "rss": MIB}, {"snap": 0, "pid": 41, "ppid": 40, "rss": MIB}]
    snap_df = tree.snapshot(make_procs(recs), 0)
    out = filters.filter_snapshot(snap_df, filters.Filters(), level=3, limit=5)
    assert out.loc[out["kept"], "pid"].tolist() == [41]
    assert out.loc[out["context"], "pid"].tolist() == [1, 10, 40]


def test_4_filters_apply_after_subtrees_are_built():
    # big (300) -> small wrapper (1) -> worker (900): a 100 MiB own-RSS filter must not break the chain or totals
    recs = [
        {"snap": 0, "pid": 1, "ppid": 0, "rss": 0},
        {"snap": 0, "pid": 10, "ppid": 1, "rss": 300 * MIB},
        {"snap": 0, "pid": 11, "ppid": 10, "rss": 1 * MIB},
        {"snap": 0, "pid": 12, "ppid": 11, "rss": 900 * MIB},
    ]
    snap_df = tree.snapshot(make_procs(recs), 0)
    out = filters.filter_snapshot(snap_df, filters.Filters(min_rss_mib=100)).set_index("pid")
    assert out["kept"].to_dict() == {1: False, 10: True, 11: False, 12: True}
    assert out["context"].to_dict() == {1: True, 10: False, 11: True, 12: False}
    assert out.loc[10, "subtree_rss_bytes"] == 1201 * MIB  # unchanged by the filter
    assert out.loc[12, "level"] == 3
    by_subtree = filters.filter_snapshot(snap_df, filters.Filters(min_subtree_mib=901)).set_index("pid")
    assert by_subtree.index[by_subtree["kept"]].tolist() == [1, 10, 11]  # the 1 MiB wrapper holds 901 MiB


def test_5_lifetime_comes_from_start_time():
    # a 4 GiB process seen in one snapshot only, started an hour earlier
    start = ts_of(0) - pd.Timedelta(hours=1)
    recs = [
        {"snap": 0, "pid": 1, "ppid": 0, "rss": 0},
        {"snap": 0, "pid": 77, "ppid": 1, "rss": 4096 * MIB, "start": start},
    ]
    procs = make_procs(recs)
    st = stats.process_stats(procs).set_index("pid")
    assert st.loc[77, "lifetime_s"] == 3600 and st.loc[77, "observed_span_s"] == 0
    snap_df = tree.snapshot(procs, 0)
    assert filters.lifetime_s(snap_df).tolist()[1] == 3600
    out = filters.filter_snapshot(snap_df, filters.Filters(min_lifetime_s=300, min_rss_mib=1))
    assert out.loc[out["kept"], "pid"].tolist() == [77]
    # the observed span is still available when start times are not exact (seed dumps)
    assert stats.process_stats(procs, lifetime_exact=False).set_index("pid").loc[77, "lifetime_s"] == 0
