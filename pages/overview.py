"""Overview: RAM and swap over the window, the values at the chosen moment, top processes and subtrees then,
biggest growers and counts in the window."""

from ui.nav import ensure_router

ensure_router()

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from memlib import query as q  # noqa: E402
from memlib import summary  # noqa: E402
from memlib.units import fmt_bytes  # noqa: E402
from ui import charts, data, nav, render, sidebar  # noqa: E402
from ui.render import fmt_ts  # noqa: E402

ctx = sidebar.start_page("Overview")
view, unit, at = ctx.view, ctx.unit, ctx.at
lo, hi = ctx.window
stamp, span = render.file_stamp(at), f"{render.file_stamp(lo)}_{render.file_stamp(hi)}"
now = ctx.ask(q.latest_system, ctx.moment)
snap_df = ctx.snapshot()
sysdf = ctx.ask(q.system, lo, hi, bins=sidebar.CHART_BINS)

# ---- headline numbers at the chosen moment
cols = st.columns(6)
if now is not None:
    cols[0].metric("RAM used", fmt_bytes(now.get("mem_used_bytes")), help="MemTotal − MemAvailable")
    cols[1].metric(
        "Available", fmt_bytes(now.get("mem_available_bytes")), help=f"of {fmt_bytes(now.get('mem_total_bytes'))}"
    )
    cols[2].metric(
        "Cache", fmt_bytes(now.get("cached_bytes")), help="Buffers + Cached + SReclaimable (free's buff/cache)"
    )
    cols[3].metric("Swap used", fmt_bytes(now.get("swap_used_bytes")))
    value, note = render.unattributed(now, ctx.metric)
    cols[4].metric("Not attributed", value, help=note)
cols[5].metric("Processes", f"{len(snap_df):,}")
st.caption(
    f"At {fmt_ts(at)}" + (" (latest)" if ctx.latest else "") + " · click a point of the RAM chart to see that "
    "moment's processes"
)

# ---- RAM chart: click a moment -> Level view at that moment
fig = data.figure(
    "ram",
    ctx.loaded.token,
    (lo, hi, unit, at, ctx.metric),
    lambda: charts.add_spike_bands(
        charts.ram_figure(sysdf, unit, at, "PSS" if ctx.metric == "pss" else "RSS"),
        ctx.ask(q.system_spikes, lo, hi),
        unit,
        pad_s=ctx.pad_s,
        label="RAM spike",
    ),
)
ev = st.plotly_chart(
    fig,
    width="stretch",
    on_select="rerun",
    selection_mode="points",
    key="ram_chart",
    config=charts.plot_config(f"ram_{span}"),
)
clicked_at = nav.parse_moment(nav.clicked_point(ev))
if clicked_at is not None:
    nav.go(nav.PAGE_LEVEL, view.replace(at=ctx.resolve(clicked_at).ts))

# ---- Σ RSS vs Σ PSS against used RAM (RSS counts every shared page once per process that maps it)
if "procs_pss_bytes" in sysdf.columns and sysdf["procs_pss_bytes"].notna().any():
    with st.expander("Σ RSS vs Σ PSS: which accounts for used memory", expanded=True):
        if now is not None:
            k1, k2, k3, k4 = st.columns(4)
            rss_now, pss_now = now.get("procs_rss_bytes"), now.get("procs_pss_bytes")
            k1.metric("Σ RSS", fmt_bytes(rss_now), help="Sum of every process's RSS")
            k2.metric("Σ PSS", fmt_bytes(pss_now), help="Sum of the known PSS values")
            gap = rss_now - pss_now if pd.notna(rss_now) and pd.notna(pss_now) else None
            k3.metric("RSS − PSS", fmt_bytes(gap), help="Shared pages RSS counts more than once")
            k4.metric("RAM used", fmt_bytes(now.get("mem_used_bytes")))
            st.caption(sidebar.smaps_note(now))
        st.plotly_chart(
            data.figure(
                "accounting", ctx.loaded.token, (lo, hi, unit, at), lambda: charts.accounting_figure(sysdf, unit, at)
            ),
            width="stretch",
            config=charts.plot_config(f"rss_vs_pss_{span}"),
        )

swap_total = sysdf["swap_total_bytes"].max() if "swap_total_bytes" in sysdf.columns else None
if not (pd.notna(swap_total) and swap_total > 0):
    st.caption("Swap: none configured in this window.")
