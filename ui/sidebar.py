"""The sidebar every page shows: data source facts, time window, snapshot moment, filters, metric and unit.

Each widget is seeded from the URL state before it is drawn and writes its new value back to the URL in its
callback, so the URL always holds the view (defaults omitted) and a copied URL reproduces it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from memlib import filters
from memlib.schema import MEMORY_METRICS
from ui import data, render, state
from ui import source as source_choice

LIFETIME_STEPS = [0, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400]
MIB_STEPS = [0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000]
METRIC_LABELS = {"rss": "RSS", "pss": "PSS", "uss": "USS", "swap": "Swap"}


@dataclass(frozen=True)
class PageContext:
    """What a page needs after the sidebar ran: data, URL state, resolved snapshot, window and filters."""

    loaded: data.Loaded
    view: state.ViewState
    snap: int  # resolved snapshot number
    snap_ts: pd.Timestamp  # its time
    latest: bool  # following the newest snapshot
    window: tuple[pd.Timestamp, pd.Timestamp]  # resolved time window (inclusive)
    window_snaps: tuple[int, int]  # first and last snapshot number inside the window
    filters: filters.Filters
    metric: str  # rss | pss | uss | swap (an available one)
    unit: str  # MiB | GiB

    @property
    def metric_col(self) -> str:
        """Own-metric column name, e.g. 'rss_bytes'."""
        return MEMORY_METRICS[self.metric]

    @property
    def metric_label(self) -> str:
        """Display name of the metric ('RSS')."""
        return METRIC_LABELS[self.metric]


def _naive(ts: pd.Timestamp) -> datetime:
    return pd.Timestamp(ts).tz_convert("UTC").tz_localize(None).floor("us").to_pydatetime()


def _utc(value: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def nearest_snapshot(snapshots: pd.DataFrame, at: pd.Timestamp | None) -> int:
    """SNAPSHOTS frame and a moment (None = latest) -> position of the snapshot closest to it (the earlier on a tie).

    Closest, not "at or before": URL times carry milliseconds, slider times whole steps, snapshot times nanoseconds.
    """
    ts = snapshots["ts"]
    if at is None or len(ts) == 0:
        return len(ts) - 1
    at = pd.Timestamp(at).tz_convert("UTC")
    i = int(ts.searchsorted(at, side="left"))
    if i <= 0:
        return 0
    if i >= len(ts):
        return len(ts) - 1
    return i - 1 if (at - ts.iloc[i - 1]) <= (ts.iloc[i] - at) else i


def window_snapshots(snapshots: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[int, int]:
    """SNAPSHOTS frame and a window -> (snap of the first snapshot at/after lo, snap of the last at/before hi)."""
    ts = snapshots["ts"]
    a = int(ts.searchsorted(lo.tz_convert("UTC"), side="left"))
    b = max(int(ts.searchsorted(hi.tz_convert("UTC"), side="right")) - 1, 0)
    a = min(a, len(ts) - 1)
    if a > b:
        a = b
    return int(snapshots["snap"].iloc[a]), int(snapshots["snap"].iloc[b])


def _seed(key: str, value: object) -> None:
    """Give the widget `key` the URL's value before it is drawn (the URL wins over stale widget state)."""
    st.session_state[key] = value


def _changed(key: str, field: str, convert: Callable[[object], object]) -> None:
    state.update_state(**{field: convert(st.session_state[key])})


def _options_with(steps: list[float], value: float) -> list[float]:
    return sorted({*steps, value})


def _fmt_mib(v: float) -> str:
    if v == 0:
        return "off"
    return f"{v / 1024:g} GiB" if v >= 1024 else f"{v:g} MiB"


def _fmt_lifetime(v: float) -> str:
    return "off" if v == 0 else render.fmt_duration(v)


