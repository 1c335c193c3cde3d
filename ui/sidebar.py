"""The sidebar every page shows (data facts, time range and moment, filters, metric, unit) and the page preamble.

Each widget is seeded from the URL state before it is drawn and writes its new value back to the URL in its
callback, so the URL always holds the view (defaults omitted) and a copied URL reproduces it. The time range and
the moment cover the whole recording; the moment is resolved to a snapshot by memlib.query (exactly the URL's time
when a snapshot has it, else the nearest one, said on screen when the URL's time lies outside the recording).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from memlib import filters, summary
from memlib import query as q
from memlib.display import visible
from memlib.schema import MEMORY_METRICS, METRIC_HELP
from memlib.units import to_utc
from ui import data, state
from ui import source as source_choice
from ui.render import fmt_duration, fmt_ts

LIFETIME_STEPS = [0, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400]
MIB_STEPS = [0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000]
METRIC_LABELS = {"rss": "RSS", "pss": "PSS", "uss": "USS", "swap": "Swap"}
CHART_BINS = 1000  # time buckets of a full-width chart (about its width in pixels); half-width charts use half
T = TypeVar("T")


@dataclass(frozen=True)
class PageContext:
    """What a page needs after the sidebar ran: the recording, URL state, resolved moment, window and filters."""

    loaded: data.Loaded
    view: state.ViewState
    moment: q.Moment  # the snapshot shown (resolved from the URL's `at`, latest by default)
    latest: bool  # following the newest snapshot
    window: tuple[pd.Timestamp, pd.Timestamp]  # time range of charts and window questions (inclusive)
    filters: filters.Filters
    metric: str  # rss | pss | uss | swap (an available one)
    unit: str  # MiB | GiB
    host: str | None = None  # the host shown when the recording holds several (URL `host`), else None

    def ask(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """memlib.query `fn(rec, *args, **kwargs)`, cached (see ui.data.ask); a function taking `host` is asked
        about the shown host (several hosts in one recording)."""
        if self.host is not None and "host" not in kwargs and "host" in inspect.signature(fn).parameters:
            kwargs["host"] = self.host
        return data.ask(self.loaded, fn, *args, **kwargs)

    def resolve(self, at: pd.Timestamp | None) -> q.Moment:
        """A time (None = latest) -> the shown host's snapshot it names (see `resolve`)."""
        return resolve(self.loaded, at, self.host)

    @property
    def rec(self) -> Any:
        """The opened recording (memlib.source.Recording)."""
        return self.loaded.rec

    @property
    def at(self) -> pd.Timestamp:
        """The time of the snapshot shown."""
        return self.moment.ts

    def snapshot(self) -> pd.DataFrame:
        """Every process at the moment shown (memlib.query.moment: PROCS + TREE columns, snap 0), cached."""
        return self.ask(q.moment, self.moment)

    @property
    def window_moments(self) -> tuple[q.Moment, q.Moment]:
        """The snapshots at the window's two ends."""
        return self.resolve(self.window[0]), self.resolve(self.window[1])

    @property
    def metric_col(self) -> str:
        """Own-metric column name, e.g. 'rss_bytes'."""
        return MEMORY_METRICS[self.metric]

    @property
    def sub_col(self) -> str:
        """Subtree-metric column name, e.g. 'subtree_rss_bytes'."""
        return "subtree_" + MEMORY_METRICS[self.metric]

    @property
    def metric_label(self) -> str:
        """Display name of the metric ('RSS')."""
        return METRIC_LABELS[self.metric]

    @property
    def pad_s(self) -> float:
        """Half a sample interval in seconds (shading a one-sample spike), 0 when unknown."""
        return (self.rec.interval_s or 0) / 2


def naive(ts: pd.Timestamp) -> datetime:
    """A time -> the naive UTC datetime (microseconds) a Streamlit datetime slider takes."""
    return to_utc(ts).tz_localize(None).floor("us").to_pydatetime()


def _seed(key: str, value: object) -> None:
    """Give the widget `key` the URL's value before it is drawn (the URL wins over stale widget state)."""
    st.session_state[key] = value


def _changed(key: str, field: str, convert: Callable[[object], object]) -> None:
    state.update_state(**{field: convert(st.session_state[key])})


