"""cgroup rollups (issue 5, item 3): tree at a moment, rollup to parents, memory.current, names, timeline."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from memlib import cgroups, groups
from tests.strategies import MIB, histories, make_procs, ts_of

SVC = "/system.slice/nginx.service"
DOCKER_ID = "0123456789abcdef" * 4
DOCKER = f"/system.slice/docker-{DOCKER_ID}.scope"
SESSION = "/user.slice/user-1000.slice/session-2.scope"


def _history() -> pd.DataFrame:
    recs = []
    for s in range(2):
        recs += [{"snap": s, "pid": 1, "ppid": 0, "rss": 10 * MIB, "cgroup": "/init.scope", "pss": 5 * MIB}]
        recs += [{"snap": s, "pid": 2, "ppid": 0, "rss": 0, "cgroup": None}]  # kernel thread: no cgroup
        recs += [{"snap": s, "pid": 10, "ppid": 1, "rss": 20 * MIB, "cgroup": SVC, "pss": 8 * MIB}]
        recs += [{"snap": s, "pid": 11, "ppid": 10, "rss": 30 * MIB, "cgroup": SVC, "pss": None}]
        recs += [{"snap": s, "pid": 20, "ppid": 1, "rss": (100 + s) * MIB, "cgroup": DOCKER, "swap": 4096}]
    recs += [{"snap": 1, "pid": 30, "ppid": 1, "rss": 7 * MIB, "cgroup": SESSION}]
    return make_procs(recs)


def _mem() -> pd.DataFrame:
    rows = [
        {"ts": ts_of(1), "host": "testhost", "cgroup": SVC, "memory_current_bytes": 80 * MIB},
        {"ts": ts_of(1), "host": "testhost", "cgroup": "/system.slice", "memory_current_bytes": 900 * MIB},
        {"ts": ts_of(0), "host": "testhost", "cgroup": SVC, "memory_current_bytes": 70 * MIB},
    ]
    return pd.DataFrame(rows).astype(cgroups.CGROUP_MEM_COLUMNS)


def test_tree_rolls_members_up_to_parents():
    out = cgroups.cgroup_tree(_history(), 1, cgroup_mem=_mem())
    assert list(out.columns) == cgroups.CGROUP_TREE_COLUMNS
    t = out.set_index("cgroup")
    assert set(t.index) == {"/", "/init.scope", "/system.slice", SVC, DOCKER, "/user.slice",
                            "/user.slice/user-1000.slice", SESSION}  # fmt: skip
    assert t.loc[SVC, "processes"] == 2 and t.loc[SVC, "rss_bytes"] == 50 * MIB
    assert t.loc[SVC, "pss_bytes"] == 8 * MIB  # known values only
    assert t.loc["/system.slice", "processes"] == 0 and t.loc["/system.slice", "tree_processes"] == 3
    assert t.loc["/system.slice", "tree_rss_bytes"] == 151 * MIB
    assert pd.isna(t.loc["/system.slice", "pss_bytes"]) and t.loc["/system.slice", "tree_pss_bytes"] == 8 * MIB
    assert t.loc["/", "tree_processes"] == 5 and t.loc["/", "tree_rss_bytes"] == 168 * MIB
    assert t.loc[DOCKER, "tree_swap_bytes"] == 4096 and pd.isna(t.loc[SVC, "swap_bytes"])
    assert t.loc[SVC, "memory_current_bytes"] == 80 * MIB  # the value recorded at that snapshot's time
    assert t.loc["/system.slice", "memory_current_bytes"] == 900 * MIB and pd.isna(
        t.loc[DOCKER, "memory_current_bytes"]
    )
    assert t.loc[SESSION, "depth"] == 3 and t.loc["/", "depth"] == 0 and pd.isna(t.loc["/", "parent"])
    assert out.attrs["unplaced_processes"] == 1
    assert (
        cgroups.cgroup_tree(_history(), 0, cgroup_mem=_mem()).set_index("cgroup").loc[SVC, "memory_current_bytes"]
        == 70 * MIB
    )


def test_readable_names():
    assert cgroups.readable("/") == ("root", "root")
    assert cgroups.readable(SVC) == ("nginx service", "service")
    assert cgroups.readable("/system.slice") == ("system slice", "slice")
    assert cgroups.readable(SESSION) == ("session-2 scope", "scope")
    assert cgroups.readable(DOCKER) == ("docker 0123456789ab", "container")
    assert cgroups.readable(f"/docker/{DOCKER_ID}") == ("docker 0123456789ab", "container")
    assert cgroups.readable(f"/kubepods.slice/x/cri-containerd-{DOCKER_ID}.scope")[0] == "containerd 0123456789ab"
    assert cgroups.readable(f"/machine.slice/libpod-{DOCKER_ID}.scope")[0] == "podman 0123456789ab"
    pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d_5e6f_7a8b.slice"
    assert cgroups.readable(pod) == ("pod 1a2b3c4d", "pod")
    assert cgroups.readable("/system.slice/system-getty.slice/getty@tty1.service")[0] == "getty@tty1 service"
    assert cgroups.readable("/system.slice/dev-disk-by\\x2duuid.swap")[0] == "dev-disk-by-uuid.swap"
    assert cgroups.readable("/mygroup") == ("mygroup", "cgroup")


def test_members_recursive_and_direct():
    procs = _history()
    assert cgroups.cgroup_members(procs, 1, "/system.slice")["pid"].tolist() == [20, 11, 10]
    assert cgroups.cgroup_members(procs, 1, "/system.slice", recursive=False).empty
    assert cgroups.cgroup_members(procs, 1, "/")["pid"].tolist() == [20, 11, 10, 1, 30]
    assert cgroups.cgroup_members(procs, 1, "/system.slice/nginx")["pid"].tolist() == []  # no prefix confusion


def test_timeline_rollup_and_memory():
    out = cgroups.cgroup_timeline(_history(), cgroup_mem=_mem())
    assert list(out.columns) == cgroups.CGROUP_TIMELINE_COLUMNS
    sl = out[out["cgroup"] == "/system.slice"].set_index("snap")
    assert sl["rss_bytes"].tolist() == [150 * MIB, 151 * MIB] and sl["processes"].tolist() == [3, 3]
    assert pd.isna(sl.loc[0, "memory_current_bytes"]) and sl.loc[1, "memory_current_bytes"] == 900 * MIB
    assert out[out["cgroup"] == "/"]["processes"].tolist() == [4, 5]
    direct = cgroups.cgroup_timeline(_history(), rollup=False)
    assert "/system.slice" not in set(direct["cgroup"].astype(str))
    only = cgroups.cgroup_timeline(_history(), cgroups=[SVC])
    assert only["cgroup"].astype(str).unique().tolist() == [SVC] and only["label"].iloc[0] == "nginx service"


def test_no_cgroups_recorded_gives_empty_frames():
    procs = _history().assign(cgroup=pd.Categorical([None] * 11))
    tree = cgroups.cgroup_tree(procs, 0)
    assert tree.empty and tree.attrs["unplaced_processes"] == 5
    assert cgroups.cgroup_timeline(procs).empty


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(procs=histories())
def test_root_and_parents_hold_the_sum_of_their_children(procs):
    # spread processes over a few cgroups by pid
    paths = ["/a.slice/x.service", "/a.slice/y.service", "/b.slice", "/a.slice"]
    procs = procs.assign(cgroup=pd.Categorical([paths[p % 4] for p in procs["pid"]]))
    for snap in procs["snap"].unique()[:3]:
        t = cgroups.cgroup_tree(procs, int(snap)).set_index("cgroup")
        members = procs[procs["snap"] == snap]
        assert t.loc["/", "tree_rss_bytes"] == members["rss_bytes"].sum()
        assert t.loc["/", "tree_processes"] == len(members)
        for node, row in t.iterrows():
            kids = t[t["parent"] == node]
            assert row["tree_rss_bytes"] == row["rss_bytes"] + kids["tree_rss_bytes"].sum()
            assert row["tree_processes"] == row["processes"] + kids["tree_processes"].sum()
    direct = cgroups.cgroup_timeline(procs, rollup=False)
    by_group = groups.group_totals(procs, "cgroup")
    assert direct["rss_bytes"].tolist() == by_group["rss_bytes"].tolist()  # same (snap, path) order, no unknowns
    assert direct["processes"].tolist() == by_group["processes"].tolist()
    tl = cgroups.cgroup_timeline(procs).set_index(["snap", "cgroup"])
    for snap, members in procs.groupby("snap"):
        assert tl.loc[(snap, "/"), "rss_bytes"] == members["rss_bytes"].sum()
        expect = members["pss_bytes"].sum(min_count=1)
        got = tl.loc[(snap, "/"), "pss_bytes"]
        assert (pd.isna(got) and pd.isna(expect)) or got == expect


def test_parent_of():
    assert cgroups.parent_of("/a/b") == "/a" and cgroups.parent_of("/a") == "/" and cgroups.parent_of("/") is None
    with pytest.raises(AttributeError):
        cgroups.parent_of(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ stored and queried


def _write(d, samples: range, close: bool) -> None:
    from tests.store_samples import MEMINFO, sample_procs, writer

    w = writer(d, host="h1", boot_id="boot-1")
    for k in samples:
        mem = {"/system.slice/app-1.service": 1000 + k, "/system.slice": 50_000 + k}
        if k == 1:
            mem.pop("/system.slice")  # unreadable in that sample: no row, never 0
        procs = sample_procs([(1, 0, 10)] + [(100 + i, 1, 1 + i) for i in range(29)])
        procs["cgroup"] = ["/init.scope"] + ["/system.slice/app-1.service"] * 29
        w.append(ts_of(k), procs, MEMINFO, cgroup_mem=mem)
    if close:
        w.close()


@pytest.mark.parametrize("close", [True, False])
def test_cgroup_memory_round_trips_through_store_and_query(tmp_path, close):
    from memlib import query, source

    _write(tmp_path, range(3), close)
    source.clear_cache()
    rec = source.open_recording(tmp_path)
    cm = query.cgroup_mem(rec)
    assert len(cm) == 5 and set(cm["host"]) == {"h1"}
    svc = cm[cm["cgroup"] == "/system.slice/app-1.service"]["memory_current_bytes"].tolist()
    assert svc == [1000, 1001, 1002]
    tree = query.cgroup_tree(rec, query.resolve(rec, ts_of(1))).set_index("cgroup")
    assert tree.loc["/system.slice/app-1.service", "memory_current_bytes"] == 1001
    assert pd.isna(tree.loc["/system.slice", "memory_current_bytes"])
    assert tree.loc["/system.slice", "tree_processes"] == 29 and tree.loc["/", "tree_processes"] == 30
    tl = query.cgroup_timeline(rec).set_index(["ts", "cgroup"])
    assert tl.loc[(ts_of(2), "/system.slice"), "processes"] == 29
    assert tl.loc[(ts_of(2), "/system.slice"), "memory_current_bytes"] == 50_002
    assert tl.loc[(ts_of(2), "/"), "rss_bytes"] == (10 + sum(range(1, 30))) * MIB
    # the collector appends: new samples show at once
    _write(tmp_path, range(3, 5), close)
    source.clear_cache()
    rec = source.open_recording(tmp_path)
    assert len(query.cgroup_mem(rec)) == 9 and len(query.snapshots(rec)) == 5


def test_recordings_without_cgroup_memory_have_an_empty_frame(tmp_path):
    import shutil

    from memlib import query, source
    from tests.conftest import SEED_DUMPS

    shutil.copytree(SEED_DUMPS, tmp_path / "seed")
    rec = source.open_recording(tmp_path / "seed", tz="UTC")
    assert query.cgroup_mem(rec).empty
