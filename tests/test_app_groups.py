"""AppTest: the Groups page — totals per group at the moment match memlib, a group's processes, the `by` param."""

from __future__ import annotations

from pathlib import Path

import pytest
from native_crafted import MIB, write_native_crafted

from memlib import groups, source
from memlib import query as q

SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "dumps"


@pytest.fixture
def native_dumps(tmp_path: Path) -> Path:
    """The crafted native recording with PSS and cgroups (see native_crafted.py)."""
    return write_native_crafted(tmp_path / "dumps")


def _frame(at: object, column: str) -> object:
    return next(d.value for d in at.main.dataframe if column in d.value.columns)


def test_groups_by_user_on_a_crafted_recording(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/groups.py", by="user")
    assert not at.exception
    table = _frame(at, "smaps_known").set_index("group")
    # latest moment: root = init 10 + nginx 20 + worker 50; postgres 100 (PSS unknown); alice = sleep 1
    assert table.loc["root", "own"] == 80.0 and table.loc["root", "processes"] == 3
    assert table.loc["root", "pss"] == 5 + 10 + 25.0
    assert table.loc["postgres", "own"] == 100.0 and table.loc["postgres", "smaps_known"] == 0
    assert table["pss"].isna().tolist().count(True) == 1  # unknown stays unknown, never 0
    assert table.loc["alice", "own"] == 1.0
    assert table.index[0] == "postgres"  # biggest first by the chosen metric (RSS)


def test_metric_switch_orders_by_pss(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/groups.py", by="user", metric="pss")
    assert not at.exception
    table = _frame(at, "smaps_known")
    assert table["group"].tolist()[0] == "root" and table["own"].iloc[0] == 40.0
    assert any("known for 4 of 5 processes" in c.value for c in at.sidebar.caption)


def test_a_group_lists_its_processes(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/groups.py", by="command", group="nginx", at="2026-11-27T10:00:10Z")
    assert not at.exception
    members = at.main.dataframe[-1].value
    assert members["pid"].tolist() == [11, 10]  # by own RSS: worker 40 MiB, master 20 MiB
    assert members["own"].tolist() == [40.0, 20.0]
    assert members["subtree"].tolist() == [40.0, 60.0]


def test_groups_on_the_shipped_sample_add_up(run_page) -> None:
    at = run_page(SAMPLE, "pages/groups.py")
    assert not at.exception
    rec = source.open_recording(SAMPLE)
    latest = q.moment(rec, q.resolve(rec))
    want = groups.group_totals(latest, "name")
    table = _frame(at, "smaps_known")
    assert int(table["processes"].sum()) == len(latest)
    metric = q.default_metric(rec, q.resolve(rec)).metric  # the page's metric without `metric` in the URL
    assert table["own"].sum() * MIB == pytest.approx(float(want[f"{metric}_bytes"].sum()))
    assert set(table["group"]) == set(want["group"].astype(str))
    assert "demo-leaker" in set(table["group"])


def test_bad_by_is_named_and_ignored(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/groups.py", by="colour")
    assert not at.exception
    assert any("by must be one of name, command, user, cgroup, got 'colour'" in t.value for t in at.text)
    assert "group" in _frame(at, "smaps_known").columns


def test_sidebar_filters_narrow_the_member_list_not_the_totals(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/groups.py", by="command", group="nginx", match="master")
    assert not at.exception
    assert at.main.dataframe[-1].value["pid"].tolist() == [10]
    assert any("1 processes hidden by the sidebar filters" in c.value for c in at.caption)
    table = next(d.value for d in at.main.dataframe if "smaps_known" in d.value.columns).set_index("group")
    assert table.loc["nginx", "processes"] == 2


def test_the_chart_legend_holds_only_groups_with_memory_and_its_title_no_instructions(run_page, seed_dumps) -> None:
    import json

    at = run_page(seed_dumps, "pages/groups.py")
    assert not at.exception
    fig = json.loads(at.main.get("plotly_chart")[0].proto.spec)
    names = [t["name"] for t in fig["data"]]
    # the seed recording's kernel threads hold 0 MiB: none of them pads the "top by peak" legend, nor an "(other)"
    # made of them
    assert names and not any(n.startswith(("cpuhp", "hwrng", "kworker", "(other)")) for n in names)
    assert {"python3", "init"} <= set(names)
    title = fig["layout"]["title"]["text"]
    assert "click" not in title and f"top {len(names)} by peak" in title and "17:02:13 – 17:04:41 UTC" in title


def test_one_group_is_named_in_the_legend_and_counted_in_the_singular(run_page, seed_dumps) -> None:
    import json

    at = run_page(seed_dumps, "pages/groups.py", by="user", group="root")
    assert not at.exception
    fig = json.loads(at.main.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in fig["data"]] == ["root"] and fig["layout"]["showlegend"] is True
    assert any(c.value.startswith("1 group ·") for c in at.caption)
    # the member table's names get a fixed width, not the width of the first rows' short names
    members = at.main.dataframe[-1]
    assert json.loads(members.proto.columns)["name"]["width"] >= 150