def _fmt_mib(v: float) -> str:
    if v == 0:
        return "off"
    return f"{v / 1024:g} GiB" if v >= 1024 else f"{v:g} MiB"


def _source_facts(loaded: data.Loaded) -> None:
    rec = loaded.rec
    first, last = rec.span or (None, None)
    kind = {"native": "native", "seed": "seed CSV (lifetimes are observed spans)"}.get(rec.kind, rec.kind)
    rows = [
        ("source", source_choice.viewer_text(loaded.source.description)),
        ("hosts", ", ".join(rec.hosts) or "–"),
        ("from", fmt_ts(first)),
        ("to", fmt_ts(last)),
        ("interval", f"{rec.interval_s:.3g} s" if rec.interval_s else "–"),
        ("format", kind),
    ]
    origin = " · shipped sample" if loaded.source.is_sample else ""
    length = fmt_duration((last - first).total_seconds()) if first is not None else "empty"
    with st.expander(f"Data: {rec.kind}{origin} · {length}", expanded=False, icon=":material/database:"):
        # one line per fact; each value escaped on its own (visible() would show the line breaks as "\n")
        st.text("\n".join(f"{label}: {visible(value)}" for label, value in rows))  # data: text, never Markdown
        for notice in rec.notices[:20]:
            st.text(source_choice.viewer_text(notice))  # root-relative names, never server paths


def _live(loaded: data.Loaded) -> None:
    """Rerun the whole page when the recording's files changed (a collector wrote a sample); widget state is kept."""
    path, token = loaded.source.path, loaded.token
    fresh = [True]  # the token was taken in this very run: the fragment's first call has nothing to compare yet

    @st.fragment(run_every=timedelta(seconds=max(2.0, float(loaded.rec.interval_s or 5.0))))
    def watch() -> None:
        if fresh[0]:
            fresh[0] = False
            return
        if path is not None and data.fingerprint(path, loaded.rec.scope) != token[-1]:
            st.rerun(scope="app")

    watch()


def resolve(loaded: data.Loaded, at: pd.Timestamp | None, host: str | None = None) -> q.Moment:
    """A time (None = latest) -> the snapshot it names (memlib.query.resolve); a time outside the recording gets
    the first or last snapshot and a warning saying so (a shared link never shows another moment silently)."""
    try:
        return data.ask(loaded, q.resolve, at, host)
    except ValueError as exc:
        first = loaded.rec.span[0]
        moment = data.ask(loaded, q.resolve, first if at is not None and at < first else None, host)
        st.warning(
            f"The moment in the link was not used: {exc}. Showing {fmt_ts(moment.ts)}.", icon=":material/schedule:"
        )
        return moment


DEFAULT_WINDOW = pd.Timedelta(hours=24)  # the window without `from` in the URL: cost follows what is shown
RANGES = {
    "1 h": pd.Timedelta(hours=1),
    "6 h": pd.Timedelta(hours=6),
    "24 h": DEFAULT_WINDOW,
    "7 d": pd.Timedelta(days=7),
}


def window_of(view: state.ViewState, first: pd.Timestamp, last: pd.Timestamp, at: pd.Timestamp) -> tuple:
    """URL from/to and the moment shown -> the window (inclusive): from/to as given, clamped to the recording; without
    `from` the DEFAULT_WINDOW ending at `to` (or the last sample), or, when the moment lies before that, the
    DEFAULT_WINDOW around the moment."""
    hi = min(view.to, last) if view.to is not None else last
    if view.from_ is not None:
        lo = max(view.from_, first)
    else:
        lo = max(first, hi - DEFAULT_WINDOW)
        if view.to is None and at < lo:
            lo = max(first, at - DEFAULT_WINDOW / 2)
            hi = min(last, lo + DEFAULT_WINDOW)
    return (lo, hi) if lo <= hi else (first, last)


def _host(loaded: data.Loaded, view: state.ViewState) -> str | None:
    """The host chooser (only for a recording of several hosts) -> the host shown (URL `host`), None for one host."""
    hosts = loaded.rec.hosts
    if len(hosts) < 2:
        return None
    host = loaded.rec.scope or (view.host if view.host in hosts else hosts[0])
    _seed("w_host", host)
    st.selectbox("Host", hosts, key="w_host", on_change=_changed, args=("w_host", "host", str))
    return host


