"""AppTest: live updates — a sample the collector appends to the active segment shows on the next run, before and
after the segment closes; the sidebar's watcher sees the change in the files' fingerprint."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from store_samples import MEMINFO, T0, sample_procs, writer

from ui import data


def _captions(at) -> str:
    return " ".join(c.value for c in at.sidebar.caption) + " ".join(c.value for c in at.caption)


def _level1(at) -> list[int]:
    return sorted(at.main.dataframe[0].value["pid"].tolist())


def test_a_new_sample_in_the_active_segment_shows_within_one_run(run_page, tmp_path: Path) -> None:
    root = tmp_path / "rec"
    w = writer(root)
    for k in range(3):
        w.append(T0 + pd.Timedelta(seconds=5 * k), sample_procs([(1, 0, 10), (10, 1, 20)]), MEMINFO)
    at = run_page(root, "pages/level.py", level="1")
    assert not at.exception
    assert "Snapshot 2026-11-27 10:00:10 UTC" in _captions(at)
    assert _level1(at) == [10]

    before = data.fingerprint(root)
    w.append(T0 + pd.Timedelta(seconds=15), sample_procs([(1, 0, 10), (10, 1, 20), (12, 1, 7)]), MEMINFO)
    assert data.fingerprint(root) != before  # what the sidebar's watcher compares every interval
    at.run()
    assert not at.exception
    assert "Snapshot 2026-11-27 10:00:15 UTC" in _captions(at)
    assert _level1(at) == [10, 12]

    w.close()  # the segment is published as Parquet: the same answer from the closed files
    at.run()
    assert not at.exception
    assert "Snapshot 2026-11-27 10:00:15 UTC" in _captions(at)
    assert _level1(at) == [10, 12]
