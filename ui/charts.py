"""Plotly figures for the pages: RAM/swap over time, per-process timelines, stacked children, the tree treemap.

Figures carry ISO times or proc_ids in `customdata` so a click can navigate; names reach Plotly only as trace data
(hover text and labels are not rendered as Markdown by Streamlit). The chart toolbar's PNG export gets a file name.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from memlib.display import visible, visible_series
from memlib.units import iso_z
from ui.state import UNITS

COLORS = {
    "used": "#d62728",
    "available": "#2ca02c",
    "cached": "#1f77b4",
    "procs": "#ff7f0e",
    "unattributed": "#9467bd",
    "swap": "#8c564b",
    "own": "#1f77b4",
    "subtree": "#ff7f0e",
    "spike": "#e377c2",
}
REFERENCE_LINE = {"color": COLORS["used"], "width": 1.4, "dash": "dash"}  # what a total is compared against


def plain(text: object) -> str:
    """Process name -> text Plotly shows literally (its labels understand a little HTML: <b>, <a href>, entities;
    control and bidi characters are shown as escapes, memlib.display)."""
    return html.escape(visible(text), quote=False)


def plain_series(names: pd.Series) -> pd.Series:
    """Vectorised `plain` over a series of names."""
    text = visible_series(names.astype(str))
    return (
        text.str.replace("&", "&amp;", regex=False)
        .str.replace("<", "&lt;", regex=False)
        .str.replace(">", "&gt;", regex=False)
    )


def plot_config(filename: str) -> dict:
    """Plotly config: PNG export from the toolbar under `filename`.png, no Plotly logo."""
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2},
        "modeBarButtonsToRemove": ["lasso2d"],
    }


def _moment_text(at: pd.Timestamp | None) -> str:
    return "the latest moment" if at is None else pd.Timestamp(at).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def _metric_text(col: str) -> str:
    """'rss_bytes' / 'tree_pss_bytes' -> 'RSS' / 'PSS'."""
    return col.removeprefix("tree_").removeprefix("subtree_").removesuffix("_bytes").upper()


def span_text(lo: pd.Timestamp, hi: pd.Timestamp) -> str:
    """A time window -> '2026-11-27 17:02:13 – 17:04:41 UTC' (the date once when both ends share it), for titles."""
    lo, hi = pd.Timestamp(lo).tz_convert("UTC"), pd.Timestamp(hi).tz_convert("UTC")
    end = hi.strftime("%H:%M:%S" if lo.date() == hi.date() else "%Y-%m-%d %H:%M:%S")
    return f"{lo.strftime('%Y-%m-%d %H:%M:%S')} – {end} UTC"


# plotly's default qualitative colours: ten saturated ones, so the bands of a stacked chart stay apart (Streamlit's
# theme has a near-white one)
COLORWAY = [
    "#636efa",
    "#EF553B",
    "#00cc96",
    "#ab63fa",
    "#FFA15A",
    "#19d3f3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
    "#FECB52",
]


def _layout(fig: go.Figure, title: str, unit: str, height: int = 340, hovermode: str = "x unified") -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "font": {"size": 15}},
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        hovermode=hovermode,
        legend={"orientation": "h", "y": -0.28, "x": 0, "yanchor": "top"},
        yaxis={"title": unit, "rangemode": "tozero", "tickformat": ",.0f" if unit == "MiB" else ",.1f"},
        xaxis={"title": None, "tickformat": "%H:%M:%S\n%b %d"},
        colorway=COLORWAY,
    )  # styled by Streamlit's chart theme (st.plotly_chart's default); a plotly template cost 0.1-0.2 s per page
    _space_legend(fig)
    return fig


def _space_legend(fig: go.Figure) -> None:
    """Give every entry of a horizontal legend the width of the longest name plus a gap, so the entries never run
    into each other ("subtree RSSown RSS") on screen or in the exported PNG (Plotly's automatic width leaves ~3 px)."""
    names = [str(t.name) for t in fig.data if t.name and t.showlegend is not False]
    if names:
        fig.update_layout(legend={"entrywidth": LEGEND_CHAR_PX * max(map(len, names)) + LEGEND_GAP_PX})


LEGEND_CHAR_PX = 7  # an upper bound of the legend font's (12 px) average character width
LEGEND_GAP_PX = 24


def _mark(fig: go.Figure, at: pd.Timestamp | None) -> None:
    if at is not None:
        fig.add_vline(x=at.tz_convert("UTC").tz_localize(None), line={"color": "#444", "width": 1, "dash": "dot"})


def _x(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("UTC").dt.tz_localize(None)


def _line(fig: go.Figure, df: pd.DataFrame, col: str, unit: str, **trace: object) -> None:
    """Add the series `col` of a query frame (ts, col[, col_min]) as a line in `unit`. A bucketed frame (memlib.query
    `bins`: `col` is each bucket's maximum, `col_min` its minimum) also gets the band between them, so a one-sample
    spike on a month-long chart stays visible and the line shows the peaks."""
    div = UNITS[unit]
    x = _x(df["ts"])
    low = df.get(col + "_min")
    color = (trace.get("line") or {}).get("color")  # type: ignore[union-attr]
    if low is not None and (low.astype("Float64") != df[col].astype("Float64")).any():
        fig.add_trace(
            go.Scatter(
                x=x,
                y=low.astype("Float64") / div,
                mode="lines",
                line={"width": 0, "color": color},
                showlegend=False,
                hoverinfo="skip",
                legendgroup=str(trace.get("name")),
            )
        )
        trace = {"fill": "tonexty", "fillcolor": _translucent(color), **trace}
    fig.add_trace(
        go.Scatter(
            x=x,
            y=df[col].astype("Float64") / div,
            legendgroup=str(trace.get("name")),
            hovertemplate=f"%{{y:.1f}} {unit}",
            **trace,
        )
    )


def _translucent(color: object) -> str:
    """'#rrggbb' -> the same colour at 20 % opacity (a min/max band)."""
    text = str(color) if color else "#888888"
    if not (text.startswith("#") and len(text) == 7):
        return "rgba(136,136,136,0.2)"
    r, g, b = (int(text[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},0.2)"


def ram_figure(sysdf: pd.DataFrame, unit: str, at: pd.Timestamp | None, metric_label: str = "RSS") -> go.Figure:
    """system_series frame (ts, mem_used_bytes, cached_bytes, procs_<m>_bytes, unattributed_bytes, each maybe with
    `_min`) -> RAM chart on an axis fitted to used memory (total and available are headline values, not lines: on one
    axis with them a leak of a few hundred MiB is a flat line). The `used` trace's customdata is the ISO time, so a
    click selects a moment."""
    fig = go.Figure()
    iso = [iso_z(t) for t in sysdf["ts"]]
    procs = "procs_pss_bytes" if metric_label == "PSS" else "procs_rss_bytes"
    series = [
        ("mem_used_bytes", "used (total − available)", COLORS["used"]),
        (procs, f"sum of process {metric_label}", COLORS["procs"]),
        ("unattributed_bytes", "not attributed to processes", COLORS["unattributed"]),
        ("cached_bytes", "cache", COLORS["cached"]),
    ]
    for col, label, color in series:
        if col not in sysdf.columns or not sysdf[col].notna().any():
            continue
        used = col == "mem_used_bytes"
        _line(
            fig,
            sysdf,
            col,
            unit,
            name=label,
            mode="lines+markers" if used else "lines",
            line={"color": color, "width": 2 if used else 1.4, "dash": "dot" if col == "unattributed_bytes" else None},
            marker={"size": 4, "opacity": 0.5} if used else None,
            customdata=iso if used else None,
            visible="legendonly" if col == "cached_bytes" else True,
        )
    _mark(fig, at)
    span = f" · {span_text(sysdf['ts'].min(), sysdf['ts'].max())}" if len(sysdf) else ""
    _layout(fig, f"RAM used and what accounts for it{span}", unit, hovermode="closest")
    fig.update_yaxes(rangemode="normal")
    return fig


def swap_figure(sysdf: pd.DataFrame, unit: str, at: pd.Timestamp | None) -> go.Figure:
    """system_series frame (ts, swap_total_bytes, swap_used_bytes) -> swap chart."""
    fig = go.Figure()
    if "swap_used_bytes" in sysdf.columns:
        _line(fig, sysdf, "swap_used_bytes", unit, name="swap used", line={"color": COLORS["swap"]})
    if "swap_total_bytes" in sysdf.columns:
        _line(
            fig, sysdf, "swap_total_bytes", unit, name="swap total", line={"color": "#999", "dash": "dash", "width": 1}
        )
    _mark(fig, at)
    return _layout(fig, "Swap", unit, height=260)


def process_figure(
    tl: pd.DataFrame, own_col: str, sub_col: str, label: str, unit: str, at: pd.Timestamp | None, title: str
) -> go.Figure:
    """process_timeline frame (ts, own/subtree columns, maybe `_min`) -> own and subtree memory over time, the
    selected moment marked; `title` names the process (it is in the exported PNG)."""
    fig = go.Figure()
    iso = [iso_z(t) for t in tl["ts"]]
    for col, kind in ((sub_col, "subtree"), (own_col, "own")):
        if col in tl.columns:
            _line(
                fig,
                tl,
                col,
                unit,
                name=f"{kind} {label}",
                line={"color": COLORS[kind]},
                customdata=iso,
                mode="lines+markers",
                marker={"size": 3},
            )
    _mark(fig, at)
    return _layout(fig, f"{plain(title)}: own and subtree {label}", unit, hovermode="closest")


def stacked_figure(
    long: pd.DataFrame,
    band_col: str,
    value_col: str,
    title: str,
    unit: str,
    at: pd.Timestamp | None,
    *,
    order: Sequence[object] | None = None,
    label: Callable[[object], str] = plain,
    stackgroup: str = "groups",
    ts: pd.Series | None = None,
    clickable: bool = False,
    legend_reversed: bool = False,
) -> go.Figure:
    """Long frame (ts, <band_col>, <value_col>) -> stacked areas over time, one band per value of `band_col` (rows of
    a band at one moment summed), the legend on the right.

    `order`: the bands from the bottom up (bands without data skipped); None = biggest peak at the bottom. `label`
    gives a band's legend name (as text Plotly shows literally). With `ts` (sample times) a band absent at one of
    them counts 0 there, not an interpolated value (a bucketed query frame holds each bucket's maximum per band).
    `clickable`: each point's customdata is its band's value as text.
    """
    div = UNITS[unit]
    fig = go.Figure()
    if len(long):
        wide = long.pivot_table(index="ts", columns=band_col, values=value_col, aggfunc="sum", observed=True)
        if ts is not None:
            wide = wide.reindex(pd.DatetimeIndex(ts.unique()).union(wide.index))
        wide = wide.astype("Float64").fillna(0)
        bands = wide.max().sort_values(ascending=False).index if order is None else order
        x = wide.index.tz_convert("UTC").tz_localize(None)
        for band in [b for b in bands if b in wide.columns]:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=wide[band].astype("Float64") / div,
                    name=label(band),
                    stackgroup=stackgroup,
                    mode="lines",
                    line={"width": 0.8, "shape": "hv"},
                    customdata=[str(band)] * len(wide) if clickable else None,
                    hovertemplate=f"%{{y:.1f}} {unit}",
                )
            )
    _mark(fig, at)
    _layout(fig, title, unit)
    legend = {"orientation": "v", "x": 1.02, "y": 1, "yanchor": "top", "font": {"size": 10}}
    # a single band keeps its legend entry too: the legend is where a band is named (Plotly hides a lone one)
    fig.update_layout(legend=legend | ({"traceorder": "reversed"} if legend_reversed else {}), showlegend=True)
    return fig


def children_figure(
    trends: pd.DataFrame,
    value_col: str,
    label: str,
    unit: str,
    at: pd.Timestamp | None,
    title: str,
    max_children: int = 12,
    timeline_ts: pd.Series | None = None,
) -> go.Figure:
    """query.children frame (ts, child_pid, child_start_time, child_name, subtree_<m>) -> stacked
    areas per child of the process `title` names.

    The `max_children` biggest children (by peak) get their own band, the rest are summed as "other children"; a
    legend entry is "name (pid)", with the start time when that text would repeat. `timeline_ts` (the parent's
    sample times) makes a child absent at a moment count 0 there.
    """
    ident = pd.MultiIndex.from_frame(trends[["child_pid", "child_start_time"]].astype(object))
    trends = trends.assign(child_proc_id=pd.factorize(ident)[0])
    peaks = trends.groupby("child_proc_id", observed=True)[value_col].max().sort_values(ascending=False)
    keep = peaks.index[:max_children]
    t = trends.assign(band=trends["child_proc_id"].where(trends["child_proc_id"].isin(set(keep)), -1))
    names = t.drop_duplicates("band").set_index("band")
    text = plain_series(names["child_name"]) + " (" + names["child_pid"].astype(str) + ")"
    if "child_start_time" in names.columns:
        twice = text.duplicated(keep=False)
        text[twice] = text[twice] + " from " + names.loc[twice, "child_start_time"].dt.strftime("%H:%M:%S")
    legend = text.to_dict() | {-1: "other children"}
    return stacked_figure(
        t,
        "band",
        value_col,
        f"{plain(title)}: children's subtree {label} (stacked)",
        unit,
        at,
        order=[*keep, -1],
        label=lambda band: legend.get(band, str(band)),
        stackgroup="children",
        ts=timeline_ts,
    )


def treemap_figure(
    snap_df: pd.DataFrame, own_col: str, unit: str, at: pd.Timestamp | None = None, max_nodes: int = 600
) -> go.Figure:
    """One snapshot's PROCS+TREE rows (proc_id, pid, name, parent_row, own metric) -> treemap of subtree memory, its
    title naming the moment `at` and the metric (for the exported PNG).

    Node ids are proc_ids; a click reports the id. With more than `max_nodes` processes only the biggest subtrees
    (and their ancestors) are drawn.
    """
    df = snap_df.reset_index(drop=True)
    sub_col = "subtree_" + own_col
    parent = df["parent_row"].to_numpy().astype(np.int64)
    if len(df) > max_nodes:
        keep = np.zeros(len(df), bool)
        keep[np.argsort(-df[sub_col].astype("Float64").fillna(0).to_numpy(), kind="stable")[:max_nodes]] = True
        while True:  # add the ancestors of kept rows, one pass per level
            grown = keep.copy()
            grown[parent[keep & (parent >= 0)]] = True
            if (grown == keep).all():
                break
            keep = grown
        new_pos = np.cumsum(keep) - 1
        parent = np.where(parent[keep] >= 0, new_pos[np.maximum(parent[keep], 0)], -1)
        df = df[keep].reset_index(drop=True)
    ids = df["proc_id"].astype(str).to_numpy()
    return _hierarchy_figure(
        go.Treemap,
        ids=ids.tolist(),
        labels=(plain_series(df["name"]) + " (" + df["pid"].astype(str) + ")").tolist(),
        parents=np.where(parent >= 0, ids[np.maximum(parent, 0)], "").tolist(),
        values=df[sub_col],
        customdata=df["pid"].tolist(),
        unit=unit,
        value_name="subtree ",
        title=f"Process tree at {_moment_text(at)}: box size = subtree {_metric_text(own_col)}",
        height=480,
    )


def _hierarchy_figure(
    trace: type[go.Treemap] | type[go.Icicle],
    *,
    ids: list[str],
    labels: list[str],
    parents: list[str],
    values: pd.Series,
    customdata: list[object],
    unit: str,
    value_name: str,
    title: str,
    height: int,
) -> go.Figure:
    """Treemap or icicle of byte `values` (null = 0) shown in `unit`: each node's value is its whole branch's."""
    digits = 0 if unit == "MiB" else 2  # a 300 MiB box reads "0.29 GiB", not "0 GiB"
    fig = go.Figure(
        trace(
            ids=ids,
            labels=labels,
            parents=parents,
            values=(values.astype("Float64").fillna(0) / UNITS[unit]).tolist(),
            branchvalues="total",
            customdata=customdata,
            hovertemplate=f"%{{label}}<br>{value_name}%{{value:.{digits + 1}f}} {unit}<extra></extra>",
            texttemplate=f"%{{label}}<br>%{{value:.{digits}f}} {unit}",
            maxdepth=4,
            marker={"colorscale": "Blues"},
        )
    )
    fig.update_layout(
        height=height,
        margin={"l": 0, "r": 0, "t": 30, "b": 0},
        title={"text": title, "x": 0, "font": {"size": 15}},
    )
    return fig


def accounting_figure(sysdf: pd.DataFrame, unit: str, at: pd.Timestamp | None) -> go.Figure:
    """system_series frame (ts, mem_used_bytes, procs_rss_bytes, procs_pss_bytes) -> used RAM against the sum of
    process RSS and of process PSS (RSS counts a shared page once per process that maps it, PSS splits it)."""
    fig = go.Figure()
    if "procs_pss_bytes" in sysdf.columns:
        _line(fig, sysdf, "procs_pss_bytes", unit, name="Σ PSS", line={"color": "#2ca02c", "width": 2})
    _line(fig, sysdf, "procs_rss_bytes", unit, name="Σ RSS", line={"color": COLORS["procs"], "width": 2})
    _line(fig, sysdf, "mem_used_bytes", unit, name="RAM used", line=REFERENCE_LINE)
    _mark(fig, at)
    return _layout(fig, "Σ RSS and Σ PSS against RAM used (RSS counts shared pages once per process)", unit)


def swap_split_figure(sysdf: pd.DataFrame, holders: pd.DataFrame, unit: str, at: pd.Timestamp | None) -> go.Figure:
    """system_summary frame (ts, swap_used_bytes) and group_totals by name with metric swap (ts, group, swap_bytes)
    -> the top holders' swap stacked, under the system's swap used line."""
    fig = stacked_figure(
        holders,
        "group",
        "swap_bytes",
        "",
        unit,
        None,
        ts=holders["ts"],
        clickable=True,
        legend_reversed=True,
    )
    div = UNITS[unit]
    if "swap_used_bytes" in sysdf.columns:
        fig.add_trace(
            go.Scatter(
                x=_x(sysdf["ts"]),
                y=sysdf["swap_used_bytes"].astype("Float64") / div,
                name="swap used (system)",
                line={"color": COLORS["swap"], "width": 2},
                hovertemplate=f"%{{y:.1f}} {unit}",
            )
        )
    _mark(fig, at)
    fig.update_layout(title={"text": "Swap used, split by the top swap holders (by name)", "x": 0}, height=300)
    return fig


def icicle_figure(tree_df: pd.DataFrame, value_col: str, unit: str, at: pd.Timestamp | None = None) -> go.Figure:
    """cgroup_tree frame (cgroup, parent, label, tree_<m>) -> icicle of rolled-up cgroup totals at the moment `at`
    (named in the title); ids are cgroup paths (a click reports the path)."""
    paths = tree_df["cgroup"].astype(str).tolist()
    return _hierarchy_figure(
        go.Icicle,
        ids=paths,
        labels=plain_series(tree_df["label"]).tolist(),
        parents=tree_df["parent"].fillna("").astype(str).tolist(),
        values=tree_df[value_col],
        customdata=paths,
        unit=unit,
        value_name="",
        title=f"cgroup tree at {_moment_text(at)}: rolled-up {_metric_text(value_col)} per cgroup",
        height=380,
    )


def _fmt_size(n: float, unit: str) -> str:
    return f"{n / UNITS[unit]:,.{0 if unit == 'MiB' else 2}f} {unit}"


def add_spike_bands(
    fig: go.Figure, spikes: pd.DataFrame, unit: str, pad_s: float = 0.0, label: str = "spike", max_bands: int = 60
) -> go.Figure:
    """Spike frame (start, end, peak_ts, peak_bytes, size_bytes) -> `fig` with a shaded band per spike and a marker at
    each peak; returns `fig` (changed in place: call it inside a figure build, never on a cached figure).

    Bands run from start - pad_s to end + pad_s (half a sample interval shows a one-sample spike); the peak markers
    carry the ISO peak time as customdata, so a click on one selects that moment. At most `max_bands` (the largest).
    """
    if spikes is None or len(spikes) == 0:
        return fig
    shown = spikes.nlargest(max_bands, "size_bytes") if len(spikes) > max_bands else spikes
    pad = pd.Timedelta(seconds=max(pad_s, 0.0))
    x0 = _x(shown["start"] - pad)
    x1 = _x(shown["end"] + pad)
    bands = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": a,
            "x1": b,
            "y0": 0,
            "y1": 1,
            "fillcolor": COLORS["spike"],
            "opacity": 0.18,
            "line": {"width": 0},
            "layer": "below",
        }
        for a, b in zip(x0, x1, strict=True)  # one shape per spike (a few), not per sample
    ]
    fig.update_layout(shapes=[*fig.layout.shapes, *bands])
    div = UNITS[unit]
    text = (
        f"{label} +"
        + shown["size_bytes"].map(lambda v: _fmt_size(v, unit))
        + " · "
        + shown["start"].dt.strftime("%H:%M:%S")
        + "–"
        + shown["end"].dt.strftime("%H:%M:%S")
        + " UTC"
    )
    fig.add_trace(
        go.Scatter(
            x=_x(shown["peak_ts"]),
            y=shown["peak_bytes"].astype("Float64") / div,
            name=f"{label} (shaded)",
            mode="markers",
            marker={"symbol": "triangle-down", "size": 10, "color": COLORS["spike"], "line": {"width": 1}},
            customdata=[iso_z(t) for t in shown["peak_ts"]],
            hovertext=text.tolist(),
            hovertemplate="%{hovertext}<extra></extra>",
        )
    )
    return fig


def cgroup_figure(tl: pd.DataFrame, value_col: str, label: str, unit: str, at: pd.Timestamp | None) -> go.Figure:
    """cgroup_series frame of one cgroup (ts, <value_col>, memory_current_bytes, maybe `_min`) -> its processes'
    total over time, and the kernel's memory.current when recorded."""
    fig = go.Figure()
    _line(fig, tl, value_col, unit, name=f"Σ {label} of its processes", line={"color": COLORS["procs"], "width": 2})
    if "memory_current_bytes" in tl.columns and tl["memory_current_bytes"].notna().any():
        kernel = "memory.current (kernel, page cache included)"
        _line(fig, tl, "memory_current_bytes", unit, name=kernel, line=REFERENCE_LINE)
    _mark(fig, at)
    return _layout(fig, f"{label} of the selected cgroup and everything below it", unit, height=300)
