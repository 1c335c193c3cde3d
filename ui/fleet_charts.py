"""Plotly figures of the Fleet page: every host's used memory as a heatmap (hosts x time) and a group's total per
host over time. Names reach Plotly only through ui.charts.plain (escaped, control characters visible)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ui.charts import COLORWAY, _layout, _mark, _x, plain, plain_series
from ui.state import UNITS


def used_heatmap(used: pd.DataFrame, hosts: list[str], unit: str, at: pd.Timestamp | None) -> go.Figure:
    """memlib.fleet.used_memory rows -> a heatmap: one row per host (in `hosts` order), one column per time bucket,
    colour = the bucket's peak used memory as % of MemTotal; a bucket without samples (a stale host) stays empty."""
    times = np.sort(used["ts"].unique()) if len(used) else np.array([], dtype="datetime64[ns]")
    pct = pd.DataFrame(np.nan, index=hosts, columns=times)
    text = pd.DataFrame("", index=hosts, columns=times)
    if len(used):
        share = used["mem_used_bytes"].astype("Float64") / used["mem_total_bytes"].astype("Float64") * 100
        table = used.assign(pct=share.astype(float))
        pct.update(table.pivot_table(index="host", columns="ts", values="pct", aggfunc="max"))
        shown = (used["mem_used_bytes"].astype("Float64") / UNITS[unit]).round(1).astype(str) + f" {unit}"
        text.update(used.assign(t=shown).pivot_table(index="host", columns="ts", values="t", aggfunc="first"))
    x = _x(pd.Series(pd.to_datetime(times, utc=True))) if len(times) else []
    fig = go.Figure(
        go.Heatmap(
            z=pct.to_numpy(dtype=float),
            x=x,
            y=[plain(h) for h in hosts],
            text=text.to_numpy(dtype=object),
            colorscale="YlOrRd",
            zmin=0,
            zmax=100,
            colorbar={"title": "% used"},
            hovertemplate="%{y}<br>%{x}<br>%{text} (%{z:.0f} % of RAM)<extra></extra>",
            hoverongaps=False,
        )
    )
    _layout(fig, "Used memory per host (peak in each bucket, % of RAM)", unit, height=max(240, 60 + 22 * len(hosts)),
            hovermode="closest")  # fmt: skip
    fig.update_layout(yaxis={"title": None, "rangemode": "normal", "tickformat": None, "autorange": "reversed"})
    _mark(fig, at)
    return fig


def group_figure(rows: pd.DataFrame, unit: str, at: pd.Timestamp | None) -> go.Figure:
    """memlib.fleet.groups rows -> one line per (host, group): the peak total RSS per bucket, the band to its low."""
    fig = go.Figure()
    div = UNITS[unit]
    for i, ((host, group), part) in enumerate(rows.groupby(["host", "group"], sort=True)):
        color = COLORWAY[i % len(COLORWAY)]
        name = f"{plain(host)} · {plain(group)}"
        fig.add_trace(go.Scatter(x=_x(part["ts"]), y=part["rss_bytes_min"].astype("Float64") / div, mode="lines",
                                 line={"width": 0, "color": color}, showlegend=False, hoverinfo="skip",
                                 legendgroup=name))  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=_x(part["ts"]),
                y=part["rss_bytes"].astype("Float64") / div,
                mode="lines",
                name=name,
                legendgroup=name,
                line={"color": color},
                fill="tonexty",
                fillcolor="rgba(0,0,0,0.05)",
                customdata=plain_series(part["group"]),
                hovertemplate=f"{name}<br>%{{y:.1f}} {unit}<extra></extra>",
            )
        )
    _layout(fig, "Group total RSS per host (peak and low in each bucket)", unit, hovermode="closest")
    _mark(fig, at)
    return fig
