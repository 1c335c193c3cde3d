"""Summaries: system memory with missing keys and the PSS/RSS basis, top processes/subtrees, growers, counts."""

from __future__ import annotations

import pandas as pd
import pytest

from memlib import query, source, summary
from tests.strategies import MIB, make_procs, ts_of

GIB = 1024 * MIB


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


def _recorded(tmp_path, meminfo: list[dict]):
    """_history() written through the real writer with these /proc/meminfo values per sample -> a Recording."""
    from tests.store_samples import writer
    from tests.strategies import sample_columns_of

    procs = _history()
    w = writer(tmp_path / "store", host="testhost", boot_id="boot-1")
    for snap, info in enumerate(meminfo):
        w.append(ts_of(snap), sample_columns_of(procs[procs["snap"] == snap]), info)
    w.close()
    return source.open_recording(tmp_path / "store")


def test_system_series_definitions_and_attribution(tmp_path):
    base = {"MemTotal": 8 * GIB, "MemFree": GIB, "MemAvailable": 6 * GIB, "Buffers": 64 * MIB, "Cached": GIB,
            "SReclaimable": 100 * MIB, "SwapTotal": GIB, "SwapFree": GIB // 2}  # fmt: skip
    out = query.system(_recorded(tmp_path, [base] * 3))
    assert list(out.columns) == query.SYSTEM_COLUMNS
    row0, row2 = out.iloc[0], out.iloc[2]
    assert row0["mem_used_bytes"] == 2 * GIB and row0["cached_bytes"] == 64 * MIB + GIB + 100 * MIB  # buff/cache
    assert row0["swap_used_bytes"] == GIB // 2 and row0["processes"] == 4
    assert row0["procs_rss_bytes"] == 430 * MIB and row0["procs_pss_bytes"] == 395 * MIB
    # snapshot 2: one PSS unknown -> PSS sum over known values only
    assert row2["procs_pss_bytes"] == 95 * MIB and row2["pss_known_processes"] == 3
    assert row2["pss_known_rss_bytes"] == 290 * MIB - 60 * MIB
    att = summary.attributed(out, "pss")
    assert att["attributed_bytes"].iloc[2] == 95 * MIB + 60 * MIB  # PSS where known, RSS of the process without
    assert att["unattributed_bytes"].iloc[0] == 2 * GIB - 395 * MIB and (att["overcounted_bytes"] == 0).all()
    rss = summary.attributed(out, "rss")
    assert rss["unattributed_bytes"].iloc[0] == 2 * GIB - 430 * MIB


def test_not_attributed_is_never_negative(tmp_path):
    small = {"MemTotal": 8 * GIB, "MemFree": 7 * GIB, "MemAvailable": 8 * GIB - 300 * MIB}  # used < Σ RSS
    out = query.system(_recorded(tmp_path, [small] * 3))
    att = summary.attributed(out, "rss")
    assert att["unattributed_bytes"].iloc[0] == 0 and att["overcounted_bytes"].iloc[0] == 130 * MIB


def test_missing_meminfo_keys_are_null_and_used_falls_back(tmp_path):
    info = {"MemTotal": 8 * GIB, "MemFree": GIB, "Buffers": 0, "Cached": GIB, "SReclaimable": 0}
    out = query.system(_recorded(tmp_path, [info] * 3)).iloc[0]
    assert out["mem_used_bytes"] == 6 * GIB  # MemTotal - MemFree - Buffers - Cached - SReclaimable
    assert pd.isna(out["mem_available_bytes"]) and pd.isna(out["swap_used_bytes"])


def test_the_default_metric_follows_pss_coverage():
    procs = _history()
    at0 = summary.choose_metric(procs[procs["snap"] == 0])
    assert at0.metric == "pss" and at0.pss_share == 1.0 and "PSS" in at0.reason
    at2 = summary.choose_metric(procs[procs["snap"] == 2])  # 60 of 290 MiB without PSS: 79 %
    assert at2.metric == "rss" and round(at2.pss_share, 2) == 0.79 and "79 %" in at2.reason
    assert summary.choose_metric(procs.iloc[0:0]).metric == "rss"


def test_the_default_metric_from_the_moments_sums_equals_the_one_from_its_rows(tmp_path):
    info = {"MemTotal": 8 * GIB, "MemFree": GIB, "MemAvailable": 6 * GIB, "Buffers": 0, "Cached": GIB}
    rec = _recorded(tmp_path, [info] * 3)
    for snap in range(3):
        m = query.resolve(rec, ts_of(snap))
        assert query.default_metric(rec, m) == summary.choose_metric(query.moment(rec, m))
    assert [query.default_metric(rec, query.resolve(rec, ts_of(s))).metric for s in range(3)] == ["pss", "pss", "rss"]
    assert summary.metric_choice(None, None).metric == "rss" and summary.metric_choice(0, 0).pss_share == 0.0


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
