"""memlib.query over real recordings: the seed example (imported once), native stores written by the real writer
(closed and active segments, several hosts, PID reuse), times (zones, DST, resolve), and the faults named."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from memlib import query, schema, source
from tests.store_samples import writer

SEED = Path(__file__).parent / "data" / "seed"
HEADER = "PID,PPID,USER,RSS_MB,VSZ_MB,CMD\n"
SYS = "MemTotal_MB,MemFree_MB,MemAvailable_MB,HugePages_Total\n1000,400,600,0\n"
MIB = schema.MIB


@pytest.fixture(autouse=True)
def _fresh_cache():
    source.clear_cache()
    yield
    source.clear_cache()


def _write_round(folder: Path, stamp: str, rows: str, sys_text: str = SYS) -> None:
    (folder / "time").mkdir(parents=True, exist_ok=True)
    (folder / "time" / f"process_mem_{stamp}.csv").write_text(HEADER + rows)
    (folder / "time" / f"sys_mem_{stamp}.csv").write_text(sys_text)


def _open(folder: Path, tz: str | None = "UTC") -> source.Recording:
    return source.open_recording(folder, tz=tz)


@pytest.fixture(scope="module")
def seed_rec(tmp_path_factory: pytest.TempPathFactory) -> source.Recording:
    folder = tmp_path_factory.mktemp("seed") / "seed"
    shutil.copytree(SEED, folder)
    source.clear_cache()
    return source.open_recording(folder, tz="UTC")


def _all_rows(rec: source.Recording) -> pd.DataFrame:
    return query.window_rows(rec)


# ------------------------------------------------------------------------------------------------ seed example


def test_seed_example_snapshots_and_dtypes(seed_rec: source.Recording) -> None:
    rec = seed_rec
    assert rec.kind == "seed" and rec.start_times_exact is False and rec.interval_s == 2.0
    snaps = query.snapshots(rec)
    assert len(snaps) == 75 and snaps["ts"].iloc[0] == pd.Timestamp("2026-11-27 17:02:13", tz="UTC")
    snap = query.moment(rec, query.resolve(rec, "2026-11-27T17:02:13Z"))
    for col, dtype in {**schema.PROC_COLUMNS, **schema.TREE_COLUMNS}.items():
        assert str(snap[col].dtype) == dtype, col
    assert snap["pid"].is_monotonic_increasing and (snap["snap"] == 0).all()
    assert len(_all_rows(rec)) == sum(len(pd.read_csv(f)) for f in (SEED / "time").glob("process_mem_*.csv"))


def test_seed_numbers_match_the_csv(seed_rec: source.Recording) -> None:
    first = pd.read_csv(SEED / "time" / "process_mem_20261127_170213.csv").set_index("PID")
    snap0 = query.moment(seed_rec, query.resolve(seed_rec, "2026-11-27T17:02:13Z")).set_index("pid")
    assert len(snap0) == len(first)
    assert (snap0.loc[first.index, "rss_bytes"] == first["RSS_MB"] * MIB).all()
    assert (snap0.loc[first.index, "vsz_bytes"] == first["VSZ_MB"] * MIB).all()
    assert (snap0.loc[first.index, "ppid"] == first["PPID"]).all()
    sys0 = pd.read_csv(SEED / "time" / "sys_mem_20261127_170213.csv").iloc[0]
    row = query.system(seed_rec).iloc[0]
    assert row["mem_total_bytes"] == sys0["MemTotal_MB"] * MIB
    assert row["mem_used_bytes"] == (sys0["MemTotal_MB"] - sys0["MemAvailable_MB"]) * MIB
    assert row["cached_bytes"] == (sys0["Buffers_MB"] + sys0["Cached_MB"] + sys0["SReclaimable_MB"]) * MIB
    assert row["processes"] == len(first) and row["procs_rss_bytes"] == first["RSS_MB"].sum() * MIB


def test_seed_secrets_are_gone(seed_rec: source.Recording) -> None:
    cmds = _all_rows(seed_rec)["cmdline"].astype(str)
    assert not cmds.str.contains("s3cr3t").any()
    assert not cmds.str.contains("tok_live_SECRET123").any()
    assert cmds.str.contains("--db-password ********", regex=False).any()


def test_seed_identity_inference(seed_rec: source.Recording) -> None:
    assert len(query.find_processes(seed_rec, 22960)) == 1  # execer re-execs as execer2: same process
    assert len(query.find_processes(seed_rec, 22964)) == 1  # orphan re-parented to init: same process
    execer = query.timeline(seed_rec, query.process(seed_rec, 22960))
    assert execer["cmdline"].str.contains("execer2").any()
    orphan = query.timeline(seed_rec, query.process(seed_rec, 22964))
    assert set(orphan["ppid"]) == {22961, 1}
    found = query.find_processes(seed_rec, 22941)
    assert (found["first_seen"] == found["start_time"]).all()  # start time = first time seen
    assert found["name"].iloc[0] == "python3"


def test_seed_tree_and_subtree(seed_rec: source.Recording) -> None:
    snap = query.moment(seed_rec, query.snapshots(seed_rec).pipe(lambda s: query.Moment(s["ts"][30], s["host"][30])))
    root = snap[snap["pid"] == 22941].iloc[0]
    kids = snap[snap["ppid"] == 22941]
    grandkids = snap[snap["ppid"].isin(kids["pid"])]
    assert root["subtree_rss_bytes"] == root["rss_bytes"] + kids["rss_bytes"].sum() + grandkids["rss_bytes"].sum()
    assert root["level"] == 1 and root["descendants"] == len(kids) + len(grandkids)


def test_tz_option_shifts_seed_stamps(tmp_path: Path) -> None:
    shutil.copytree(SEED, tmp_path / "d")
    berlin = _open(tmp_path / "d", tz="Europe/Berlin")
    assert query.snapshots(berlin)["ts"].iloc[0] == pd.Timestamp("2026-11-27 16:02:13", tz="UTC")
    with pytest.raises(ValueError, match="unknown time zone"):
        _open(tmp_path / "d", tz="Mars/Olympus")


def test_dst_nonexistent_and_ambiguous(tmp_path: Path) -> None:
    rows = "1,0,root,1,2,/sbin/init\n"
    # spring forward in Berlin: 2026-03-29 02:30 does not exist -> 03:00 local = 01:00 UTC
    _write_round(tmp_path, "20260329_013000", rows)
    _write_round(tmp_path, "20260329_023000", rows)
    rec = _open(tmp_path, tz="Europe/Berlin")
    assert query.snapshots(rec)["ts"].tolist() == [
        pd.Timestamp("2026-03-29 00:30", tz="UTC"),
        pd.Timestamp("2026-03-29 01:00", tz="UTC"),
    ]
    # fall back: 02:50 (summer), then 02:10 written later (the clock went back) -> winter time
    fall = tmp_path / "fall"
    _write_round(fall, "20261025_025000", rows)
    _write_round(fall, "20261025_021000", rows)
    t0 = time.time_ns()
    for i, name in enumerate(["025000", "021000"]):
        for kind in ("process_mem", "sys_mem"):
            os.utime(fall / "time" / f"{kind}_20261025_{name}.csv", ns=(t0 + i * 10**9, t0 + i * 10**9))
    rec = _open(fall, tz="Europe/Berlin")
    assert query.snapshots(rec)["ts"].tolist() == [
        pd.Timestamp("2026-10-25 00:50", tz="UTC"),
        pd.Timestamp("2026-10-25 01:10", tz="UTC"),
    ]


def test_pid_reuse_and_gap_make_new_processes(tmp_path: Path) -> None:
    _write_round(tmp_path, "20260101_000000", "1,0,root,1,1,/sbin/init\n10,1,root,5,5,/bin/a\n20,1,root,5,5,/bin/x\n")
    _write_round(tmp_path, "20260101_000010", "1,0,root,1,1,/sbin/init\n10,1,bob,5,5,/bin/b\n")  # cmd+user change
    _write_round(tmp_path, "20260101_000020", "1,0,root,1,1,/sbin/init\n10,1,bob,5,5,/bin/b\n20,1,root,5,5,/bin/x\n")
    rec = _open(tmp_path)
    assert [len(query.find_processes(rec, p)) for p in (1, 10, 20)] == [1, 2, 2]  # pid 20 came back after a gap


def test_new_seed_files_are_picked_up(tmp_path: Path) -> None:
    _write_round(tmp_path, "20260101_000000", "1,0,root,1,1,/sbin/init\n")
    assert len(query.snapshots(_open(tmp_path))) == 1
    _write_round(tmp_path, "20260101_000010", "1,0,root,2,1,/sbin/init\n")
    rec = _open(tmp_path)
    assert len(query.snapshots(rec)) == 2
    tl = query.timeline(rec, query.process(rec, 1))
    assert tl["rss_bytes"].tolist() == [MIB, 2 * MIB]


# ------------------------------------------------------------------------------------------------ native stores


def _sample(pids: list[int], ppids: list[int], rss: list[int], start: list[int]) -> dict[str, list]:
    n = len(pids)
    return {
        "pid": pids, "ppid": ppids, "start_time": start, "uid": [0] * n, "user": ["root"] * n, "state": ["S"] * n,
        "name": [f"p{p}" for p in pids], "cmdline": [f"/bin/p{p}" for p in pids], "rss_bytes": rss,
        "vsz_bytes": [r * 2 for r in rss], "threads": [1] * n, "cgroup": ["/"] * n, "pss_bytes": [None] * n,
        "uss_bytes": [None] * n, "swap_bytes": [None] * n, "smaps_ts": [None] * n,
    }  # fmt: skip


T0 = pd.Timestamp("2026-01-01 00:00:00", tz="UTC")
S0 = T0.value - 10**12


def _meminfo(i: int) -> dict[str, int]:
    return {"MemTotal": 8 << 30, "MemFree": (4 << 30) - i, "MemAvailable": 5 << 30, "Cached": 1 << 30}


def test_active_segment_then_closed_give_the_same_answers(tmp_path: Path) -> None:
    w = writer(tmp_path, "hostA", "boot1")
    for i in range(3):
        w.append(T0 + pd.Timedelta(seconds=5 * i), _sample([1, 7, 9], [0, 1, 7], [10, 20, 30 + i], [S0] * 3),
                 _meminfo(i))  # fmt: skip
    rec = _open(tmp_path)
    assert rec.kind == "native" and rec.start_times_exact and rec.hosts == ["hostA"]
    assert query.timeline(rec, query.process(rec, 1))["subtree_rss_bytes"].tolist() == [60, 61, 62]
    # pid 9 exits, a new pid 9 appears with another start time, new process 11 under 7
    for i in range(3, 5):
        sample = _sample([1, 7, 9, 11], [0, 1, 7, 7], [10, 20, 5, 1], [S0, S0, S0 + 10**10, S0])
        w.append(T0 + pd.Timedelta(seconds=5 * i), sample, _meminfo(i))
    live = _open(tmp_path)
    assert len(query.snapshots(live)) == 5 and len(query.find_processes(live, 9)) == 2
    answers = [query.stats(live), query.system(live), query.children(live, query.process(live, 7))]
    w.close()
    closed = _open(tmp_path)
    assert not list(tmp_path.glob("*.current"))
    for before, after in zip(answers, [query.stats(closed), query.system(closed),
                                       query.children(closed, query.process(closed, 7))], strict=True):  # fmt: skip
        pd.testing.assert_frame_equal(before, after)


def test_two_hosts_are_two_sets_of_snapshots_and_processes(tmp_path: Path) -> None:
    a = writer(tmp_path, "hostA", "boot1")
    for i in range(2):
        a.append(T0 + pd.Timedelta(seconds=10 * i), _sample([1, 5], [0, 1], [10, 20], [S0, S0]), _meminfo(i))
    b = writer(tmp_path, "hostB", "boot9")
    b.append(T0 + pd.Timedelta(seconds=5), _sample([1, 5], [0, 1], [1, 2], [S0, S0]), _meminfo(9))
    a.close()
    b.close()
    rec = _open(tmp_path)
    assert rec.hosts == ["hostA", "hostB"]
    assert query.snapshots(rec)["host"].tolist() == ["hostA", "hostB", "hostA"]
    assert len(query.find_processes(rec, 5)) == 2  # same pid and start time on two hosts: two processes
    assert len(query.stats(rec)) == 4
    m = query.resolve(rec, T0 + pd.Timedelta(seconds=5))
    assert m.host == "hostB" and query.moment(rec, m)["rss_bytes"].tolist() == [1, 2]


def test_missing_and_empty_directory(tmp_path: Path) -> None:
    for folder in (tmp_path / "nope", tmp_path):
        rec = _open(folder)
        assert rec.kind == "empty" and rec.notices
        with pytest.raises(ValueError, match="no snapshots"):
            query.resolve(rec, "latest")


# ------------------------------------------------------------------------------------------------ resolve, find


def test_resolve(seed_rec: source.Recording) -> None:
    ts = query.snapshots(seed_rec)["ts"]
    assert query.resolve(seed_rec, "latest").ts == ts.iloc[-1]
    assert query.resolve(seed_rec, "2026-11-27T17:02:13Z").ts == ts.iloc[0]
    assert query.resolve(seed_rec, "2026-11-27T17:02:14Z").ts == ts.iloc[0]  # a tie (2 s apart): the earlier
    assert query.resolve(seed_rec, "2026-11-27T17:02:15+00:00").ts == ts.iloc[1]
    assert query.resolve(seed_rec, "2026-11-27T18:02:16+01:00").ts == ts.iloc[1]
    with pytest.raises(ValueError, match="before the first sample"):
        query.resolve(seed_rec, "2026-11-27T17:00:00Z")
    with pytest.raises(ValueError, match="after the last sample"):
        query.resolve(seed_rec, "2030-01-01")
    with pytest.raises(ValueError, match="not a time"):
        query.resolve(seed_rec, "yesterday-ish")


def test_find_processes(seed_rec: source.Recording) -> None:
    found = query.find_processes(seed_rec, 22960)
    assert list(found.columns) == query.FIND_COLUMNS and len(found) == 1
    assert found["first_seen"].iloc[0] == pd.Timestamp("2026-11-27 17:02:17", tz="UTC")
    files = sorted(p.name for p in (SEED / "time").glob("process_mem_*.csv") if "\n22960," in p.read_text())
    last = pd.Timestamp(pd.to_datetime(files[-1][12:27], format="%Y%m%d_%H%M%S"), tz="UTC")
    assert found["last_seen"].iloc[0] == last
    assert "execer2" in found["cmdline"].iloc[0]  # the latest command line
    assert query.find_processes(seed_rec, 999999).empty
    assert len(query.find_processes(seed_rec, 22960, start_time=found["start_time"].iloc[0])) == 1
    assert query.find_processes(seed_rec, 22960, start_time=pd.Timestamp("2020-01-01", tz="UTC")).empty


def test_bins_keep_a_short_spike_and_cover_the_range(tmp_path: Path) -> None:
    w = writer(tmp_path, "h", "b")
    for i in range(720):  # an hour at 5 s; one 5 s spike of 1 GiB at sample 400
        rss = 10 * MIB + (1 << 30 if i == 400 else 0)
        w.append(T0 + pd.Timedelta(seconds=5 * i), _sample([1, 2], [0, 1], [MIB, rss], [S0, S0]), _meminfo(i))
    w.close()
    rec = _open(tmp_path)
    p = query.process(rec, 2)
    binned = query.timeline(rec, p, bins=20)
    assert len(binned) == 20 and binned["samples"].sum() == 720
    assert binned["rss_bytes"].max() == 10 * MIB + (1 << 30) and binned["rss_bytes_min"].min() == 10 * MIB
    sysb = query.system(rec, bins=7)
    assert len(sysb) == 7 and sysb["procs_rss_bytes"].max() == 11 * MIB + (1 << 30)
    assert np.all(np.diff(sysb["ts"].array.asi8) > 0)


def test_the_readme_duckdb_example_runs_on_a_store(tmp_path: Path) -> None:
    """The README's "Query the store directly" SQL, as written there (DIR replaced), on a store the writer made."""
    import re

    import duckdb

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("### Query the store directly") :]
    sql = re.search(r"```sql\n(.*?)```", section, re.S).group(1)
    moment = pd.Timestamp(re.search(r"TIMESTAMPTZ '([^']+)'", sql).group(1))
    w = writer(tmp_path / "store", "web1", "boot1")
    for k in range(-2, 3):  # samples around the moment the example names, on its date
        w.append(moment + pd.Timedelta(seconds=5 * k), _sample([1, 7, 9], [0, 1, 7], [10, 20, 30], [S0] * 3),
                 _meminfo(k))  # fmt: skip
    w.close()
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    rows = con.execute(sql.replace("DIR", str(tmp_path / "store"))).fetchall()
    assert [(r[0], r[2], r[4], r[5]) for r in rows] == [("web1", 1, 10, 60), ("web1", 7, 20, 50), ("web1", 9, 30, 30)]


