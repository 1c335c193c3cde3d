"""Fleet questions (memlib.fleet and ``python -m memlib fleet``) on a generated 3-host store, checked against direct
DuckDB queries over the Parquet files; faults: a stale host, a damaged file of one host, missing or old rollups."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from bench.gen_day import write_recording
from memlib import cli, fleet, rollup, source

HOSTS = ["benchhost-01", "benchhost-02", "benchhost-03"]


@pytest.fixture(scope="session")
def fleet_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated store: 3 hosts x 3 hours, 40 processes, 10 s samples, hourly segments (not to be modified)."""
    out = tmp_path_factory.mktemp("fleet") / "store"
    write_recording(out, hours=3, hosts=3, interval_s=10, n_procs=40)
    return out


@pytest.fixture
def store(fleet_master: Path, tmp_path: Path) -> Path:
    """A private copy of the generated store (tests change it)."""
    dest = tmp_path / "store"
    shutil.copytree(fleet_master, dest)
    source.clear_cache()
    return dest


def _sql(sql: str, params: list | None = None) -> pd.DataFrame:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def _files(root: Path, table: str, exclude: tuple[Path, ...] = ()) -> str:
    paths = [p for p in sorted((root / table).rglob("*.parquet")) if p not in exclude]
    names = ", ".join(f"'{p}'" for p in paths)
    return f"read_parquet([{names}], hive_partitioning = true, hive_types = {{'host': VARCHAR}})"


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_hosts_match_a_direct_query(store: Path, capsys) -> None:
    rc, out, err = _cli(capsys, "fleet", "hosts", "--dumps", str(store), "--format", "json")
    assert rc == 0, err
    got = pd.DataFrame(json.loads(out))
    want = _sql(
        f"""SELECT host, min(ts) AS first, max(ts) AS last, count(*) AS samples,
            arg_max(mem_total_bytes - mem_available_bytes, ts) AS used FROM {_files(store, "system")}
            GROUP BY host ORDER BY host"""
    )
    assert got["host"].tolist() == HOSTS == want["host"].tolist()
    assert got["samples"].tolist() == want["samples"].tolist()
    assert got["mem_used_bytes"].tolist() == want["used"].tolist()
    assert (pd.to_datetime(got["last_sample"]) == want["last"].dt.tz_convert("UTC")).all()
    assert got["status"].tolist() == ["ok"] * 3
    assert got["period_s"].tolist() == [3600.0] * 3


def test_top_across_hosts_matches_a_direct_query(store: Path, capsys) -> None:
    at = "2026-03-02T01:30:05Z"  # between two samples: each host's snapshot just before it
    rc, out, err = _cli(capsys, "fleet", "top", "--dumps", str(store), "--at", at, "--limit", "5", "--format", "json")
    assert rc == 0, err
    got = pd.DataFrame(json.loads(out))
    want = _sql(
        f"""WITH s AS (SELECT host, max(ts) AS ts FROM {_files(store, "system")} WHERE ts <= ? GROUP BY host)
        SELECT p.host, p.pid, p.rss_bytes, p.ts FROM {_files(store, "procs")} p JOIN s USING (host, ts)
        ORDER BY p.rss_bytes DESC, p.host, p.pid LIMIT 5""",
        [pd.Timestamp(at)],
    )
    assert got["rank"].tolist() == [1, 2, 3, 4, 5]
    assert list(zip(got["host"], got["pid"], got["rss_bytes"], strict=True)) == list(
        zip(want["host"], want["pid"], want["rss_bytes"], strict=True)
    )
    assert set(got["ts"]) == {"2026-03-02T01:30:00Z"}
    rc, out, _ = _cli(capsys, "fleet", "top", "--dumps", str(store), "--by", "subtree", "--format", "json")
    subtrees = pd.DataFrame(json.loads(out))
    assert subtrees["subtree_rss_bytes"].is_monotonic_decreasing and set(subtrees["host"]) <= set(HOSTS)


