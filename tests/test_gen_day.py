"""bench/gen_day.py: its default output is pinned (the multi-day keywords change nothing), each day has its own
churn, and a multi-day recording written into the store joins up into one (continuous samples, the base tree is the
same processes every day)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from bench.gen_day import T0, generate, write_recording
from tests.store_samples import read_store

BASE_NAMES = ["systemd", "kthreadd", "firefox", "code", "leaky-worker", "tmux: server", "gnome-terminal-"]


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


def digest(procs: pd.DataFrame, system: pd.DataFrame) -> str:
    """sha256 over both frames' column names, dtypes and row hashes."""
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


def test_each_day_has_its_own_churn():
    common = {"hours": 1 / 6, "interval_s": 60, "n_procs": 30, "seed": 0, "epoch": T0}
    a, _ = generate(t0=T0, churn_seed=1, **common)
    b, _ = generate(t0=T0 + pd.Timedelta(minutes=10), churn_seed=2, **common)
    ida = set(zip(a["pid"], a["start_time"], strict=True))
    idb = set(zip(b["pid"], b["start_time"], strict=True))
    assert (1, a.loc[a["pid"] == 1, "start_time"].iloc[0]) in ida & idb
    assert idb - ida  # new processes on the second day
    assert b["ts"].min() == T0 + pd.Timedelta(minutes=10)


@pytest.fixture(scope="module")
def two_days(tmp_path_factory):
    """Two days at 10 min, 30 processes: 2 x 144 samples, one store."""
    out = tmp_path_factory.mktemp("days") / "store"
    summary = write_recording(out, hours=48, interval_s=600, n_procs=30)
    return out, summary, read_store(out)


def test_days_read_as_one_continuous_recording(two_days):
    out, summary, got = two_days
    assert not got.notices and summary["snapshots"] == 288 and len(got.procs) == summary["rows"]
    ts = pd.Series(sorted(got.system["ts"].unique()))
    assert ts.iloc[0] == T0 and ts.iloc[-1] == T0 + pd.Timedelta(hours=47, minutes=50)
    assert (ts.diff().dropna() == pd.Timedelta(minutes=10)).all()  # no gap or overlap at the day boundary
    assert {p.parent.name for p in (out / "procs").rglob("*.parquet")} == {"date=2026-03-02", "date=2026-03-03"}


def test_base_processes_are_one_process_across_days(two_days):
    _, _, got = two_days
    procs = got.procs
    init = procs[procs["pid"] == 1]
    assert init["start_time"].nunique() == 1 and len(init) == 288
    first = procs[procs["ts"] == T0]
    last = procs[procs["ts"] == procs["ts"].max()]
    both = set(zip(first["pid"], first["start_time"], strict=True)) & set(
        zip(last["pid"], last["start_time"], strict=True)
    )
    assert len(both) >= 24  # kthreadd, init, kernel threads, services, the session
    for name in BASE_NAMES:
        rows = procs[procs["name"] == name]
        assert (rows.groupby(["pid", "start_time"])["ts"].nunique() == 288).any(), name
    leak = procs[procs["name"] == "leaky-worker"].sort_values("ts")["rss_bytes"].to_numpy()
    assert len(leak) == 288 and (np.diff(leak) >= 0).all() and leak[-1] > leak[0]
