"""Fleet rollups: DuckDB and Spark (local and a real standalone cluster) give the rows a slow pandas reference gives,
and a second run recomputes only the partitions whose files changed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memlib import rollup

T0 = pd.Timestamp("2026-11-30T23:40:00Z")
US = pa.timestamp("us", tz="UTC")


def _write(path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def make_fleet(root, hosts=2, samples=160, interval_s=15, seed=0) -> None:
    """A small store: `hosts` hosts, a tree of 6 processes each (one leaking, one exiting), crossing a UTC midnight,
    two segments per (host, date)."""
    rng = np.random.default_rng(seed)
    for h in range(hosts):
        host = f"node{h}"
        boot = f"boot-{h}"
        procs_rows, sys_rows = [], []
        for k in range(samples):
            ts = T0 + pd.Timedelta(seconds=k * interval_s)
            alive = [(1, 0, "init"), (10, 1, "sshd"), (11, 10, "bash"), (12, 11, "leaker"), (13, 1, "cron")]
            if k < samples // 2:
                alive.append((14, 13, "job"))
            own = {
                1: 10_000_000,
                10: 5_000_000 + int(rng.integers(0, 100_000)),
                11: 3_000_000,
                12: 20_000_000 + k * 250_000 * (h + 1),
                13: 2_000_000 + int(rng.integers(0, 50_000)),
                14: 40_000_000,
            }
            kids = {p: [c for c, pp, _ in alive if pp == p] for p, _, _ in alive}

            def sub(p, kids=kids, own=own):
                return own[p] + sum(sub(c) for c in kids[p])

            def level(p, alive=alive):
                parent = {c: pp for c, pp, _ in alive}
                n = 0
                while parent.get(p, 0) != 0:
                    p, n = parent[p], n + 1
                return n

            for pid, ppid, name in alive:
                procs_rows.append(
                    {
                        "ts": ts,
                        "boot_id": boot,
                        "pid": pid,
                        "ppid": ppid,
                        "start_time": T0 - pd.Timedelta(hours=1) + pd.Timedelta(seconds=pid),
                        "user": "root" if pid < 12 else "app",
                        "name": name,
                        "rss_bytes": own[pid],
                        "level": level(pid),
                        "subtree_rss_bytes": sub(pid),
                    }
                )
            total = 8 << 30
            sys_rows.append(
                {
                    "ts": ts,
                    "boot_id": boot,
                    "mem_total_bytes": total,
                    "mem_available_bytes": total - (1 << 30) - k * 1_000_000 * (h + 1),
                    "swap_total_bytes": 1 << 30,
                    "swap_free_bytes": (1 << 30) - k * 4096,
                }
            )
        procs = pd.DataFrame(procs_rows)
        system = pd.DataFrame(sys_rows)
        for frame, table in ((procs, "procs"), (system, "system")):
            frame = frame.assign(date=frame["ts"].dt.strftime("%Y-%m-%d"))
            for date, day in frame.groupby("date"):
                halves = np.array_split(np.arange(len(day)), 2)
                for i, idx in enumerate(halves):
                    part = day.iloc[idx].drop(columns="date")
                    arrow = pa.Table.from_pandas(part, preserve_index=False)
                    arrow = arrow.cast(
                        pa.schema(
                            [pa.field(f.name, US if pa.types.is_timestamp(f.type) else f.type) for f in arrow.schema]
                        )
                    )
                    _write(root / table / f"host={host}" / f"date={date}" / f"seg-{i}.parquet", arrow)


def reference(root) -> dict[str, pd.DataFrame]:
    """The rollups computed the slow, obvious way with pandas from every file."""
    procs = pd.concat(
        pd.read_parquet(f).assign(host=f.parts[-3][5:], date=f.parts[-2][5:])
        for f in sorted(root.glob("procs/*/*/*.parquet"))
    )
    system = pd.concat(
        pd.read_parquet(f).assign(host=f.parts[-3][5:], date=f.parts[-2][5:])
        for f in sorted(root.glob("system/*/*/*.parquet"))
    )
    us = lambda s: s.astype("datetime64[us, UTC]").astype("int64")  # noqa: E731
    procs["ts_us"], procs["start_us"] = us(procs["ts"]), us(procs["start_time"])
    system["ts_us"] = us(system["ts"])
    procs["minute"] = procs["ts_us"] // 60_000_000 * 60_000_000
    system["minute"] = system["ts_us"] // 60_000_000 * 60_000_000
    counts = procs.groupby(["host", "ts_us"]).size().rename("processes").reset_index()
    system = system.merge(counts, on=["host", "ts_us"], how="left")
    system["used"] = system["mem_total_bytes"] - system["mem_available_bytes"]
    hm = system.groupby(["host", "date", "minute"]).agg(
        samples=("used", "size"),
        mem_used_bytes_max=("used", "max"),
        mem_used_bytes_sum=("used", "sum"),
        mem_available_bytes_min=("mem_available_bytes", "min"),
        processes_max=("processes", "max"),
        first_ts=("ts_us", "min"),
        last_ts=("ts_us", "max"),
    )
    system = system.reset_index(drop=True)
    last = system.loc[system.groupby(["host", "date", "minute"])["ts_us"].idxmax()].set_index(
        ["host", "date", "minute"]
    )
    hm["mem_total_bytes_last"] = last["mem_total_bytes"]
    hm["mem_used_bytes_last"] = last["used"]
    top = []
    for kind, col, rows in (("process", "rss_bytes", procs), ("subtree", "subtree_rss_bytes", procs[procs.level > 0])):
        g = rows.groupby(["host", "date", "minute", "pid", "start_us"])[col].max().rename("bytes").reset_index()
        g = g.sort_values(["host", "date", "minute", "bytes", "pid", "start_us"], ascending=[1, 1, 1, 0, 1, 1])
        g["rank"] = g.groupby(["host", "date", "minute"]).cumcount() + 1
        top.append(g[g["rank"] <= 3].assign(kind=kind))
    top = pd.concat(top)
    day = []
    for key, g in procs.groupby(["host", "date", "pid", "start_us"]):
        g = g.sort_values("ts_us")
        floors = g.groupby(g["ts_us"] // rollup.FLOOR_BIN_US)["rss_bytes"].min()
        x, y = g["ts_us"].to_numpy(float), g["rss_bytes"].to_numpy(float)
        slope = np.polyfit(x, y, 1)[0] * rollup.US_PER_HOUR if len(g) > 1 and np.ptp(x) > 0 else np.nan
        fslope = (
            np.polyfit(floors.index.to_numpy(float), floors.to_numpy(float), 1)[0]
            * rollup.US_PER_HOUR
            / rollup.FLOOR_BIN_US
            if len(floors) > 1
            else np.nan
        )
        day.append(
            {
                "host": key[0],
                "date": key[1],
                "pid": key[2],
                "name": g["name"].iloc[-1],
                "samples": len(g),
                "rss_min_bytes": g["rss_bytes"].min(),
                "rss_max_bytes": g["rss_bytes"].max(),
                "rss_sum_bytes": g["rss_bytes"].sum(),
                "rss_p95_bytes": g["rss_bytes"].quantile(0.95),
                "subtree_rss_max_bytes": g["subtree_rss_bytes"].max(),
                "growth_bytes_per_hour": slope,
                "floor_growth_bytes_per_hour": fslope,
            }
        )
    return {"host_minute": hm.reset_index(), "top_minute": top, "process_day": pd.DataFrame(day)}


def check_against_reference(root) -> None:
    ref = reference(root)
    hm = rollup.read_rollup(root, "host_minute")
    hm["minute_us"] = hm["minute"].astype("datetime64[us, UTC]").astype("int64")
    for c in ("first_ts", "last_ts"):
        hm[c] = hm[c].astype("datetime64[us, UTC]").astype("int64")
    got = hm.set_index(["host", "date", "minute_us"]).sort_index()
    exp = ref["host_minute"].set_index(["host", "date", "minute"]).sort_index()
    assert len(got) == len(exp) > 0
    for c in exp.columns:
        assert got[c].to_numpy(dtype="int64").tolist() == exp[c].to_numpy(dtype="int64").tolist(), c
    top = rollup.read_rollup(root, "top_minute")
    top["minute_us"] = top["minute"].astype("datetime64[us, UTC]").astype("int64")
    got = top.sort_values(["host", "date", "minute_us", "kind", "rank"])[["pid", "bytes", "rank"]]
    exp = ref["top_minute"].sort_values(["host", "date", "minute", "kind", "rank"])[["pid", "bytes", "rank"]]
    assert got.to_numpy(dtype="int64").tolist() == exp.to_numpy(dtype="int64").tolist()
    day = rollup.read_rollup(root, "process_day").sort_values(["host", "date", "pid"]).reset_index(drop=True)
    exp = ref["process_day"].sort_values(["host", "date", "pid"]).reset_index(drop=True)
    assert day["name"].tolist() == exp["name"].tolist()
    for c in ("samples", "rss_min_bytes", "rss_max_bytes", "rss_sum_bytes", "subtree_rss_max_bytes"):
        assert day[c].astype("int64").tolist() == exp[c].astype("int64").tolist(), c
    for c in ("rss_p95_bytes", "growth_bytes_per_hour", "floor_growth_bytes_per_hour"):
        np.testing.assert_allclose(day[c].to_numpy(float), exp[c].to_numpy(float), rtol=1e-6, atol=1e-3, err_msg=c)


def test_duckdb_rollup_equals_reference(tmp_path):
    make_fleet(tmp_path)
    report = rollup.rollup(tmp_path, "duckdb", top=3)
    assert report.computed == [f"host=node{h}/date={d}" for h in (0, 1) for d in ("2026-11-30", "2026-12-01")]
    check_against_reference(tmp_path)
    # the leaker's floors rise 250 kB per 15 s on node0 = 60 MB/h, steadily
    day = rollup.read_rollup(tmp_path, "process_day")
    leaker = day[(day.host == "node0") & (day.pid == 12) & (day.date == "2026-11-30")].iloc[0]
    assert leaker["growth_bytes_per_hour"] == pytest.approx(60e6, rel=1e-9)
    assert leaker["floor_r2"] == pytest.approx(1.0)


def test_incremental_rollup_recomputes_only_changed_partitions(tmp_path):
    make_fleet(tmp_path)
    rollup.rollup(tmp_path, "duckdb", top=3)
    again = rollup.rollup(tmp_path, "duckdb", top=3)
    assert again.computed == [] and len(again.skipped) == 4
    # a new segment on one host and day: only that partition is computed again, and the answer includes it
    src = next((tmp_path / "procs" / "host=node1" / "date=2026-12-01").glob("seg-1.parquet"))
    extra = pq.read_table(src)
    extra = extra.set_column(0, "ts", pc_add_minutes(extra["ts"], 30))
    _write(src.with_name("seg-2.parquet"), extra)
    sys_src = tmp_path / "system" / "host=node1" / "date=2026-12-01" / "seg-1.parquet"
    sys_extra = pq.read_table(sys_src)
    _write(sys_src.with_name("seg-2.parquet"), sys_extra.set_column(0, "ts", pc_add_minutes(sys_extra["ts"], 30)))
    third = rollup.rollup(tmp_path, "duckdb", top=3)
    assert third.computed == ["host=node1/date=2026-12-01"]
    check_against_reference(tmp_path)


def test_batches_follow_the_input_size_and_give_the_same_rollups(tmp_path):
    make_fleet(tmp_path / "a")
    make_fleet(tmp_path / "b")
    one: list[str] = []
    many: list[str] = []
    rollup.rollup(tmp_path / "a", "duckdb", top=3, progress=one.append)  # 4 small partitions: one batch
    rollup.rollup(tmp_path / "b", "duckdb", top=3, progress=many.append, batch_bytes=1)  # one per partition
    assert one == ["rolled up 4/4 partitions"] and len(many) == 4
    assert_same_rollups(tmp_path / "a", tmp_path / "b")


def test_rollups_of_an_older_version_are_computed_again(tmp_path, monkeypatch):
    make_fleet(tmp_path)
    rollup.rollup(tmp_path, "duckdb", top=3)
    monkeypatch.setattr(rollup, "ROLLUP_VERSION", rollup.ROLLUP_VERSION + 1)  # e.g. a column added to host_minute
    again = rollup.rollup(tmp_path, "duckdb", top=3)
    assert len(again.computed) == 4 and again.skipped == []


def pc_add_minutes(col: pa.ChunkedArray, minutes: int) -> pa.Array:
    values = col.to_pandas() + pd.Timedelta(minutes=minutes)
    return pa.array(values, US)


def test_bad_engine_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown engine"):
        rollup.engine_for("postgres://x")


@pytest.mark.spark
@pytest.mark.slow
def test_spark_local_equals_duckdb(tmp_path, spark_env):
    make_fleet(tmp_path / "a")
    make_fleet(tmp_path / "b")
    rollup.rollup(tmp_path / "a", "duckdb", top=3)
    rollup.rollup(tmp_path / "b", "local[2]", top=3)
    check_against_reference(tmp_path / "b")
    assert_same_rollups(tmp_path / "a", tmp_path / "b")


@pytest.mark.spark
@pytest.mark.slow
def test_spark_standalone_cluster_equals_duckdb(tmp_path, spark_cluster):
    make_fleet(tmp_path / "a", hosts=3)
    make_fleet(tmp_path / "b", hosts=3)
    rollup.rollup(tmp_path / "a", "duckdb", top=3)
    report = rollup.rollup(tmp_path / "b", spark_cluster, top=3)
    assert len(report.computed) == 6
    assert_same_rollups(tmp_path / "a", tmp_path / "b")


def assert_same_rollups(a, b) -> None:
    for table in rollup.ROLLUP_TABLES:
        x = rollup.read_rollup(a, table)
        y = rollup.read_rollup(b, table)
        assert list(x.columns) == list(y.columns)
        keys = [c for c in x.columns if x[c].dtype == object or c in ("pid", "rank", "minute", "start_time")]
        x = x.sort_values(keys).reset_index(drop=True)
        y = y.sort_values(keys).reset_index(drop=True)
        for c in x.columns:
            if x[c].dtype == "float64":
                np.testing.assert_allclose(x[c], y[c], rtol=1e-9, err_msg=f"{table}.{c}")
            else:
                assert x[c].tolist() == y[c].tolist(), f"{table}.{c}"
