"""cgroups: the cgroup tree at the moment with own and rolled-up totals, one cgroup over time, and its processes."""

from ui.nav import ensure_router

ensure_router()

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from memlib import cgroups  # noqa: E402
from memlib import query as q  # noqa: E402
from memlib.display import visible  # noqa: E402
from ui import charts, data, nav, render, sidebar, state  # noqa: E402

ctx = sidebar.start_page("cgroups")
view, unit, at = ctx.view, ctx.unit, ctx.at
own_col, sub_col = ctx.metric_col, ctx.sub_col
lo, hi = ctx.window
tree_df = ctx.ask(q.cgroup_tree, ctx.moment)
unplaced = int(tree_df.attrs.get("unplaced_processes", 0))

if len(tree_df) == 0:
    st.info(
        "No cgroup was recorded for any process at this moment (seed dumps and non-Linux recordings carry none).",
        icon=":material/info:",
    )
    st.stop()
if unplaced:
    st.caption(f"{unplaced:,} processes of this moment have no recorded cgroup and are left out.")
if len(tree_df) == 1:
    st.caption(
        "Every process sits in the root cgroup: the collector saw no other cgroup (e.g. it ran inside a container "
        "with its own cgroup namespace)."
    )

selected = view.cgroup if view.cgroup in set(tree_df["cgroup"]) else "/"
if view.cgroup is not None and view.cgroup != selected:
    st.caption("The cgroup in the URL has no processes at this moment; showing the root.")

# ---- the tree: table (path order, indented labels) and an icicle of the rolled-up totals
tbl = pd.DataFrame(
    {
        "cgroup": (
            pd.Series("\u00a0\u00a0\u00a0", index=tree_df.index).str.repeat(tree_df["depth"].astype(int).tolist())
            + tree_df["label"].astype(str)
        ).to_numpy(),
        "kind": tree_df["kind"].astype(str).to_numpy(),
        "processes": tree_df["processes"].to_numpy(),
        "own": render.in_unit(tree_df[own_col], unit).to_numpy(),
        "tree_processes": tree_df["tree_processes"].to_numpy(),
        "tree": render.in_unit(tree_df["tree_" + own_col], unit).to_numpy(),
        "current": render.in_unit(tree_df["memory_current_bytes"], unit).to_numpy(),
        "path": tree_df["cgroup"].astype(str).to_numpy(),
    }
)
cols = {
    "cgroup": st.column_config.TextColumn("cgroup", help="Readable name: slices, services, scopes, containers"),
    "kind": st.column_config.TextColumn("Kind"),
    "processes": st.column_config.NumberColumn("Processes", format="%d", help="Directly in this cgroup"),
    "own": render.memory_column(f"Own {ctx.metric_label}", unit, "Processes directly in this cgroup"),
    "tree_processes": st.column_config.NumberColumn("Processes below", format="%d", help="This cgroup and below"),
    "tree": render.memory_column(f"Rolled-up {ctx.metric_label}", unit, "This cgroup and every cgroup below it"),
    "current": render.memory_column(
        "memory.current", unit, "The kernel's figure (page cache, kernel memory included), when recorded"
    ),
    "path": st.column_config.TextColumn("Path", width="large"),
}
st.caption(f"{len(tree_df):,} cgroups at {render.fmt_ts(at)} · click a row or a box to select a cgroup")
row = render.clickable_table(tbl, key=f"cgroup_tree_{at.value}", column_config=cols, max_height=380)
render.download_buttons(tree_df, f"cgroups_{render.file_stamp(at)}", key="dl_cgroups")
fig = data.figure(
    "icicle", ctx.loaded.token, (at, own_col, unit), lambda: charts.icicle_figure(tree_df, "tree_" + own_col, unit, at)
)
iev = None
if len(tree_df) > 1:  # a single box says nothing
    iev = st.plotly_chart(
        fig,
        width="stretch",
        on_select="rerun",
        selection_mode="points",
        key=f"cgroup_icicle_{at.value}",
        config=charts.plot_config(f"cgroups_{render.file_stamp(at)}"),
    )
picked = str(row["path"]) if row is not None else None
point = nav.clicked_point(iev)
picked = picked or (str(point) if point is not None and str(point) in set(tree_df["cgroup"]) else None)
if picked is not None and picked != selected:
    state.update_state(cgroup=None if picked == "/" else picked)
    st.rerun()

# ---- the selected cgroup over time, and its processes now
st.subheader("Selected cgroup", divider="gray", anchor=False)
st.text(visible(f"{tree_df.loc[tree_df['cgroup'] == selected, 'label'].iloc[0]}  ({selected})"))
tl = ctx.ask(q.cgroup_timeline, lo, hi, cgroups=[selected], rollup=True, bins=sidebar.CHART_BINS)
st.plotly_chart(
    data.figure(
        "cgroup_tl",
        ctx.loaded.token,
        (selected, own_col, lo, hi, unit, at),
        lambda: charts.cgroup_figure(tl, own_col, ctx.metric_label, unit, at),
    ),
    width="stretch",
    config=charts.plot_config(f"cgroup_{ctx.metric}_{render.file_stamp(lo)}_{render.file_stamp(hi)}"),
)
snap_df = ctx.snapshot()
members = cgroups.cgroup_members(snap_df, 0, selected, recursive=True)
members, hidden_n = render.shown_members(members, snap_df, ctx.filters, own_col)
if hidden_n:
    st.caption(f"{hidden_n:,} processes hidden by the sidebar filters.")
st.caption(f"{len(members):,} processes in this cgroup and below it · click a row to open the process")
mtable = render.process_rows(members, unit, own_col, sub_col, extra=["cgroup"])
target = render.clickable_table(
    mtable,
    key=f"cgroup_members_{at.value}_{selected}",
    column_config=render.process_table_config(unit, ctx.metric_label)
    | {"cgroup": st.column_config.TextColumn("cgroup path")},
    processes=members,
    snapshot=snap_df,
)
render.download_buttons(members, f"cgroup_members_{render.file_stamp(at)}", key="dl_cgroup_members")
if target is not None:
    nav.go(nav.PAGE_PID, nav.process_view(view, target))