def test_leaks_need_rollups_then_rank_each_hosts_leaker(store: Path, capsys) -> None:
    rc, _, err = _cli(capsys, "fleet", "leaks", "--dumps", str(store))
    assert rc == 2 and "fleet rollup" in err
    rc, out, err = _cli(capsys, "fleet", "rollup", "--dumps", str(store), "--format", "json")
    assert rc == 0, err
    assert sorted(r["action"] for r in json.loads(out)) == ["computed"] * 3
    rc, out, err = _cli(capsys, "fleet", "leaks", "--dumps", str(store), "--top", "3", "--format", "json")
    assert rc == 0 and "note:" not in err
    got = pd.DataFrame(json.loads(out))
    assert sorted(got["host"]) == HOSTS and set(got["name"]) == {"leaky-worker"}
    # the leaker's floor grows ~ linearly: its rate matches a least-squares fit of the 10-minute minima
    want = _sql(
        f"""WITH f AS (SELECT epoch_us(ts) // 600000000 AS b, min(rss_bytes) AS v FROM {_files(store, "procs")}
            WHERE host = 'benchhost-01' AND name = 'leaky-worker' GROUP BY b)
        SELECT regr_slope(v, b * 600 / 3600.0) AS rate FROM f"""
    )
    rate = got.set_index("host").loc["benchhost-01", "floor_growth_bytes_per_hour"]
    assert rate == pytest.approx(float(want["rate"].iloc[0]), rel=1e-9)
    # a new segment makes the rollups older than the data: said, not hidden
    src = next((store / "procs" / "host=benchhost-02").rglob("*.parquet"))
    shutil.copy(src, src.with_name("seg-20260302T050000.000Z.parquet"))
    rc, out, err = _cli(capsys, "fleet", "leaks", "--dumps", str(store))
    assert rc == 0 and "older than their data" in err and "host=benchhost-02" in err


def test_groups_per_host_match_a_direct_query(store: Path, capsys) -> None:
    argv = ["fleet", "groups", "--dumps", str(store), "--match", "LEAKY", "--bins", "3", "--format", "json"]
    rc, out, err = _cli(capsys, *argv)
    assert rc == 0, err
    got = pd.DataFrame(json.loads(out))
    want = _sql(
        f"""SELECT host, epoch_us(ts) // 3600000000 AS b, max(rss_bytes) AS peak, min(rss_bytes) AS low, count(*) AS n
        FROM {_files(store, "procs")} WHERE name = 'leaky-worker' GROUP BY ALL ORDER BY host, b"""
    )
    assert got["host"].tolist() == want["host"].tolist() and len(got) == 9
    assert got["rss_bytes"].tolist() == want["peak"].tolist()
    assert got["rss_bytes_min"].tolist() == want["low"].tolist()
    assert got["samples"].tolist() == want["n"].tolist()
    assert set(got["group"]) == {"leaky-worker"}


def test_used_memory_from_rollups_equals_the_files(store: Path) -> None:
    rollup.rollup(store)
    rec = source.open_recording(store)
    from_rollups, kind = fleet.used_memory(rec, bins=12)
    assert kind == "rollups"
    from_files, kind = fleet.used_memory(rec, bins=12, prefer="files")
    assert kind == "files"
    pd.testing.assert_frame_equal(from_rollups, from_files)
    assert len(from_files) == 3 * 12
    top_r = fleet.top_rollup(rec, None, "rss", 5).rows
    want = _sql(
        f"""SELECT host, pid, max(rss_bytes) AS b FROM {_files(store, "procs")}
        WHERE ts >= TIMESTAMPTZ '2026-03-02 02:59:00+00' GROUP BY host, pid, start_time ORDER BY b DESC, host, pid
        LIMIT 5"""
    )
    assert top_r["bytes"].tolist() == want["b"].tolist() and top_r["host"].tolist() == want["host"].tolist()


# ---------------------------------------------------------------------------------------------------- faults


