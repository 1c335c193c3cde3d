"""Compare two moments: processes and subtrees that are new, exited, grown or shrunk between `a` and `b`."""

from ui.nav import ensure_router

ensure_router()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from memlib import compare  # noqa: E402
from memlib import query as q  # noqa: E402
from ui import nav, render, sidebar, state  # noqa: E402

ctx = sidebar.start_page("Compare two moments")
view, unit = ctx.view, ctx.unit
first, last = ctx.rec.span
ma = ctx.resolve(view.a if view.a is not None else ctx.window[0])
mb = ctx.resolve(view.b) if view.b is not None else ctx.moment
ts_a, ts_b = ma.ts, mb.ts

# ---- the two moments (URL `a` and `b`; defaults: window start and the snapshot moment)
if first != last:
    step = pd.Timedelta(seconds=max(1, round(float(ctx.rec.interval_s or 1.0)))).to_pytimedelta()
    left, right = st.columns(2)
    for col, field, label, ts in ((left, "a", "First moment (a)", ts_a), (right, "b", "Second moment (b)", ts_b)):
        key = f"w_cmp_{field}"
        st.session_state[key] = sidebar.naive(ts)
        col.slider(
            label + " (UTC)",
            min_value=sidebar.naive(first),
            max_value=sidebar.naive(last),
            step=step,
            format="MM-DD HH:mm:ss",
            key=key,
            on_change=lambda f=field, k=key: state.update_state(
                **{f: ctx.resolve(sidebar.to_utc(st.session_state[k])).ts}
            ),
        )
st.caption(
    f"a = {render.fmt_ts(ts_a)} · b = {render.fmt_ts(ts_b)} · {ctx.metric_label} · "
    "click a row to open the process (exited ones at moment a)"
)
if ts_a == ts_b:
    st.info("Both moments are the same snapshot: move one of the sliders above.", icon=":material/info:")
elif ts_a > ts_b:
    st.caption("Moment a is after moment b: 'new' means alive at a only.")

table = ctx.ask(q.compare, ma, mb, ctx.metric)
flt = ctx.filters
keep = np.ones(len(table), bool)
if flt.match:
    text = table["name"].astype(str) + " " + table["cmdline"].astype(str)
    keep &= text.str.contains(flt.match, case=False, regex=False).to_numpy()
if flt.min_rss_mib > 0:
    biggest = np.fmax(
        table["before_bytes"].to_numpy(dtype=float, na_value=np.nan),
        table["after_bytes"].to_numpy(dtype=float, na_value=np.nan),
    )
    keep &= np.nan_to_num(biggest, nan=0.0) >= flt.min_rss_mib * 2**20
shown = table[keep].reset_index(drop=True)

# ---- counts and totals
n = compare.change_counts(shown)
cols = st.columns(6)
for col, label in zip(cols, compare.CHANGES, strict=True):
    col.metric(label.capitalize(), f"{n[label]:,}")
if n["unknown"]:
    st.caption(
        f"{n['unknown']:,} processes alive at both moments have no {ctx.metric_label} at one of them "
        "(smaps_rollup not read): their change is 'unknown'."
    )
totals = compare.change_totals(shown)
with st.expander("Totals per change", expanded=False):
    st.dataframe(
        pd.DataFrame(
            {
                "change": totals["change"].astype(str),
                "processes": totals["processes"],
                "before": render.in_unit(totals["before_bytes"], unit),
                "after": render.in_unit(totals["after_bytes"], unit),
                "growth": render.in_unit(totals["delta_bytes"], unit),
            }
        ),
        hide_index=True,
        width="stretch",
        column_config=render.process_table_config(unit, ctx.metric_label),
        placeholder=render.MISSING,
    )
    render.download_buttons(totals, f"compare_totals_{render.file_stamp(ts_a)}_{render.file_stamp(ts_b)}", "dl_ct")

