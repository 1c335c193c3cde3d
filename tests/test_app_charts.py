"""AppTest: chart titles are what an exported PNG carries: what is shown and when, never an on-screen instruction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "dumps"


def _figures(at: object) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.main.get("plotly_chart")]


@pytest.mark.parametrize(
    ("page", "params", "wanted"),
    [
        ("pages/overview.py", {}, "RAM used and what accounts for it · 2026-11-27 21:20:09 – 21:51:04 UTC"),
        ("pages/level.py", {}, "Process tree at 2026-11-27 21:51:04 UTC: box size = subtree PSS"),
        ("pages/cgroups.py", {}, "cgroup tree at 2026-11-27 21:51:04 UTC: rolled-up PSS per cgroup"),
        ("pages/pid.py", {"pid": "29815"}, "demo-leaker (PID 29815): own and subtree PSS"),
    ],
)
def test_chart_titles_say_what_and_when_not_where_to_click(run_page, page: str, params: dict, wanted: str) -> None:
    at = run_page(SAMPLE, page, **params)
    assert not at.exception
    titles = [f["layout"].get("title", {}).get("text", "") for f in _figures(at)]
    assert wanted in titles, titles
    assert not any("click" in t.lower() for t in titles), titles
    assert any("click" in c.value for c in at.caption)  # the hint is on the page, beside the chart


def test_horizontal_legends_give_each_entry_room_for_the_longest_name(run_page) -> None:
    at = run_page(SAMPLE, "pages/pid.py", pid="29815")
    fig = _figures(at)[0]
    names = [t["name"] for t in fig["data"] if t.get("showlegend", True) and t.get("name")]
    assert names == ["subtree PSS", "own PSS"]
    assert fig["layout"]["legend"]["orientation"] == "h"
    assert fig["layout"]["legend"]["entrywidth"] >= 7 * max(map(len, names)) + 16


def test_tree_boxes_in_gib_keep_two_decimals(run_page) -> None:
    at = run_page(SAMPLE, "pages/level.py", unit="GiB")
    tree = next(f for f in _figures(at) if f["data"] and f["data"][0]["type"] == "treemap")
    assert "%{value:.2f} GiB" in tree["data"][0]["texttemplate"]  # not "0 GiB" on every box under 1 GiB
    at = run_page(SAMPLE, "pages/level.py")
    tree = next(f for f in _figures(at) if f["data"] and f["data"][0]["type"] == "treemap")
    assert "%{value:.0f} MiB" in tree["data"][0]["texttemplate"]
