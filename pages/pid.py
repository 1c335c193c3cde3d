"""PID drill-down: one process, its ancestors, own + subtree memory over time, its children, stats."""

from ui.nav import ensure_router

ensure_router()

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from memlib.display import visible, visible_frame  # noqa: E402
from ui import charts, data, nav, render, sidebar, state  # noqa: E402

ctx = sidebar.start_page("PID drill-down")
view, ds, token, unit = ctx.view, ctx.loaded.ds, ctx.loaded.token, ctx.unit
own_col, sub_col = ctx.metric_col, "subtree_" + ctx.metric_col
directory = data.directory(token, ds)


def _set_pid() -> None:
    value = st.session_state.get("w_pid")
    state.update_state(pid=int(value) if value is not None else None, start=None)


st.session_state["w_pid"] = view.pid
st.number_input("PID", min_value=0, step=1, key="w_pid", on_change=_set_pid, placeholder="type a PID", width=220)

snap_df = data.snapshot(token, ds, ctx.snap)


def _process_table(rows: pd.DataFrame, key: str) -> int | None:
    """Clickable table of processes at the snapshot -> proc_id clicked or None."""
    table = pd.DataFrame(
        {
            "pid": rows["pid"].to_numpy(),
            "ppid": rows["ppid"].to_numpy(),
            "name": rows["name"].astype(str).to_numpy(),
            "cmdline": rows["cmdline"].astype(str).to_numpy(),
            "user": rows["user"].astype(str).to_numpy(),
            "own": render.in_unit(rows[own_col], unit).to_numpy(),
            "subtree": render.in_unit(rows[sub_col], unit).to_numpy(),
            "descendants": rows["descendants"].to_numpy(),
        }
    )
    return render.clickable_table(
        table,
        key=key,
        column_config=render.process_table_config(unit, ctx.metric_label),
        processes=rows,
        snapshot=snap_df,
        max_height=460,
    )


if view.pid is None:
    st.caption(
        f"Choose a process: type its PID above or click one of the biggest subtrees at {render.fmt_ts(ctx.snap_ts)}."
    )
    top = snap_df.sort_values(sub_col, ascending=False).head(25)
    picked = _process_table(top, key=f"pid_pick_{ctx.snap}")
    if picked is not None:
        nav.go(nav.PAGE_PID, data.view_for_process(token, ds, picked, view))
    st.stop()

# ---- which process: pid (+ start when the pid was reused)
candidates = directory[directory["pid"] == view.pid]
if view.start is not None:
    exact = candidates[candidates["start_time"] == view.start]
    if len(exact) == 0 and len(candidates):
        st.warning(f"No process with PID {view.pid} started at {render.fmt_ts(view.start)}; choose one below.")
    candidates = exact if len(exact) else candidates
if len(candidates) == 0:
    st.error(f"PID {view.pid} does not appear in this recording.", icon=":material/search_off:")
    st.caption("The biggest subtrees at the selected moment:")
    picked = _process_table(snap_df.sort_values(sub_col, ascending=False).head(25), key=f"pid_missing_{ctx.snap}")
    if picked is not None:
        nav.go(nav.PAGE_PID, data.view_for_process(token, ds, picked, view))
    st.stop()