def _time_controls(loaded: data.Loaded, view: state.ViewState, host: str | None) -> tuple[q.Moment, tuple]:
    """The window and moment widgets -> (the resolved snapshot, (from, to))."""
    rec = loaded.rec
    first, last = rec.span
    moment = resolve(loaded, view.at, host)
    at = moment.ts
    lo, hi = window_of(view, first, last, at)
    st.subheader("Time", divider="gray")
    if first != last:
        step = timedelta(seconds=max(1, round(float(rec.interval_s or 1.0))))
        fmt = "HH:mm:ss" if last - first <= pd.Timedelta(hours=20) else "MM-DD HH:mm"  # short: not cut at the edges
        bounds = {"min_value": naive(first), "max_value": naive(last), "step": step, "format": fmt}

        def set_window() -> None:
            a, b = (to_utc(x) for x in st.session_state["w_window"])
            to = None if b >= _naive_utc(last) else b
            default_lo = _naive_utc(max(first, (b if to is not None else last) - DEFAULT_WINDOW))
            state.update_state(from_=None if a == default_lo else a, to=to)

        def set_range() -> None:
            width = RANGES.get(st.session_state.get("w_range") or "")
            state.update_state(
                from_=first if width is None else None if width == DEFAULT_WINDOW else last - width, to=None
            )

        def set_at() -> None:
            state.update_state(at=resolve(loaded, to_utc(st.session_state["w_at"]), host).ts)

        def set_latest() -> None:
            state.update_state(at=None if st.session_state["w_latest"] else last)

        ranges = [r for r, width in RANGES.items() if width < last - first] + ["all"]
        shown = next((r for r in ranges if (RANGES.get(r) or last - first) == hi - lo and hi == last), None)
        if len(ranges) > 1:  # a recording shorter than an hour has only "all"
            _seed("w_range", shown)
            st.segmented_control("Window: the last", ranges, key="w_range", on_change=set_range)
        _seed("w_window", (naive(lo), naive(hi)))
        st.slider("Window (UTC)", key="w_window", on_change=set_window, help="Time range of the charts.", **bounds)
        _seed("w_latest", view.at is None)
        st.toggle("Follow the latest snapshot", key="w_latest", on_change=set_latest)
        _seed("w_at", naive(at))
        st.slider(
            "Snapshot moment (UTC)",
            key="w_at",
            on_change=set_at,
            help="The moment the tables and headline values show; moving it pins the view to that snapshot.",
            **bounds,
        )
    return moment, (lo, hi)


def _naive_utc(ts: pd.Timestamp) -> pd.Timestamp:
    """A time as the slider gives it back (microseconds, UTC)."""
    return to_utc(naive(ts))


def _metric(loaded: data.Loaded, view: state.ViewState, moment: q.Moment, now: pd.Series) -> str:
    """The metric widget -> the metric to show: the URL's, else memlib's default at this moment (PSS when it is
    known for nearly every process), said in a caption; RSS is one click away."""
    known = now.get("pss_known_processes")
    available = ["rss", "pss", "uss", "swap"] if pd.notna(known) and known else ["rss"]
    if view.metric is not None and view.metric not in available:
        st.caption(f"{METRIC_LABELS[view.metric]} was not recorded at this moment; showing RSS.")
    choice = None
    if view.metric is None:  # from the moment's process sums: pages that show no snapshot never read its rows
        choice = summary.metric_choice(now.get("procs_rss_bytes"), now.get("pss_known_rss_bytes"))
    metric = choice.metric if choice is not None else view.metric if view.metric in available else "rss"
    _seed("w_metric", metric)
    st.selectbox(
        "Memory metric",
        options=list(MEMORY_METRICS),
        format_func=lambda m: METRIC_LABELS[m] + ("" if m in available else " (not recorded)"),
        key="w_metric",
        on_change=_changed,
        args=("w_metric", "metric", str),
        help=" ".join(f"{METRIC_LABELS[m]}: {h.split(': ', 1)[-1]}" for m, h in METRIC_HELP.items()),
    )
    st.caption(choice.reason if choice is not None else METRIC_HELP[metric])
    if metric != "rss":
        st.caption(smaps_note(now))
    return metric


