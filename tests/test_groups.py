"""Groups (issue 5, item 4): keys per kind, totals per moment equal the sum of their members, top-K folding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlib import groups
from tests.strategies import MIB, histories, make_procs


def _history() -> pd.DataFrame:
    recs = []
    for s in range(2):
        recs += [{"snap": s, "pid": 1, "ppid": 0, "rss": 10 * MIB, "name": "systemd", "cmdline": "/sbin/init splash",
                  "user": "root", "cgroup": "/init.scope"}]  # fmt: skip
        recs += [{"snap": s, "pid": 2, "ppid": 0, "rss": 0, "name": "kthreadd", "cmdline": "[kthreadd]",
                  "user": "root", "cgroup": None}]  # fmt: skip
        for pid in (100, 101, 102):
            recs += [{"snap": s, "pid": pid, "ppid": 1, "rss": (pid - 90) * MIB, "name": "postgres",
                      "cmdline": f"postgres: worker {pid}", "user": "postgres",
                      "cgroup": "/system.slice/postgresql.service", "pss": (pid - 95) * MIB if pid != 102 else None,
                      "uss": MIB, "swap": 0}]  # fmt: skip
    recs += [{"snap": 1, "pid": 200, "ppid": 1, "rss": 50 * MIB, "name": "python3",
              "cmdline": "/usr/bin/python3 /opt/app.py --port 8080", "user": "alice",
              "cgroup": "/user.slice/user-1000.slice/session-2.scope"}]  # fmt: skip
    return make_procs(recs)


def test_group_by_name_sums_members_and_pss_of_known_only():
    out = groups.group_totals(_history(), "name")
    assert list(out.columns) == groups.GROUP_COLUMNS
    pg = out[out["group"] == "postgres"].set_index("snap")
    assert pg.loc[0, "processes"] == 3 and pg.loc[0, "rss_bytes"] == (10 + 11 + 12) * MIB
    assert pg.loc[0, "pss_bytes"] == (5 + 6) * MIB and pg.loc[0, "smaps_known"] == 2  # 102's PSS unknown
    init = out[out["group"] == "systemd"].iloc[0]
    assert pd.isna(init["pss_bytes"]) and init["smaps_known"] == 0  # unknown stays null, never 0
    assert out[out["snap"] == 0]["group"].astype(str).tolist() == ["kthreadd", "postgres", "systemd"]


def test_group_by_command_user_cgroup_keys():
    procs = _history()
    cmd = groups.group_totals(procs, "command")
    assert set(cmd[cmd["snap"] == 1]["group"].astype(str)) == {"init", "[kthreadd]", "postgres", "python3"}
    user = groups.group_totals(procs, "user").set_index(["snap", "group"])
    assert user.loc[(1, "alice"), "rss_bytes"] == 50 * MIB and user.loc[(1, "root"), "processes"] == 2
    assert groups.group_totals(procs, "user", snaps=[1])["snap"].unique().tolist() == [1]
    cg = groups.group_totals(procs, "cgroup")
    assert groups.UNKNOWN_GROUP in set(cg["group"].astype(str))  # kthreadd has no cgroup
    assert cg.groupby("snap")["processes"].sum().tolist() == [5, 6]


def test_command_of_handles_paths_colons_kernel_threads_and_nulls():
    s = pd.Series(["/usr/bin/python3 x.py", "postgres: checkpointer", "[kworker/0:1]", "", None, "  sh -c x"])
    out = groups.command_of(s)
    assert out.isna().tolist() == [False, False, False, True, True, False]
    assert out.dropna().tolist() == ["python3", "postgres", "[kworker/0:1]", "sh"]


def test_top_folds_the_rest_into_other():
    out = groups.group_totals(_history(), "name", top=1)
    assert set(out["group"].astype(str)) == {"python3", groups.OTHER_GROUP}
    other = out[(out["group"] == groups.OTHER_GROUP)].set_index("snap")
    assert other.loc[0, "processes"] == 5 and other.loc[0, "rss_bytes"] == 43 * MIB
    assert other.loc[0, "pss_bytes"] == 11 * MIB
    assert groups.group_totals(_history(), "name", top=0)["group"].astype(str).unique().tolist() == ["(other)"]


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="cannot group by 'pid'"):
        groups.group_totals(_history(), "pid")
    with pytest.raises(ValueError, match="unknown memory metric"):
        groups.group_totals(_history(), "name", top=2, metric="vsz")
    with pytest.raises(ValueError, match="top must be >= 0"):
        groups.group_totals(_history(), "name", top=-1)


def test_empty_frame_gives_empty_result():
    out = groups.group_totals(_history().iloc[0:0], "user")
    assert out.empty and list(out.columns) == groups.GROUP_COLUMNS


def test_members_and_summary():
    procs = _history()
    mem = groups.group_members(procs, "user", "postgres", 1)
    assert mem["pid"].tolist() == [102, 101, 100]
    summ = groups.group_summary(groups.group_totals(procs, "name"))
    assert summ["group"].astype(str).tolist()[:2] == ["python3", "postgres"]
    row = summ.set_index("group").loc["postgres"]
    assert row["snapshots"] == 2 and row["rss_max_bytes"] == 33 * MIB and row["rss_last_bytes"] == 33 * MIB


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(procs=histories(), by=st.sampled_from(groups.GROUP_BY), top=st.one_of(st.none(), st.integers(0, 4)))
def test_group_totals_equal_sum_of_members_at_every_moment(procs, by, top):
    out = groups.group_totals(procs, by, top=top)
    keys = groups.group_keys(procs, by).astype(str)
    if top is not None:
        kept = set(out["group"].astype(str)) - {groups.OTHER_GROUP}
        keys = np.where(np.isin(keys, list(kept)), keys, groups.OTHER_GROUP)
    ref = procs.assign(group=keys)
    for (snap, group), members in ref.groupby(["snap", "group"]):
        row = out[(out["snap"] == snap) & (out["group"].astype(str) == group)]
        assert len(row) == 1
        row = row.iloc[0]
        assert row["processes"] == len(members)
        assert row["rss_bytes"] == members["rss_bytes"].sum()
        for col in ("pss_bytes", "uss_bytes", "swap_bytes"):
            expect = members[col].sum(min_count=1)
            assert (pd.isna(row[col]) and pd.isna(expect)) or row[col] == expect
    # every moment: groups add up to all processes, and no empty group is listed
    per_snap = out.groupby("snap")[["processes", "rss_bytes"]].sum()
    truth = procs.groupby("snap").agg(processes=("pid", "size"), rss_bytes=("rss_bytes", "sum"))
    assert per_snap["processes"].tolist() == truth["processes"].tolist()
    assert per_snap["rss_bytes"].tolist() == truth["rss_bytes"].tolist()
    assert (out["processes"] > 0).all()


def test_a_group_whose_peak_is_zero_or_unknown_is_never_top():
    # kthreadd's RSS is 0 at every moment: with room for 4 groups only the 3 that hold memory are top
    out = groups.group_totals(_history(), "name", top=4)
    assert set(out["group"].astype(str)) == {"python3", "postgres", "systemd", groups.OTHER_GROUP}
    assert (out.loc[out["group"] == groups.OTHER_GROUP, "rss_bytes"] == 0).all()
    # by PSS only postgres is known: systemd, python3 and kthreadd are not top whatever the room
    out = groups.group_totals(_history(), "name", top=10, metric="pss")
    assert set(out["group"].astype(str)) == {"postgres", groups.OTHER_GROUP}


def test_with_known_peak_drops_bands_that_are_always_zero_or_unknown():
    series = groups.group_totals(_history(), "name", top=4)
    shown = groups.with_known_peak(series, "rss_bytes")
    assert set(shown["group"].astype(str)) == {"python3", "postgres", "systemd"}  # "(other)" held only kthreadd
    assert set(groups.with_known_peak(series, "pss_bytes")["group"].astype(str)) == {"postgres"}
    assert groups.with_known_peak(series.iloc[0:0], "rss_bytes").empty
