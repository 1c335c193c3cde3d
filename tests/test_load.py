"""memlib.load: seed + native loading, caching, incremental reads, faults, resolve_at / find_process."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from memlib import load, schema
from memlib.load import clear_cache, find_process, load_dumps, resolve_at
from memlib.store import SegmentWriter

SEED = Path(__file__).parent / "data" / "seed"
HEADER = "PID,PPID,USER,RSS_MB,VSZ_MB,CMD\n"
SYS = "MemTotal_MB,MemFree_MB,MemAvailable_MB,HugePages_Total\n1000,400,600,0\n"


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _write_round(folder: Path, stamp: str, rows: str, sys_text: str = SYS) -> None:
    (folder / "time").mkdir(parents=True, exist_ok=True)
    (folder / "time" / f"process_mem_{stamp}.csv").write_text(HEADER + rows)
    (folder / "time" / f"sys_mem_{stamp}.csv").write_text(sys_text)


def _dtypes_ok(ds: load.Dataset) -> None:
    for col, dtype in {**schema.PROC_COLUMNS, **schema.TREE_COLUMNS}.items():
        assert str(ds.procs[col].dtype) == dtype, col
    for col, dtype in schema.SNAPSHOT_COLUMNS.items():
        assert str(ds.snapshots[col].dtype) == dtype, col
    for col, dtype in schema.SYSTEM_KEY_COLUMNS.items():
        assert str(ds.system[col].dtype) == dtype, col


# ------------------------------------------------------------------------------------------------ seed example


@pytest.fixture(scope="module")
def seed_ds() -> load.Dataset:
    clear_cache()
    return load_dumps(SEED, tz="UTC")


def test_seed_example_frames(seed_ds: load.Dataset) -> None:
    ds = seed_ds
    _dtypes_ok(ds)
    assert ds.info.kind == "seed" and ds.info.start_times_exact is False
    assert ds.info.interval_s == 2.0
    assert ds.info.notices == []
    assert len(ds.snapshots) == 75 and len(ds.system) == 75
    assert ds.snapshots["snap"].tolist() == list(range(75))
    assert ds.snapshots["ts"].iloc[0] == pd.Timestamp("2026-11-27 17:02:13", tz="UTC")
    assert ds.procs["snap"].is_monotonic_increasing
    # sorted by snap, pid
    key = ds.procs["snap"].astype(np.int64) * 2**32 + ds.procs["pid"]
    assert key.is_monotonic_increasing
    assert ds.snapshots["processes"].sum() == len(ds.procs)


def test_seed_numbers_match_the_csv(seed_ds: load.Dataset) -> None:
    text = (SEED / "time" / "process_mem_20261127_170213.csv").read_text()
    first = pd.read_csv(SEED / "time" / "process_mem_20261127_170213.csv")
    snap0 = seed_ds.procs[seed_ds.procs["snap"] == 0].set_index("pid")
    assert len(snap0) == len(first) == text.count("\n") - 1
    merged = first.set_index("PID")
    assert (snap0.loc[merged.index, "rss_bytes"] == merged["RSS_MB"] * 2**20).all()
    assert (snap0.loc[merged.index, "vsz_bytes"] == merged["VSZ_MB"] * 2**20).all()
    assert (snap0.loc[merged.index, "ppid"] == merged["PPID"]).all()
    sys0 = pd.read_csv(SEED / "time" / "sys_mem_20261127_170213.csv")
    row = seed_ds.system.iloc[0]
    assert row["MemTotal"] == sys0["MemTotal_MB"].iloc[0] * 2**20
    assert row["Active(anon)"] == sys0["Active(anon)_MB"].iloc[0] * 2**20
    assert row["HugePages_Total"] == sys0["HugePages_Total"].iloc[0]


def test_seed_secrets_are_gone(seed_ds: load.Dataset) -> None:
    cmds = seed_ds.procs["cmdline"].astype(str)
    assert not cmds.str.contains("s3cr3t").any()
    assert not cmds.str.contains("tok_live_SECRET123").any()
    assert cmds.str.contains("--db-password ********", regex=False).any()


def test_seed_identity_inference(seed_ds: load.Dataset) -> None:
    procs = seed_ds.procs
    ids = procs.groupby("pid")["proc_id"].nunique()
    assert ids[22960] == 1  # execer re-execs as execer2: same pid, same process
    assert ids[22964] == 1  # orphan re-parented to init: same process
    execer = procs[procs["pid"] == 22960]
    assert execer["cmdline"].astype(str).str.contains("execer2").any()
    orphan = procs[procs["pid"] == 22964]
    assert set(orphan["ppid"]) == {22961, 1}
    # start time = first time seen
    first_seen = procs.groupby("proc_id")["ts"].min()
    start = procs.groupby("proc_id")["start_time"].first()
    assert (first_seen == start).all()
    # names: argv[0] basename, bracket text for kernel threads
    names = procs.drop_duplicates("pid").set_index("pid")["name"].astype(str)
    assert names[22941] == "python3"
    assert names[2] == "kthreadd"


def test_seed_tree_and_subtree(seed_ds: load.Dataset) -> None:
    procs = seed_ds.procs
    last = procs[procs["snap"] == 30]
    root = last[last["pid"] == 22941].iloc[0]
    kids = last[last["ppid"] == 22941]
    grandkids = last[last["ppid"].isin(kids["pid"])]
    expected = root["rss_bytes"] + kids["rss_bytes"].sum() + grandkids["rss_bytes"].sum()
    assert root["subtree_rss_bytes"] == expected
    assert root["level"] == 1


def test_tz_option_shifts_seed_stamps() -> None:
    berlin = load_dumps(SEED, tz="Europe/Berlin")
    assert berlin.snapshots["ts"].iloc[0] == pd.Timestamp("2026-11-27 16:02:13", tz="UTC")
    with pytest.raises(ValueError, match="unknown time zone"):
        load_dumps(SEED, tz="Mars/Olympus")


def test_default_zone_comes_from_tz_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    assert str(load.local_zone()) == "America/New_York"
    ds = load_dumps(SEED)
    assert ds.snapshots["ts"].iloc[0] == pd.Timestamp("2026-11-27 22:02:13", tz="UTC")


def test_dst_nonexistent_and_ambiguous(tmp_path: Path) -> None:
    rows = "1,0,root,1,2,/sbin/init\n"
    # spring forward in Berlin: 2026-03-29 02:30 does not exist -> 03:00 local = 01:00 UTC
    _write_round(tmp_path, "20260329_013000", rows)
    _write_round(tmp_path, "20260329_023000", rows)
    ds = load_dumps(tmp_path, tz="Europe/Berlin")
    assert ds.snapshots["ts"].tolist() == [
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
    ds = load_dumps(fall, tz="Europe/Berlin")
    assert ds.snapshots["ts"].tolist() == [
        pd.Timestamp("2026-10-25 00:50", tz="UTC"),
        pd.Timestamp("2026-10-25 01:10", tz="UTC"),
    ]


def test_pid_reuse_and_gap_make_new_processes(tmp_path: Path) -> None:
    _write_round(tmp_path, "20260101_000000", "1,0,root,1,1,/sbin/init\n10,1,root,5,5,/bin/a\n20,1,root,5,5,/bin/x\n")
    _write_round(tmp_path, "20260101_000010", "1,0,root,1,1,/sbin/init\n10,1,bob,5,5,/bin/b\n")  # cmd+user change
    _write_round(tmp_path, "20260101_000020", "1,0,root,1,1,/sbin/init\n10,1,bob,5,5,/bin/b\n20,1,root,5,5,/bin/x\n")
    ds = load_dumps(tmp_path, tz="UTC")
    ids = ds.procs.groupby("pid")["proc_id"].nunique()
    assert ids[1] == 1 and ids[10] == 2 and ids[20] == 2  # pid 20 came back after a gap


# ------------------------------------------------------------------------------------------------ caching


def test_time_folder_itself_loads(seed_ds: load.Dataset) -> None:
    ds = load_dumps(SEED / "time", tz="UTC")
    assert ds.info.kind == "seed" and ds.info.notices == []
    pd.testing.assert_frame_equal(ds.procs, seed_ds.procs)


def test_second_load_is_cached_and_fast(tmp_path: Path) -> None:
    shutil.copytree(SEED, tmp_path / "d")
    first = load_dumps(tmp_path / "d", tz="UTC")
    t = time.perf_counter()
    again = load_dumps(tmp_path / "d", tz="UTC")
    assert again is first
    assert time.perf_counter() - t < 0.5  # generous for a shared CI box; the bench measures the real figure


def test_new_seed_files_are_picked_up(tmp_path: Path) -> None:
    _write_round(tmp_path, "20260101_000000", "1,0,root,1,1,/sbin/init\n")
    assert len(load_dumps(tmp_path, tz="UTC").snapshots) == 1
    _write_round(tmp_path, "20260101_000010", "1,0,root,2,1,/sbin/init\n")
    ds = load_dumps(tmp_path, tz="UTC")
    assert len(ds.snapshots) == 2
    assert ds.procs["rss_bytes"].tolist() == [2**20, 2 * 2**20]
    assert ds.procs["proc_id"].nunique() == 1


def _sample(pids: list[int], ppids: list[int], rss: list[int], start: list[int]) -> dict[str, list]:
    n = len(pids)
    return {
        "pid": pids,
        "ppid": ppids,
        "start_time": start,
        "uid": [0] * n,
        "user": ["root"] * n,
        "state": ["S"] * n,
        "name": [f"p{p}" for p in pids],
        "cmdline": [f"/bin/p{p}" for p in pids],
        "rss_bytes": rss,
        "vsz_bytes": [r * 2 for r in rss],
        "threads": [1] * n,
        "cgroup": ["/"] * n,
        "pss_bytes": [None] * n,
        "uss_bytes": [None] * n,
        "swap_bytes": [None] * n,
        "smaps_ts": [None] * n,
    }


T0 = pd.Timestamp("2026-01-01 00:00:00", tz="UTC")
S0 = T0.value - 10**12


def _meminfo(i: int) -> dict[str, int]:
    return {"MemTotal": 8 << 30, "MemFree": (4 << 30) - i, "MemAvailable": 5 << 30, "Cached": 1 << 30}


def _compare(a: load.Dataset, b: load.Dataset) -> None:
    pd.testing.assert_frame_equal(a.procs, b.procs, check_categorical=False)
    pd.testing.assert_frame_equal(a.snapshots, b.snapshots, check_categorical=False)
    pd.testing.assert_frame_equal(a.system, b.system, check_categorical=False)


def test_native_growing_current_is_read_incrementally(tmp_path: Path) -> None:
    w = SegmentWriter(tmp_path, "hostA", "boot1")
    for i in range(3):
        w.append(
            T0 + pd.Timedelta(seconds=5 * i), _sample([1, 7, 9], [0, 1, 7], [10, 20, 30 + i], [S0] * 3), _meminfo(i)
        )
    ds1 = load_dumps(tmp_path)
    _dtypes_ok(ds1)
    assert ds1.info.kind == "native" and ds1.info.start_times_exact and ds1.info.hosts == ["hostA"]
    assert ds1.procs[ds1.procs["pid"] == 1]["subtree_rss_bytes"].tolist() == [60, 61, 62]
    state = next(iter(load._CACHE.values()))
    seg = next(iter(state.segments.values()))
    offset = seg.offset
    # pid 9 exits, a new pid 9 appears with another start time, new process 11 under 7
    for i in range(3, 5):
        w.append(
            T0 + pd.Timedelta(seconds=5 * i),
            _sample([1, 7, 9, 11], [0, 1, 7, 7], [10, 20, 5, 1], [S0, S0, S0 + 10**10, S0]),
            _meminfo(i),
        )
    ds2 = load_dumps(tmp_path)
    assert seg.offset > offset and len(seg.procs) == 2  # read from the offset, kept as a second part
    assert len(ds2.snapshots) == 5 and ds2.system["snap"].tolist() == [0, 1, 2, 3, 4]
    pid9 = ds2.procs[ds2.procs["pid"] == 9]
    assert pid9["proc_id"].nunique() == 2
    assert ds2.procs[ds2.procs["pid"] == 1]["proc_id"].nunique() == 1
    # the incremental result equals a full rebuild
    clear_cache()
    _compare(ds2, load_dumps(tmp_path))
    w.close()
    # after compaction: the parquet pair replaces the .current, same content
    ds3 = load_dumps(tmp_path)
    _compare(ds2, ds3)


def test_native_cmdlines_are_scrubbed_again(tmp_path: Path) -> None:
    w = SegmentWriter(tmp_path, "hostA", "boot1")
    sample = _sample([1, 2, 3], [0, 1, 1], [1, 2, 3], [S0] * 3)
    sample["cmdline"] = ["/sbin/init", "app --password=a", "app --password=b"]  # an old collector without scrubbing
    w.append(T0, sample, _meminfo(0))
    ds = load_dumps(tmp_path)
    masked = "app --password=********"
    assert ds.procs["cmdline"].astype(str).tolist() == ["/sbin/init", masked, masked]
    assert len(ds.procs["cmdline"].cat.categories) == 2
    w.close()


def test_second_host_with_older_rows_rebuilds(tmp_path: Path) -> None:
    a = SegmentWriter(tmp_path, "hostA", "boot1")
    for i in range(2):
        a.append(T0 + pd.Timedelta(seconds=10 * i), _sample([1, 5], [0, 1], [10, 20], [S0, S0]), _meminfo(i))
    first = load_dumps(tmp_path)
    assert len(first.snapshots) == 2
    b = SegmentWriter(tmp_path, "hostB", "boot9")
    b.append(T0 + pd.Timedelta(seconds=5), _sample([1, 5], [0, 1], [1, 2], [S0, S0]), _meminfo(9))
    ds = load_dumps(tmp_path)
    assert ds.snapshots["host"].astype(str).tolist() == ["hostA", "hostB", "hostA"]
    assert ds.snapshots["snap"].tolist() == [0, 1, 2] and ds.system["snap"].tolist() == [0, 1, 2]
    assert ds.procs["proc_id"].nunique() == 4  # same pids and start times on two hosts: four processes
    assert ds.info.hosts == ["hostA", "hostB"]
    clear_cache()
    _compare(ds, load_dumps(tmp_path))
    a.close()
    b.close()


def test_mixed_native_and_seed(tmp_path: Path) -> None:
    _write_round(tmp_path, "20251231_235950", "1,0,root,1,1,/sbin/init\n")
    w = SegmentWriter(tmp_path, "hostA", "boot1")
    w.append(T0, _sample([1], [0], [10], [S0]), _meminfo(0))
    ds = load_dumps(tmp_path, tz="UTC")
    assert ds.info.kind == "mixed" and not ds.info.start_times_exact
    assert ds.snapshots["host"].astype(str).tolist() == ["", "hostA"]
    assert ds.procs["proc_id"].nunique() == 2
    w.close()


# ------------------------------------------------------------------------------------------------ faults


def test_missing_and_empty_directory(tmp_path: Path) -> None:
    ds = load_dumps(tmp_path / "nope")
    assert ds.info.kind == "empty" and "does not exist" in ds.info.notices[0]
    assert ds.procs.empty and ds.system.empty and ds.snapshots.empty
    _dtypes_ok(ds)
    ds = load_dumps(tmp_path)
    assert ds.info.kind == "empty" and "no dumps" in ds.info.notices[0]
    (tmp_path / "afile").write_text("x")
    assert load_dumps(tmp_path / "afile").info.kind == "empty"


def test_damaged_files_are_skipped_and_named(tmp_path: Path) -> None:
    good = '1,0,root,1,1,/sbin/init\n5,1,root,3,4,"python x.py --a=1,2 ""q""\nline2"\n'
    _write_round(tmp_path, "20260101_000000", good)
    t = tmp_path / "time"
    (t / "process_mem_20260101_000010.csv").write_text(HEADER)  # header only
    (t / "sys_mem_20260101_000010.csv").write_text(SYS)
    (t / "process_mem_20260101_000020.csv").write_text(HEADER + "1,0,root,1,1,/sbin/init\n7,1,ro")  # truncated
    (t / "sys_mem_20260101_000020.csv").write_text("MemTotal_MB,MemFree_MB\n")  # no data row
    (t / "process_mem_20260101_000030.csv").write_bytes(HEADER.encode() + b"1,0,root,1,1,/sbin/init \xff\xfe\n")
    (t / "process_mem_20260101_000040.csv").write_text("PID,USER,CMD\n1,root,x\n")  # missing columns
    (t / "process_mem_20260101_000050.csv").write_text(HEADER + "1,0,root,1,1,/bin/sh -c a,b,c\n")  # unquoted commas
    (t / "process_mem_20261399_000000.csv").write_text(HEADER)  # impossible date
    (t / "notes.txt").write_text("hello")
    (tmp_path / "random.bin").write_bytes(b"\x00\x01")
    (tmp_path / "seg-20260101T000000.000Z-h.current").write_bytes(b"garbage header..")
    ds = load_dumps(tmp_path, tz="UTC")
    text = "\n".join(ds.info.notices)
    for name in [
        "sys_mem_20260101_000020.csv: skipped (no data row)",
        "process_mem_20260101_000020.csv: 1 row(s) with a wrong number of fields",
        "process_mem_20260101_000030.csv: non-UTF-8 bytes replaced",
        "process_mem_20260101_000040.csv: skipped (line 1: missing column(s) PPID, RSS_MB, VSZ_MB",
        "process_mem_20260101_000050.csv: 1 row(s) with unquoted commas",
        "process_mem_20261399_000000.csv: impossible date",
        "notes.txt: unknown file",
        "random.bin: unknown file",
        "seg-20260101T000000.000Z-h.current",
    ]:
        assert name in text, name
    assert ds.info.kind == "seed"
    snap_ts = ds.snapshots["ts"].dt.strftime("%H%M%S").tolist()
    assert snap_ts == ["000000", "000020", "000030", "000050"]
    assert ds.snapshots["processes"].tolist() == [2, 1, 1, 1]
    assert "process_mem_20260101_000010.csv: skipped (no process rows)" in text
    assert "sys_mem_20260101_000010.csv: no usable process_mem file with the same stamp" in text
    cmd5 = ds.procs[(ds.procs["snap"] == 0) & (ds.procs["pid"] == 5)]["cmdline"].astype(str).iloc[0]
    assert cmd5 == 'python x.py --a=1,2 "q"\nline2'
    joined = ds.procs[ds.procs["snap"] == 3]["cmdline"].astype(str).iloc[0]
    assert joined == "/bin/sh -c a,b,c"
    # system rows only where both files parsed
    assert ds.system["snap"].tolist() == [0]


# ------------------------------------------------------------------------------------------------ queries


def test_resolve_at(seed_ds: load.Dataset) -> None:
    assert resolve_at(seed_ds, "latest") == 74
    assert resolve_at(seed_ds, "2026-11-27T17:02:13Z") == 0
    assert resolve_at(seed_ds, "2026-11-27T17:02:14Z") == 0
    assert resolve_at(seed_ds, "2026-11-27T17:02:15+00:00") == 1
    assert resolve_at(seed_ds, "2026-11-27T18:02:16+01:00") == 1
    assert resolve_at(seed_ds, "2030-01-01") == 74
    with pytest.raises(ValueError, match="before the first snapshot"):
        resolve_at(seed_ds, "2026-11-27T17:00:00Z")
    with pytest.raises(ValueError, match="not a time"):
        resolve_at(seed_ds, "yesterday-ish")
    empty = load_dumps(Path("/nonexistent/dir"))
    with pytest.raises(ValueError, match="no snapshots"):
        resolve_at(empty, "latest")


def test_find_process(seed_ds: load.Dataset) -> None:
    found = find_process(seed_ds, 22960)
    assert list(found.columns) == ["proc_id", "pid", "start_time", "first_seen", "last_seen", "name", "cmdline"]
    assert len(found) == 1
    assert found["first_seen"].iloc[0] == pd.Timestamp("2026-11-27 17:02:17", tz="UTC")
    files = sorted(p.name for p in (SEED / "time").glob("process_mem_*.csv") if "\n22960," in p.read_text())
    last = pd.Timestamp(pd.to_datetime(files[-1][12:27], format="%Y%m%d_%H%M%S"), tz="UTC")
    assert found["last_seen"].iloc[0] == last
    assert "execer2" in found["cmdline"].iloc[0]  # the latest command line
    assert find_process(seed_ds, 999999).empty
    by_start = find_process(seed_ds, 22960, start_time=found["start_time"].iloc[0])
    assert len(by_start) == 1
    assert find_process(seed_ds, 22960, start_time=pd.Timestamp("2020-01-01", tz="UTC")).empty


def test_the_tree_index_is_built_once_per_dataset(tmp_path) -> None:
    from memlib import tree
    from tests.native_crafted import write_native_crafted

    folder = write_native_crafted(tmp_path / "d")
    load.clear_cache()
    ds = load.load_dumps(folder, tz="UTC")
    idx = load.tree_index(ds)
    assert load.tree_index(ds) is idx and load.load_dumps(folder, tz="UTC").derived["tree_index"] is idx
    fresh = tree.TreeIndex.build(ds.procs)
    assert (idx.proc_order == fresh.proc_order).all() and (idx.child_order == fresh.child_order).all()
