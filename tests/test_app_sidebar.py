"""AppTest: the sidebar's "Data" box lists the recording's facts one per line, each readable."""

from __future__ import annotations

from pathlib import Path

SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "dumps"


def test_the_data_box_has_one_fact_per_line(run_page) -> None:
    at = run_page(SAMPLE, "pages/level.py")
    assert not at.exception
    facts = next(t.value for t in at.sidebar.text if t.value.startswith("source:"))
    assert "\\n" not in facts  # line breaks are line breaks, not escapes run together
    lines = facts.splitlines()
    assert [line.split(":")[0] for line in lines] == ["source", "hosts", "from", "to", "interval", "format"]
    assert "from: 2026-11-27 21:20:09 UTC" in lines and "interval: 5 s" in lines
