"""bench/gen_week.py: a multi-day generated recording joins up into one (continuous snapshots, the base tree is the
same processes every day), gen_day's default output is unchanged by the multi-day keywords, and bench_week runs."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from bench.gen_day import T0, generate
from bench.gen_week import main, marker_path, read_marker, write_marker, write_week
from memlib.load import load_dumps

# digests of generate(**kwargs) computed with bench/gen_day.py before the multi-day keywords were added
REFERENCE = [
    ({"hours": 0.1}, 20291, 72, "d6500aa8e43c5e3caefe57ce342d5ac39e640eaa0c95b39507ac966c08dfd16b"),
    (
        {"hours": 0.5, "interval_s": 10, "n_procs": 50, "seed": 3},
        9406,
        180,
        "a3c851009fc71c63452692f7f60e87e0cca8a8d5e61aa3bf008360a004bbc3fc",
    ),
]
TINY = {"days": 2, "interval_s": 60.0, "n_procs": 30, "seed": 0, "day_hours": 1 / 6}  # 2 x 10 snapshots
BASE_NAMES = ["systemd", "kthreadd", "firefox", "code", "leaky-worker", "tmux: server", "gnome-terminal-"]


def digest(procs: pd.DataFrame, system: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for df in (procs, system):
        h.update(",".join(f"{c}:{df[c].dtype}" for c in df.columns).encode())
        h.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize(("kwargs", "n_rows", "n_snaps", "expected"), REFERENCE)
def test_default_generate_output_is_unchanged(kwargs, n_rows, n_snaps, expected):
    procs, system = generate(**kwargs)
    assert (len(procs), len(system)) == (n_rows, n_snaps)
    assert digest(procs, system) == expected


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    out = tmp_path_factory.mktemp("week") / "dumps"
    return out, write_week(out, **TINY)


def test_days_load_as_one_continuous_recording(week):
    out, summary = week
    assert summary["days"] == 2 and summary["snapshots"] == 20 and summary["segments"] == 2
    assert summary["bytes"] > 0 and summary["peak_rss_mib"] > 0 and summary["seconds"] >= 0
    ds = load_dumps(out)
    assert ds.info.kind == "native" and ds.info.notices == []
    assert len(ds.procs) == summary["rows"] and len(ds.snapshots) == 20
    ts = ds.snapshots["ts"]
    assert ts.iloc[0] == T0 and ts.iloc[-1] == T0 + pd.Timedelta(minutes=19)
    assert (ts.diff().dropna() == pd.Timedelta(seconds=60)).all()  # no gap or overlap at the day boundary
    assert pd.Timestamp(summary["last_ts"]) == ts.iloc[-1]
    # both days hold process rows
    day = ds.procs["ts"] >= T0 + pd.Timedelta(minutes=10)
    assert day.any() and (~day).any()


def test_base_processes_are_one_process_across_days(week):
    out, _ = week
    procs = load_dumps(out).procs
    init = procs[procs["pid"] == 1]
    assert init["proc_id"].nunique() == 1 and init["start_time"].nunique() == 1
    assert len(init) == 20 and init["snap"].tolist() == list(range(20))
    for name in BASE_NAMES:
        rows = procs[procs["name"] == name]
        per_proc = rows.groupby("proc_id", observed=True)["snap"].nunique()
        assert (per_proc == 20).any(), name  # at least one process of that name lived through both days
    # the whole base tree: identities alive in the first and in the last snapshot alike, with their children
    first = procs[procs["snap"] == 0]
    last = procs[procs["snap"] == 19]
    both = set(zip(first["pid"], first["start_time"], strict=True)) & set(
        zip(last["pid"], last["start_time"], strict=True)
    )
    assert len(both) >= 24  # n_procs=30: kthreadd, init, kernel threads, services, the session
    # the leaker keeps growing over the boundary (its age counts from the recording's start)
    leak = procs[procs["name"] == "leaky-worker"].sort_values("snap")["rss_bytes"].to_numpy()
    assert len(leak) == 20 and (np.diff(leak) >= 0).all() and leak[-1] > leak[0]


def test_each_day_has_its_own_churn():
    common = {"hours": 1 / 6, "interval_s": 60, "n_procs": 30, "seed": 0, "epoch": T0}
    a, _ = generate(t0=T0, churn_seed=1, **common)
    b, _ = generate(t0=T0 + pd.Timedelta(minutes=10), churn_seed=2, **common)
    ida = set(zip(a["pid"], a["start_time"], strict=True))
    idb = set(zip(b["pid"], b["start_time"], strict=True))
    assert (1, a.loc[a["pid"] == 1, "start_time"].iloc[0]) in ida & idb
    assert idb - ida  # new processes on the second day
    assert b["ts"].min() == T0 + pd.Timedelta(minutes=10)


def test_marker_and_cli(tmp_path, capsys):
    out = tmp_path / "w"
    assert main([str(out), "--days", "2", "--interval", "60", "--procs", "30", "--day-hours", str(1 / 6)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"] > 0 and summary["segments"] == 2
    assert marker_path(out).is_file() and not list(out.glob("*.json"))  # the marker stays out of the dumps dir
    assert read_marker(out, **TINY) == summary
    assert read_marker(out, **{**TINY, "days": 3}) is None  # other parameters: not reusable
    next(out.glob("*.procs.parquet")).unlink()
    assert read_marker(out, **TINY) is None  # a segment missing: not reusable
    write_marker(out, {**summary, "segments": 1}, **TINY)
    assert read_marker(out, **TINY) is not None
    with pytest.raises(SystemExit):
        main([str(out)])  # refuses to write over segments


def test_bench_week_quick_returns_rows():
    from bench import bench_week

    rows = bench_week.run(quick=True)
    assert len(rows) >= 5
    for r in rows:
        assert {"name", "value", "unit", "min", "max", "repeats", "target", "ok", "note"} <= set(r), r
        assert r["ok"] is None, r  # quick runs are never judged
        assert math.isfinite(r["value"]) and r["value"] >= 0, r
    names = " ".join(r["name"] for r in rows)
    assert "first paint" in names and "warm rerun" in names and "RSS after every page" in names
