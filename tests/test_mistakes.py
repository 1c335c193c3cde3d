"""One hand-made case per mistake of the original tool that lives in the analysis code (design.md §3, 1-5), on the
pure frame functions and again on the query path (the same history written through the real writer)."""

from __future__ import annotations

import pandas as pd

from memlib import filters, query, stats, timeline, tree
from tests.strategies import MIB, T0, make_procs, ts_of, write_store


def _id(procs: pd.DataFrame, pid: int, snap: int) -> int:
    return int(procs.loc[(procs["pid"] == pid) & (procs["snap"] == snap), "proc_id"].iloc[0])


def _two_children_peaking_apart() -> list[dict]:
    """Parent 100 MiB; child A peaks at 1000 while B is at 0, B at 800 while A is low: true peak 1100, not 1900."""
    recs = []
    for snap, (a, b) in enumerate([(1000, 0), (100, 800), (200, 200)]):
        recs += [{"snap": snap, "pid": 1, "ppid": 0, "rss": 0}, {"snap": snap, "pid": 10, "ppid": 1, "rss": 100 * MIB}]
        recs += [
            {"snap": snap, "pid": 11, "ppid": 10, "rss": a * MIB},
            {"snap": snap, "pid": 12, "ppid": 10, "rss": b * MIB},
        ]
    return recs


def test_1_subtree_peak_is_max_of_per_moment_sums_not_sum_of_maxima():
    recs = _two_children_peaking_apart()
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


# ------------------------------------------------------------------------------------------------ the query path


def _rec(recs: list[dict], tmp_path) -> tuple:
    procs = make_procs(recs)
    return procs, write_store(tmp_path / "store", procs, closes={1})


def _proc(rec, pid: int, start) -> query.Proc:
    return query.Proc("testhost", "boot-1", pid, start)


def test_1_on_the_query_path(tmp_path):
    recs = _two_children_peaking_apart()
    _, rec = _rec(recs, tmp_path)
    assert query.subtree_peak(rec, _proc(rec, 10, T0 - pd.Timedelta(hours=1))) == (1100 * MIB, ts_of(0))
    st = query.stats(rec).set_index("pid")
    assert st.loc[10, "subtree_rss_max_bytes"] == 1100 * MIB and st.loc[10, "subtree_rss_max_ts"] == ts_of(0)


def test_2_on_the_query_path(tmp_path):
    start_a, start_b = T0 - pd.Timedelta(minutes=5), T0 + pd.Timedelta(seconds=7)
    base = {"pid": 50, "start": start_a, "name": "python3", "cmdline": "python3 w.py"}
    recs = [
        {**base, "snap": 0, "ppid": 40, "rss": MIB, "name": "sh", "cmdline": "sh -c run"},
        {**base, "snap": 1, "ppid": 40, "rss": 2 * MIB},
        {**base, "snap": 2, "ppid": 1, "rss": 3 * MIB},
        {**base, "snap": 3, "ppid": 60, "rss": 9 * MIB, "start": start_b},
    ]
    recs += [{"snap": s, "pid": 1, "ppid": 0, "rss": 0} for s in range(4)]
    recs += [{"snap": s, "pid": 40, "ppid": 1, "rss": MIB} for s in range(2)]
    recs += [{"snap": 3, "pid": 60, "ppid": 1, "rss": MIB, "start": start_b}]
    _, rec = _rec(recs, tmp_path)
    hour_ago = T0 - pd.Timedelta(hours=1)
    first, stranger = _proc(rec, 50, start_a), _proc(rec, 50, start_b)
    assert len(query.find_processes(rec, 50)) == 2
    tl = query.timeline(rec, first)
    assert tl["ts"].tolist() == [ts_of(s) for s in range(3)] and tl["rss_bytes"].tolist() == [MIB, 2 * MIB, 3 * MIB]
    st = query.stats(rec).set_index(["pid", "start_time"])
    assert st.loc[(50, start_a), "samples"] == 3 and st.loc[(50, start_a), "name"] == "python3"
    assert st.loc[(50, start_b), "samples"] == 1
    assert query.children(rec, _proc(rec, 40, hour_ago))["ts"].tolist() == [ts_of(0), ts_of(1)]
    init_kids = query.children(rec, _proc(rec, 1, hour_ago))
    assert init_kids.loc[init_kids["child_pid"] == 50, "ts"].tolist() == [ts_of(2)]
    assert query.children(rec, _proc(rec, 60, start_b))["child_start_time"].tolist() == [stranger.start_time]


def test_3_4_5_on_the_query_path(tmp_path):
    start = ts_of(0) - pd.Timedelta(hours=1)
    recs = [{"snap": 0, "pid": 1, "ppid": 0, "rss": 0}]
    recs += [{"snap": 0, "pid": p, "ppid": 1, "rss": 500 * MIB} for p in range(10, 30)]
    recs += [{"snap": 0, "pid": 40, "ppid": 10, "rss": MIB}, {"snap": 0, "pid": 41, "ppid": 40, "rss": 900 * MIB}]
    recs += [{"snap": 0, "pid": 77, "ppid": 1, "rss": 4096 * MIB, "start": start}]
    _, rec = _rec(recs, tmp_path)
    snap_df = query.moment(rec, query.resolve(rec, "latest"))
    out = filters.filter_snapshot(snap_df, filters.Filters(), level=3, limit=5)  # 3: the limit comes last
    assert out.loc[out["kept"], "pid"].tolist() == [41] and out.loc[out["context"], "pid"].tolist() == [1, 10, 40]
    out = filters.filter_snapshot(snap_df, filters.Filters(min_rss_mib=100)).set_index("pid")  # 4: trees first
    assert out.loc[40, "context"] and out.loc[41, "kept"] and out.loc[10, "subtree_rss_bytes"] == 1401 * MIB
    assert out.loc[41, "level"] == 3
    st = query.stats(rec).set_index("pid")  # 5: lifetime from the start time
    assert st.loc[77, "lifetime_s"] == 3600 and st.loc[77, "observed_span_s"] == 0
    assert filters.lifetime_s(snap_df.set_index("pid")).loc[77] == 3600
