"""Leak, spike and alert benchmarks on one synthetic day (bench/gen_day.py: 24 h at 5 s, ~300 processes, ~5.2 M rows).

Targets (issue 6): leak scores of every process over the day <= 2 s (with the cached tree.TreeIndex), subtree leak
scores from those <= 2 s, process spikes over the day <= 3 s; the collector's alert evaluation on an in-memory window
of 30 min (360 samples x ~300 processes, a growth, a size and a system rule) <= 0.5 s, i.e. <= 2 % of one core when
run every 30 s. The system used-memory spikes are timed for information. ``run(quick=True)`` uses a quarter of an
hour so the smoke test stays fast; targets are then not judged (ok is None).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from bench.gen_day import generate
from bench.timing import time_calls as _time
from bench.timing import timing_row as _row
from memlib import alerts, leaks, spikes, tree

ALERT_RULES = """
[[rule]]
name = "fast grower"
kind = "growth"
rate = "50 MiB/h"
for = "30m"

[[rule]]
name = "big subtree"
kind = "size"
scope = "subtree"
above = "4 GiB"

[[rule]]
name = "low memory"
kind = "system_available"
below_percent = 10
"""


def _window_samples(procs: pd.DataFrame, system: pd.DataFrame, n_samples: int) -> list[tuple]:
    """The last `n_samples` snapshots of a generated recording as collector samples (ts, procs columns, meminfo)."""
    last = int(procs["snap"].max())
    sub = procs[procs["snap"].to_numpy() > last - n_samples]
    out = []
    meminfo_cols = [c for c in system.columns if c not in ("snap", "ts", "host", "boot_id")]
    sys_by_snap = system.set_index("snap")
    for snap, rows in sub.groupby("snap", sort=True):  # building the input only, not timed
        cols = {
            "pid": rows["pid"].tolist(),
            "ppid": rows["ppid"].tolist(),
            "start_time": rows["start_time"].astype("int64").tolist(),
            "name": rows["name"].astype(str).tolist(),
            "cmdline": rows["cmdline"].astype(str).tolist(),
            "user": rows["user"].astype(str).tolist(),
            "cgroup": [None] * len(rows),
            "rss_bytes": rows["rss_bytes"].tolist(),
            "pss_bytes": rows["pss_bytes"].astype(object).where(rows["pss_bytes"].notna(), None).tolist(),
            "uss_bytes": rows["uss_bytes"].astype(object).where(rows["uss_bytes"].notna(), None).tolist(),
            "swap_bytes": rows["swap_bytes"].astype(object).where(rows["swap_bytes"].notna(), None).tolist(),
        }
        mem = {c: int(v) for c, v in sys_by_snap.loc[snap, meminfo_cols].items() if pd.notna(v)}
        out.append((rows["ts"].iloc[0], cols, mem))
    return out


def run(quick: bool = False) -> list[dict]:
    """Time leak scores, subtree scores, spikes and the collector's alert evaluation -> result rows."""
    hours, repeats = (0.25, 2) if quick else (24, 3)
    procs, system = generate(hours=hours)
    full = pd.concat([procs, tree.derive_trees(procs)], axis=1)
    index = tree.TreeIndex.build(full)
    judge = not quick
    size = f"{len(full):,} rows, {full['proc_id'].nunique():,} processes"
    scores = leaks.leak_scores(full)
    top = str(scores["name"].iloc[0]) if len(scores) else "none"
    rows = [
        _row(
            "leak_scores, whole recording",
            _time(lambda: leaks.leak_scores(full), repeats),
            2.0,
            judge,
            f"{size}; {len(scores)} growing candidates, first: {top}",
        )
    ]
    sub = leaks.subtree_leak_scores(full, process_scores=scores)
    rows.append(
        _row(
            "subtree_leak_scores (from the process scores)",
            _time(lambda: leaks.subtree_leak_scores(full, process_scores=scores), repeats),
            2.0,
            judge,
            f"{len(sub)} subtrees",
        )
    )
    found = spikes.process_spikes(full, index=index)
    used = pd.DataFrame({"ts": system["ts"], "mem_used_bytes": system["MemTotal"] - system["MemAvailable"]})
    rows.append(
        _row(
            "process_spikes, whole recording",
            _time(lambda: spikes.process_spikes(full, index=index), repeats),
            3.0,
            judge,
            f"{len(found)} spikes in {found['proc_id'].nunique() if len(found) else 0} processes",
        )
    )
    rows.append(
        _row(
            "used-memory spikes (spikes.used_spikes on the system series)",
            _time(lambda: spikes.used_spikes(used), repeats),
            None,
            judge,
        )
    )
    n_win = min(360, int(procs["snap"].nunique()))
    samples = _window_samples(full, system, n_win)
    rules = alerts.parse_rules(ALERT_RULES)

    def evaluate_window() -> None:
        window = alerts.AlertWindow(rules, every=1)
        window.samples = samples  # as if the collector had added them one by one
        procs_w, system_w = alerts.sample_frames(window.samples)
        alerts.evaluate(rules, procs_w, system_w, interval_s=alerts.median_interval(system_w["ts"]))

    n_rows = sum(len(s[1]["pid"]) for s in samples)
    rows.append(
        _row(
            "collector alert evaluation, in-memory window",
            _time(evaluate_window, repeats),
            0.5,
            judge,
            f"{n_win} samples, {n_rows:,} rows, 3 rules (growth, subtree size, available)",
        )
    )
    t = time.perf_counter()
    window = alerts.AlertWindow(rules, every=10**9)
    for ts, cols, mem in samples[:50]:
        window.add(ts, cols, mem)
    per_add = (time.perf_counter() - t) / 50
    rows.append(
        {
            "name": "AlertWindow.add without evaluation (per sample)",
            "value": per_add * 1e3,
            "unit": "ms",
            "min": per_add * 1e3,
            "max": per_add * 1e3,
            "repeats": 50,
            "target": "",
            "ok": None,
            "note": "the cost added to every collector sample between evaluations",
        }
    )
    assert np.isfinite(per_add)
    return rows