def _source_facts(loaded: data.Loaded) -> None:
    ds = loaded.ds
    info = ds.info
    snaps = ds.snapshots
    first, last = (snaps["ts"].iloc[0], snaps["ts"].iloc[-1]) if len(snaps) else (None, None)
    kind = {"native": "native", "seed": "seed CSV (lifetimes are observed spans)", "mixed": "native + seed CSV"}.get(
        info.kind, info.kind
    )
    rows = [
        ("source", source_choice.viewer_text(loaded.source.description)),
        ("hosts", ", ".join(info.hosts) or "–"),
        ("from", render.fmt_ts(first)),
        ("to", render.fmt_ts(last)),
        ("snapshots", f"{len(snaps):,}"),
        ("interval", f"{info.interval_s:g} s" if info.interval_s else "–"),
        ("format", kind),
    ]
    short = {"native": "native", "seed": "seed CSV", "mixed": "native + seed CSV"}.get(info.kind, "empty")
    origin = " · shipped sample" if loaded.source.is_sample else ""
    label = f"Data: {short}{origin} · {len(snaps):,} snapshots"
    with st.expander(label, expanded=False, icon=":material/database:"):
        render.facts(rows)
        for notice in info.notices[:20]:
            st.text(source_choice.viewer_text(notice))  # root-relative names, never server paths


def _live(loaded: data.Loaded) -> None:
    """Rerun the whole page when the data folder changed (a collector wrote a sample); widget state is kept."""
    interval = loaded.ds.info.interval_s or 5.0
    source = loaded.source
    token = loaded.token

    partial = loaded.partial
    every = 1.0 if partial else max(2.0, float(interval))  # a partial first paint is replaced as soon as can be

    @st.fragment(run_every=timedelta(seconds=every))
    def watch() -> None:
        if source.path is None:
            return
        if data.load_token(source) != token if not partial else data.fully_loaded(source):
            st.rerun(scope="app")

    watch()


def _loaded_part(loaded: data.Loaded, view: state.ViewState) -> None:
    """For a recording longer than the loaded window: its extent and a slider moving the loaded part."""
    assert loaded.span is not None and loaded.window is not None
    first, last = loaded.span
    hours = data.max_window_hours()
    width = pd.Timedelta(hours=hours)
    ends = pd.date_range(first.ceil("h") + width, last, freq="h").tolist()
    current = loaded.window[1]
    options = sorted({*ends, current, last})

    def move() -> None:
        end = st.session_state["w_part"]
        state.update_state(from_=end - width, to=None if end >= last else end, at=None)

    st.caption(
        f"Recording {render.fmt_ts(first)} – {render.fmt_ts(last)} ({(last - first) / pd.Timedelta(days=1):.1f} days): "
        f"process detail is loaded for {hours:g} h at a time."
    )
    _seed("w_part", current)
    st.select_slider(
        f"Loaded {hours:g} h ending at (UTC)",
        options=options,
        format_func=lambda t: t.strftime("%m-%d %H:%M"),
        key="w_part",
        on_change=move,
        help="Which part of the recording the pages show; a URL's from/to/at move it too.",
    )


