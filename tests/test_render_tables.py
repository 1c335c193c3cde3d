"""ui.render.clickable_table: which row a click on a row or a cell returns and opens (the dataframe call faked)."""

from __future__ import annotations

import pandas as pd
import pytest

from ui import render

PROCS = pd.DataFrame({"proc_id": [7, 8, 9], "pid": [70, 80, 90], "ppid": [3, 70, 70]})  # pid 3 is not in the snapshot
SNAPSHOT = pd.DataFrame({"proc_id": [1, 7, 8, 9], "pid": [1, 70, 80, 90]})
TABLE = PROCS[["pid", "ppid"]]


@pytest.fixture
def click(monkeypatch: pytest.MonkeyPatch):
    """Make st.dataframe return the given selection; record its keyword arguments in `calls`."""
    calls: list[dict] = []

    def set_selection(rows: list[int] | None = None, cells: list[tuple[int, str]] | None = None) -> list[dict]:
        def fake_dataframe(table: pd.DataFrame, **kwargs: object) -> dict:
            calls.append(kwargs)
            return {"selection": {"rows": rows or [], "columns": [], "cells": cells or []}}

        monkeypatch.setattr(render.st, "dataframe", fake_dataframe)
        return calls

    return set_selection


def test_nothing_clicked_returns_none_and_calls_nothing(click) -> None:
    calls = click()
    opened: list[int] = []
    assert render.clickable_table(TABLE, key="k", column_config={}, on_row=opened.append) is None
    assert opened == []
    assert calls == [
        {
            "hide_index": True,
            "placeholder": "–",  # an unknown value shows as a dash, never "None"
            "width": "stretch",
            "height": render.table_height(3),
            "column_config": {},
            "on_select": "rerun",
            "selection_mode": ["single-row", "single-cell"],
            "key": "k",
        }
    ]


def _pid(row: pd.Series | None) -> int | None:
    return None if row is None else int(row["pid"])


@pytest.mark.parametrize(("rows", "cells", "expected"), [([1], None, 80), (None, [(2, "pid")], 90), ([5], None, None)])
def test_without_processes_the_clicked_table_row_is_returned(click, rows, cells, expected) -> None:
    click(rows, cells)
    opened: list[pd.Series] = []
    assert _pid(render.clickable_table(TABLE, key="k", column_config={}, on_row=opened.append)) == expected
    assert [_pid(r) for r in opened] == ([] if expected is None else [expected])


@pytest.mark.parametrize(
    ("rows", "cells", "expected"),
    [([1], None, 8), (None, [(2, "pid")], 9), (None, [(1, "ppid")], 7), (None, [(0, "ppid")], None)],
)
def test_with_processes_the_process_row_or_its_parents_is_returned(click, rows, cells, expected) -> None:
    click(rows, cells)
    opened: list[pd.Series] = []
    got = render.clickable_table(
        TABLE, key="k", column_config={}, processes=PROCS, snapshot=SNAPSHOT, on_row=opened.append
    )
    # a PPID cell opens the parent, nothing when the parent is not in the snapshot
    assert (None if got is None else int(got["proc_id"])) == expected
    assert [int(r["proc_id"]) for r in opened] == ([] if expected is None else [expected])


def test_a_ppid_click_opens_the_parent_with_the_right_start_time(click) -> None:
    t = pd.Timestamp
    snapshot = pd.DataFrame(  # two processes with pid 70 in one answer (pid reuse across hosts or boots)
        {"proc_id": [1, 2], "pid": [70, 70], "start_time": [t("2026-11-27T09:00Z"), t("2026-11-27T10:00Z")]}
    )
    child = pd.DataFrame({"proc_id": [3], "pid": [80], "ppid": [70], "parent_start_time": [t("2026-11-27T10:00Z")]})
    click(None, [(0, "ppid")])
    got = render.clickable_table(child[["pid", "ppid"]], key="k", column_config={}, processes=child, snapshot=snapshot)
    assert int(got["proc_id"]) == 2


def test_height_fits_the_rows_up_to_the_cap_or_is_automatic(click) -> None:
    calls = click()
    render.clickable_table(pd.DataFrame({"pid": range(100)}), key="a", column_config={}, max_height=560)
    render.clickable_table(pd.DataFrame({"pid": []}), key="b", column_config={})
    render.clickable_table(TABLE, key="c", column_config={}, max_height=None, width="content")
    assert [c["height"] for c in calls] == [560, 73, "auto"]
    assert calls[2]["width"] == "content"


def test_shown_members_apply_the_sidebar_filters_and_process_rows_keep_names_as_values() -> None:
    from memlib import filters, tree
    from tests.strategies import MIB, make_procs

    snap_df = tree.with_tree(
        make_procs(
            [
                {"snap": 0, "pid": 1, "ppid": 0, "rss": 10 * MIB, "name": "init"},
                {"snap": 0, "pid": 5, "ppid": 1, "rss": 50 * MIB, "name": "**big**"},
                {"snap": 0, "pid": 6, "ppid": 1, "rss": 1 * MIB, "name": "small"},
            ]
        )
    )
    members = snap_df[snap_df["pid"] != 1]
    shown, hidden = render.shown_members(members, snap_df, filters.Filters(min_rss_mib=5), "rss_bytes")
    assert hidden == 1 and shown["pid"].tolist() == [5] and shown["subtree_rss_bytes"].tolist() == [50 * MIB]
    everyone, none_hidden = render.shown_members(members, snap_df, filters.Filters(), "rss_bytes")
    assert none_hidden == 0 and everyone["pid"].tolist() == [5, 6]  # biggest first
    rows = render.process_rows(everyone.assign(cgroup="/a"), "MiB", "rss_bytes", "subtree_rss_bytes", extra=["cgroup"])
    assert list(rows.columns) == ["pid", "ppid", "name", "own", "subtree", "descendants", "user", "cgroup", "cmdline"]
    assert rows["name"].tolist() == ["**big**", "small"] and rows["own"].tolist() == [50.0, 1.0]
