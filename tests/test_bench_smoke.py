"""Smoke test of the benchmark harness: `python -m bench --quick` runs every bench module at tiny sizes; the report
renderer and the process-tree helper behave. Numbers are not checked against targets here (bench/ holds those)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROW_KEYS = {"name", "unit", "min", "max", "repeats", "target", "ok", "note"}

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the collector bench needs Linux /proc")


def test_quick_run_of_every_bench_module(tmp_path):
    from bench.__main__ import discover

    out, js = tmp_path / "RESULTS.md", tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--json", str(js)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(js.read_text())
    assert set(results) == set(discover()) >= {"bench.bench_collector", "bench.bench_store"}
    for module, rows in results.items():
        assert isinstance(rows, list) and rows, f"{module} failed or returned nothing: {rows}"
        for r in rows:
            assert set(r) >= ROW_KEYS and ("value" in r or "median_s" in r), r
            v = r.get("value", r.get("median_s"))
            if "shipped sample" in r["name"] and math.isnan(v):
                continue  # no sample recorded in this checkout
            assert math.isfinite(v) and v >= 0, r
            assert r["min"] <= v <= r["max"] and r["repeats"] >= 1, r
    names = [r["name"] for r in results["bench.bench_collector"]]
    for label in ["(a) ", "(b) ", "(c) ", "(d) ", "steady state"]:
        assert any(label in n for n in names), label
    floor = next(r for r in results["bench.bench_collector"] if r["name"].startswith("(a) "))
    assert "20 extra" in floor["note"] and "20 of them alive" in floor["note"]  # the tree lived through the timing
    report = out.read_text()
    assert report.startswith("# Benchmark results (quick run")
    for text in ["**CPU**", "**cores**", "**kernel**", "pandas ", "## bench.bench_collector", "## Targets missed"]:
        assert text in report


def test_report_names_missed_targets_and_failed_modules():
    from bench.__main__ import render

    rows = [
        {"name": "fast", "value": 1.5, "unit": "µs", "min": 1, "max": 2, "repeats": 3, "target": "≤ 2", "ok": True},
        {"name": "slow", "median_s": 3.0, "min": 2.0, "max": 4.0, "repeats": 3, "target": "≤ 2 s", "ok": False},
        {"name": "a|b", "value": float("nan"), "unit": "B", "min": None, "max": None, "repeats": 1, "ok": None},
    ]
    text = render({"CPU": "x"}, {"bench.bench_a": rows, "bench.bench_b": "Traceback: boom"}, quick=False)
    assert "| fast | 1.50 | µs |" in text
    assert "| slow | 3.00 | s |" in text and "**NO**" in text
    assert "a\\|b" in text  # a pipe in a name does not break the table
    missed = text.split("## Targets missed", 1)[1]
    assert "slow = 3.00 s, target ≤ 2 s" in missed and "fast" not in missed
    assert "bench.bench_b: the module failed" in missed and "Traceback: boom" in text
    assert "None: every target" in render({}, {"bench.bench_a": rows[:1]}, quick=True)


def test_a_partial_run_keeps_the_other_modules_sections_with_their_date():
    from bench.__main__ import kept_sections, render

    slow = {"name": "slow", "median_s": 3.0, "min": 2.0, "max": 4.0, "repeats": 3, "target": "≤ 2 s", "ok": False}
    fast = {"name": "fast", "median_s": 1.0, "min": 1.0, "max": 1.0, "repeats": 3, "target": "≤ 2 s", "ok": True}
    first = render({"date": "2026-01-01 00:00:00 UTC"}, {"bench.bench_a": [slow], "bench.bench_b": [slow]}, False)
    kept = kept_sections(first, {"bench.bench_b"})
    assert set(kept) == {"bench.bench_a"} and "Kept from the run of 2026-01-01 00:00:00 UTC" in kept["bench.bench_a"]
    second = render({"date": "2026-01-02 00:00:00 UTC"}, {"bench.bench_b": [fast]}, False, kept)
    assert second.index("## bench.bench_a") < second.index("## bench.bench_b")
    missed = second.split("## Targets missed", 1)[1]
    assert "bench.bench_a: slow = 3.00 s, target ≤ 2 s (kept from an earlier run)" in missed
    assert "bench.bench_b" not in missed
    third = kept_sections(render({"date": "2026-01-03"}, {"bench.bench_c": [fast]}, False, kept), {"bench.bench_c"})
    assert third["bench.bench_a"].count("Kept from the run of") == 1 and "2026-01-01" in third["bench.bench_a"]


def test_proctree_spawns_a_tree_and_reaps_it():
    from bench.proctree import ProcTree, levels

    with ProcTree(13, fanout=3) as tree:
        pids = list(tree.pids)
        assert len(set(pids)) == 13
        assert levels(pids, pids[0]) == 2  # 1 + 3 + 9
        ppids = {int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) for p in pids[1:]}
        assert ppids <= set(pids)
    deadline = time.monotonic() + 10  # grandchildren are reaped by init (or the nearest subreaper): give it time
    while (left := [p for p in pids if os.path.exists(f"/proc/{p}")]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []
    with pytest.raises(ValueError):
        ProcTree(0)