def render_sidebar(loaded: data.Loaded | None) -> PageContext | None:
    """Draw the sidebar for the current URL state -> PageContext (None when there is nothing to show)."""
    view = state.read_state()
    sb = st.sidebar
    with sb:
        if loaded is None or len(loaded.ds.snapshots) == 0:
            return None
        if loaded.partial:
            st.info(
                f"Showing {data.FIRST_PAINT_HOURS:g} h (the latest, or around the chosen moment) while the rest of "
                "the recording loads in the background; the page updates by itself when it is in.",
                icon=":material/hourglass_top:",
            )
        _source_facts(loaded)
        _live(loaded)
    ds = loaded.ds
    snaps = ds.snapshots
    t_first, t_last = snaps["ts"].iloc[0], snaps["ts"].iloc[-1]
    interval = float(ds.info.interval_s or 1.0)
    step = timedelta(seconds=max(1, round(interval)))
    single = t_first == t_last

    # ---- time window (a long recording: within the loaded part, which the URL's from/to/at choose)
    rec_first, rec_last = loaded.span or (t_first, t_last)
    w_from = view.from_ if view.from_ is not None else t_first
    w_to = view.to if view.to is not None else t_last
    w_from, w_to = max(w_from, t_first), min(w_to, t_last)
    if w_from > w_to:
        w_from, w_to = t_first, t_last

    def window_value(v: object) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        lo, hi = (_utc(x) for x in v)  # type: ignore[union-attr]
        return (None if lo <= _utc(_naive(rec_first)) else lo, None if hi >= _utc(_naive(rec_last)) else hi)

    def set_window() -> None:
        lo, hi = window_value(st.session_state["w_window"])
        state.update_state(from_=lo, to=hi)

    # ---- snapshot moment
    snap_pos = nearest_snapshot(snaps, view.at)
    latest = view.at is None

    def set_at() -> None:
        chosen = _utc(st.session_state["w_at"])
        pos = nearest_snapshot(snaps, chosen)
        state.update_state(at=snaps["ts"].iloc[pos])

    def set_latest() -> None:
        state.update_state(at=None if st.session_state["w_latest"] else t_last)

    with sb:
        st.subheader("Time", divider="gray")
        if loaded.span is not None:
            _loaded_part(loaded, view)
        if not single:
            _seed("w_window", (_naive(w_from), _naive(w_to)))
            st.slider(
                "Window (UTC)",
                min_value=_naive(t_first),
                max_value=_naive(t_last),
                step=step,
                format="MM-DD HH:mm:ss",
                key="w_window",
                on_change=set_window,
                help="Time range of the charts, growth and peaks.",
            )
            _seed("w_latest", latest)
            st.toggle("Follow the latest snapshot", key="w_latest", on_change=set_latest)
            _seed("w_at", _naive(snaps["ts"].iloc[snap_pos]))
            st.slider(
                "Snapshot moment (UTC)",
                min_value=_naive(t_first),
                max_value=_naive(t_last),
                step=step,
                format="MM-DD HH:mm:ss",
                key="w_at",
                on_change=set_at,
                help="The moment the tree tables show; moving it pins the view to that snapshot.",
            )
        snap_ts = snaps["ts"].iloc[snap_pos]
        st.caption(f"Snapshot {render.fmt_ts(snap_ts)} · {int(snaps['processes'].iloc[snap_pos]):,} processes")

        # ---- filters
        st.subheader("Filters", divider="gray")
        _seed("w_min_lifetime", view.min_lifetime)
        st.select_slider(
            "Minimum lifetime",
            options=_options_with(LIFETIME_STEPS, view.min_lifetime),
            format_func=_fmt_lifetime,
            key="w_min_lifetime",
            on_change=_changed,
            args=("w_min_lifetime", "min_lifetime", float),
            help="Hide processes younger than this"
            + ("" if ds.info.start_times_exact else " (seed dumps: lifetime is the observed span)."),
        )
        _seed("w_min_rss_mb", view.min_rss_mb)
        st.select_slider(
            "Minimum own memory",
            options=_options_with(MIB_STEPS, view.min_rss_mb),
            format_func=_fmt_mib,
            key="w_min_rss_mb",
            on_change=_changed,
            args=("w_min_rss_mb", "min_rss_mb", float),
        )
        _seed("w_min_subtree_mb", view.min_subtree_mb)
        st.select_slider(
            "Minimum subtree memory",
            options=_options_with(MIB_STEPS, view.min_subtree_mb),
            format_func=_fmt_mib,
            key="w_min_subtree_mb",
            on_change=_changed,
            args=("w_min_subtree_mb", "min_subtree_mb", float),
            help="Own + all descendants at the snapshot moment.",
        )
        _seed("w_match", view.match)
        st.text_input(
            "Name or command line contains",
            key="w_match",
            on_change=_changed,
            args=("w_match", "match", lambda v: str(v)[: state.MAX_MATCH_LEN]),
            placeholder="e.g. python",
        )

        # ---- display
        st.subheader("Display", divider="gray")
        available = data.metrics_available(loaded.token, ds)
        metric = view.metric if view.metric in available else "rss"
        if view.metric not in available:
            st.caption(f"{METRIC_LABELS[view.metric]} was not recorded in this data; showing RSS.")
        _seed("w_metric", metric)
        st.selectbox(
            "Memory metric",
            options=list(MEMORY_METRICS),
            format_func=lambda m: METRIC_LABELS[m] + ("" if m in available else " (not recorded)"),
            key="w_metric",
            on_change=_changed,
            args=("w_metric", "metric", str),
            help=" ".join(f"{METRIC_LABELS[m]}: {h.split(': ', 1)[-1]}" for m, h in _metric_help().items()),
        )
        st.caption(_metric_help()[metric])
        if metric != "rss":
            st.caption(smaps_note(data.smaps_coverage(loaded.token, ds), int(snaps["snap"].iloc[snap_pos])))
        _seed("w_unit", view.unit)
        st.radio(
            "Unit",
            options=list(state.UNITS),
            key="w_unit",
            horizontal=True,
            on_change=_changed,
            args=("w_unit", "unit", str),
        )

    flt = filters.Filters(
        min_lifetime_s=view.min_lifetime,
        min_rss_mib=view.min_rss_mb,
        min_subtree_mib=view.min_subtree_mb,
        match=view.match,
        metric=metric,
    )
    return PageContext(
        loaded=loaded,
        view=view,
        snap=int(snaps["snap"].iloc[snap_pos]),
        snap_ts=snap_ts,
        latest=latest,
        window=(w_from, w_to),
        window_snaps=window_snapshots(snaps, w_from, w_to),
        filters=flt,
        metric=metric,
        unit=view.unit,
    )


