"""Level view: the processes at tree level 0 / 1 / 2 / … at the chosen moment, filtered, with subtree totals."""

from ui.nav import ensure_router

ensure_router()

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from memlib import filters  # noqa: E402
from memlib import query as q  # noqa: E402
from memlib.units import fmt_bytes  # noqa: E402
from ui import charts, data, nav, render, sidebar, state  # noqa: E402
from ui.render import fmt_durations, fmt_ts  # noqa: E402

TABLE_COLUMNS = 10  # the first columns of the download are the table's


def level_export(shown: pd.DataFrame, own_col: str, sub_col: str) -> pd.DataFrame:
    """The shown rows (snapshot columns + lifetime_s + peak_subtree_bytes) -> the download: the table's columns in its
    order (raw values: bytes, seconds), then the other recorded columns (internal ones left out)."""
    first = ["pid", "name", own_col, sub_col, "peak_subtree_bytes", "lifetime_s", "cmdline", "descendants", "ppid"]
    first.append("user")
    internal = {"kept", "context", "parent_row", "proc_id"}
    rest = [c for c in shown.columns if c not in first and c not in internal]
    return shown[first + rest].reset_index(drop=True)


ctx = sidebar.start_page("Level view")
view, unit, at = ctx.view, ctx.unit, ctx.at
own_col, sub_col = ctx.metric_col, ctx.sub_col
snap_df = ctx.snapshot()
max_level = int(snap_df["level"].max()) if len(snap_df) else 0
level = min(view.level, max_level)

# ---- level chooser (URL `level`)
levels = list(range(max_level + 1))
per_level = snap_df.groupby("level").size().reindex(levels, fill_value=0)
st.session_state["w_level"] = level
st.segmented_control(
    "Tree level",
    options=levels,
    format_func=lambda lv: f"{lv} · {per_level[lv]}",
    key="w_level",
    on_change=lambda: state.update_state(level=int(st.session_state.get("w_level") or 0)),
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
lo, hi = ctx.window
keys = [q.Proc(str(r.host), str(r.boot_id), int(r.pid), r.start_time) for r in shown.itertuples()]
peaks = ctx.ask(q.stats, lo, hi, keys, metric=ctx.metric) if len(shown) else None
shown = shown.assign(lifetime_s=filters.lifetime_s(shown))
peak_col = f"subtree_{ctx.metric}_max_bytes"
if peaks is not None and peak_col in peaks.columns:
    ids = ["boot_id", "pid", "start_time"]
    shown = shown.merge(peaks[[*ids, peak_col]].rename(columns={peak_col: "peak_subtree_bytes"}), on=ids, how="left")
peak = shown["peak_subtree_bytes"] if "peak_subtree_bytes" in shown.columns else pd.Series(pd.NA, index=shown.index)
shown = shown.assign(peak_subtree_bytes=peak.astype("Int64"))
# what matters first (fits 1400 px without scrolling): who, own, subtree, peak, lifetime, the start of the command line;
# then the rest
table = pd.DataFrame(
    {
        "pid": shown["pid"].to_numpy(),
        "name": shown["name"].astype(str).to_numpy(),
        "own": render.in_unit(shown[own_col], unit).to_numpy(),
        "subtree": render.in_unit(shown[sub_col], unit).to_numpy(),
        "peak": render.in_unit(shown["peak_subtree_bytes"], unit).to_numpy(),
        "lifetime": fmt_durations(shown["lifetime_s"]).to_numpy(),
        "cmdline": shown["cmdline"].astype(str).to_numpy(),
        "descendants": shown["descendants"].to_numpy(),
        "ppid": shown["ppid"].to_numpy(),
        "user": shown["user"].astype(str).to_numpy(),
    }
)

# ---- counts and totals
c1, c2, c3, c4 = st.columns(4)
c1.metric(f"Shown at level {level}", f"{len(shown):,}", help="Processes at this level that pass the filters")
c2.metric("Hidden by filters", f"{len(hidden):,}")
c3.metric(f"Shown subtree {ctx.metric_label}", fmt_bytes(shown[sub_col].sum()))
c4.metric(f"Hidden subtree {ctx.metric_label}", fmt_bytes(hidden[sub_col].sum()))
st.caption(
    f"Snapshot {fmt_ts(at)} · {len(snap_df):,} processes in the tree · peak over the window "
    f"{fmt_ts(lo)} – {fmt_ts(hi)} · click a row (or its PID) to open the drill-down, a PPID to open the parent"
)

# ---- the table: click a PID / row -> drill-down, a PPID -> the parent
config = render.process_table_config(unit, ctx.metric_label) | {
    "pid": st.column_config.NumberColumn("PID", format="%d", width=70, help="Click to open the PID drill-down"),
    "name": st.column_config.TextColumn("Name", width=160),
    "own": st.column_config.NumberColumn(
        f"Own {ctx.metric_label}", format=render.memory_format(unit), width=92, help="The process's own memory"
    ),
    "subtree": st.column_config.NumberColumn(
        f"Subtree {ctx.metric_label}",
        format=render.memory_format(unit),
        width=100,
        help="Own + all descendants at this moment",
    ),
    "peak": st.column_config.NumberColumn(
        "Peak subtree",
        format=render.memory_format(unit),
        width=100,
        help=f"Highest subtree {ctx.metric_label} at any one moment of the window {fmt_ts(lo)} – {fmt_ts(hi)}",
    ),
    "lifetime": st.column_config.TextColumn("Lifetime", width=96, help="From its start time to this moment"),
    "cmdline": st.column_config.TextColumn("Command line", width=400),
    "descendants": st.column_config.NumberColumn("Descendants", format="%d", width=96),
    "ppid": st.column_config.NumberColumn("PPID", format="%d", width=72, help="Click to open the parent"),
    "user": st.column_config.TextColumn("User", width=80),
}
target = render.clickable_table(
    table, key=f"level_tbl_{at.value}_{level}", column_config=config, processes=shown, snapshot=snap_df, max_height=560
)
if target is not None:
    nav.go(nav.PAGE_PID, nav.process_view(view, target))
export = level_export(shown, own_col, sub_col)
render.download_buttons(
    export,
    f"level{level}_{render.file_stamp(at)}",
    key="dl_level",
    about=f"The table's columns first ({', '.join(export.columns[:TABLE_COLUMNS])}: bytes and seconds, not "
    "rounded), then every recorded column of these processes at this moment",
)
if len(shown) == 0 and len(at_level):
    st.info("Every process at this level is hidden by the filters in the sidebar.", icon=":material/filter_alt:")

# ---- the whole tree at this moment
st.subheader("Tree memory", divider="gray")
st.caption(f"Every process at {fmt_ts(at)}: a box's size is its subtree {ctx.metric_label} · click a box to open it")
fig = data.figure(
    "treemap", ctx.loaded.token, (at, own_col, unit), lambda: charts.treemap_figure(snap_df, own_col, unit, at)
)
sel = st.plotly_chart(
    fig,
    width="stretch",
    on_select="rerun",
    selection_mode="points",
    key=f"treemap_{at.value}",
    config=charts.plot_config(f"tree_{render.file_stamp(None if ctx.latest else at)}"),
)
picked = nav.clicked_node(sel)
if picked is not None and picked in set(snap_df["proc_id"].tolist()):
    nav.go(nav.PAGE_PID, nav.process_view(view, snap_df[snap_df["proc_id"] == picked].iloc[0]))
