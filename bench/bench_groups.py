"""Issue 5 benchmarks on one synthetic day (bench/gen_day.py: 24 h at 5 s, ~300 processes, ~5.2 M rows).

Targets: group totals over the whole day (any key, also with top-K folding) <= 1.5 s; cgroup totals over the day
rolled up to parent cgroups <= 2 s; the cgroup tree at one moment <= 50 ms and comparing two moments <= 100 ms
(both with the cached tree.TreeIndex, as a page has it);
processes spread over 80 cgroups (_spread_cgroups). Each row is the median of several repeats. ``run(quick=True)``
uses a quarter of an hour so the smoke test stays fast; targets are then not judged (ok is None).
"""

from __future__ import annotations

import pandas as pd

from bench.gen_day import generate
from bench.timing import time_calls as _time
from bench.timing import timing_row as _row
from memlib import cgroups, compare, groups, tree


def _spread_cgroups(procs: pd.DataFrame, n: int = 80) -> pd.DataFrame:
    """gen_day puts every process in 2 cgroups; spread them over `n` paths 3-5 deep (services, sessions, containers)
    by name, so the cgroup rows measure a realistic tree."""
    kinds = [
        "/system.slice/svc-{i}.service",
        "/user.slice/user-1000.slice/session-{i}.scope",
        "/system.slice/docker-{i:064x}.scope",
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{i:08x}.slice/cri-containerd-{i:064x}.scope",
    ]
    paths = [kinds[i % len(kinds)].format(i=i) for i in range(n)]
    codes = procs["name"].cat.codes.to_numpy() % n
    return procs.assign(cgroup=pd.Categorical.from_codes(codes, categories=paths))


def run(quick: bool = False) -> list[dict]:
    """Time groups / cgroups / compare on one generated day (a quarter hour when `quick`) -> result rows."""
    hours, repeats = (0.25, 2) if quick else (24, 5)
    procs, _ = generate(hours=hours)
    procs = tree.with_tree(_spread_cgroups(procs))  # TREE columns, as the loader's Dataset has them
    judge = not quick
    rows_note = f"{len(procs):,} rows, {procs['snap'].nunique():,} snapshots"
    index = tree.TreeIndex.build(procs)
    last = int(procs["snap"].max())
    mid = last // 2
    out = []
    for by in groups.GROUP_BY:
        t = _time(lambda by=by: groups.group_totals(procs, by), repeats)
        n = procs[groups.SOURCE_COLUMN[by]].nunique()
        out.append(_row(f"group_totals by {by}, whole day", t, 1.5, judge, f"{rows_note}; {n:,} distinct keys"))
    t = _time(lambda: groups.group_totals(procs, "command", top=10), repeats)
    out.append(_row("group_totals by command, top 10 + (other)", t, 1.5, judge, rows_note))
    t = _time(lambda: cgroups.cgroup_timeline(procs), repeats)
    out.append(_row("cgroup_timeline rolled up, whole day", t, 2.0, judge, rows_note))
    t = _time(lambda: cgroups.cgroup_tree(procs, mid, index=index), repeats * 4)
    out.append(_row("cgroup_tree at one moment (cached TreeIndex)", t, 0.05, judge))
    t = _time(lambda: compare.compare_processes(procs, mid, last, index=index), repeats * 4)
    out.append(_row("compare_processes of two moments (cached TreeIndex)", t, 0.1, judge))
    return out