else:
    with st.expander("Swap", expanded=True):
        holders = ctx.ask(q.groups, "name", lo, hi, top=5, metric="swap", bins=sidebar.CHART_BINS)
        if len(holders) and holders["swap_bytes"].notna().any():
            st.caption(
                "Per-process swap comes from smaps_rollup; processes whose swap is unknown are not in the bands."
            )
            build = lambda: charts.swap_split_figure(sysdf, holders, unit, at)  # noqa: E731
        else:
            build = lambda: charts.swap_figure(sysdf, unit, at)  # noqa: E731
        swap_fig = data.figure("swap", ctx.loaded.token, (lo, hi, unit, at), build)
        st.plotly_chart(swap_fig, width="stretch", config=charts.plot_config(f"swap_{span}"))


def _table(rows: pd.DataFrame, key: str, shown: list[str]) -> pd.Series | None:
    """Clickable process table of `rows` showing the `shown` columns of render.process_rows -> the clicked row."""
    return render.clickable_table(
        render.process_rows(rows, unit, ctx.metric_col, ctx.sub_col)[shown],
        key=key,
        column_config=render.process_table_config(unit, ctx.metric_label),
        processes=rows,
        snapshot=snap_df,
    )


left, right = st.columns(2)
with left:
    st.subheader("Top processes", divider="gray", anchor=False)
    top = summary.top_processes(snap_df, 0, ctx.metric, 10)
    picked = _table(top, f"top_procs_{at.value}", ["pid", "name", "own", "user", "cmdline"])
    render.download_buttons(top, f"top_processes_{stamp}", key="dl_top_procs")
with right:
    st.subheader("Top subtrees", divider="gray", anchor=False)
    tops = summary.top_subtrees(snap_df, 0, ctx.metric, 10)
    picked_sub = _table(tops, f"top_sub_{at.value}", ["pid", "name", "subtree", "descendants", "cmdline"])
    render.download_buttons(tops, f"top_subtrees_{stamp}", key="dl_top_sub")
picked = picked if picked is not None else picked_sub

st.subheader("Biggest growers in the window", divider="gray", anchor=False)
changes = ctx.ask(q.window_changes, *ctx.window_moments, ctx.metric, 10)  # growers and counts: one pass
grow_all = changes.growers
grow = grow_all[grow_all["delta_bytes"].fillna(0).to_numpy() > 0].reset_index(drop=True)
if len(grow):
    gtable = pd.DataFrame(
        {
            "pid": grow["pid"].to_numpy(),
            "name": grow["name"].astype(str).to_numpy(),
            "status": grow["status"].astype(str).to_numpy(),
            "growth": render.in_unit(grow["delta_bytes"], unit).to_numpy(),
            "before": render.in_unit(grow["before_bytes"], unit).to_numpy(),
            "after": render.in_unit(grow["after_bytes"], unit).to_numpy(),
            "subtree growth": render.in_unit(grow["subtree_delta_bytes"], unit).to_numpy(),
            "cmdline": grow["cmdline"].astype(str).to_numpy(),
        }
    )
    label = ctx.metric_label
    gconfig = {
        **render.process_table_config(unit, label),
        "status": st.column_config.TextColumn(
            "Status", help="alive at both ends of the window, new (started in it), exited (ended in it), or both"
        ),
        "growth": render.memory_column(
            f"Growth in window ({label})",
            unit,
            "Its last value in the window minus its first: a process that started or exited inside the window "
            "counts from its own first to its own last sample",
        ),
        "before": render.memory_column(f"First {label}", unit, "At its first sample in the window"),
        "after": render.memory_column(f"Last {label}", unit, "At its last sample in the window"),
        "subtree growth": render.memory_column(
            f"Subtree growth ({label})", unit, "The same for its subtree total (own + descendants)"
        ),
    }
    picked_g = render.clickable_table(
        gtable, key=f"growers_{lo.value}_{hi.value}", column_config=gconfig, processes=grow
    )
    picked = picked if picked is not None else picked_g
    render.download_buttons(grow, f"growers_{span}", key="dl_growers")
else:
    st.caption(f"No process's {ctx.metric_label} rose between its first and last sample in this window.")

if picked is not None:
    nav.go(nav.PAGE_PID, nav.process_view(view, picked))

st.subheader("Counts", divider="gray", anchor=False)
n = changes.counts
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Processes at window start", f"{n['processes_before']:,}")
c2.metric("Processes at window end", f"{n['processes_now']:,}")
c3.metric("Started in window", f"{n['new']:,}")
c4.metric("Exited in window", f"{n['exited']:,}")
c5.metric("Seen in window", f"{n['seen']:,}")
