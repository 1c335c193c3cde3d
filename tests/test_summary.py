"""Summaries: system memory with missing keys and the PSS/RSS basis, top processes/subtrees, growers, counts."""

from __future__ import annotations

import pandas as pd
import pytest

from memlib import summary
from tests.strategies import MIB, make_procs, ts_of

GIB = 1024 * MIB


def _system(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["ts"] = [ts_of(s) for s in df["snap"]]
    df["host"] = pd.Categorical(["testhost"] * len(df))
    df["boot_id"] = pd.Categorical(["boot-1"] * len(df))
    for c in df.columns:
        if c not in ("snap", "ts", "host", "boot_id"):
            df[c] = df[c].astype("Int64")
    df["snap"] = df["snap"].astype("int32")
    return df


def _history() -> pd.DataFrame:
    recs = []
    for s in range(3):
        recs += [{"snap": s, "pid": 1, "ppid": 0, "rss": 10 * MIB, "pss": 5 * MIB}]
        recs += [{"snap": s, "pid": 10, "ppid": 1, "rss": (100 + 50 * s) * MIB, "pss": 80 * MIB}]
        recs += [{"snap": s, "pid": 11, "ppid": 10, "rss": 20 * MIB, "pss": 10 * MIB}]
    recs += [{"snap": 0, "pid": 30, "ppid": 1, "rss": 300 * MIB, "pss": 300 * MIB}]  # exits after snapshot 0
    recs += [{"snap": 1, "pid": 31, "ppid": 1, "rss": 7 * MIB, "pss": 7 * MIB}]  # lives in snapshot 1 only
    recs += [{"snap": 2, "pid": 40, "ppid": 10, "rss": 60 * MIB, "pss": None}]  # new, PSS unreadable
    return make_procs(recs)


def test_system_summary_definitions_and_basis():
    base = {"MemTotal": 8 * GIB, "MemFree": GIB, "MemAvailable": 6 * GIB, "Buffers": 64 * MIB, "Cached": GIB}
    system = _system(
        [{"snap": s, **base, "SReclaimable": 100 * MIB, "SwapTotal": GIB, "SwapFree": GIB // 2} for s in range(3)]
    )
    out = summary.system_summary(system, _history())
    assert list(out.columns) == summary.SYSTEM_SUMMARY_COLUMNS
    row0, row2 = out.iloc[0], out.iloc[2]
    assert row0["mem_used_bytes"] == 2 * GIB and row0["cached_bytes"] == GIB + 100 * MIB
    assert row0["swap_used_bytes"] == GIB // 2 and row0["processes"] == 4
    assert row0["procs_rss_bytes"] == 430 * MIB and row0["procs_pss_bytes"] == 395 * MIB
    assert row0["unattributed_basis"] == "pss" and row0["unattributed_bytes"] == 2 * GIB - 395 * MIB
    # snapshot 2: one PSS unknown -> RSS basis, PSS sum over known values only
    assert row2["unattributed_basis"] == "rss" and row2["unattributed_bytes"] == 2 * GIB - 290 * MIB
    assert row2["procs_pss_bytes"] == 95 * MIB and row2["pss_known_processes"] == 3


def test_system_summary_missing_keys_are_null_and_used_falls_back():
    system = _system([{"snap": 0, "MemTotal": 8 * GIB, "MemFree": GIB, "Buffers": 0, "Cached": GIB, "SReclaimable": 0}])
    out = summary.system_summary(system, _history()).iloc[0]
    assert out["mem_used_bytes"] == 6 * GIB  # MemTotal - MemFree - Buffers - Cached - SReclaimable
    assert pd.isna(out["mem_available_bytes"]) and pd.isna(out["swap_used_bytes"])
    bare = _system([{"snap": 0, "MemTotal": 8 * GIB}, {"snap": 5, "MemTotal": 8 * GIB}])
    out = summary.system_summary(bare, _history())
    assert pd.isna(out["mem_used_bytes"]).all() and pd.isna(out["unattributed_bytes"]).all()
    assert out["processes"].tolist() == [4, 0] and pd.isna(out["procs_rss_bytes"].iloc[1])


def test_top_processes_and_subtrees():
    procs = _history()
    top = summary.top_processes(procs, 0, "rss", limit=2)
    assert top["pid"].tolist() == [30, 10]
    assert summary.top_processes(procs, 2, "pss", limit=None)["pid"].tolist() == [10, 11, 1, 40]  # null last
    subs = summary.top_subtrees(procs, 2)
    assert subs["pid"].tolist() == [10]  # below the root and with descendants
    assert subs["subtree_rss_bytes"].tolist() == [280 * MIB]
    assert subs["subtree_share"].iloc[0] == pytest.approx(280 / 290)
    lvl1 = summary.top_subtrees(procs, 0, level=1)
    assert lvl1["pid"].tolist() == [30, 10]


def test_growers_list_new_and_exited():
    out = summary.growers(_history(), 0, 2, limit=None).set_index("pid")
    assert out.loc[10, "status"] == "alive" and out.loc[10, "delta_bytes"] == 100 * MIB
    assert out.loc[10, "subtree_delta_bytes"] == 160 * MIB and out.loc[10, "descendants_after"] == 2
    assert out.loc[40, "status"] == "new" and out.loc[40, "delta_bytes"] == 60 * MIB
    assert out.loc[30, "status"] == "exited" and out.loc[30, "delta_bytes"] == -300 * MIB
    assert 31 not in out.index  # born and gone between the two moments
    assert summary.growers(_history(), 0, 2, limit=1)["pid"].tolist() == [10]
    by_sub = summary.growers(_history(), 0, 2, limit=2, by="subtree")["pid"].tolist()
    assert by_sub == [10, 40]
    pss = summary.growers(_history(), 0, 2, metric="pss", limit=None).set_index("pid")
    assert pd.isna(pss.loc[40, "delta_bytes"])  # unknown PSS stays unknown


def test_counts_window():
    got = summary.counts(_history(), 0, 2)
    assert got == {"processes_before": 4, "processes_now": 4, "new": 2, "exited": 2, "seen": 6}
    with pytest.raises(ValueError, match="after"):
        summary.counts(_history(), 2, 0)


def test_tree_index_gives_the_same_answers():
    from memlib import tree

    full = tree.with_tree(_history())
    idx = tree.TreeIndex.build(full)
    pd.testing.assert_frame_equal(summary.growers(full, 0, 2, index=idx), summary.growers(full, 0, 2))
    pd.testing.assert_frame_equal(summary.top_subtrees(full, 2, index=idx), summary.top_subtrees(full, 2))
    pd.testing.assert_frame_equal(summary.top_processes(full, 1, index=idx), summary.top_processes(full, 1))
