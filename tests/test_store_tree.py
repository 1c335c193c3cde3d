"""Tree columns on disk equal memlib.tree.derive_trees on the same rows: random histories written through the real
writer, across segment boundaries (a segment per 1-3 samples, and over midnight UTC) and PID reuse; gen_day's CLI."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import gen_day
from memlib import tree
from tests.store_samples import read_store, writer
from tests.strategies import histories

NIGHT = pd.Timestamp("2026-01-05 23:59:50", tz="UTC")


def _write(root: Path, procs: pd.DataFrame, period: int, shift: pd.Timedelta) -> None:
    """Write a PROCS history sample by sample; a new segment after every `period` samples."""
    w = writer(root, host="testhost", period_s=10**9)
    for k, (_, snap) in enumerate(procs.groupby("snap", sort=True)):
        if k and k % period == 0:
            w.close()
        cols = {
            "pid": snap["pid"].tolist(),
            "ppid": snap["ppid"].tolist(),
            "start_time": [t.value for t in snap["start_time"]],
            "uid": [1000] * len(snap),
            "user": snap["user"].astype(str).tolist(),
            "state": ["S"] * len(snap),
            "name": snap["name"].astype(str).tolist(),
            "cmdline": snap["cmdline"].astype(str).tolist(),
            "rss_bytes": snap["rss_bytes"].tolist(),
            "vsz_bytes": snap["vsz_bytes"].tolist(),
            "threads": [1] * len(snap),
            "cgroup": [None] * len(snap),
            "pss_bytes": snap["pss_bytes"].astype(object).where(snap["pss_bytes"].notna(), None).tolist(),
            "uss_bytes": snap["uss_bytes"].astype(object).where(snap["uss_bytes"].notna(), None).tolist(),
            "swap_bytes": snap["swap_bytes"].astype(object).where(snap["swap_bytes"].notna(), None).tolist(),
            "smaps_ts": [None] * len(snap),
        }
        w.append(snap["ts"].iloc[0] + shift, cols, {"MemTotal": 1 << 30})
    w.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(procs=histories(max_snaps=7), period=st.integers(1, 3), over_midnight=st.booleans())
def test_tree_columns_on_disk_equal_derive_trees(tmp_path_factory, procs: pd.DataFrame, period: int, over_midnight):
    root = tmp_path_factory.mktemp("tree")
    shift = (NIGHT - procs["ts"].min()) if over_midnight else pd.Timedelta(0)
    _write(root, procs, period, shift)
    got = read_store(root)
    assert not got.notices
    want = procs.assign(ts=procs["ts"] + shift).reset_index(drop=True)
    ref = tree.derive_trees(want)
    parent = ref["parent_row"].to_numpy()
    start = want["start_time"].to_numpy()
    want = want.assign(
        level=ref["level"].to_numpy(),
        descendants=ref["descendants"].to_numpy(),
        parent_start_time=pd.Series(np.where(parent >= 0, start[np.maximum(parent, 0)], np.datetime64("NaT"))),
        **{c: ref[c] for c in ref.columns if c.startswith("subtree_")},
    )
    cols = ["level", "descendants", "parent_start_time", "subtree_rss_bytes", "subtree_pss_bytes",
            "subtree_uss_bytes", "subtree_swap_bytes"]  # fmt: skip
    key = ["ts", "pid"]
    a = want.sort_values(key)[key + cols].reset_index(drop=True)
    b = got.procs.sort_values(key)[key + cols].reset_index(drop=True)
    a["ts"] = a["ts"].dt.floor("us")
    a["parent_start_time"] = pd.to_datetime(a["parent_start_time"], utc=True).dt.floor("us")
    assert len(a) == len(b)
    for c in key + cols:
        left, right = a[c].astype(object).where(a[c].notna(), None), b[c].astype(object).where(b[c].notna(), None)
        assert [None if v is None else (pd.Timestamp(v) if "time" in c or c == "ts" else int(v)) for v in left] == [
            None if v is None else (pd.Timestamp(v) if "time" in c or c == "ts" else int(v)) for v in right
        ], c
    if over_midnight and want["ts"].dt.date.nunique() > 1:
        assert {p.parent.name for p in (root / "procs").rglob("*.parquet")} == {"date=2026-01-05", "date=2026-01-06"}


def test_gen_day_cli_writes_hosts_as_partitions(tmp_path: Path, capsys) -> None:
    out = tmp_path / "rec"
    assert gen_day.main(["--out", str(out), "--hours", "0.2", "--hosts", "2", "--interval", "10", "--procs", "30"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["hosts"] == 2 and summary["bytes_per_row"] < 25  # 12 min of 30 processes: footers dominate
    got = duckdb.sql(
        f"select host, count(distinct ts), count(*), max(level), count(distinct cgroup) "
        f"from read_parquet('{out}/procs/**/*.parquet', hive_partitioning=true) group by host order by host"
    ).fetchall()
    assert [r[:2] for r in got] == [("benchhost-01", 72), ("benchhost-02", 72)]
    assert sum(r[2] for r in got) == summary["rows"] and all(r[3] >= 5 for r in got)
    cg = duckdb.sql(f"select count(*) from read_parquet('{out}/cgroups/**/*.parquet')").fetchall()[0][0]
    assert cg == 2 * 72 * 2  # two cgroups per sample and host
    try:
        gen_day.main(["--out", str(out), "--hours", "1"])
    except SystemExit as exc:
        assert exc.code == 2  # refuses a directory that holds something
    else:
        raise AssertionError("wrote into a non-empty directory")
