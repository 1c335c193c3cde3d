"""Hand-made trees: roots, absent parents, cycles, nullable metrics, TreeIndex, snapshot/ancestors/descendants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memlib import schema, tree
from tests.strategies import MIB, make_procs


def _rec(snap, pid, ppid, rss_mib, **kw):
    return {"snap": snap, "pid": pid, "ppid": ppid, "rss": rss_mib * MIB, **kw}


def _by_pid(procs: pd.DataFrame, tr: pd.DataFrame, snap: int = 0) -> dict[int, dict]:
    both = pd.concat([procs, tr], axis=1)
    both = both[both["snap"] == snap]
    return {int(r["pid"]): r for r in both.to_dict("records")}


def test_simple_tree_levels_counts_and_totals():
    procs = make_procs(
        [
            _rec(0, 1, 0, 10),
            _rec(0, 2, 0, 0),
            _rec(0, 3, 2, 0),
            _rec(0, 10, 1, 100),
            _rec(0, 11, 10, 50),
            _rec(0, 12, 11, 25),
            _rec(0, 13, 10, 5),
        ]
    )
    got = _by_pid(procs, tree.derive_trees(procs))
    assert {p: got[p]["level"] for p in got} == {1: 0, 2: 0, 3: 1, 10: 1, 11: 2, 12: 3, 13: 2}
    assert {p: got[p]["descendants"] for p in got} == {1: 4, 2: 1, 3: 0, 10: 3, 11: 1, 12: 0, 13: 0}
    assert got[1]["subtree_rss_bytes"] == 190 * MIB
    assert got[10]["subtree_rss_bytes"] == 180 * MIB
    assert got[11]["subtree_rss_bytes"] == 75 * MIB
    rows = {int(p): i for i, p in enumerate(procs["pid"])}
    assert got[12]["parent_row"] == rows[11] and got[1]["parent_row"] == -1


def test_dtypes_and_index_follow_schema():
    procs = make_procs([_rec(0, 1, 0, 1), _rec(0, 5, 1, 2)])
    procs.index = [100, 200]
    tr = tree.derive_trees(procs)
    assert list(tr.index) == [100, 200]
    assert {c: str(t) for c, t in tr.dtypes.items()} == schema.TREE_COLUMNS


def test_absent_parent_and_self_parent_are_roots():
    procs = make_procs([_rec(0, 1, 0, 1), _rec(0, 7, 99, 3), _rec(0, 8, 7, 4), _rec(0, 9, 9, 5)])
    got = _by_pid(procs, tree.derive_trees(procs))
    assert got[7]["level"] == 0 and got[7]["parent_row"] == -1
    assert got[8]["level"] == 1 and got[7]["subtree_rss_bytes"] == 7 * MIB
    assert got[9]["level"] == 0 and got[9]["descendants"] == 0 and got[9]["subtree_rss_bytes"] == 5 * MIB


def test_cycles_terminate_and_become_roots():
    # 5 -> 6 -> 7 -> 5 is a cycle; 8 hangs below 7; 20 -> 21 -> 20 a second one
    recs = [_rec(0, 1, 0, 1), _rec(0, 5, 7, 1), _rec(0, 6, 5, 2), _rec(0, 7, 6, 4), _rec(0, 8, 7, 8)]
    recs += [_rec(0, 20, 21, 16), _rec(0, 21, 20, 32)]
    procs = make_procs(recs)
    got = _by_pid(procs, tree.derive_trees(procs))
    for pid in (5, 6, 7, 20, 21):
        assert got[pid]["level"] == 0 and got[pid]["parent_row"] == -1
    assert got[8]["level"] == 1
    assert got[7]["subtree_rss_bytes"] == 12 * MIB


def test_trees_are_per_snapshot():
    procs = make_procs([_rec(0, 1, 0, 1), _rec(0, 5, 1, 2), _rec(1, 1, 0, 1), _rec(1, 6, 5, 3)])
    tr = tree.derive_trees(procs)
    assert _by_pid(procs, tr, 1)[6]["level"] == 0  # its parent 5 exists only in snapshot 0
    assert _by_pid(procs, tr, 0)[1]["subtree_rss_bytes"] == 3 * MIB


def test_nullable_metrics_sum_known_values_and_stay_null_when_none_known():
    procs = make_procs(
        [
            _rec(0, 1, 0, 10),  # pss unknown
            _rec(0, 5, 1, 10, pss=4 * MIB, uss=2 * MIB),
            _rec(0, 6, 5, 10, pss=1 * MIB, uss=None),
            _rec(0, 7, 1, 10),
        ]
    )
    got = _by_pid(procs, tree.derive_trees(procs))
    assert got[1]["subtree_pss_bytes"] == 5 * MIB
    assert got[5]["subtree_uss_bytes"] == 2 * MIB
    assert pd.isna(got[6]["subtree_uss_bytes"])
    assert pd.isna(got[7]["subtree_pss_bytes"])
    assert pd.isna(got[1]["subtree_swap_bytes"])  # nothing known anywhere


def test_missing_metric_columns_give_null_subtrees():
    procs = make_procs([_rec(0, 1, 0, 10), _rec(0, 2, 1, 10)]).drop(columns=["pss_bytes", "uss_bytes", "swap_bytes"])
    tr = tree.derive_trees(procs)
    assert tr["subtree_pss_bytes"].isna().all() and str(tr["subtree_pss_bytes"].dtype) == "Int64"


def test_empty_and_bad_frames():
    tr = tree.derive_trees(schema.empty_procs())
    assert len(tr) == 0 and list(tr.columns) == list(schema.TREE_COLUMNS)
    with pytest.raises(KeyError, match="ppid"):
        tree.derive_trees(pd.DataFrame({"snap": [0], "pid": [1], "rss_bytes": [1]}))


def test_duplicate_rows_attach_children_to_first():
    procs = make_procs([_rec(0, 1, 0, 1), _rec(0, 5, 1, 2), _rec(0, 5, 1, 2), _rec(0, 6, 5, 4)])
    tr = tree.derive_trees(procs)
    assert tr["subtree_rss_bytes"].iloc[0] == 9 * MIB
    assert tr["parent_row"].iloc[3] == 1


def test_tree_index_lookups_match_masks():
    recs = [_rec(s, 1, 0, 1) for s in range(3)] + [_rec(s, 5, 1, s + 1) for s in (0, 2)]
    recs += [_rec(s, 6, 5, 2) for s in (0, 2)] + [_rec(1, 6, 1, 2)]
    procs = tree.with_tree(make_procs(recs))
    idx = tree.TreeIndex.build(procs)
    for pid in set(procs["proc_id"]):
        assert idx.rows_of_proc(pid).tolist() == np.flatnonzero(procs["proc_id"] == pid).tolist()
    assert idx.rows_of_proc(999).size == 0 and idx.rows_of_snap(42).size == 0
    assert sorted(idx.rows_of_snap(1).tolist()) == np.flatnonzero(procs["snap"] == 1).tolist()
    kids = idx.children_of_rows(np.flatnonzero(procs["pid"] == 1))
    assert sorted(procs["pid"].iloc[kids].tolist()) == [5, 5, 6]


def test_snapshot_ancestors_descendants():
    recs = [_rec(s, 1, 0, 1) for s in range(2)] + [_rec(s, 10, 1, 2) for s in range(2)]
    recs += [_rec(1, 11, 10, 3), _rec(1, 12, 11, 4), _rec(1, 13, 1, 5)]
    procs = make_procs(recs)
    snap_df = tree.snapshot(procs, 1)
    assert snap_df["pid"].tolist() == [1, 10, 11, 12, 13]
    assert snap_df["parent_row"].tolist() == [-1, 0, 1, 2, 0]
    pid12 = int(procs.loc[procs["pid"] == 12, "proc_id"].iloc[0])
    assert tree.ancestors(procs, pid12, 1)["pid"].tolist() == [1, 10, 11, 12]
    pid10 = int(procs.loc[procs["pid"] == 10, "proc_id"].iloc[0])
    assert tree.descendants_of(procs, pid10, 1)["pid"].tolist() == [10, 11, 12]
    assert tree.descendants_of(procs, pid10, 0)["pid"].tolist() == [10]
    assert tree.ancestors(procs, pid12, 0).empty and tree.snapshot(procs, 7).empty
    # same answers with a prebuilt TreeIndex
    full = tree.with_tree(procs)
    idx = tree.TreeIndex.build(full)
    pd.testing.assert_frame_equal(tree.snapshot(full, 1, idx), tree.snapshot(full, 1))


def test_with_tree_keeps_a_duplicate_index_and_derives_only_when_missing():
    procs = make_procs([_rec(0, 1, 0, 5), _rec(0, 2, 1, 7)])
    procs.index = [3, 3]
    full = tree.with_tree(procs)
    assert full["subtree_rss_bytes"].tolist() == [12 * MIB, 7 * MIB] and list(full.index) == [3, 3]
    assert tree.with_tree(full) is full


def test_chunks_in_parallel_give_the_same_trees_as_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.gen_day import generate

    procs, _ = generate(hours=0.5, interval_s=5, n_procs=40, seed=7)
    procs = procs.drop(columns=list(schema.TREE_COLUMNS), errors="ignore")
    monkeypatch.setattr(tree, "_CHUNK_ROWS", 1 << 30)
    whole = tree.derive_trees(procs)
    monkeypatch.setattr(tree, "_CHUNK_ROWS", 500)  # many chunks of whole snapshots, two threads
    monkeypatch.setattr(tree, "_WORKERS", 2)
    assert len(tree._snapshot_chunks(procs["snap"].to_numpy())) > 20
    pd.testing.assert_frame_equal(tree.derive_trees(procs), whole)
