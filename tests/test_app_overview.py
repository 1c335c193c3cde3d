"""AppTest: the Overview's numbers and tables match memlib; empty and sample data sources are said on screen."""

from __future__ import annotations

from pathlib import Path

from conftest import markdown_texts

from memlib import load, summary
from ui import render


def test_overview_numbers_match_memlib(run_page, seed_dumps: Path) -> None:
    at = run_page(seed_dumps)
    assert not at.exception
    ds = load.load_dumps(seed_dumps, tz="UTC")
    last = int(ds.snapshots["snap"].iloc[-1])
    sysdf = summary.system_summary(ds.system, ds.procs)
    now = sysdf[sysdf["snap"] == last].iloc[0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["RAM used"] == render.fmt_bytes(now["mem_used_bytes"])
    assert metrics["Available"] == render.fmt_bytes(now["mem_available_bytes"])
    assert metrics["Processes"] == f"{int(ds.snapshots['processes'].iloc[-1]):,}"
    top = summary.top_processes(ds.procs, last, limit=10)
    assert at.main.dataframe[0].value["pid"].tolist() == top["pid"].tolist()
    subtrees = summary.top_subtrees(ds.procs, last, limit=10)
    assert at.main.dataframe[1].value["pid"].tolist() == subtrees["pid"].tolist()
    counts = summary.counts(ds.procs, 0, last)
    assert metrics["Seen in window"] == f"{counts['seen']:,}"


def test_window_from_the_url_changes_growers(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, **{"from": "2026-11-27T10:00:00Z", "to": "2026-11-27T10:00:20Z"})
    assert not at.exception
    growers = at.main.dataframe[2].value
    assert growers["pid"].iloc[0] == 100
    assert growers["growth"].iloc[0] == 200.0  # MiB between 10:00:00 and 10:00:20
    assert {m.label: m.value for m in at.metric}["Exited in window"] == "1"  # sleep (pid 300) ended at 10:00:20


def test_empty_source_shows_a_clear_empty_state(run_page, tmp_path: Path) -> None:
    at = run_page(tmp_path)
    assert not at.exception
    assert any("no recording" in i.value.lower() for i in at.info)


def test_missing_source_folder_is_named(run_page, tmp_path: Path) -> None:
    at = run_page(tmp_path / "does-not-exist", "pages/level.py")
    assert not at.exception
    assert any("does not exist" in t.value for t in at.text)


def test_hostile_names_in_overview_tables_stay_text(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps)
    assert any(
        d.value["cmdline"].astype(str).str.contains("example.invalid").any()
        for d in at.main.dataframe
        if "cmdline" in d.value.columns
    )
    assert not any("example.invalid" in t or "pwn" in t for t in markdown_texts(at))


def test_a_single_snapshot_recording_renders_every_page(run_page, crafted_dumps: Path) -> None:
    for f in sorted((crafted_dumps / "time").glob("*.csv")):
        if not f.name.endswith("_100000.csv"):
            f.unlink()
    for page, params in (
        ("pages/overview.py", {}),
        ("pages/level.py", {"level": "1"}),
        ("pages/pid.py", {"pid": "100"}),
    ):
        at = run_page(crafted_dumps, page, **params)
        assert not at.exception, (page, at.exception)
        assert any("2026-11-27 10:00:00 UTC" in c.value for c in at.caption)