config = render.process_table_config(unit, ctx.metric_label) | {
    "change": st.column_config.TextColumn("Change", help=", ".join(compare.CHANGES)),
    "before": render.memory_column(f"{ctx.metric_label} at a", unit, "– when the process was not running at a"),
    "after": render.memory_column(f"{ctx.metric_label} at b", unit, "– when the process was not running at b"),
    "growth": render.memory_column(f"Δ {ctx.metric_label}", unit, "b − a (a new process counts 0 at a)"),
    "subtree change": st.column_config.TextColumn("Subtree change"),
    "subtree before": render.memory_column(f"Subtree {ctx.metric_label} at a", unit),
    "subtree after": render.memory_column(f"Subtree {ctx.metric_label} at b", unit),
    "subtree growth": render.memory_column(f"Δ subtree {ctx.metric_label}", unit),
    "descendants before": st.column_config.NumberColumn("Descendants at a", format="%d"),
    "descendants after": st.column_config.NumberColumn("Descendants at b", format="%d"),
}


def _clicked(table: pd.DataFrame, rows: pd.DataFrame, key: str) -> pd.Series | None:
    """Clickable table of `rows` -> the clicked row (its parent's row for a PPID click), or None."""
    return render.clickable_table(table, key=key, column_config=config, processes=rows, snapshot=rows, max_height=560)


stamp = f"{render.file_stamp(ts_a)}_{render.file_stamp(ts_b)}"
tab_p, tab_s = st.tabs(["Processes", "Subtrees"])
picked = None
with tab_p:
    ptable = pd.DataFrame(
        {
            "pid": shown["pid"].to_numpy(),
            "name": shown["name"].astype(str).to_numpy(),
            "change": shown["change"].astype(str).to_numpy(),
            # a process absent at a moment has no value there ("–"), not 0 (the growth still counts it as 0)
            "before": render.in_unit(shown["before_bytes"], unit).where(shown["change"] != "new").to_numpy(),
            "after": render.in_unit(shown["after_bytes"], unit).where(shown["change"] != "exited").to_numpy(),
            "growth": render.in_unit(shown["delta_bytes"], unit).to_numpy(),
            "user": shown["user"].astype(str).to_numpy(),
            "cmdline": shown["cmdline"].astype(str).to_numpy(),
        }
    )
    picked = _clicked(ptable, shown, f"cmp_procs_{ts_a.value}_{ts_b.value}_{ctx.metric}")
    render.download_buttons(shown, f"compare_processes_{stamp}", key="dl_cmp_procs")
with tab_s:
    has_desc = (shown["descendants_before"].fillna(0) > 0) | (shown["descendants_after"].fillna(0) > 0)
    subs = shown[has_desc.to_numpy(dtype=bool)]
    size = subs["subtree_delta_bytes"].astype("Float64").abs().to_numpy(dtype=np.float64, na_value=-1.0)
    subs = subs.iloc[np.lexsort((subs["pid"].to_numpy(), -size))].reset_index(drop=True)
    stable = pd.DataFrame(
        {
            "pid": subs["pid"].to_numpy(),
            "name": subs["name"].astype(str).to_numpy(),
            "subtree change": subs["subtree_change"].astype(str).to_numpy(),
            "subtree before": render.in_unit(subs["subtree_before_bytes"], unit).to_numpy(),
            "subtree after": render.in_unit(subs["subtree_after_bytes"], unit).to_numpy(),
            "subtree growth": render.in_unit(subs["subtree_delta_bytes"], unit).to_numpy(),
            "descendants before": subs["descendants_before"].to_numpy(),
            "descendants after": subs["descendants_after"].to_numpy(),
            "cmdline": subs["cmdline"].astype(str).to_numpy(),
        }
    )
    picked_sub = _clicked(
        stable, subs, f"cmp_subs_{ts_a.value}_{ts_b.value}_{ctx.metric}"
    )  # drawn whatever was clicked
    picked = picked if picked is not None else picked_sub
    render.download_buttons(subs, f"compare_subtrees_{stamp}", key="dl_cmp_subs")

if picked is not None:  # an exited process opens at moment a, any other at b
    exited = str(picked.get("change")) == "exited"
    nav.go(nav.PAGE_PID, nav.process_view(view, picked, at=ts_a if exited else ts_b).replace(a=None, b=None))
