"""AppTest: the Level view's rows, counts and totals match memlib; filters change the shown rows; names stay text."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from conftest import markdown_texts

from memlib import filters, source
from memlib import query as q
from memlib.units import iso_z, parse_time
from ui import render


def _latest(dumps: Path) -> tuple[object, pd.DataFrame]:
    rec = source.open_recording(dumps, "UTC")
    return rec, q.moment(rec, q.resolve(rec))


def _level_table(at) -> pd.DataFrame:
    frames = [d.value for d in at.main.dataframe]
    return frames[0]


def test_level_rows_and_totals_match_memlib(run_page, seed_dumps: Path) -> None:
    at = run_page(seed_dumps, "pages/level.py", level="1")
    assert not at.exception
    _, snap = _latest(seed_dumps)
    expected = filters.filter_snapshot(snap, filters.Filters(), level=1)
    kept = expected[expected["kept"]].sort_values(
        ["subtree_rss_bytes", "rss_bytes", "pid"], ascending=[False, False, True], kind="stable"
    )
    table = _level_table(at)
    assert table["pid"].tolist() == kept["pid"].tolist()  # biggest subtree first
    assert table["subtree"].is_monotonic_decreasing
    assert table["ppid"].tolist() == kept["ppid"].tolist()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Shown at level 1"] == f"{len(kept):,}"
    assert metrics["Hidden by filters"] == "0"
    assert metrics["Shown subtree RSS"] == render.fmt_bytes(kept["subtree_rss_bytes"].sum())


def test_filters_from_the_sidebar_change_rows_and_url(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/level.py", level="1")
    all_rows = _level_table(at)
    assert set(all_rows["pid"]) == {100, 200, 50}  # pid 300 (nginx) is at level 2 at the last snapshot
    at.select_slider(key="w_min_rss_mb").set_value(25.0).run()
    assert at.query_params.get("min_rss_mb") == "25"
    shown = _level_table(at)
    assert set(shown["pid"]) == {100}
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Hidden by filters"] == "2"
    at.text_input(key="w_match").set_value("mallory").run()  # match covers the user too
    assert at.query_params.get("match") == "mallory"
    assert len(_level_table(at)) == 0
    assert any("hidden by the filters" in i.value for i in at.info)


def test_the_level_and_moment_come_from_the_url(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/level.py", level="2", at="2026-11-27T10:00:12Z")
    table = _level_table(at)
    # at 10:00:12 the latest snapshot at or before is 10:00:10: pid 101 only (nginx appears at 10:00:30)
    assert table["pid"].tolist() == [101]
    assert any("2026-11-27 10:00:10 UTC" in c.value for c in at.caption)


def test_hostile_names_are_shown_as_text_only(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/level.py", level="1")
    table = _level_table(at)
    assert table["cmdline"].str.contains("example.invalid", regex=False).any()
    assert not any("example.invalid" in t or "<b>" in t or "pwn" in t for t in markdown_texts(at))
    assert "s3cr3t" not in table["cmdline"].str.cat()  # scrubbed by the loader


def test_a_level_deeper_than_the_tree_says_so(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/level.py", level="9")
    assert not at.exception
    assert any("deepest level is 2" in c.value for c in at.caption)


def test_treemap_labels_carry_names_as_escaped_text(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/level.py", level="1")
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    labels = spec["data"][0]["labels"]
    hostile = [label for label in labels if "pwn" in label]
    assert hostile and all("<" not in label for label in hostile)
    assert any("&lt;i&gt;" in label for label in hostile)


def test_time_widgets_write_the_url(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/level.py", level="2")
    assert at.toggle(key="w_latest").value is True
    at.slider(key="w_at").set_value(pd.Timestamp("2026-11-27T10:00:09").to_pydatetime()).run()
    assert at.query_params.get("at") == "2026-11-27T10:00:10Z"  # snapped to the closest snapshot
    assert at.toggle(key="w_latest").value is False
    assert _level_table(at)["pid"].tolist() == [101]
    at.toggle(key="w_latest").set_value(True).run()
    assert "at" not in at.query_params
    assert sorted(_level_table(at)["pid"].tolist()) == [101, 300]
    lo, hi = pd.Timestamp("2026-11-27T10:00:10").to_pydatetime(), pd.Timestamp("2026-11-27T10:00:30").to_pydatetime()
    at.slider(key="w_window").set_value((lo, hi)).run()
    assert at.query_params.get("from") == "2026-11-27T10:00:10Z"
    assert "to" not in at.query_params  # the end of the recording is the default


def test_metric_not_recorded_falls_back_to_rss_and_says_so(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/level.py", level="1", metric="pss", unit="GiB")
    assert not at.exception
    assert any("PSS was not recorded" in c.value for c in at.caption)
    assert any(m.label == "Shown subtree RSS" for m in at.metric)
    assert at.radio(key="w_unit").value == "GiB"


def test_downloads_are_named_after_the_view_and_hold_the_shown_rows(run_page, crafted_dumps: Path) -> None:
    at = run_page(crafted_dumps, "pages/level.py", level="1", min_rss_mb="25")
    helps = [b.help for b in at.get("download_button")]
    assert any(h.startswith("1 row as level1_2026-11-27T10-00-30Z.csv.") for h in helps)
    assert any(h.startswith("1 row as level1_2026-11-27T10-00-30Z.json.") for h in helps)


def test_csv_and_json_exports_keep_bytes_utc_times_and_nulls() -> None:
    import io

    df = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2026-11-27T10:00:00.5Z"], utc=True),
            "rss_bytes": [123],
            "pss_bytes": pd.array([None], dtype="Int64"),
        }
    )
    back = pd.read_csv(io.BytesIO(render.to_csv_bytes(df)))
    assert back["rss_bytes"].iloc[0] == 123 and back["ts"].iloc[0].startswith("2026-11-27T10:00:00.5")
    records = json.loads(render.to_json_bytes(df))
    assert records == [{"ts": "2026-11-27T10:00:00.500Z", "rss_bytes": 123, "pss_bytes": None}]


def test_a_moment_written_to_the_url_is_exactly_a_stored_snapshot_and_selects_it_again(run_page) -> None:
    sample = Path(__file__).resolve().parent.parent / "sample" / "dumps"
    rec = source.open_recording(sample)
    times = q.snapshots(rec)["ts"]
    assert (times.dt.microsecond % 1000 != 0).any()  # stored to the microsecond: a millisecond URL would not match
    at = run_page(sample, "pages/level.py", level="1")
    target = times.iloc[40]
    at.slider(key="w_at").set_value((target + pd.Timedelta(seconds=1)).tz_localize(None).to_pydatetime()).run()
    written = at.query_params.get("at")
    assert written == iso_z(target) and parse_time(written) == target  # the stored time itself, not the slider's
    again = run_page(sample, "pages/level.py", level="1", at=written)
    assert again.slider(key="w_at").value == target.tz_localize(None).to_pydatetime()
    assert q.resolve(rec, written).ts == target


def test_the_download_holds_the_tables_columns_first_then_the_raw_ones(run_page, seed_dumps: Path, downloads) -> None:
    import io

    at = run_page(seed_dumps, "pages/level.py", level="2", at="2026-11-27T17:03:31Z")
    assert not at.exception
    shown = _level_table(at)
    name = "level2_2026-11-27T17-03-31Z"
    csv_rows = pd.read_csv(io.BytesIO(downloads[f"{name}.csv"]()))
    json_rows = pd.DataFrame(json.loads(downloads[f"{name}.json"]()))
    first = ["pid", "name", "rss_bytes", "subtree_rss_bytes", "peak_subtree_bytes", "lifetime_s", "cmdline"]
    for rows in (csv_rows, json_rows):
        assert rows.columns[: len(first)].tolist() == first
        assert {"ppid", "user", "cmdline", "start_time", "level", "vsz_bytes"} <= set(rows.columns)  # raw ones too
        assert rows["pid"].tolist() == shown["pid"].tolist()  # the table's rows, in its order
        assert (rows["peak_subtree_bytes"] / 2**20).tolist() == shown["peak"].tolist()
        assert (rows["subtree_rss_bytes"] <= rows["peak_subtree_bytes"]).all()
    assert render.fmt_durations(csv_rows["lifetime_s"]).tolist() == shown["lifetime"].tolist()
    helps = {b.help for b in at.get("download_button")}
    assert any(
        "The table's columns first (pid, name, rss_bytes" in h and "then every recorded column" in h for h in helps
    )
