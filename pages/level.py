"""Level view: the processes at tree level 0 / 1 / 2 / … at the chosen moment, filtered, with subtree totals."""

from ui.nav import ensure_router

ensure_router()

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from memlib import filters  # noqa: E402
from ui import charts, data, nav, render, sidebar, state  # noqa: E402

ctx = sidebar.start_page("Level view")
view, ds, token, unit = ctx.view, ctx.loaded.ds, ctx.loaded.token, ctx.unit
snap_df = data.snapshot(token, ds, ctx.snap)
own_col, sub_col = ctx.metric_col, "subtree_" + ctx.metric_col
max_level = int(snap_df["level"].max()) if len(snap_df) else 0
level = min(view.level, max_level)

# ---- level chooser (URL `level`)
levels = list(range(max_level + 1))
per_level = snap_df.groupby("level").size().reindex(levels, fill_value=0)


def _set_level() -> None:
    chosen = st.session_state.get("w_level")
    if chosen is not None:
        state.update_state(level=int(chosen))


st.session_state["w_level"] = level
st.segmented_control(
    "Tree level",
    options=levels,
    format_func=lambda lv: f"{lv} · {per_level[lv]}",
    key="w_level",
    on_change=_set_level,
    help="Level 0 = roots (init, kthreadd, processes whose parent is gone); level n = n steps below a root. "
    "The number after the level is how many processes it holds.",
)
if view.level > max_level:
    st.caption(f"Level {view.level} is empty at this moment; the deepest level is {max_level}.")

# ---- filter: subtrees are computed on the whole tree first, filters only choose the rows shown
at_level = snap_df[snap_df["level"] == level]
filtered = filters.filter_snapshot(snap_df, ctx.filters, level=level)
# biggest subtrees first (ties: biggest own memory, then pid), so the answer to "what is eating the RAM" is on top
shown = filtered[filtered["kept"]].sort_values(
    [sub_col, own_col, "pid"], ascending=[False, False, True], na_position="last", kind="stable"
)
hidden = at_level[~at_level["proc_id"].isin(shown["proc_id"])]

peak_col = "subtree_rss_max_bytes" if ctx.metric == "rss" else None  # stats are computed for RSS
stats = (
    data.process_stats(token, ds, tuple(shown["proc_id"].astype("int64").tolist()))
    if peak_col is not None and len(shown)
    else None
)
table = pd.DataFrame(
    {
        "pid": shown["pid"].to_numpy(),
        "ppid": shown["ppid"].to_numpy(),
        "name": shown["name"].astype(str).to_numpy(),
        "cmdline": shown["cmdline"].astype(str).to_numpy(),
        "user": shown["user"].astype(str).to_numpy(),
        "own": render.in_unit(shown[own_col], unit).to_numpy(),
        "subtree": render.in_unit(shown[sub_col], unit).to_numpy(),
        "descendants": shown["descendants"].to_numpy(),
        "lifetime": render.fmt_durations(filters.lifetime_s(shown)).to_numpy(),
    }
)
if stats is not None and peak_col is not None and peak_col in stats.columns:
    peaks = stats.set_index("proc_id")[peak_col].reindex(shown["proc_id"].to_numpy())
    table["peak"] = render.in_unit(peaks.reset_index(drop=True), unit).to_numpy()

# ---- counts and totals
c1, c2, c3, c4 = st.columns(4)
c1.metric(f"Shown at level {level}", f"{len(shown):,}", help="Processes at this level that pass the filters")
c2.metric("Hidden by filters", f"{len(hidden):,}")
c3.metric(f"Shown subtree {ctx.metric_label}", render.fmt_bytes(shown[sub_col].sum()))
c4.metric(f"Hidden subtree {ctx.metric_label}", render.fmt_bytes(hidden[sub_col].sum()))
st.caption(
    f"Snapshot {render.fmt_ts(ctx.snap_ts)} · {len(snap_df):,} processes in the tree · "
    "click a row (or its PID) to open the drill-down, a PPID to open the parent"
)

# ---- the table: click a PID / row -> drill-down, a PPID -> the parent
key = f"level_tbl_{ctx.snap}_{level}"
target = render.clickable_table(
    table,
    key=key,
    column_config=render.process_table_config(unit, ctx.metric_label),
    processes=shown,
    snapshot=snap_df,
    max_height=560,
)
if target is not None:
    nav.go(nav.PAGE_PID, data.view_for_process(token, ds, target, view))

stamp = render.file_stamp(None if ctx.latest else ctx.snap_ts)
export = shown.drop(columns=[c for c in ("kept", "context", "parent_row") if c in shown.columns])
render.download_buttons(export, f"level{level}_{render.file_stamp(ctx.snap_ts)}", key="dl_level")
if len(shown) == 0 and len(at_level):
    st.info("Every process at this level is hidden by the filters in the sidebar.", icon=":material/filter_alt:")

# ---- the whole tree at this moment
st.subheader("Tree memory", divider="gray")
fig = data.figure("treemap", token, (ctx.snap, own_col, unit), lambda: charts.treemap_figure(snap_df, own_col, unit))
sel = st.plotly_chart(
    fig,
    width="stretch",
    on_select="rerun",
    selection_mode="points",
    key=f"treemap_{ctx.snap}",
    config=charts.plot_config(f"tree_{stamp}"),
)
picked = nav.clicked_node(sel)
if picked is not None and picked in set(snap_df["proc_id"].tolist()):
    nav.go(nav.PAGE_PID, data.view_for_process(token, ds, picked, view))
