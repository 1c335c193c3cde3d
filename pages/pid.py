"""PID drill-down: one process at the chosen moment (ancestors, descendants, values), its own and subtree memory
and its children over the window, its statistics."""

from ui.nav import ensure_router

ensure_router()

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from memlib import query as q  # noqa: E402
from memlib import summary, tree  # noqa: E402
from memlib.display import visible  # noqa: E402
from memlib.units import fmt_bytes  # noqa: E402
from ui import charts, data, nav, render, sidebar, state  # noqa: E402
from ui.render import fmt_duration, fmt_ts  # noqa: E402

ctx = sidebar.start_page("PID drill-down")
view, unit, at = ctx.view, ctx.unit, ctx.at
own_col, sub_col = ctx.metric_col, ctx.sub_col
lo, hi = ctx.window
snap_df = ctx.snapshot()

st.session_state["w_pid"] = view.pid
st.number_input(
    "PID",
    min_value=0,
    step=1,
    key="w_pid",
    placeholder="type a PID",
    width=220,
    on_change=lambda: state.update_state(pid=st.session_state.get("w_pid"), start=None),
)


def _process_table(rows: pd.DataFrame, key: str) -> None:
    """Clickable table of processes at the moment; a click opens the clicked process."""
    target = render.clickable_table(
        render.process_rows(rows, unit, own_col, sub_col),
        key=key,
        column_config=render.process_table_config(unit, ctx.metric_label),
        processes=rows,
        snapshot=snap_df,
        max_height=460,
    )
    if target is not None:
        nav.go(nav.PAGE_PID, nav.process_view(view, target))


def _biggest(why: str) -> None:
    st.caption(f"{why} The biggest subtrees at {fmt_ts(at)}:")
    _process_table(summary.top_subtrees(snap_df, 0, ctx.metric, 25), key=f"pid_pick_{at.value}")
    st.stop()


if view.pid is None:
    _biggest("Choose a process: type its PID above or click one below.")

# ---- which process: pid (+ start when the pid was reused)
# ---- the window first (cost follows what is shown), the whole recording only when the process is not in it
candidates, where = ctx.ask(q.find_processes, view.pid, t_from=lo, t_to=hi), "in this window"
if len(candidates) == 0 or (view.start is not None and not (candidates["start_time"] == view.start).any()):
    candidates, where = ctx.ask(q.find_processes, view.pid), "in this recording"
if view.start is not None:
    exact = candidates[candidates["start_time"] == view.start]
    if len(exact) == 0 and len(candidates):
        st.warning(f"No process with PID {view.pid} started at {fmt_ts(view.start)}; choose one below.")
    candidates = exact if len(exact) else candidates
if len(candidates) == 0:
    st.error(f"PID {view.pid} does not appear in this recording.", icon=":material/search_off:")
    _biggest("")
if len(candidates) > 1:
    st.warning(
        f"PID {view.pid} was used by {len(candidates)} different processes {where} (PID reuse). Choose one:",
        icon=":material/call_split:",
    )
    choice = pd.DataFrame(
        {
            "start": candidates["start_time"].to_numpy(),
            "first seen": candidates["first_seen"].to_numpy(),
            "last seen": candidates["last_seen"].to_numpy(),
            "name": candidates["name"].astype(str).to_numpy(),
            "cmdline": candidates["cmdline"].astype(str).to_numpy(),
            "user": candidates["user"].astype(str).to_numpy(),
        }
    )
    when = {"format": "YYYY-MM-DD HH:mm:ss"}
    row = render.clickable_table(
        choice,
        key="pid_reuse",
        processes=candidates,
        column_config={
            "start": st.column_config.DatetimeColumn("Started (UTC)", **when),
            "first seen": st.column_config.DatetimeColumn("First seen", **when),
            "last seen": st.column_config.DatetimeColumn("Last seen", **when),
            "name": st.column_config.TextColumn("Name"),
            "cmdline": st.column_config.TextColumn("Command line", width="large"),
            "user": st.column_config.TextColumn("User"),
        },
    )
    if row is not None:
        nav.go(nav.PAGE_PID, nav.process_view(view, row))
    st.stop()

proc = candidates.iloc[0]
key = q.Proc(str(proc["host"]), str(proc["boot_id"]), int(proc["pid"]), proc["start_time"])
row = ctx.ask(q.stats, lo, hi, [key], metric=ctx.metric)
here = snap_df[(snap_df["pid"] == proc["pid"]) & (snap_df["start_time"] == proc["start_time"])]
if len(here) == 0 and view.at is None:  # exited (or not started yet): open it at its last-seen moment
    nav.go(nav.PAGE_PID, nav.process_view(view, proc, at=proc["last_seen"]))
now = here.iloc[0] if len(here) else None

# ---- header: identity (names and command lines only as text), values at the chosen moment
st.subheader(f"PID {int(proc['pid'])}", anchor=False)
shown = now if now is not None else proc  # name and command line at the moment (an exec or a zombie changes them)
st.text(visible(str(shown["name"])))
st.code(visible(str(shown["cmdline"])) or "(no command line)", language=None, wrap_lines=True)
exact = ctx.rec.start_times_exact
note = "" if exact else " (observed span: seed dumps carry no start time)"
end = at if now is not None else proc["last_seen"]
c1, c2, c3, c4 = st.columns(4)
c1.caption("User")
c1.text(visible(proc["user"]))  # a user name from a dump is text, never Markdown (st.metric renders Markdown)
c2.metric(
    f"Started {pd.Timestamp(proc['start_time']).strftime('%Y-%m-%d')} (UTC)",
    pd.Timestamp(proc["start_time"]).strftime("%H:%M:%S"),
    help=fmt_ts(proc["start_time"]) + note,
)
c3.metric(
    "Lifetime" + ("" if now is not None else " (exited)" if at > proc["last_seen"] else " (not started)"),
    fmt_duration((end - proc["start_time"]).total_seconds()),
    help=note or None,
)
c4.metric(
    f"Subtree {ctx.metric_label} at the moment",
    fmt_bytes(now[sub_col]) if now is not None else "–",
    help=f"Own + all descendants at {fmt_ts(at)}",
)

