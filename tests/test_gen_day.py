"""bench/gen_day.py's writer: a multi-day generated recording written into the store joins up into one (continuous
samples, the base tree is the same processes every day)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.gen_day import T0, write_recording
from tests.store_samples import read_store

BASE_NAMES = ["systemd", "kthreadd", "firefox", "code", "leaky-worker", "tmux: server", "gnome-terminal-"]


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