def test_command_lines_are_scrubbed_again_when_read(tmp_path):
    """A command line stored unscrubbed (another tool, an older scrubber) is masked in every query answer."""
    from tests.store_samples import T0 as ST0
    from tests.store_samples import sample_procs

    w = writer(tmp_path)
    procs = sample_procs([(1, 0, 10), (2, 1, 20)])
    procs["cmdline"] = ["/sbin/init", "mysql -u root --password hunter2 -h db"]
    for k in range(3):
        w.append(ST0 + pd.Timedelta(seconds=5 * k), procs, {"MemTotal": 1 << 30, "MemAvailable": 1 << 29})
    w.close()
    rec = source.open_recording(tmp_path)
    shown = query.moment(rec, query.resolve(rec, None))
    assert "hunter2" not in " ".join(shown["cmdline"].astype(str))
    assert any("--password" in c for c in shown["cmdline"].astype(str))
    timeline = query.timeline(rec, query.process(rec, 2))
    assert "hunter2" not in " ".join(str(c) for c in timeline.get("cmdline", []))


def test_groups_top_never_pads_with_groups_of_zero_peak(seed_rec: source.Recording) -> None:
    # the seed recording holds ~55 kernel threads at 0 MiB: top 10 by peak must not list any of them
    out = query.groups(seed_rec, "name", top=10)
    peaks = out.groupby("group", observed=True)["rss_bytes"].max()
    named = peaks.drop(index="(other)", errors="ignore")
    assert len(named) < 10 and (named > 0).all()
    assert "cpuhp/0" not in peaks.index and "kthreadd" not in peaks.index
