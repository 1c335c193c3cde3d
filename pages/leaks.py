"""Leaks & spikes: processes and subtrees that keep growing in the window, memory spikes, firing alert rules."""

from ui.nav import ensure_router

ensure_router()

import os  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from memlib import alerts, leaks, spikes  # noqa: E402
from memlib import query as q  # noqa: E402
from memlib.units import fmt_bytes  # noqa: E402
from ui import nav, render, sidebar  # noqa: E402
from ui.source import viewer_text  # noqa: E402
from ui.state import UNITS  # noqa: E402

MAX_SUSPECTS = 100
WIDER = "widen the window in the sidebar"
MAX_SPIKES = 200
RULES_ENV = "PMI_ALERT_RULES"

ctx = sidebar.start_page("Leaks & spikes")
view, unit, at = ctx.view, ctx.unit, ctx.at
lo, hi = ctx.window
div = UNITS[unit]
label = ctx.metric_label
window_name = f"{render.file_stamp(lo)}_{render.file_stamp(hi)}"
window_key = f"{lo.value}_{hi.value}_{ctx.metric}"
st.caption(
    f"Window {render.fmt_ts(lo)} – {render.fmt_ts(hi)} (set it in the sidebar) · {label} · "
    "click a row to open the PID drill-down"
)


def _open_process(row: pd.Series) -> None:
    nav.go(nav.PAGE_PID, nav.process_view(view, row))


def _procs(rows: pd.DataFrame) -> list[q.Proc]:
    """Result rows with identity columns -> their processes."""
    return [q.Proc(str(r.host), str(r.boot_id), int(r.pid), r.start_time) for r in rows.itertuples()]


def _sparklines(series: pd.DataFrame, rows: pd.DataFrame) -> list[list[float]]:
    """Trends (pid, start_time, ts, floor_bytes) -> one list of floors (in the display unit) per row."""
    floors = series.assign(v=(series["floor_bytes"].astype("Float64") / div).round(3))
    parts = floors.groupby(["pid", "start_time"], sort=False)["v"].apply(list).to_dict()
    return [parts.get((int(r.pid), r.start_time), []) for r in rows.itertuples()]


def _rate_column(title: str, help_text: str) -> st.column_config.NumberColumn:
    return st.column_config.NumberColumn(title, format=f"%.{1 if unit == 'MiB' else 3}f {unit}/h", help=help_text)


COMMON_CONFIG = {
    "trend": st.column_config.LineChartColumn(
        "Trend", width="small", help=f"Floor of {label} over the window (the lowest value of each stretch)"
    ),
    "pid": st.column_config.NumberColumn("PID", format="%d", help="Click to open the PID drill-down"),
    "name": st.column_config.TextColumn("Name"),
    "since": st.column_config.DatetimeColumn(
        "Growing since (UTC)", format="YYYY-MM-DD HH:mm:ss", help="Last time it was at its low within the window"
    ),
    "growing for": st.column_config.TextColumn("Growing for"),
    "score": st.column_config.NumberColumn(
        "Score",
        format="%.2f",
        help="Ranking: rate × steadiness × how long × confidence; above ~1 = a steady rise of MiB/h or more",
    ),
    "confidence": st.column_config.ProgressColumn(
        "Confidence",
        format="percent",
        min_value=0.0,
        max_value=1.0,
        help=f"How sure: full when seen for {render.fmt_duration(leaks.CONFIDENT_SPAN_S)} and "
        f"{leaks.CONFIDENT_SAMPLES} samples or more; a short stretch can still be a warm-up",
    ),
    "user": st.column_config.TextColumn("User"),
    "cmdline": st.column_config.TextColumn("Command line", width="large"),
}


def _suspects_table(suspects: pd.DataFrame, spark: pd.DataFrame | None, middle: dict[str, np.ndarray]) -> pd.DataFrame:
    """Leak suspects (+ their trends, when given) -> table: [trend,] pid, name, rate, since, the `middle`
    columns, score, user, command line."""
    trend = {} if spark is None else {"trend": _sparklines(spark, suspects)}
    return pd.DataFrame(
        {
            **trend,
            "pid": suspects["pid"].to_numpy(),
            "name": suspects["name"].astype(str).to_numpy(),
            "rate": (suspects["rate_bytes_per_hour"] / div).to_numpy(),
            "since": suspects["growing_since"].to_numpy(),
            **middle,
            "score": suspects["score"].to_numpy(),
            **({"confidence": suspects["confidence"].to_numpy()} if "confidence" in suspects.columns else {}),
            "user": suspects["user"].astype(str).to_numpy(),
            "cmdline": suspects["cmdline"].astype(str).to_numpy(),
        }
    )


