"""AppTest: the Fleet page on a generated 3-host store, its numbers checked against direct DuckDB queries over the
Parquet files; without rollups it says so and answers from the files; a stale host and a damaged file are said."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from memlib import rollup
from tests.test_fleet import HOSTS, _damage_keeping_stat, _sql, fleet_master  # noqa: F401  (fixture: the 3 hosts)
from tests.test_fleet import _files as _scan
from tests.test_fleet import store as fleet_store  # noqa: F401  (fixture: a private copy of it)

MIB = 1 << 20


def _table(at, *columns: str, nth: int = 0) -> pd.DataFrame:
    hits = [d.value for d in at.main.dataframe if all(c in d.value.columns for c in columns)]
    return hits[nth]


def test_fleet_page_from_rollups_matches_direct_queries(run_page, fleet_store: Path) -> None:  # noqa: F811
    rollup.rollup(fleet_store)
    at = run_page(fleet_store, "pages/fleet.py")
    assert not at.exception
    assert any("read from the rollups" in c.value for c in at.caption)
    hosts = _table(at, "host", "status", "used")
    want = _sql(
        f"""SELECT host, arg_max(mem_total_bytes - mem_available_bytes, ts) AS used, count(*) AS n
        FROM {_scan(fleet_store, "system")} GROUP BY host ORDER BY host"""
    )
    assert hosts["host"].tolist() == HOSTS
    assert (hosts["used"] * MIB).round().astype("int64").tolist() == want["used"].tolist()
    assert hosts["samples"].tolist() == want["n"].tolist() and set(hosts["status"]) == {"ok"}
    # top processes at the latest moment: each host's last minute, the peak RSS within it
    top = _table(at, "host", "pid", "memory", "when")
    direct = _sql(
        f"""WITH m AS (SELECT host, max(date_trunc('minute', ts)) AS minute FROM {_scan(fleet_store, "procs")}
            GROUP BY host)
        SELECT p.host, p.pid, max(p.rss_bytes) AS b FROM {_scan(fleet_store, "procs")} p JOIN m
            ON p.host = m.host AND date_trunc('minute', p.ts) = m.minute
        GROUP BY p.host, p.pid, p.start_time ORDER BY b DESC, p.host, p.pid LIMIT 15"""
    )
    assert top["host"].tolist() == direct["host"].tolist() and top["pid"].tolist() == direct["pid"].tolist()
    assert (top["memory"] * MIB).round().astype("int64").tolist() == direct["b"].tolist()
    # the leak ranking: every host's leaker, at the rate of its process_day rollup
    leaks = _table(at, "host", "rate", "r2")
    assert leaks["name"].head(3).tolist() == ["leaky-worker"] * 3 and sorted(leaks["host"].head(3)) == HOSTS
    day = rollup.read_rollup(fleet_store, "process_day")
    rate = day[(day["host"] == "benchhost-02") & (day["name"] == "leaky-worker")]["floor_growth_bytes_per_hour"]
    shown = leaks[(leaks["host"] == "benchhost-02") & (leaks["name"] == "leaky-worker")]["rate"]
    assert float(shown.iloc[0]) * MIB == pytest.approx(float(rate.iloc[0]))
    # a process name on every host: peak per host against the files
    at.text_input(key="fleet_group").input("leaky").run()
    assert not at.exception and at.query_params["group"] in ("leaky", ["leaky"])
    groups = _table(at, "host", "name", "peak", "processes")
    peak = _sql(
        f"""SELECT host, max(rss_bytes) AS b FROM {_scan(fleet_store, "procs")} WHERE name = 'leaky-worker'
        GROUP BY host ORDER BY host"""
    )
    assert groups["host"].tolist() == HOSTS
    assert (groups["peak"] * MIB).round().astype("int64").tolist() == peak["b"].tolist()


def test_without_rollups_the_page_says_so_and_reads_the_files(run_page, fleet_store: Path) -> None:  # noqa: F811
    at = run_page(fleet_store, "pages/fleet.py")
    assert not at.exception
    assert any("do not cover every closed segment" in i.value for i in at.info)
    assert any("have no rollups" in t.value for t in at.text)
    assert any("No leak ranking yet" in i.value for i in at.info)
    # the top across hosts waits for a click: without rollups it reads every host's files
    assert not [d for d in at.main.dataframe if "when" in d.value.columns]
    assert any("No rollups for this day yet" in i.value for i in at.info)
    at.toggle(key="fleet_top_files").set_value(True).run()
    assert not at.exception
    top = _table(at, "host", "pid", "memory", "when")
    direct = _sql(
        f"""WITH s AS (SELECT host, max(ts) AS ts FROM {_scan(fleet_store, "system")} GROUP BY host)
        SELECT p.host, p.pid, p.rss_bytes FROM {_scan(fleet_store, "procs")} p JOIN s USING (host, ts)
        ORDER BY p.rss_bytes DESC, p.host, p.pid LIMIT 15"""
    )
    assert top["pid"].tolist() == direct["pid"].tolist() and top["host"].tolist() == direct["host"].tolist()
    assert (top["memory"] * MIB).round().astype("int64").tolist() == direct["rss_bytes"].tolist()


def test_a_stale_host_and_a_damaged_file_are_said(run_page, fleet_store: Path) -> None:  # noqa: F811
    for table in ("procs", "system", "cgroups"):  # benchhost-03's last two segments never arrived
        for stem in ("seg-20260302T010000.000Z", "seg-20260302T020000.000Z"):
            (fleet_store / table / "host=benchhost-03" / "date=2026-03-02" / f"{stem}.parquet").unlink()
    bad = fleet_store / "system" / "host=benchhost-01" / "date=2026-03-02" / "seg-20260302T000000.000Z.parquet"
    data = bytearray(bad.read_bytes())
    data[64] ^= 0xFF  # in the first column's data (the footer of a small file can be half of it)
    bad.write_bytes(bytes(data))
    at = run_page(fleet_store, "pages/fleet.py", **{"from": "2026-03-02T00:00:00Z"})
    assert not at.exception
    texts = "\n".join(t.value for t in at.text)
    hosts = _table(at, "host", "status", "used").set_index("host")
    assert hosts.loc["benchhost-03", "status"] == "stale"
    assert "benchhost-03: no data since 2026-03-02 00:59:50 UTC" in texts
    assert hosts.loc["benchhost-03", "used"] > 0  # its last value, not zero
    assert any("stale" in w.value for w in at.warning)
    assert "system/host=benchhost-01/date=2026-03-02/seg-20260302T000000.000Z.parquet" in texts
    assert hosts.loc["benchhost-01", "samples"] == 720  # the damaged hour left out, the other hour shown


def test_first_paint_from_fresh_rollups_opens_no_other_hosts_files(run_page, fleet_store: Path) -> None:  # noqa: F811
    rollup.rollup(fleet_store)
    # damage benchhost-02's files behind its fresh rollups (sizes and mtimes kept): only a reader of the files notices
    for table in ("procs", "system"):
        for path in sorted((fleet_store / table / "host=benchhost-02").rglob("*.parquet")):
            _damage_keeping_stat(path)
    at = run_page(fleet_store, "pages/fleet.py")  # the sidebar shows benchhost-01: its files only
    assert not at.exception
    shown = "\n".join([t.value for t in at.text] + [w.value for w in at.warning])
    assert "benchhost-02/" not in shown and "skipped" not in shown
    hosts = _table(at, "host", "status", "samples").set_index("host")
    assert hosts.loc["benchhost-02", "samples"] == 3 * 360  # counted by its host_minute rollup
    assert set(_table(at, "host", "pid", "memory", "when")["host"]) <= set(HOSTS)


def test_a_rollup_older_than_its_segments_still_gives_the_top_and_is_named(run_page, fleet_store: Path) -> None:  # noqa: F811
    rollup.rollup(fleet_store)
    for table in ("procs", "system", "cgroups"):  # benchhost-03's last segment is withdrawn after the rollup
        (fleet_store / table / "host=benchhost-03" / "date=2026-03-02" / "seg-20260302T020000.000Z.parquet").unlink()
    at = run_page(fleet_store, "pages/fleet.py")
    assert not at.exception
    texts = "\n".join(t.value for t in at.text)
    assert "1 host(s) changed since their rollup of that day (e.g. host=benchhost-03/date=2026-03-02)" in texts
    assert not [t for t in at.toggle if t.key == "fleet_top_files"]  # no click needed: the rollups answer
    assert len(_table(at, "host", "pid", "memory", "when")) == 15


def test_used_heatmap_cells_are_each_hosts_bucket_and_empty_without_samples() -> None:
    from ui.fleet_charts import used_heatmap

    t = pd.to_datetime(["2026-03-02T00:00:00Z", "2026-03-02T00:10:00Z", "2026-03-02T00:20:00Z"], utc=True)
    used = pd.DataFrame(
        {
            "host": ["b", "b", "a", "a", "a", "gone"],
            "ts": [t[0], t[1], t[0], t[1], t[2], t[0]],
            "mem_used_bytes": pd.array([1 << 30, 2 << 30, 3 << 30, None, 4 << 30, 1], dtype="Int64"),
            "mem_total_bytes": pd.array([8 << 30] * 6, dtype="Int64"),
            "samples": [1] * 6,
        }
    )
    z = used_heatmap(used, ["a", "b"], "GiB", None).data[0]
    got = pd.DataFrame(z.z, index=["a", "b"])
    assert got.iloc[0].tolist()[0] == 37.5 and pd.isna(got.iloc[0, 1]) and got.iloc[0, 2] == 50.0
    assert got.iloc[1].tolist()[:2] == [12.5, 25.0] and pd.isna(got.iloc[1, 2])  # b stopped: empty, not zero
    assert z.text[1][1] == "2.0 GiB" and z.text[1][2] == "" and len(z.y) == 2  # a host not asked for: no row
