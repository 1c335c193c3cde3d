"""AppTest: the Overview's numbers and tables match memlib; empty and sample data sources are said on screen."""

from __future__ import annotations

from pathlib import Path

from conftest import markdown_texts

from memlib import query as q
from memlib import source
from memlib.units import fmt_bytes


def test_overview_numbers_match_memlib(run_page, seed_dumps: Path) -> None:
    at = run_page(seed_dumps)
    assert not at.exception
    rec = source.open_recording(seed_dumps, "UTC")
    latest = q.resolve(rec)
    now = q.latest_system(rec, latest)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["RAM used"] == fmt_bytes(now["mem_used_bytes"])
    assert metrics["Available"] == fmt_bytes(now["mem_available_bytes"])
    assert metrics["Processes"] == f"{int(now['processes']):,}"
    top = q.top_processes(rec, latest, "rss", 10)  # seed dumps carry no PSS: RSS is the default
    assert at.main.dataframe[0].value["pid"].tolist() == top["pid"].tolist()
    subtrees = q.top_subtrees(rec, latest, "rss", 10)
    assert at.main.dataframe[1].value["pid"].tolist() == subtrees["pid"].tolist()
    counts = q.counts(rec, q.resolve(rec, rec.span[0]), latest)
    assert metrics["Seen in window"] == f"{counts['seen']:,}"


def test_not_attributed_is_never_a_bare_negative_number(run_page, crafted_dumps: Path) -> None:
    for f in (crafted_dumps / "time").glob("sys_mem_*.csv"):  # RAM used 100 MiB < the processes' RSS sum
        f.write_text(
            "MemTotal_MB,MemFree_MB,MemAvailable_MB,Buffers_MB,Cached_MB,SwapCached_MB,SwapTotal_MB,SwapFree_MB,"
            "SReclaimable_MB\n8000,7800,7900,10,400,0,1024,1000,90\n"
        )
    at = run_page(crafted_dumps)
    assert not at.exception
    shown = next(m for m in at.metric if m.label == "Not attributed")
    assert shown.value == "none" and "-" not in shown.value
    assert "exceeds RAM used by" in shown.help


def test_window_from_the_url_changes_growers(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, **{"from": "2026-11-27T10:00:00Z", "to": "2026-11-27T10:00:20Z"})
    assert not at.exception
    growers = next(d.value for d in at.main.dataframe if "growth" in d.value.columns)
    assert growers["pid"].iloc[0] == 100
    assert growers["growth"].iloc[0] == 200.0  # MiB between 10:00:00 and 10:00:20
    assert {m.label: m.value for m in at.metric}["Exited in window"] == "1"  # sleep (pid 300) ended at 10:00:20


def test_growers_rank_by_growth_within_the_window(run_page, seed_dumps: Path) -> None:
    """The whole seed recording: the leaker grew 142 MiB and exited before the end; it ranks first by its own rise
    (not `ps`, whose only merit is being alive at the window's end)."""
    at = run_page(seed_dumps)
    assert not at.exception
    growers = next(d.value for d in at.main.dataframe if "growth" in d.value.columns)
    first = growers.iloc[0]
    assert (first["pid"], first["status"], first["growth"]) == (22958, "new, exited", 142.0)
    assert (first["before"], first["after"]) == (18.0, 160.0)
    assert (growers["growth"] > 0).all()


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


def test_a_link_moment_outside_the_recording_is_said_not_moved_silently(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/level.py", at="2000-01-01T00:00:00Z")
    assert not at.exception
    assert any("was not used" in w.value and "before the first sample" in w.value for w in at.warning)
    assert any("Snapshot 2026-11-27 10:00:00 UTC" in c.value for c in at.caption)
