"""AppTest: the PID drill-down — identity, stats from memlib, missing and reused pids, names as text."""

from __future__ import annotations

from pathlib import Path

from conftest import markdown_texts

from memlib import load, stats
from ui import render


def test_process_header_and_stats_match_memlib(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/pid.py", pid="100")
    assert not at.exception
    assert any(s.value == "PID 100" for s in at.subheader)
    assert [c.value for c in at.code] == ["/usr/bin/python3 /srv/app.py --serve"]
    ds = load.load_dumps(crafted_dumps, tz="UTC")
    row = stats.process_stats(ds.procs, lifetime_exact=False)
    row = row[row["pid"] == 100].iloc[0]
    table = next(d.value for d in at.main.dataframe if "series" in d.value.columns)
    own = table[table["series"] == "own RSS"].iloc[0]
    sub = table[table["series"] == "subtree RSS"].iloc[0]
    assert own["max"] == render.fmt_bytes(row["rss_max_bytes"]) == "400 MiB"
    assert sub["max"] == render.fmt_bytes(row["subtree_rss_max_bytes"])
    assert own["growth / h"] == render.fmt_bytes(row["growth_bytes_per_hour"])
    # descendants at the latest moment: the worker and the reused pid 300 (nginx)
    desc = at.main.dataframe[-1].value
    assert sorted(desc["pid"].tolist()) == [101, 300]


def test_unknown_pid_gets_a_message_and_a_choice(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/pid.py", pid="4242")
    assert not at.exception
    assert any("PID 4242 does not appear" in e.value for e in at.error)
    assert len(at.main.dataframe[0].value) > 0


def test_reused_pid_offers_a_choice_then_start_selects_one(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/pid.py", pid="300")
    assert not at.exception
    assert any("used by 2 different processes" in w.value for w in at.warning)
    choice = at.main.dataframe[0].value
    assert sorted(choice["cmdline"].tolist()) == ["nginx: worker process", "sleep 100"]

    at = run_page(crafted_dumps, "pages/pid.py", pid="300", start="2026-11-27T10:00:30Z")
    assert [c.value for c in at.code] == ["nginx: worker process"]
    assert not at.warning


def test_bad_url_values_are_named_not_fatal(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/pid.py", pid="abc", min_rss_mb="-5")
    assert not at.exception
    assert any("ignored" in w.value for w in at.warning)
    bad = "\n".join(t.value for t in at.text)
    assert "pid='abc'" in bad and "min_rss_mb='-5'" in bad


def test_hostile_process_is_text_only(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/pid.py", pid="200")
    assert not at.exception
    assert any("example.invalid" in c.value for c in at.code)
    assert not any("example.invalid" in t or "pwn" in t for t in markdown_texts(at))
