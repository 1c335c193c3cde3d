"""Overview: RAM and swap over time, top processes and subtrees now, biggest growers in the window, counts."""

from ui.nav import ensure_router

ensure_router()

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from ui import charts, data, nav, render, sidebar  # noqa: E402

ctx = sidebar.start_page("Overview")
view, ds, token, unit = ctx.view, ctx.loaded.ds, ctx.loaded.token, ctx.unit
own_col, sub_col = ctx.metric_col, "subtree_" + ctx.metric_col
lo, hi = ctx.window
stamp = render.file_stamp(ctx.snap_ts)

sysdf = data.system_summary(token, ds)
sys_w = sysdf[(sysdf["ts"] >= lo) & (sysdf["ts"] <= hi)]
now = sysdf[sysdf["ts"] == ctx.snap_ts]
now = now.iloc[0] if len(now) else None
snap_df = data.snapshot(token, ds, ctx.snap)

# ---- headline numbers at the selected moment
cols = st.columns(6)
if now is not None:
    cols[0].metric("RAM used", render.fmt_bytes(now.get("mem_used_bytes")), help="MemTotal − MemAvailable")
    cols[1].metric("Available", render.fmt_bytes(now.get("mem_available_bytes")))
    cols[2].metric("Cache", render.fmt_bytes(now.get("cached_bytes")))
    cols[3].metric("Swap used", render.fmt_bytes(now.get("swap_used_bytes")))
    cols[4].metric(
        "Not attributed",
        render.fmt_bytes(now.get("unattributed_bytes")),
        help="RAM used minus the sum of process memory (kernel, page tables, shared memory…); "
        "negative when RSS counts shared pages once per process",
    )
cols[5].metric("Processes", f"{len(snap_df):,}")
st.caption(f"At {render.fmt_ts(ctx.snap_ts)}" + (" (latest)" if ctx.latest else ""))

# ---- RAM chart: click a moment -> Level view at that moment
fig = data.figure(
    "ram",
    token,
    (lo, hi, unit, ctx.snap_ts),
    lambda: charts.add_spike_bands(
        charts.ram_figure(data.decimate(sys_w), unit, ctx.snap_ts),
        data.system_spikes(token, ds, lo, hi),
        unit,
        pad_s=(ds.info.interval_s or 0) / 2,
        label="RAM spike",
    ),
)
ev = st.plotly_chart(
    fig,
    width="stretch",
    on_select="rerun",
    selection_mode="points",
    key="ram_chart",
    config=charts.plot_config(f"ram_{render.file_stamp(lo)}_{render.file_stamp(hi)}"),
)
moment = nav.clicked_point(ev)
clicked_at = nav.parse_moment(moment)
if clicked_at is not None:
    nav.go(nav.PAGE_LEVEL, view.replace(at=clicked_at))
# ---- Σ RSS vs Σ PSS against used RAM (RSS counts every shared page once per process that maps it)
if "procs_pss_bytes" in sys_w.columns and sys_w["procs_pss_bytes"].notna().any():
    with st.expander("Σ RSS vs Σ PSS: which accounts for used memory", expanded=True):
        if now is not None:
            k1, k2, k3, k4 = st.columns(4)
            k1.metric("Σ RSS", render.fmt_bytes(now.get("procs_rss_bytes")), help="Sum of every process's RSS")
            k2.metric("Σ PSS", render.fmt_bytes(now.get("procs_pss_bytes")), help="Sum of the known PSS values")
            rss_now, pss_now = now.get("procs_rss_bytes"), now.get("procs_pss_bytes")
            gap = rss_now - pss_now if pd.notna(rss_now) and pd.notna(pss_now) else None
            k3.metric("RSS − PSS", render.fmt_bytes(gap), help="Shared pages RSS counts more than once")
            k4.metric("RAM used", render.fmt_bytes(now.get("mem_used_bytes")))
            known, total = now.get("pss_known_processes"), now.get("processes")
            if pd.notna(known) and pd.notna(total) and known < total:
                st.caption(
                    f"PSS known for {int(known):,} of {int(total):,} processes at this moment: Σ PSS covers only "
                    "those, Σ RSS covers all."
                )
        st.plotly_chart(
            data.figure(
                "accounting",
                token,
                (lo, hi, unit, ctx.snap_ts),
                lambda: charts.accounting_figure(data.decimate(sys_w), unit, ctx.snap_ts),
            ),
            width="stretch",
            config=charts.plot_config(f"rss_vs_pss_{render.file_stamp(lo)}_{render.file_stamp(hi)}"),
        )

