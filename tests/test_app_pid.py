"""AppTest: the PID drill-down — identity, stats from memlib, missing and reused pids, names as text."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import markdown_texts

from memlib import query as q
from memlib import source
from memlib.units import fmt_bytes


def test_process_header_and_stats_match_memlib(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/pid.py", pid="100")
    assert not at.exception
    assert any(s.value == "PID 100" for s in at.subheader)
    assert [c.value for c in at.code] == ["/usr/bin/python3 /srv/app.py --serve"]
    rec = source.open_recording(crafted_dumps, "UTC")
    row = q.stats(rec, procs=[q.process(rec, 100)]).iloc[0]
    table = next(d.value for d in at.main.dataframe if "series" in d.value.columns)
    own = table[table["series"] == "own RSS"].iloc[0]
    sub = table[table["series"] == "subtree RSS"].iloc[0]
    assert own["max"] == fmt_bytes(row["rss_max_bytes"]) == "400 MiB"
    assert sub["max"] == fmt_bytes(row["subtree_rss_max_bytes"])
    assert own["growth / h"] == fmt_bytes(row["growth_bytes_per_hour"])
    # descendants at the latest moment: the worker and the reused pid 300 (nginx)
    desc = at.main.dataframe[-1].value
    assert sorted(desc["pid"].tolist()) == [101, 300]


def test_headline_values_are_at_the_chosen_moment(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/pid.py", pid="100", at="2026-11-27T10:00:00Z")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Subtree RSS at the moment"] == "150 MiB"  # app 100 + worker 50 then; 480 MiB at the end
    at = run_page(crafted_dumps, "pages/pid.py", pid="100")
    assert {m.label: m.value for m in at.metric}["Subtree RSS at the moment"] == "480 MiB"


def test_an_exited_process_opens_at_its_last_seen_moment(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/pid.py", pid="300", start="2026-11-27T10:00:00Z")
    assert not at.exception
    assert at.query_params.get("at") == "2026-11-27T10:00:10Z"  # sleep 100 was last seen then
    assert [c.value for c in at.code] == ["sleep 100"]
    assert {m.label: m.value for m in at.metric}["Subtree RSS at the moment"] == "5.0 MiB"
    assert any("Ancestors" in c.value for c in at.caption)


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
    assert "pid must be a whole number, got 'abc'" in bad and "min_rss_mb must be a number >= 0, got '-5'" in bad
    assert "convert" not in bad and "float" not in bad  # no Python conversion message


@pytest.mark.parametrize(
    ("pid", "said"),
    [
        ("-7", "pid must be 0 or more, got '-7'"),
        ("99999999999", "pid must be at most 4,194,304 (the kernel's largest PID), got '99999999999'"),
        ("1e30", "pid must be a whole number, got '1e30'"),
        ("", "pid is empty"),
    ],
)
def test_a_bad_pid_in_the_url_says_what_is_wrong(run_page, crafted_dumps: Path, pid: str, said: str) -> None:
    at = run_page(crafted_dumps, "pages/pid.py", pid=pid)
    assert not at.exception
    assert said in "\n".join(t.value for t in at.text)
    assert any("Choose a process" in c.value for c in at.caption)  # the page still offers the biggest processes


def test_hostile_process_is_text_only(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/pid.py", pid="200")
    assert not at.exception
    assert any("example.invalid" in c.value for c in at.code)
    assert not any("example.invalid" in t or "pwn" in t for t in markdown_texts(at))


def test_an_exited_process_says_so_at_its_last_sample(run_page, seed_dumps) -> None:
    at = run_page(seed_dumps, "pages/pid.py", pid="22958")  # the seed recording's leaker exits at 17:04:15
    assert not at.exception
    assert at.query_params.get("at") == "2026-11-27T17:04:15Z"
    said = " ".join(i.value for i in at.info)
    assert "This process exited: this is its last sample, 2026-11-27 17:04:15 UTC" in said
    assert "the recording goes on to 2026-11-27 17:04:41 UTC" in said
    at = run_page(seed_dumps, "pages/pid.py", pid="1")
    assert not any("exited" in i.value for i in at.info)  # alive at the end: nothing to say


def test_name_and_command_line_are_the_ones_at_the_moment(run_page, seed_dumps) -> None:
    # the workload root is a zombie "[python3] <defunct>" at its end; at 17:03:31 it ran workload.py
    at = run_page(seed_dumps, "pages/pid.py", pid="22941", at="2026-11-27T17:03:31Z")
    assert not at.exception
    assert "workload.py" in at.code[0].value and "defunct" not in at.code[0].value
