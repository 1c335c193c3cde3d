"""URL state (ui.state) and data-source choice (ui.data.resolve_source): pure functions, no server."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ui import data, state
from ui.state import ViewState, parse_query, to_query


def test_defaults_are_left_out_of_the_url() -> None:
    assert to_query(ViewState()) == {}
    assert to_query(ViewState(level=0, unit="MiB", match="")) == {}
    assert to_query(ViewState(metric="rss")) == {"metric": "rss"}  # no metric = memlib's default (PSS or RSS)


def test_every_field_round_trips_through_the_url() -> None:
    view = ViewState(
        pid=4242,
        start=pd.Timestamp("2026-11-27T10:00:01Z"),
        at=pd.Timestamp("2026-11-27T10:05:02.250Z"),
        level=2,
        min_lifetime=300.0,
        min_rss_mb=50.0,
        min_subtree_mb=250.0,
        match="python worker",
        from_=pd.Timestamp("2026-11-27T09:00:00Z"),
        to=pd.Timestamp("2026-11-27T11:00:00Z"),
        metric="pss",
        unit="GiB",
    )
    query = to_query(view)
    assert query == {
        "pid": "4242",
        "start": "2026-11-27T10:00:01Z",
        "at": "2026-11-27T10:05:02.250Z",
        "level": "2",
        "min_lifetime": "300",
        "min_rss_mb": "50",
        "min_subtree_mb": "250",
        "match": "python worker",
        "from": "2026-11-27T09:00:00Z",
        "to": "2026-11-27T11:00:00Z",
        "metric": "pss",
        "unit": "GiB",
    }
    back, warnings = parse_query(query)
    assert warnings == []
    assert back == view


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("pid", "abc"),
        ("pid", "-3"),
        ("level", "1.5"),
        ("min_rss_mb", "nan"),
        ("min_rss_mb", "-1"),
        ("metric", "vms"),
        ("unit", "KB"),
        ("at", "yesterday-ish"),
    ],
)
def test_bad_values_are_dropped_with_a_warning_naming_them(param: str, value: str) -> None:
    view, warnings = parse_query({param: value, "level": "3"} if param != "level" else {param: value})
    assert len(warnings) == 1
    assert param in warnings[0]
    assert getattr(view, state.PARAM_FIELDS[param]) == getattr(ViewState(), state.PARAM_FIELDS[param])


def test_window_with_from_after_to_is_ignored() -> None:
    view, warnings = parse_query({"from": "2026-11-27T11:00:00Z", "to": "2026-11-27T10:00:00Z"})
    assert view.from_ is None and view.to is None
    assert warnings


def test_naive_times_are_utc_and_zones_are_converted() -> None:
    assert state.parse_time("2026-11-27T10:00:00") == pd.Timestamp("2026-11-27T10:00:00Z")
    assert state.parse_time("2026-11-27T12:00:00+02:00") == pd.Timestamp("2026-11-27T10:00:00Z")


@settings(max_examples=60, deadline=None)
@given(
    pid=st.none() | st.integers(0, 4_194_304),
    level=st.integers(0, 40),
    rss=st.sampled_from([0.0, 1.0, 5.0, 2.5, 16000.0]),
    match=st.text(max_size=40).map(str.strip),
    metric=st.sampled_from(["rss", "pss", "uss", "swap"]),
    at=st.none()
    | st.datetimes(min_value=pd.Timestamp("2000-01-01").to_pydatetime()).map(
        lambda d: pd.Timestamp(d).floor("us").tz_localize("UTC")
    ),
)
def test_round_trip_property(pid, level, rss, match, metric, at) -> None:
    view = ViewState(pid=pid, level=level, min_rss_mb=rss, match=match, metric=metric, at=at)
    back, warnings = parse_query(to_query(view))
    assert warnings == []
    assert back == view


# ---- data source choice


def _seed_layout(folder: Path) -> Path:
    (folder / "time").mkdir(parents=True)
    (folder / "time" / "process_mem_20261127_100000.csv").write_text("PID,PPID,USER,RSS_MB,VSZ_MB,CMD\n")
    return folder


def test_source_order_env_then_arg_then_dumps_then_sample(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "dumps").mkdir(parents=True)
    _seed_layout(app / "sample" / "dumps")
    other = _seed_layout(tmp_path / "other")

    sample = data.resolve_source([], {}, app)
    assert sample.origin == "sample" and sample.is_sample and sample.path == app / "sample" / "dumps"

    _seed_layout(app / "dumps")
    assert data.resolve_source([], {}, app).origin == "dumps"

    arg = data.resolve_source(["--dumps", str(other)], {}, app)
    assert (arg.origin, arg.path) == ("arg", other)
    assert data.resolve_source([f"--dumps={other}"], {}, app).path == other

    env = data.resolve_source(["--dumps", "/nonexistent"], {"PMI_DUMPS": str(other), "PMI_TZ": "UTC"}, app)
    assert (env.origin, env.path, env.tz) == ("env", other, "UTC")


def test_missing_folders_give_an_empty_state_not_an_error(tmp_path: Path) -> None:
    none = data.resolve_source([], {}, tmp_path)
    assert none.path is None and none.origin == "none"
    gone = data.resolve_source([], {"PMI_DUMPS": str(tmp_path / "nope")}, tmp_path)
    assert gone.path is None and "does not exist" in gone.description


def test_fingerprint_changes_when_a_sample_is_added(tmp_path: Path) -> None:
    folder = _seed_layout(tmp_path / "d")
    before = data.fingerprint(folder)
    (folder / "time" / "sys_mem_20261127_100000.csv").write_text("MemTotal_MB\n1\n")
    assert data.fingerprint(folder) != before


def test_chart_labels_escape_html_so_plotly_shows_names_literally() -> None:
    from ui import charts

    hostile = "<a href='http://example.invalid'>x</a><b>y</b> & z"
    assert "<" not in charts.plain(hostile) and ">" not in charts.plain(hostile)
    assert charts.plain_series(pd.Series([hostile])).iloc[0] == charts.plain(hostile)


def test_vectorised_durations_match_the_scalar_formatter() -> None:
    from ui import render

    values = pd.Series([None, 0.4, 59.6, 60, 3599, 3600, 86399, 86400, 3 * 86400 + 7200], dtype="Float64")
    expected = [render.fmt_duration(None if pd.isna(v) else float(v)) for v in values]
    assert render.fmt_durations(values).tolist() == expected


def test_the_default_window_is_the_last_day_or_the_day_around_the_moment() -> None:
    from ui.sidebar import window_of

    t = pd.Timestamp
    first, last = t("2026-11-01T00:00Z"), t("2026-11-30T00:00Z")  # a month: the default window is not all of it
    day = pd.Timedelta(hours=24)
    assert window_of(ViewState(), first, last, last) == (last - day, last)
    at = t("2026-11-10T06:00Z")  # a link to a moment before the last day: the day around it
    assert window_of(ViewState(at=at), first, last, at) == (at - day / 2, at + day / 2)
    assert window_of(ViewState(at=first), first, last, first) == (first, first + day)
    given = ViewState(from_=t("2026-11-05T00:00Z"), to=t("2026-11-07T00:00Z"))  # old links keep their window
    assert window_of(given, first, last, last) == (given.from_, given.to)
    assert window_of(ViewState(to=t("2026-11-07T00:00Z")), first, last, last) == (t("2026-11-06T00:00Z"), given.to)
    assert window_of(ViewState(from_=t("2000-01-01T00:00Z")), first, last, last) == (first, last)  # clamped
    short_last = first + pd.Timedelta(minutes=30)
    assert window_of(ViewState(), first, short_last, short_last) == (first, short_last)


def test_children_legend_tells_apart_children_with_the_same_name_and_pid() -> None:
    from ui import charts

    t = pd.Timestamp
    trends = pd.DataFrame(
        {
            "ts": [t("2026-11-27T10:00Z"), t("2026-11-27T10:01Z")],
            "child_pid": [300, 300],  # the pid was reused by a second python3 child
            "child_start_time": [t("2026-11-27T09:59Z"), t("2026-11-27T10:00:30Z")],
            "child_name": ["python3", "python3"],
            "subtree_rss_bytes": [10 << 20, 20 << 20],
        }
    )
    fig = charts.children_figure(trends, "subtree_rss_bytes", "RSS", "MiB", None, "app (PID 1)")
    names = [tr.name for tr in fig.data]
    assert len(names) == 2 and len(set(names)) == 2 and all(n.startswith("python3 (300)") for n in names)
    assert fig.layout.title.text.startswith("app (PID 1)")  # the exported PNG says whose children these are


def test_a_bucketed_series_is_drawn_with_its_min_max_band() -> None:
    from ui import charts

    ts = pd.to_datetime(["2026-11-27T10:00Z", "2026-11-27T11:00Z"], utc=True)
    mib = 1 << 20
    bucketed = pd.DataFrame(
        {"ts": ts, "mem_used_bytes": [900 * mib, 1500 * mib], "mem_used_bytes_min": [800 * mib, 850 * mib]}
    )
    fig = charts.ram_figure(bucketed, "MiB", None)
    used = [tr for tr in fig.data if tr.legendgroup == "used (total − available)"]
    assert [list(tr.y) for tr in used] == [[800.0, 850.0], [900.0, 1500.0]]  # the band's floor, then the maxima
    assert used[1].fill == "tonexty" and used[0].showlegend is False
    plain = charts.ram_figure(bucketed.assign(mem_used_bytes_min=bucketed["mem_used_bytes"]), "MiB", None)
    assert len([tr for tr in plain.data if tr.legendgroup == "used (total − available)"]) == 1  # no band when equal


def test_the_ram_chart_is_scaled_to_used_memory_not_to_the_total() -> None:
    from ui import charts

    ts = pd.to_datetime(["2026-11-27T10:00Z", "2026-11-27T10:01Z"], utc=True)
    gib = 1 << 30
    sysdf = pd.DataFrame(
        {
            "ts": ts,
            "mem_total_bytes": [24 * gib] * 2,
            "mem_available_bytes": [23 * gib, 22.7 * gib],
            "mem_used_bytes": [1 * gib, 1.3 * gib],  # a 300 MiB leak must not be a flat line at the bottom
            "procs_rss_bytes": [0.8 * gib, 1.1 * gib],
        }
    )
    fig = charts.ram_figure(sysdf, "GiB", None)
    assert {str(tr.name) for tr in fig.data} & {"available", "total"} == set()
    assert fig.layout.yaxis.rangemode == "normal" and not fig.layout.shapes  # no total line pinning the axis at 24