def test_a_host_whose_segments_stop_is_stale_since_its_last_sample(store: Path, capsys) -> None:
    for table in ("procs", "system", "cgroups"):
        for name in ("seg-20260302T010000.000Z.parquet", "seg-20260302T020000.000Z.parquet"):
            (store / table / "host=benchhost-03" / "date=2026-03-02" / name).unlink()
    rc, out, err = _cli(capsys, "fleet", "hosts", "--dumps", str(store), "--format", "json")
    assert rc == 0
    got = pd.DataFrame(json.loads(out)).set_index("host")
    assert got.loc["benchhost-03", "status"] == "stale"
    assert got.loc["benchhost-03", "stale_since"] == "2026-03-02T00:59:50Z"
    assert "benchhost-03 is stale: no data since 2026-03-02T00:59:50" in err
    last_used = _sql(
        f"""SELECT arg_max(mem_total_bytes - mem_available_bytes, ts) AS u FROM {_files(store, "system")}
        WHERE host = 'benchhost-03'"""
    )["u"].iloc[0]
    assert got.loc["benchhost-03", "mem_used_bytes"] == last_used > 0  # its last value, never zero
    assert list(got.loc[["benchhost-01", "benchhost-02"], "status"]) == ["ok", "ok"]
    # at the latest moment the stale host is left out of the ranking and named
    rc, out, err = _cli(capsys, "fleet", "top", "--dumps", str(store), "--format", "json")
    assert "benchhost-03" not in {r["host"] for r in json.loads(out)}
    assert "host benchhost-03: no sample within" in err
    # and its cells of the used-memory chart after it stopped are absent, not zero
    used, _ = fleet.used_memory(source.open_recording(store), bins=3)
    assert used[used["host"] == "benchhost-03"]["ts"].max() < pd.Timestamp("2026-03-02T01:00:00Z")
    assert (used["mem_used_bytes"] > 0).all()