with st.expander(
    "Swap", expanded=bool(now is not None and pd.notna(now.get("swap_total_bytes")) and now.get("swap_total_bytes"))
):
    if now is not None and not now.get("swap_total_bytes"):
        st.caption("This machine has no swap configured.")
    holders = data.swap_holders(token, ds)
    holders_w = holders[(holders["ts"] >= lo) & (holders["ts"] <= hi)]
    if holders_w["swap_bytes"].notna().any():
        swap_fig = data.figure(
            "swap_split",
            token,
            (lo, hi, unit, ctx.snap_ts),
            lambda: charts.swap_split_figure(data.decimate(sys_w), holders_w, unit, ctx.snap_ts),
        )
        st.caption("Per-process swap comes from smaps_rollup; processes whose swap is unknown are not in the bands.")
    else:
        swap_fig = data.figure(
            "swap",
            token,
            (lo, hi, unit, ctx.snap_ts),
            lambda: charts.swap_figure(data.decimate(sys_w), unit, ctx.snap_ts),
        )
    st.plotly_chart(
        swap_fig, width="stretch", config=charts.plot_config(f"swap_{render.file_stamp(lo)}_{render.file_stamp(hi)}")
    )


def _table(rows: pd.DataFrame, key: str, columns: dict[str, pd.Series | object]) -> int | None:
    """Clickable table -> proc_id clicked (rows are PROCS-like with proc_id, pid, ppid) or None."""
    return render.clickable_table(
        pd.DataFrame(columns),
        key=key,
        column_config=render.process_table_config(unit, ctx.metric_label),
        processes=rows,
        snapshot=snap_df,
    )


left, right = st.columns(2)
with left:
    st.subheader("Top processes now", divider="gray", anchor=False)
    top = data.top_processes(token, ds, ctx.snap, ctx.metric)
    picked = _table(
        top,
        f"top_procs_{ctx.snap}",
        {
            "pid": top["pid"].to_numpy(),
            "name": top["name"].astype(str).to_numpy(),
            "own": render.in_unit(top[own_col], unit).to_numpy(),
            "user": top["user"].astype(str).to_numpy(),
            "cmdline": top["cmdline"].astype(str).to_numpy(),
        },
    )
    render.download_buttons(top, f"top_processes_{stamp}", key="dl_top_procs")
with right:
    st.subheader("Top subtrees now", divider="gray", anchor=False)
    tops = data.top_subtrees(token, ds, ctx.snap, ctx.metric)
    picked_sub = _table(
        tops,
        f"top_sub_{ctx.snap}",
        {
            "pid": tops["pid"].to_numpy(),
            "name": tops["name"].astype(str).to_numpy(),
            "subtree": render.in_unit(tops[sub_col], unit).to_numpy(),
            "descendants": tops["descendants"].to_numpy(),
            "cmdline": tops["cmdline"].astype(str).to_numpy(),
        },
    )
    render.download_buttons(tops, f"top_subtrees_{stamp}", key="dl_top_sub")
    picked = picked if picked is not None else picked_sub

st.subheader("Biggest growers in the window", divider="gray", anchor=False)
grow = data.growers(token, ds, *ctx.window_snaps, ctx.metric)
if len(grow):
    gtable = {
        "pid": grow["pid"].to_numpy(),
        "name": grow["name"].astype(str).to_numpy(),
        "status": grow["status"].astype(str).to_numpy(),
        "before": render.in_unit(grow["before_bytes"], unit).to_numpy(),
        "after": render.in_unit(grow["after_bytes"], unit).to_numpy(),
        "growth": render.in_unit(grow["delta_bytes"], unit).to_numpy(),
        "subtree growth": render.in_unit(grow["subtree_delta_bytes"], unit).to_numpy(),
        "cmdline": grow["cmdline"].astype(str).to_numpy(),
    }
    picked_g = _table(grow, f"growers_{ctx.window_snaps[0]}_{ctx.window_snaps[1]}", gtable)
    picked = picked if picked is not None else picked_g
    render.download_buttons(grow, f"growers_{render.file_stamp(lo)}_{render.file_stamp(hi)}", key="dl_growers")
else:
    st.caption("Nothing grew in this window.")

if picked is not None:
    nav.go(nav.PAGE_PID, data.view_for_process(token, ds, picked, view))

st.subheader("Counts", divider="gray", anchor=False)
n = data.counts(token, ds, *ctx.window_snaps)
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Processes at window start", f"{n['processes_before']:,}")
c2.metric("Processes at window end", f"{n['processes_now']:,}")
c3.metric("Started in window", f"{n['new']:,}")
c4.metric("Exited in window", f"{n['exited']:,}")
c5.metric("Seen in window", f"{n['seen']:,}")
