"""Filters: URL dict round trip, validation, and the semantics documented in memlib.filters."""

from __future__ import annotations

import pandas as pd
import pytest

from memlib import filters, tree
from memlib.filters import Filters
from tests.strategies import MIB, make_procs, ts_of


def _snap_df() -> pd.DataFrame:
    recs = [
        {"snap": 0, "pid": 1, "ppid": 0, "rss": 8 * MIB, "name": "systemd", "user": "root"},
        {"snap": 0, "pid": 10, "ppid": 1, "rss": 50 * MIB, "name": "sshd", "cmdline": "sshd: alice", "user": "root"},
        {"snap": 0, "pid": 11, "ppid": 10, "rss": 5 * MIB, "name": "bash", "pss": 4 * MIB},
        {
            "snap": 0,
            "pid": 12,
            "ppid": 11,
            "rss": 300 * MIB,
            "name": "Python3",
            "cmdline": "python3 TRAIN.py",
            "pss": None,
        },
        {"snap": 0, "pid": 13, "ppid": 11, "rss": 200 * MIB, "name": "vim", "pss": 150 * MIB},
        {
            "snap": 0,
            "pid": 20,
            "ppid": 1,
            "rss": 400 * MIB,
            "name": "postgres",
            "user": "postgres",
            "start": ts_of(0) - pd.Timedelta(seconds=30),
        },
    ]
    return tree.snapshot(make_procs(recs), 0)


def _kept(out: pd.DataFrame) -> list[int]:
    return out.loc[out["kept"], "pid"].tolist()


def _context(out: pd.DataFrame) -> list[int]:
    return out.loc[out["context"], "pid"].tolist()


def test_default_filters_keep_everything_without_context():
    out = filters.filter_snapshot(_snap_df(), Filters())
    assert _kept(out) == [1, 10, 11, 12, 13, 20] and _context(out) == []
    assert Filters().is_default() and not Filters(match="x").is_default()


def test_dict_round_trip_omits_defaults_and_parses_text():
    f = Filters(min_lifetime_s=300, min_rss_mib=12.5, match="py", metric="pss")
    d = f.to_dict()
    assert d == {"min_lifetime_s": "300", "min_rss_mib": "12.5", "match": "py", "metric": "pss"}
    assert Filters.from_dict(d) == f
    assert Filters.from_dict({}) == Filters() and Filters().to_dict() == {}
    assert Filters.from_dict({"min_subtree_mib": ["1", "2"], "other": "x"}) == Filters(min_subtree_mib=2)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"min_rss_mib": "lots"}, "min_rss_mib must be a number"),
        ({"min_lifetime_s": "-1"}, "min_lifetime_s must be a finite number >= 0"),
        ({"min_subtree_mib": "nan"}, "min_subtree_mib must be a finite number"),
        ({"metric": "vsz"}, "unknown metric 'vsz'"),
    ],
)
def test_bad_values_get_clear_messages(data, message):
    with pytest.raises(ValueError, match=message):
        Filters.from_dict(data)


def test_thresholds_keep_ancestors_as_context():
    out = filters.filter_snapshot(_snap_df(), Filters(min_rss_mib=250))
    assert _kept(out) == [12, 20] and _context(out) == [1, 10, 11]
    # parent_row is positional in the result
    pos = dict(zip(out["pid"], range(len(out)), strict=True))
    assert out.set_index("pid")["parent_row"].to_dict() == {1: -1, 10: pos[1], 11: pos[10], 12: pos[11], 20: pos[1]}


def test_match_is_case_insensitive_plain_text_over_name_cmdline_user():
    snap_df = _snap_df()
    assert _kept(filters.filter_snapshot(snap_df, Filters(match="train"))) == [12]
    assert _kept(filters.filter_snapshot(snap_df, Filters(match="ALICE"))) == [10, 11, 12, 13]
    assert _kept(filters.filter_snapshot(snap_df, Filters(match="postgres"))) == [20]
    assert _kept(filters.filter_snapshot(snap_df, Filters(match=".*"))) == []  # not a regex


def test_lifetime_is_evaluated_at_the_moment():
    out = filters.filter_snapshot(_snap_df(), Filters(min_lifetime_s=60))
    assert 20 not in _kept(out)
    assert filters.lifetime_s(_snap_df()).tolist()[-1] == 30


def test_unknown_metric_values_fail_positive_thresholds_only():
    snap_df = _snap_df()
    out = filters.filter_snapshot(snap_df, Filters(metric="pss", min_rss_mib=1))
    assert _kept(out) == [11, 13] and _context(out) == [1, 10]
    assert len(_kept(filters.filter_snapshot(snap_df, Filters(metric="pss")))) == 6
    # subtree PSS of bash = 4 + 150 known (python3's PSS is unknown)
    sub = filters.filter_snapshot(snap_df, Filters(metric="pss", min_subtree_mib=154))
    assert _kept(sub) == [1, 10, 11]


def test_level_then_limit_ranked_by_metric():
    snap_df = _snap_df()
    out = filters.filter_snapshot(snap_df, Filters(), level=1, limit=1)
    assert _kept(out) == [20] and _context(out) == [1]
    out = filters.filter_snapshot(snap_df, Filters(), level=1, limit=1, rank_by="subtree")
    assert _kept(out) == [10]  # sshd's subtree (555 MiB) beats postgres (400 MiB)
    assert _kept(filters.filter_snapshot(snap_df, Filters(), limit=0)) == []
    with pytest.raises(ValueError, match="rank_by"):
        filters.filter_snapshot(snap_df, Filters(), rank_by="size")


def test_rejects_several_snapshots_and_accepts_frames_without_tree_columns():
    procs = make_procs([{"snap": s, "pid": 1, "ppid": 0, "rss": MIB} for s in range(2)])
    with pytest.raises(ValueError, match="one snapshot"):
        filters.filter_snapshot(procs, Filters())
    out = filters.filter_snapshot(procs[procs["snap"] == 1], Filters())
    assert out["kept"].tolist() == [True] and out["subtree_rss_bytes"].tolist() == [MIB]
    empty = filters.filter_snapshot(procs.iloc[0:0], Filters(match="x"))
    assert empty.empty and {"kept", "context"} <= set(empty.columns)