def test_a_damaged_file_of_one_host_is_named_and_the_others_answers_stay(store: Path, fleet_master: Path,
                                                                         capsys) -> None:  # fmt: skip
    bad = store / "procs" / "host=benchhost-02" / "date=2026-03-02" / "seg-20260302T010000.000Z.parquet"
    data = bytearray(bad.read_bytes())
    data[len(data) // 3] ^= 0xFF
    bad.write_bytes(bytes(data))
    rel = "procs/host=benchhost-02/date=2026-03-02/seg-20260302T010000.000Z.parquet"
    rc, out, err = _cli(capsys, "fleet", "groups", "--dumps", str(store), "--match", "leaky", "--bins", "3",
                        "--format", "json")  # fmt: skip
    assert rc == 0 and rel in err and "checksum mismatch" in err
    got = pd.DataFrame(json.loads(out))
    source.clear_cache()
    intact = fleet.groups(source.open_recording(fleet_master), "name", "leaky", bins=3)
    for host in ("benchhost-01", "benchhost-03"):
        assert got[got["host"] == host]["rss_bytes"].tolist() == intact[intact["host"] == host]["rss_bytes"].tolist()
    assert len(got[got["host"] == "benchhost-02"]) == 2  # its damaged hour left out, the others shown
    # the rollup names it too and rolls up everything else
    rc, out, err = _cli(capsys, "fleet", "rollup", "--dumps", str(store))
    assert rc == 0 and rel in err and "not rolled up" in err
    mine = rollup.read_rollup(store, "process_day")
    rollup.rollup(_copy(fleet_master, store.parent / "intact"))
    theirs = rollup.read_rollup(store.parent / "intact", "process_day")
    for host in ("benchhost-01", "benchhost-03"):
        a = mine[mine["host"] == host].drop(columns=["host", "date"]).reset_index(drop=True)
        b = theirs[theirs["host"] == host].drop(columns=["host", "date"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_bad_fleet_arguments_are_one_line_errors(store: Path, capsys) -> None:
    rollup.rollup(store)  # nothing left to do: a bad engine name is still refused
    for argv, said in (
        (["rollup", "--engine", "bogus"], "unknown engine 'bogus'"),
        (["top", "--at", "yesterday"], "--at: 'yesterday' is not a time"),
        (["groups", "--from", "2026-03-02T02:00:00Z", "--to", "2026-03-02T01:00:00Z"], "--from is after --to"),
    ):
        rc, out, err = _cli(capsys, "fleet", *argv, "--dumps", str(store))
        assert rc == 2 and said in err and "Traceback" not in err and out == "", argv
    rc, out, err = _cli(capsys, "fleet", "top", "--at", "2020-01-01T00:00:00Z", "--dumps", str(store))
    assert rc == 0 and out == "(no rows)\n" and err.count("no sample within") == 3  # empty, and why


# ---------------------------------------------------------------------------------------------------- cost


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated store over two dates: 2 hosts x 26 hours, 10 processes, 60 s samples (not to be modified)."""
    out = tmp_path_factory.mktemp("fleet2d") / "store"
    write_recording(out, hours=26, hosts=2, interval_s=60, n_procs=10)
    return out


def _direct_hosts(root: Path) -> pd.DataFrame:
    return _sql(
        f"""SELECT host, min(ts) AS first, max(ts) AS last, count(*) AS samples,
            arg_max(mem_total_bytes - mem_available_bytes, ts) AS used FROM {_files(root, "system")}
            GROUP BY host ORDER BY host"""
    )


def _damage_keeping_stat(path: Path) -> None:
    """Flip a byte in the first column's data and give the file back its mtime (a digest over sizes and mtimes
    cannot tell): only a reader of its data notices."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[64] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_hosts_read_host_minute_and_open_no_file_behind_a_fresh_rollup(two_days: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(two_days, root)
    want = _direct_hosts(root)
    source.clear_cache()
    for rolled in (False, True):  # older days counted from the files' footers, then from the host_minute rollups
        if rolled:
            rollup.rollup(root)
        rec = source.open_recording(root)
        got = fleet.hosts(rec).rows
        assert got["host"].tolist() == want["host"].tolist() == ["benchhost-01", "benchhost-02"]
        assert got["samples"].tolist() == want["samples"].tolist() == [26 * 60] * 2
        assert (got["first_sample"] == want["first"].dt.tz_convert("UTC")).all()
        assert (got["last_sample"] == want["last"].dt.tz_convert("UTC")).all()
        assert got["mem_used_bytes"].tolist() == want["used"].tolist()
    # a file behind a fresh rollup is not read at all: damage its data and nothing notices
    old = next(iter(sorted((root / "system" / "host=benchhost-01" / "date=2026-03-02").glob("*.parquet"))))
    _damage_keeping_stat(old)
    source.clear_cache()
    rec = source.open_recording(root)
    assert fleet.rollup_state(rec).complete
    got = fleet.hosts(rec).rows
    assert got["samples"].tolist() == [26 * 60] * 2
    assert not [n for n in rec.notices if old.name in n]


def test_used_memory_reads_the_files_only_where_a_rollup_is_not_fresh(store: Path) -> None:
    rollup.rollup(store)
    for table in ("procs", "system", "cgroups"):  # benchhost-03's last segment is withdrawn: its rollup is stale
        (store / table / "host=benchhost-03" / "date=2026-03-02" / "seg-20260302T020000.000Z.parquet").unlink()
    damaged = store / "system" / "host=benchhost-01" / "date=2026-03-02" / "seg-20260302T010000.000Z.parquet"
    source.clear_cache()
    rec = source.open_recording(store)
    want, kind = fleet.used_memory(rec, bins=12, prefer="files")
    assert kind == "files"
    _damage_keeping_stat(damaged)  # behind benchhost-01's fresh rollup: only a reader of the file notices
    state = fleet.rollup_state(rec)
    assert state.stale == ("host=benchhost-03/date=2026-03-02",) and len(state.fresh) == 2
    got, kind = fleet.used_memory(rec, bins=12, state=state)
    assert kind == "files"  # one partition from its files
    pd.testing.assert_frame_equal(got, want)
    assert not [n for n in rec.notices if damaged.name in n]
