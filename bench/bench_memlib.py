"""memlib analysis benchmarks on one synthetic day (bench/gen_day.py: 24 h at 5 s, ~300 processes, ~5.2 M rows).

Targets (issue 7): derive_trees for the day <= 1 s; one process's timeline plus its children trends <= 50 ms once
loaded (with the cached tree.TreeIndex); filter_snapshot at a moment <= 20 ms (snapshot extraction included).
system_summary, process_stats, growers and TreeIndex.build are timed for information. Each row is the median of
several repeats. ``run(quick=True)`` uses a quarter of an hour so the smoke test stays fast; targets are then not
judged (ok is None).
"""

from __future__ import annotations

import time

import pandas as pd

from bench.gen_day import generate
from bench.timing import time_calls as _time
from bench.timing import timing_row as _row
from memlib import filters, stats, summary, timeline, tree


def _pick(procs: pd.DataFrame, name: str) -> int:
    hit = procs.loc[procs["name"] == name, "proc_id"]
    return int(hit.iloc[0]) if len(hit) else int(procs["proc_id"].iloc[0])


def run(quick: bool = False) -> list[dict]:
    """Time the analysis functions on one generated day (a quarter hour when `quick`) -> result rows."""
    hours, repeats = (0.25, 2) if quick else (24, 5)
    t = time.perf_counter()
    procs, system = generate(hours=hours)
    gen_s = time.perf_counter() - t
    size = f"{len(procs):,} rows, {procs['snap'].nunique():,} snapshots, {procs['proc_id'].nunique():,} processes"
    judge = not quick
    rows = [_row("derive_trees, whole recording", _time(lambda: tree.derive_trees(procs), repeats), 1.0, judge, size)]
    full = pd.concat([procs, tree.derive_trees(procs)], axis=1)
    rows.append(
        _row("TreeIndex.build (once per load, cached)", _time(lambda: tree.TreeIndex.build(full), 3), None, judge)
    )
    index = tree.TreeIndex.build(full)

    shell = int(full.loc[full["name"] == "leaky-worker", "ppid"].iloc[0])
    shell_id = int(full.loc[(full["pid"] == shell) & (full["snap"] == 0), "proc_id"].iloc[0])
    n_kids = full.loc[full["ppid"] == shell, "proc_id"].nunique()

    def one_process(pid: int = shell_id) -> None:
        timeline.process_timeline(full, pid, index)
        timeline.children_trends(full, pid, "rss", index)

    rows.append(
        _row(
            "process_timeline + children_trends (a shell, with TreeIndex)",
            _time(one_process, repeats * 2),
            0.05,
            judge,
            f"{n_kids} distinct children over the recording",
        )
    )
    rows.append(
        _row(
            "process_timeline + children_trends (same shell, no index)",
            _time(lambda: (timeline.process_timeline(full, shell_id), timeline.children_trends(full, shell_id)), 3),
            None,
            judge,
            "a boolean mask over every row",
        )
    )
    init_id = _pick(full, "systemd")
    rows.append(
        _row(
            "process_timeline + children_trends (init, with TreeIndex)",
            _time(lambda: one_process(init_id), 3),
            None,
            judge,
            "largest case: every orphan and service is init's child",
        )
    )
    moment = int(full["snap"].max()) // 2
    f = filters.Filters(min_lifetime_s=60, min_rss_mib=10, min_subtree_mib=20, match="a")

    def filter_at_moment() -> None:
        filters.filter_snapshot(tree.snapshot(full, moment, index), f, limit=50)

    rows.append(_row("snapshot + filter_snapshot at a moment", _time(filter_at_moment, repeats * 2), 0.02, judge))
    rows.append(_row("system_summary", _time(lambda: summary.system_summary(system, full), 3), None, judge))
    rows.append(_row("process_stats (every process)", _time(lambda: stats.process_stats(full), 3), None, judge))
    rows.append(
        _row(
            "process_stats (every process, with TreeIndex)",
            _time(lambda: stats.process_stats(full, index=index), 3),
            None,
            judge,
        )
    )
    rows.append(
        _row(
            "growers + counts between two moments",
            _time(lambda: (summary.growers(full, 0, moment, index=index), summary.counts(full, 0, moment)), 3),
            None,
            judge,
        )
    )
    rows.append(_row("gen_day.generate (the synthetic day itself)", [gen_s], None, judge, size))
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r['name']:<66} {r['median_s'] * 1000:9.1f} ms  {r['target']:<8} {r['ok']}  {r['note']}")
