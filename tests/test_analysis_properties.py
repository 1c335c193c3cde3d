"""Property tests: vectorised trees, timelines, children trends, peaks, stats and filters equal the slow reference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlib import filters, stats, timeline, tree
from tests import reference
from tests.strategies import histories, make_procs, simulate, steps_strategy

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _none(v):
    return None if v is pd.NA or v is None else int(v)


@FAST
@given(histories())
def test_trees_match_reference(procs):
    got = tree.derive_trees(procs)
    want = reference.trees(procs)
    assert list(got.index) == list(procs.index)
    for col in ("level", "parent_row", "descendants", "subtree_rss_bytes"):
        assert got[col].tolist() == [w[col] for w in want], col
    for col in ("subtree_pss_bytes", "subtree_uss_bytes", "subtree_swap_bytes"):
        assert [_none(v) for v in got[col]] == [w[col] for w in want], col


@FAST
@given(steps_strategy(), st.randoms(use_true_random=False))
def test_trees_do_not_depend_on_row_order(steps, rnd):
    procs = make_procs(simulate(steps))
    shuffled = list(range(len(procs)))
    rnd.shuffle(shuffled)
    mixed = procs.iloc[shuffled]
    got = tree.derive_trees(mixed)
    base = tree.derive_trees(procs).loc[mixed.index]
    for col in ("level", "descendants", "subtree_rss_bytes", "subtree_pss_bytes"):
        assert got[col].tolist() == base[col].tolist()
    # parent_row is positional in the frame it was computed for: it must point at the same process
    pos = got["parent_row"].to_numpy()
    got_parent = np.where(pos >= 0, mixed["proc_id"].to_numpy()[np.maximum(pos, 0)], -1)
    bpos = base["parent_row"].to_numpy()
    want_parent = np.where(bpos >= 0, procs["proc_id"].to_numpy()[np.maximum(bpos, 0)], -1)
    assert got_parent.tolist() == want_parent.tolist()


@settings(FAST, max_examples=40)
@given(histories(), st.booleans())
def test_timelines_and_children_match_reference(procs, use_index):
    full = tree.with_tree(procs)
    index = tree.TreeIndex.build(full) if use_index else None
    pre = (reference.rows_of(procs), reference.trees(procs))
    for pid in sorted(set(procs["proc_id"])):
        tl = timeline.process_timeline(full, pid, index)
        want = reference.timeline(procs, pid, pre)
        assert tl["snap"].tolist() == [w["snap"] for w in want]
        assert tl["pid"].tolist() == [w["pid"] for w in want]
        for col in ("rss_bytes", "subtree_rss_bytes", "descendants", "level"):
            assert tl[col].tolist() == [w[col] for w in want], col
        for col in ("pss_bytes", "subtree_pss_bytes", "subtree_swap_bytes"):
            assert [_none(v) for v in tl[col]] == [w[col] for w in want], col
        for metric in ("rss", "uss"):
            ct = timeline.children_trends(full, pid, metric=metric, index=index)
            col = f"subtree_{metric}_bytes"
            got = sorted(
                zip(ct["snap"], ct["child_pid"], ct["child_proc_id"], [_none(v) for v in ct[col]], strict=True)
            )
            assert got == reference.children(procs, pid, f"{metric}_bytes", pre)
        peak = timeline.subtree_peak(full, pid, "rss", index)
        assert peak.bytes == reference.subtree_peak(procs, pid, pre=pre)


@settings(FAST, max_examples=25)
@given(histories())
def test_timeline_without_tree_columns_equals_with(procs):
    full = tree.with_tree(procs)
    for pid in sorted(set(procs["proc_id"]))[:4]:
        a = timeline.process_timeline(procs, pid)
        b = timeline.process_timeline(full, pid)
        pd.testing.assert_frame_equal(a, b)
        pd.testing.assert_frame_equal(timeline.children_trends(procs, pid), timeline.children_trends(full, pid))


@settings(FAST, max_examples=35)
@given(histories(), st.booleans())
def test_stats_match_reference(procs, use_index):
    full = tree.with_tree(procs)
    got = stats.process_stats(full, index=tree.TreeIndex.build(full) if use_index else None).set_index("proc_id")
    want = reference.stats(procs)
    assert sorted(got.index) == sorted(want)
    for pid, w in want.items():
        g = got.loc[pid]
        for key in ("samples", "rss_min_bytes", "rss_max_bytes", "rss_last_bytes", "subtree_rss_min_bytes"):
            assert g[key] == w[key], key
        assert g["subtree_rss_max_bytes"] == w["subtree_rss_max_bytes"]
        assert g["subtree_rss_last_bytes"] == w["subtree_rss_last_bytes"]
        for key in ("rss_mean_bytes", "rss_p95_bytes", "subtree_rss_p95_bytes"):
            assert math.isclose(g[key], w[key], rel_tol=1e-9), key
        assert g["first_seen"] == w["first_seen"] and g["last_seen"] == w["last_seen"]
        assert g["lifetime_s"] == (w["last_seen"] - g["start_time"]).total_seconds()
        if w["growth_bytes_per_hour"] is None:
            assert math.isnan(g["growth_bytes_per_hour"])
        else:
            assert math.isclose(g["growth_bytes_per_hour"], w["growth_bytes_per_hour"], rel_tol=1e-6, abs_tol=1e-3)


@FAST
@given(
    histories(),
    st.data(),
    st.sampled_from([0, 1, 7]),
    st.sampled_from([0, 1, 20]),
    st.sampled_from([0, 5, 40]),
    st.sampled_from(["", "job", "EXE", "bob", "zz"]),
    st.sampled_from(["rss", "pss"]),
    st.one_of(st.none(), st.integers(0, 3)),
    st.one_of(st.none(), st.integers(0, 4)),
)
def test_filters_match_reference(procs, data, min_life, min_own, min_sub, match, metric, level, limit):
    snap = data.draw(st.sampled_from(sorted(set(procs["snap"]))))
    f = filters.Filters(
        min_lifetime_s=min_life, min_rss_mib=min_own, min_subtree_mib=min_sub, match=match, metric=metric
    )
    snap_df = tree.snapshot(procs, snap)
    out = filters.filter_snapshot(snap_df, f, level=level, limit=limit)
    col = f"{metric}_bytes"
    mib = 1 << 20
    kept, context = reference.filter_rows(procs, snap, min_life, min_own * mib, min_sub * mib, match, col, level, limit)
    assert set(out.loc[out["kept"], "proc_id"]) == kept
    assert set(out.loc[out["context"], "proc_id"]) == context
    assert not (out["kept"] & out["context"]).any()
    # subtree totals are never changed by filtering
    base = snap_df.set_index("proc_id")["subtree_rss_bytes"]
    assert (out.set_index("proc_id")["subtree_rss_bytes"] == base.loc[out["proc_id"]]).all()
