"""Groups: memory totals over time per process name, command (argv[0]), user or cgroup; a group's processes."""

from ui.nav import ensure_router

ensure_router()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from memlib import groups  # noqa: E402
from memlib import query as q  # noqa: E402
from memlib.display import visible  # noqa: E402
from ui import charts, data, nav, render, sidebar, state  # noqa: E402

BY_LABELS = {"name": "Name", "command": "Command (argv[0])", "user": "User", "cgroup": "cgroup"}
TOP = 10

ctx = sidebar.start_page("Groups")
view, unit, at = ctx.view, ctx.unit, ctx.at
own_col, sub_col = ctx.metric_col, ctx.sub_col
lo, hi = ctx.window
by = view.by


def _set_by() -> None:
    chosen = st.session_state.get("w_by")
    if chosen is not None:
        state.update_state(by=str(chosen), group=None)


st.session_state["w_by"] = by
st.segmented_control(
    "Group by",
    options=list(groups.GROUP_BY),
    format_func=lambda b: BY_LABELS[b],
    key="w_by",
    on_change=_set_by,
    help="A group's value at a moment is the sum over all its processes at that moment; the sidebar filters only "
    "narrow the list of a group's processes.",
)

# ---- over time: the TOP groups by peak, the rest summed as "(other)"; a band whose peak is 0 or unknown is left out
in_window = ctx.ask(q.groups, by, lo, hi, top=TOP, metric=ctx.metric, bins=sidebar.CHART_BINS)
in_window = groups.with_known_peak(in_window, own_col)
bands = in_window["group"].astype(str).unique()
named = [b for b in bands if b != groups.OTHER_GROUP]
fig = data.figure(
    "groups",
    ctx.loaded.token,
    (by, ctx.metric, lo, hi, unit, at),
    lambda: charts.stacked_figure(
        in_window,
        "group",
        own_col,
        f"{ctx.metric_label} per {BY_LABELS[by].lower()}, stacked (top {len(named)} by peak"
        + (", the rest as (other)" if len(named) < len(bands) else "")
        + f") · {charts.span_text(lo, hi)}",
        unit,
        at,
        ts=in_window["ts"],
        clickable=True,
        legend_reversed=True,
    ),
)
if len(bands) == 0:
    st.caption(f"No {BY_LABELS[by].lower()} has a known {ctx.metric_label} above 0 in this window: nothing to chart.")
else:
    st.caption(f"Up to {TOP} groups with the highest peak get their own band · click a band to list its processes")
ev = st.plotly_chart(
    fig,
    width="stretch",
    on_select="rerun",
    selection_mode="points",
    key=f"groups_chart_{by}",
    config=charts.plot_config(f"groups_{by}_{ctx.metric}_{render.file_stamp(lo)}_{render.file_stamp(hi)}"),
)
clicked = nav.clicked_point(ev)
if clicked is not None and str(clicked) != view.group and str(clicked) != groups.OTHER_GROUP:
    state.update_state(group=str(clicked))
    st.rerun()

# ---- every group at the snapshot moment (no top-K cut), with its peak in the window
now = ctx.ask(q.groups, by, at, at)  # the groups' totals at the moment, summed in the query (no process rows read)
rank = np.argsort(-now[own_col].to_numpy(dtype=np.float64, na_value=-1.0), kind="stable")
now = now.iloc[rank].reset_index(drop=True)
table = pd.DataFrame(
    {
        "group": now["group"].astype(str).to_numpy(),
        "processes": now["processes"].to_numpy(),
        "own": render.in_unit(now[own_col], unit).to_numpy(),
        "rss": render.in_unit(now["rss_bytes"], unit).to_numpy(),
        "pss": render.in_unit(now["pss_bytes"], unit).to_numpy(),
        "uss": render.in_unit(now["uss_bytes"], unit).to_numpy(),
        "swap": render.in_unit(now["swap_bytes"], unit).to_numpy(),
        "smaps_known": now["smaps_known"].to_numpy(),
    }
).drop(columns=[ctx.metric])  # the chosen metric is the `own` column
st.subheader(f"Groups at {render.fmt_ts(at)}", divider="gray", anchor=False)
st.caption(f"{len(now):,} group{'' if len(now) == 1 else 's'} · click a row to list its processes")
row = render.clickable_table(
    table,
    key=f"groups_now_{by}_{at.value}",
    column_config={
        "group": st.column_config.TextColumn(BY_LABELS[by]),
        "processes": st.column_config.NumberColumn("Processes", format="%d"),
        "own": render.memory_column(ctx.metric_label, unit, "The chosen metric, summed over the group"),
        "rss": render.memory_column("RSS", unit),
        "pss": render.memory_column("PSS", unit, "Sum of the known values; empty when none is known"),
        "uss": render.memory_column("USS", unit),
        "swap": render.memory_column("Swap", unit),
        "smaps_known": st.column_config.NumberColumn("PSS known", format="%d", help="Members with PSS/USS/swap read"),
    },
)
render.download_buttons(now, f"groups_{by}_{render.file_stamp(at)}", key="dl_groups_now")
if row is not None and str(row["group"]) != view.group:
    state.update_state(group=str(row["group"]))
    st.rerun()

st.caption(
    f"The chart's series ({len(bands)} band{'' if len(bands) == 1 else 's'}, each time bucket's maximum and minimum):"
)
render.download_buttons(in_window, f"groups_{by}_{render.file_stamp(lo)}_{render.file_stamp(hi)}", "dl_groups_t")

# ---- the processes of the selected group at the moment
if view.group is not None:
    st.subheader("Processes of the group", divider="gray", anchor=False)
    st.text(f"{BY_LABELS[by]}: {visible(view.group)}")
    snap_df = ctx.snapshot()
    members = groups.group_members(snap_df, by, view.group, 0)
    members, hidden_n = render.shown_members(members, snap_df, ctx.filters, own_col)
    if hidden_n:
        st.caption(f"{hidden_n:,} processes hidden by the sidebar filters.")
    if len(members) == 0:
        st.caption("The group has no processes at this moment.")
    else:
        mtable = render.process_rows(members, unit, own_col, sub_col)
        target = render.clickable_table(
            mtable,
            key=f"group_members_{by}_{at.value}",
            column_config=render.process_table_config(unit, ctx.metric_label),
            processes=members,
            snapshot=snap_df,
        )
        render.download_buttons(members, f"group_{by}_{render.file_stamp(at)}", key="dl_group_members")
        if target is not None:
            nav.go(nav.PAGE_PID, nav.process_view(view, target))
