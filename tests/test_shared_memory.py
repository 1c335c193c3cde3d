"""Shared memory told honestly, recorded by the real collector and read back through the CLI.

Two trees of real processes (tests/sharedmem_tree.py): a control one (4 children, no extra memory) and one whose
4 children share one 256 MiB MAP_SHARED mapping (touched) and each hold 32 MiB of private memory. Recorded with
`python -m collector --smaps on` and read with `python -m memlib export` / `timeline`: each child's PSS is its private
memory plus a quarter of the shared mapping (plus the interpreter, taken from the control tree's children), the
subtree's PSS is the physical memory the tree uses (within 2 %), while the RSS sum counts the shared mapping 4 times.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.realproc import ROOT, SharedMemTree, cli_json

MIB = 1 << 20
SHARED, PRIVATE, N = 256 * MIB, 32 * MIB, 4


def test_pss_splits_shared_memory_and_sums_to_the_physical_memory(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    with SharedMemTree(0, 0, N) as control, SharedMemTree(SHARED, PRIVATE, N) as tree:
        cmd = [sys.executable, "-m", "collector", "--dumps", str(dumps), "--interval", "1", "--duration", "3.5"]
        done = subprocess.run([*cmd, "--smaps", "on"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    rows = pd.DataFrame(cli_json("export", dumps, "--all"))
    last = rows[rows["ts"] == rows["ts"].max()].set_index("pid")
    members = [control.parent, *control.children, tree.parent, *tree.children]
    assert set(members) <= set(last.index), "a tree process is missing from the last snapshot"
    assert last.loc[members, "pss_bytes"].notna().all(), last.loc[members, ["pss_bytes", "smaps_ts"]]

    # each child: private + shared / N, plus what an interpreter alone costs (the control tree's children)
    interpreter = statistics.mean(last.loc[c, "pss_bytes"] for c in control.children)
    for child in tree.children:
        expected = PRIVATE + SHARED / N + interpreter
        assert abs(last.loc[child, "pss_bytes"] - expected) <= 0.02 * (PRIVATE + SHARED / N), (child, expected)
        assert last.loc[child, "rss_bytes"] >= SHARED + PRIVATE  # RSS counts the whole shared mapping
        assert abs(last.loc[child, "uss_bytes"] - PRIVATE) <= 0.05 * PRIVATE + 2 * MIB  # private: its own 32 MiB

    # the subtree: PSS = physical memory (shared once, private N times, interpreters as in the control tree)
    top, base = last.loc[tree.parent], last.loc[control.parent]
    assert top["descendants"] == N and base["descendants"] == N
    physical = SHARED + N * PRIVATE
    assert abs(top["subtree_pss_bytes"] - base["subtree_pss_bytes"] - physical) <= 0.02 * physical
    assert top["subtree_pss_bytes"] == sum(last.loc[p, "pss_bytes"] for p in [tree.parent, *tree.children])
    # ... while the RSS sum counts the shared mapping N times
    rss_sum = sum(last.loc[c, "rss_bytes"] for c in tree.children)
    assert rss_sum >= N * (SHARED + PRIVATE)
    assert abs(top["subtree_rss_bytes"] - base["subtree_rss_bytes"] - N * (SHARED + PRIVATE)) <= 0.02 * physical

    # the timeline of the tree's top says the same at the same moment
    line = pd.DataFrame(cli_json("timeline", dumps, "--pid", str(tree.parent))).set_index("ts")
    assert line.loc[last["ts"].iloc[0], "subtree_rss_bytes"] == top["subtree_rss_bytes"]
    assert (line["descendants"] == N).all()