rec_end = ctx.rec.span[1] if ctx.rec.span else None
if now is not None and rec_end is not None and proc["last_seen"] < rec_end and at == proc["last_seen"]:
    st.info(
        f"This process exited: this is its last sample, {fmt_ts(proc['last_seen'])} (seen from "
        f"{fmt_ts(proc['first_seen'])}; the recording goes on to {fmt_ts(rec_end)}).",
        icon=":material/history:",
    )
if now is None:
    st.info(
        f"This process is not running at {fmt_ts(at)} (seen {fmt_ts(proc['first_seen'])} – "
        f"{fmt_ts(proc['last_seen'])}).",
        icon=":material/schedule:",
    )
    if st.button("Show it at its last-seen moment", icon=":material/history:"):
        nav.go(nav.PAGE_PID, nav.process_view(view, proc, at=proc["last_seen"]))
else:
    chain = tree.ancestors(snap_df, int(now["proc_id"]), 0)
    if len(chain) > 1:
        st.caption("Ancestors (root first) — click one to open it")
        above = chain.iloc[:-1]
        target = render.clickable_table(
            pd.DataFrame(
                {
                    "level": above["level"].to_numpy(),
                    "pid": above["pid"].to_numpy(),
                    "name": above["name"].astype(str).to_numpy(),
                    "subtree": render.in_unit(above[sub_col], unit).to_numpy(),
                }
            ),
            key=f"chain_{proc['pid']}_{at.value}",
            column_config=render.process_table_config(unit, ctx.metric_label),
            processes=above,
            max_height=None,
            width="content",
        )
        if target is not None:
            nav.go(nav.PAGE_PID, nav.process_view(view, target))
        render.download_buttons(above, f"pid{int(proc['pid'])}_ancestors_{render.file_stamp(at)}", key="dl_chain")

# ---- charts over the window
tl = ctx.ask(q.timeline, key, lo, hi, bins=sidebar.CHART_BINS // 2)
stamp = render.file_stamp(at)
title = f"{proc['name']} (PID {int(proc['pid'])})"
spikes = ctx.ask(q.process_spikes, lo, hi, ctx.metric, procs=[key])
st.caption(f"Over the window {fmt_ts(lo)} – {fmt_ts(hi)} · click a point of the left chart to move the moment there")
left, right = st.columns(2)
with left:
    fig = data.figure(
        "pid",
        ctx.loaded.token,
        (key, lo, hi, unit, ctx.metric, at),
        lambda: charts.add_spike_bands(
            charts.process_figure(tl, own_col, sub_col, ctx.metric_label, unit, at, title),
            spikes,
            unit,
            pad_s=ctx.pad_s,
        ),
    )
    ev = st.plotly_chart(
        fig,
        width="stretch",
        on_select="rerun",
        selection_mode="points",
        key=f"pidchart_{proc['pid']}",
        config=charts.plot_config(f"pid{int(proc['pid'])}_{ctx.metric}_{stamp}"),
    )
    clicked_at = nav.parse_moment(nav.clicked_point(ev))
    if clicked_at is not None:
        nav.go(nav.PAGE_PID, view.replace(at=ctx.resolve(clicked_at).ts))
with right:
    trends = ctx.ask(q.children, key, ctx.metric, lo, hi, bins=sidebar.CHART_BINS // 2)
    if len(trends):
        fig = data.figure(
            "children",
            ctx.loaded.token,
            (key, lo, hi, unit, ctx.metric, at),
            lambda: charts.children_figure(trends, sub_col, ctx.metric_label, unit, at, title, timeline_ts=tl["ts"]),
        )
        st.plotly_chart(fig, width="stretch", config=charts.plot_config(f"pid{int(proc['pid'])}_children_{stamp}"))
    else:
        st.caption("No children in the time window.")

# ---- statistics over the window
st.subheader("Statistics over the window", divider="gray", anchor=False)
stat_rows = []
for kind, prefix, growth in (("own", ctx.metric, "growth"), ("subtree", f"subtree_{ctx.metric}", "subtree_growth")):
    values = {
        agg: fmt_bytes(row[f"{prefix}_{agg}_bytes"].iloc[0]) if len(row) else "–"
        for agg in ("min", "mean", "max", "p95", "last")
    }
    values["growth / h"] = fmt_bytes(row[f"{growth}_bytes_per_hour"].iloc[0]) if len(row) else "–"
    stat_rows.append({"series": f"{kind} {ctx.metric_label}", **values})
st.dataframe(pd.DataFrame(stat_rows), hide_index=True, width="stretch", placeholder=render.MISSING)
render.download_buttons(row, f"pid{int(proc['pid'])}_stats", key="dl_stats")

# ---- descendants at the moment
if now is not None:
    st.subheader(f"Descendants at {fmt_ts(at)}", divider="gray", anchor=False)
    desc = tree.descendants_of(snap_df, int(now["proc_id"]), 0)
    desc = desc[(desc["pid"] != proc["pid"]) | (desc["start_time"] != proc["start_time"])]
    if len(desc) == 0:
        st.caption("No children at this moment.")
    else:
        _process_table(desc, key=f"desc_{proc['pid']}_{at.value}")
        render.download_buttons(desc, f"pid{int(proc['pid'])}_descendants_{stamp}", key="dl_desc")