def _process_suspects() -> None:
    with st.spinner("Scoring leaks…"):
        report = ctx.ask(q.leaks_and_spikes, lo, hi, ctx.metric).report
    sc = report.scores
    suspects = sc[sc["score"] > 0].head(MAX_SUSPECTS).reset_index(drop=True)
    if len(suspects) == 0:
        st.info(f"No leak suspect: no process's {label} grew steadily in this window.", icon=":material/search_off:")
        st.caption(report.census.why_empty(label, WIDER))
        return
    table = _suspects_table(
        suspects,
        report.trends,
        {
            "growing for": render.fmt_durations(suspects["growing_s"]).to_numpy(),
            "growth": render.in_unit(suspects["growth_bytes"], unit).to_numpy(),
            "steady": (100 * suspects["rising_share"]).to_numpy(),
        },
    )
    config = {
        **COMMON_CONFIG,
        "rate": _rate_column(f"Rate ({label})", "Robust growth rate (Theil–Sen slope of the floor) over the window"),
        "growth": render.memory_column("Growth", unit, "Last floor minus the lowest floor in the window"),
        "steady": st.column_config.NumberColumn(
            "Rising steps", format="%.0f%%", help="Share of steps in which the floor rose (a steady leak: near 100 %)"
        ),
    }
    render.clickable_table(
        table, key=f"leaks_procs_{window_key}", column_config=config, processes=suspects, on_row=_open_process
    )
    caution = leaks.low_confidence_note(suspects)
    if caution:
        st.warning(caution, icon=":material/help:")
    rest = len(sc) - len(suspects)
    census = report.census
    st.caption(
        f"{census.processes:,} processes considered; {census.too_short:,} seen for less than "
        f"{render.fmt_duration(census.min_duration_s)} or {census.min_samples} samples are not judged"
        + (f"; {rest:,} more rose a little but score 0 (grew once then stopped, or too little)." if rest > 0 else ".")
    )
    render.download_buttons(suspects, f"leaks_{window_name}", key="dl_leaks")


def _subtree_suspects() -> None:
    report = ctx.ask(q.leaks_and_spikes, lo, hi, ctx.metric).report
    with st.spinner("Scoring subtrees…"):
        st_ = ctx.ask(
            q.subtree_leak_scores,
            lo,
            hi,
            ctx.metric,
            min_duration_s=report.census.min_duration_s,
            process_scores=report.scores,
        )
    suspects = st_[st_["score"] > 0].head(MAX_SUSPECTS).reset_index(drop=True)
    if len(suspects) == 0:
        st.info("No subtree has a steadily growing member in this window.", icon=":material/search_off:")
        st.caption("A subtree is a suspect when one of its members is: see the Processes tab for why none is.")
        return
    top_member = (
        suspects["top_member_name"].astype(str) + " (" + suspects["top_member_pid"].astype("Int64").astype(str) + ")"
    )
    table = _suspects_table(
        suspects,
        None,
        {
            "top member": top_member.to_numpy(),
            "members": suspects["members"].to_numpy(),
            "growing": suspects["growing_members"].to_numpy(),
        },
    )
    config = {
        **COMMON_CONFIG,
        "rate": _rate_column(f"Rate ({label})", "Sum of the growing members' rates (children that come and go add 0)"),
        "top member": st.column_config.TextColumn("Fastest member", help="The member with the largest rate (PID)"),
        "members": st.column_config.NumberColumn("Members", format="%d", help="Processes seen in the subtree"),
        "growing": st.column_config.NumberColumn("Growing", format="%d", help="Members that are leak suspects"),
    }
    render.clickable_table(
        table, key=f"leaks_subtrees_{window_key}", column_config=config, processes=suspects, on_row=_open_process
    )
    st.caption("A subtree nests its members' growth: a leaker's parent, grandparent… all list it.")
    render.download_buttons(suspects, f"leaks_subtrees_{window_name}", key="dl_leaks_subtrees")