if len(candidates) > 1:
    st.warning(
        f"PID {view.pid} was used by {len(candidates)} different processes in this recording (PID reuse). Choose one:",
        icon=":material/call_split:",
    )
    choice = pd.DataFrame(
        {
            "start": candidates["start_time"].to_numpy(),
            "first seen": candidates["first_ts"].to_numpy(),
            "last seen": candidates["last_ts"].to_numpy(),
            "name": candidates["name"].astype(str).to_numpy(),
            "cmdline": candidates["cmdline"].astype(str).to_numpy(),
            "user": candidates["user"].astype(str).to_numpy(),
        }
    )
    ev = st.dataframe(
        visible_frame(choice),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="pid_reuse",
        column_config={
            "start": st.column_config.DatetimeColumn("Started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "first seen": st.column_config.DatetimeColumn("First seen", format="YYYY-MM-DD HH:mm:ss"),
            "last seen": st.column_config.DatetimeColumn("Last seen", format="YYYY-MM-DD HH:mm:ss"),
            "name": st.column_config.TextColumn("Name"),
            "cmdline": st.column_config.TextColumn("Command line", width="large"),
            "user": st.column_config.TextColumn("User"),
        },
    )
    rows = ev.selection.rows if ev is not None else []
    if rows:
        nav.go(nav.PAGE_PID, view.replace(start=candidates["start_time"].iloc[int(rows[0])]))
    st.stop()

proc = candidates.iloc[0]
proc_id = int(proc["proc_id"])
tl = data.process_timeline(token, ds, proc_id)
alive_now = bool((snap_df["proc_id"] == proc_id).any())

# ---- header: identity (names and command lines only as text)
st.subheader(f"PID {int(proc['pid'])}", anchor=False)
st.text(visible(proc["name"]))
st.code(visible(proc["cmdline"]) or "(no command line)", language=None, wrap_lines=True)
last = tl.iloc[-1] if len(tl) else None
lifetime_end = proc["last_ts"] if not alive_now else ctx.snap_ts
lifetime = (lifetime_end - proc["start_time"]).total_seconds()
lifetime_note = "" if ds.info.start_times_exact else " (observed span: seed dumps carry no start time)"
c1, c2, c3, c4 = st.columns(4)
c1.caption("User")
c1.text(visible(proc["user"]))  # a user name from a dump is text, never Markdown (st.metric renders Markdown)
c2.metric(
    f"Started {pd.Timestamp(proc['start_time']).strftime('%Y-%m-%d')} (UTC)",
    pd.Timestamp(proc["start_time"]).strftime("%H:%M:%S"),
    help=render.fmt_ts(proc["start_time"]) + lifetime_note,
)
c3.metric("Lifetime" + ("" if alive_now else " (exited)"), render.fmt_duration(lifetime), help=lifetime_note or None)
c4.metric(f"Subtree {ctx.metric_label} now", render.fmt_bytes(last[sub_col]) if last is not None else "–")

# ---- ancestors chain (clickable)
if alive_now:
    chain = data.ancestors(token, ds, proc_id, ctx.snap)
    if len(chain) > 1:
        st.caption("Ancestors (root first) — click one to open it")
        above = chain.iloc[:-1]
        chain_tbl = pd.DataFrame(
            {
                "level": above["level"].to_numpy(),
                "pid": above["pid"].to_numpy(),
                "name": above["name"].astype(str).to_numpy(),
                "subtree": render.in_unit(above[sub_col], unit).to_numpy(),
            }
        )
        target = render.clickable_table(
            chain_tbl,
            key=f"chain_{proc_id}_{ctx.snap}",
            column_config=render.process_table_config(unit, ctx.metric_label),
            processes=above,
            snapshot=snap_df,
            max_height=None,
            width="content",
        )
        if target is not None:
            nav.go(nav.PAGE_PID, data.view_for_process(token, ds, target, view))
        render.download_buttons(
            above.drop(columns=["parent_row"], errors="ignore"),
            f"pid{int(proc['pid'])}_ancestors_{render.file_stamp(ctx.snap_ts)}",
            key="dl_chain",
        )
else:
    st.info(
        f"This process is not running at {render.fmt_ts(ctx.snap_ts)} (seen {render.fmt_ts(proc['first_ts'])} – "
        f"{render.fmt_ts(proc['last_ts'])}). Move the snapshot moment to see its tree.",
        icon=":material/schedule:",
    )

# ---- charts
lo, hi = ctx.window
tl_w = tl[(tl["ts"] >= lo) & (tl["ts"] <= hi)]
stamp = render.file_stamp(ctx.snap_ts)
left, right = st.columns(2)
with left:
    fig = data.figure(
        "pid",
        token,
        (proc_id, lo, hi, unit, ctx.metric, ctx.snap_ts),
        lambda: charts.add_spike_bands(
            charts.process_figure(data.decimate(tl_w), own_col, sub_col, ctx.metric_label, unit, ctx.snap_ts),
            data.spikes_of_process(token, ds, proc_id, lo, hi, ctx.metric),
            unit,
            pad_s=(ds.info.interval_s or 0) / 2,
        ),
    )
    ev = st.plotly_chart(
        fig,
        width="stretch",
        on_select="rerun",
        selection_mode="points",
        key=f"pidchart_{proc_id}",
        config=charts.plot_config(f"pid{int(proc['pid'])}_{ctx.metric}_{stamp}"),
    )
    clicked_at = nav.parse_moment(nav.clicked_point(ev))
    if clicked_at is not None:
        nav.go(nav.PAGE_PID, view.replace(at=clicked_at))
with right:
    trends = data.children_trends(token, ds, proc_id, ctx.metric)
    trends_w = trends[(trends["ts"] >= lo) & (trends["ts"] <= hi)]
    if len(trends_w):
        fig = data.figure(
            "children",
            token,
            (proc_id, lo, hi, unit, ctx.metric, ctx.snap_ts),
            lambda: charts.children_figure(
                trends_w, sub_col, ctx.metric_label, unit, ctx.snap_ts, timeline_ts=tl_w["ts"]
            ),
        )
        st.plotly_chart(fig, width="stretch", config=charts.plot_config(f"pid{int(proc['pid'])}_children_{stamp}"))
    else:
        st.caption("No children in the time window.")

# ---- stats
st.subheader("Statistics", divider="gray", anchor=False)
row = data.process_stats(token, ds, (proc_id,))
stat_rows = []
for kind, prefix in (("own", "rss"), ("subtree", "subtree_rss")):
    values = {}
    for agg in ("min", "mean", "max", "p95", "last"):
        name = f"{prefix}_{agg}_bytes"
        values[agg] = render.fmt_bytes(row[name].iloc[0]) if name in row.columns and len(row) else "–"
    growth = "growth_bytes_per_hour" if kind == "own" else "subtree_growth_bytes_per_hour"
    values["growth / h"] = render.fmt_bytes(row[growth].iloc[0]) if growth in row.columns and len(row) else "–"
    stat_rows.append({"series": f"{kind} RSS", **values})
if ctx.metric != "rss":
    st.caption("Statistics are computed for RSS.")
st.dataframe(pd.DataFrame(stat_rows), hide_index=True, width="stretch")
render.download_buttons(row, f"pid{int(proc['pid'])}_stats", key="dl_stats")

# ---- children and descendants at the moment
if alive_now:
    st.subheader(f"Descendants at {render.fmt_ts(ctx.snap_ts)}", divider="gray", anchor=False)
    desc = data.descendants(token, ds, proc_id, ctx.snap)
    desc = desc[desc["proc_id"] != proc_id]
    if len(desc) == 0:
        st.caption("No children at this moment.")
    else:
        target = _process_table(desc, key=f"desc_{proc_id}_{ctx.snap}")
        if target is not None:
            nav.go(nav.PAGE_PID, data.view_for_process(token, ds, target, view))
        render.download_buttons(
            desc.drop(columns=["parent_row"], errors="ignore"),
            f"pid{int(proc['pid'])}_descendants_{stamp}",
            key="dl_desc",
        )