def smaps_note(now: pd.Series) -> str:
    """A system_at row -> one line: how many processes have PSS/USS/swap at that moment."""
    known, total = now.get("pss_known_processes"), now.get("processes")
    if pd.isna(known) or pd.isna(total) or int(known) == 0:
        return "PSS/USS/swap unknown for every process at this moment (smaps_rollup not read): sums are empty."
    text = f"PSS/USS/swap known for {int(known):,} of {int(total):,} processes at this moment"
    if int(known) * 2 < int(total):
        text += "; most are unknown (not readable, or not read yet), so sums cover only those"
    return text + "."


def _filters(view: state.ViewState, exact: bool) -> None:
    st.subheader("Filters", divider="gray")
    sliders = (
        (
            "w_min_lifetime",
            "min_lifetime",
            "Minimum lifetime",
            LIFETIME_STEPS,
            lambda v: "off" if v == 0 else fmt_duration(v),
        ),
        ("w_min_rss_mb", "min_rss_mb", "Minimum own memory", MIB_STEPS, _fmt_mib),
        ("w_min_subtree_mb", "min_subtree_mb", "Minimum subtree memory", MIB_STEPS, _fmt_mib),
    )
    helps = {
        "min_lifetime": "Hide processes younger than this" + ("" if exact else " (seed dumps: the observed span)."),
        "min_subtree_mb": "Own + all descendants at the snapshot moment.",
    }
    for key, field, label, steps, fmt in sliders:
        value = getattr(view, field)
        _seed(key, value)
        st.select_slider(
            label,
            options=sorted({*steps, value}),
            format_func=fmt,
            key=key,
            on_change=_changed,
            args=(key, field, float),
            help=helps.get(field),
        )
    _seed("w_match", view.match)
    st.text_input(
        "Name or command line contains",
        key="w_match",
        on_change=_changed,
        args=("w_match", "match", lambda v: str(v)[: state.MAX_MATCH_LEN]),
        placeholder="e.g. python",
    )


def render_sidebar(loaded: data.Loaded | None) -> PageContext | None:
    """Draw the sidebar for the current URL state -> PageContext (None when there is nothing to show)."""
    view = state.read_state()
    if loaded is None or loaded.rec.span is None:
        return None
    with st.sidebar:
        _source_facts(loaded)
        _live(loaded)
        host = _host(loaded, view)
        moment, window = _time_controls(loaded, view, host)
        now = data.ask(loaded, q.latest_system, moment)
        n = now.get("processes")
        st.caption(f"Snapshot {fmt_ts(moment.ts)}" + (f" · {int(n):,} processes" if pd.notna(n) else ""))
        _filters(view, loaded.rec.start_times_exact)
        st.subheader("Display", divider="gray")
        metric = _metric(loaded, view, moment, now)
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
    return PageContext(loaded, view, moment, view.at is None, window, flt, metric, view.unit, host)


def _empty_state(source: data.DataSource) -> None:
    st.info("There is no recording to show yet.", icon=":material/info:")
    st.text(source_choice.viewer_text(source.description))
    st.markdown(
        "Record this machine with `make run` (collector + dashboard), or point the dashboard at a dumps folder:"
    )
    st.code("PMI_DUMPS=/path/to/dumps streamlit run app.py\nstreamlit run app.py -- --dumps /path/to/dumps", "bash")


def start_page(title: str, whole_store: bool = False) -> PageContext:
    """Page preamble: title, recording (clear message on failure), sidebar, URL warnings -> PageContext or st.stop().

    The recording is opened for the host shown (data.open_current), or for every host with `whole_store`."""
    st.title(title)
    choice = source_choice.current_choice()  # URL `source`: only recordings listed under the configured roots
    source_choice.sidebar_chooser(choice)
    source = choice.source
    try:
        loaded = data.open_current(source, state.read_state().host, whole=whole_store)
        ctx = render_sidebar(loaded)
    except Exception as exc:  # a damaged or unreadable folder must give a message, never a traceback
        st.error("The recording could not be read.", icon=":material/error:")
        st.text(source_choice.viewer_text(f"{source.description}\n{type(exc).__name__}: {exc}"))
        st.stop()
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