def _process_spikes() -> None:
    sp = ctx.ask(q.leaks_and_spikes, lo, hi, ctx.metric).spikes
    shown = sp.head(MAX_SPIKES).reset_index(drop=True)
    if len(shown) == 0:
        st.caption(f"No process spiked by {fmt_bytes(spikes.PROCESS_MIN_SIZE)} or more in this window.")
        return
    table = pd.DataFrame(
        {
            "pid": shown["pid"].to_numpy(),
            "name": shown["name"].astype(str).to_numpy(),
            "start": shown["start"].to_numpy(),
            "end": shown["end"].to_numpy(),
            "duration": render.fmt_durations(shown["duration_s"]).to_numpy(),
            "peak": render.in_unit(shown["peak_bytes"], unit).to_numpy(),
            "size": render.in_unit(shown["size_bytes"], unit).to_numpy(),
            "baseline": render.in_unit(shown["baseline_bytes"], unit).to_numpy(),
            "user": shown["user"].astype(str).to_numpy(),
            "cmdline": shown["cmdline"].astype(str).to_numpy(),
        }
    )
    config = {
        **COMMON_CONFIG,
        "pid": st.column_config.NumberColumn("PID", format="%d", help="Click to open the drill-down at the peak"),
        "start": st.column_config.DatetimeColumn("Start (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "end": st.column_config.DatetimeColumn("End (UTC)", format="HH:mm:ss", help="Last sample above the baseline"),
        "duration": st.column_config.TextColumn("Duration", help="First to last sample above the baseline (0 s: one)"),
        "peak": render.memory_column(f"Peak {label}", unit),
        "size": render.memory_column("Size", unit, "Peak minus the baseline before the spike"),
        "baseline": render.memory_column("Baseline", unit, "Rolling median before the spike"),
    }
    row = render.clickable_table(
        table, key=f"spikes_procs_{window_key}", column_config=config, processes=shown, max_height=380
    )
    if row is not None:
        nav.go(nav.PAGE_PID, nav.process_view(view, row, at=row["peak_ts"]))
    if len(sp) > len(shown):
        st.caption(f"The {len(shown):,} largest of {len(sp):,} spikes.")
    render.download_buttons(shown, f"spikes_{window_name}", key="dl_spikes")


def _system_spikes() -> None:
    sp = ctx.ask(q.system_spikes, lo, hi)
    if len(sp) == 0:
        st.caption(f"No spike of {fmt_bytes(spikes.SYSTEM_MIN_SIZE)} or more in used RAM in this window.")
        return
    table = pd.DataFrame(
        {
            "start": sp["start"].to_numpy(),
            "end": sp["end"].to_numpy(),
            "duration": render.fmt_durations(sp["duration_s"]).to_numpy(),
            "peak": render.in_unit(sp["peak_bytes"], unit).to_numpy(),
            "size": render.in_unit(sp["size_bytes"], unit).to_numpy(),
            "baseline": render.in_unit(sp["baseline_bytes"], unit).to_numpy(),
        }
    )
    config = {
        "start": st.column_config.DatetimeColumn(
            "Start (UTC)", format="YYYY-MM-DD HH:mm:ss", help="Click to see the processes at the peak"
        ),
        "end": st.column_config.DatetimeColumn("End (UTC)", format="HH:mm:ss"),
        "duration": st.column_config.TextColumn("Duration", help="First to last sample above the baseline (0 s: one)"),
        "peak": render.memory_column("Peak RAM used", unit),
        "size": render.memory_column("Size", unit, "Peak minus the baseline before the spike"),
        "baseline": render.memory_column("Baseline", unit, "Rolling median of used RAM before the spike"),
    }
    render.clickable_table(
        table,
        key=f"spikes_system_{window_key}",
        column_config=config,
        max_height=300,
        processes=sp,
        on_row=lambda row: nav.go(nav.PAGE_LEVEL, view.replace(at=row["peak_ts"])),
    )
    render.download_buttons(sp, f"ram_spikes_{window_name}", key="dl_ram_spikes")


def _firing(rec: object, rules_text: str, when: pd.Timestamp | None) -> pd.DataFrame:
    """alerts.evaluate of the rules text over the recording at `when` (None = latest): ALERT_COLUMNS."""
    return q.alerts(rec, alerts.parse_rules(rules_text), when)


def _format_values(values: pd.Series, units: pd.Series) -> np.ndarray:
    """Alert values (bytes/h, bytes or percent, per row) -> texts in the display unit."""
    v = values.astype("Float64") / div
    per_h = v.map(lambda x: "–" if pd.isna(x) else f"{x:,.1f} {unit}/h")
    size = v.map(lambda x: "–" if pd.isna(x) else f"{x:,.1f} {unit}")
    pct = values.astype("Float64").map(lambda x: "–" if pd.isna(x) else f"{x:.1f} %")
    return np.select([units == "bytes/h", units == "bytes"], [per_h.to_numpy(), size.to_numpy()], pct.to_numpy())


def _alert_rules() -> None:
    path_text = os.environ.get(RULES_ENV, "").strip()
    if not path_text:
        st.caption(f"No alert rules loaded. Point {RULES_ENV} at a TOML rules file (see docs/alerts.example.toml):")
        st.code(f"{RULES_ENV}=docs/alerts.example.toml streamlit run app.py", language="bash")
        return
    path = Path(path_text).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        st.error(f"The alert rules file ({RULES_ENV}) could not be read.", icon=":material/error:")
        st.text(viewer_text(f"{path}: {type(exc).__name__}: {exc}"))
        return
    when = None if ctx.latest else at
    try:
        rules = alerts.parse_rules(text)
        firing = ctx.ask(_firing, text, when)
    except alerts.RulesError as exc:
        st.error(f"The alert rules file ({RULES_ENV}) cannot be used.", icon=":material/error:")
        st.text(viewer_text(f"{path}: {exc}"))
        return
    st.text(
        viewer_text(f"Rules: {path}") + f" · evaluated at {render.fmt_ts(at)}" + (" (latest)" if ctx.latest else "")
    )
    counts = firing["rule"].value_counts()
    names = [r.name for r in rules]
    status = pd.DataFrame(
        {
            "rule": names,
            "kind": [r.kind for r in rules],
            "firing": counts.reindex(names, fill_value=0).to_numpy(),
        }
    )
    c1, c2 = st.columns([1, 3])
    c1.metric("Rules firing", f"{int((status['firing'] > 0).sum())} of {len(rules)}")
    c1.metric("Alerts", f"{len(firing):,}")
    c2.dataframe(
        status,
        hide_index=True,
        width="stretch",
        height=render.table_height(len(status), 300),
        column_config={
            "rule": st.column_config.TextColumn("Rule"),
            "kind": st.column_config.TextColumn("Kind"),
            "firing": st.column_config.NumberColumn("Firing for", format="%d", help="Processes (or 1 for the system)"),
        },
    )
    if len(firing) == 0:
        st.success("No rule fires at this moment.", icon=":material/notifications_off:")
        render.download_buttons(firing, f"alerts_{render.file_stamp(when)}", key="dl_alerts")
        return
    table = pd.DataFrame(
        {
            "rule": firing["rule"].astype(str).to_numpy(),
            "pid": firing["pid"].astype("Int64").to_numpy(),
            "name": firing["name"].astype(object).where(firing["name"].notna(), "(system)").astype(str).to_numpy(),
            "value": _format_values(firing["value"], firing["unit"]),
            "threshold": _format_values(firing["threshold"], firing["unit"]),
            "message": firing["message"].astype(str).to_numpy(),
            "cmdline": firing["cmdline"].astype(object).where(firing["cmdline"].notna(), "").astype(str).to_numpy(),
        }
    )
    row = render.clickable_table(
        table,
        key=f"alerts_{at.value}",
        column_config={
            "rule": st.column_config.TextColumn("Rule"),
            "pid": st.column_config.NumberColumn("PID", format="%d", help="Click to open the PID drill-down"),
            "name": st.column_config.TextColumn("For"),
            "value": st.column_config.TextColumn("Value"),
            "threshold": st.column_config.TextColumn("Threshold"),
            "message": st.column_config.TextColumn("Alert", width="large"),
            "cmdline": st.column_config.TextColumn("Command line", width="large"),
        },
        processes=firing,
        max_height=380,
    )
    if row is not None and pd.notna(row["pid"]):
        _open_process(row)
    render.download_buttons(firing, f"alerts_{render.file_stamp(when)}", key="dl_alerts")


st.subheader("Leak suspects", divider="gray", anchor=False)
tab_procs, tab_subtrees = st.tabs(["Processes", "Subtrees"], key="leak_tabs", on_change="rerun")
with tab_procs:
    if tab_procs.open is not False:
        _process_suspects()
with tab_subtrees:  # scored only when opened: it costs several times the process scores
    if tab_subtrees.open:
        _subtree_suspects()

st.subheader("Spikes", divider="gray", anchor=False)
st.caption(
    f"A spike is a rise of {label} well above the process's rolling {spikes.DEFAULT_BASELINE_S / 60:.0f}-minute median "
    f"(at least {fmt_bytes(spikes.PROCESS_MIN_SIZE)} and {spikes.DEFAULT_K:g}× its usual spread); "
    "a rise that stays becomes the new baseline. Click one to open that process at its peak."
)
_process_spikes()
st.markdown("**Used RAM**")
_system_spikes()

st.subheader("Alert rules", divider="gray", anchor=False)
_alert_rules()