def smaps_note(coverage: pd.DataFrame, snap: int) -> str:
    """data.smaps_coverage frame and a snapshot -> one line: how many processes have PSS/USS/swap there, how old."""
    row = coverage[coverage["snap"] == snap]
    if not len(row):
        return "PSS/USS/swap: no processes at this moment."
    known, total, age = int(row["smaps_known"].iloc[0]), int(row["processes"].iloc[0]), row["smaps_age_s"].iloc[0]
    if known == 0:
        return (
            f"PSS/USS/swap unknown for all {total:,} processes at this moment (smaps_rollup not read): sums are empty."
        )
    age_text = render.fmt_duration(age)
    text = f"PSS/USS/swap known for {known:,} of {total:,} processes here, read {age_text} earlier (median)"
    if known * 2 < total:
        text += "; most are unknown (not readable, or not read yet), so sums cover only those"
    return text + "."


def _metric_help() -> dict[str, str]:
    from memlib.schema import METRIC_HELP

    return METRIC_HELP


def _empty_state(source: data.DataSource) -> None:
    st.info("There is no recording to show yet.", icon=":material/info:")
    st.text(source_choice.viewer_text(source.description))
    st.markdown(
        "Record this machine with `make run` (collector + dashboard), or point the dashboard at a dumps folder:"
    )
    st.code("PMI_DUMPS=/path/to/dumps streamlit run app.py\nstreamlit run app.py -- --dumps /path/to/dumps", "bash")


def start_page(title: str) -> PageContext:
    """Page preamble: title, data load (clear message on failure), sidebar, URL warnings -> PageContext or st.stop()."""
    st.title(title)
    choice = source_choice.current_choice()  # URL `source`: only recordings listed under the configured roots
    source_choice.sidebar_chooser(choice)
    source = choice.source
    try:
        loaded = data.load_current(source)
    except Exception as exc:  # a damaged or unreadable folder must give a message, never a traceback
        st.error("The recording could not be loaded.", icon=":material/error:")
        st.text(source_choice.viewer_text(f"{source.description}\n{type(exc).__name__}: {exc}"))
        st.stop()
    ctx = render_sidebar(loaded)
    bad = state.url_warnings()
    if bad:
        st.warning("Some URL parameters were ignored:", icon=":material/link_off:")
        st.text("\n".join(bad))
    if ctx is None:
        _empty_state(source)
        st.stop()
    if source.is_sample:
        st.info(
            "Showing the shipped sample recording (sample/dumps/): dumps/ holds no data yet. "
            "Run `make run` to record this machine.",
            icon=":material/science:",
        )
    return ctx
