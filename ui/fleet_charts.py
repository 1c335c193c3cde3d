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
    times, col = np.unique(used["ts"].to_numpy(dtype="datetime64[ns]"), return_inverse=True)
    pct = np.full((len(hosts), len(times)), np.nan)
    text = np.full((len(hosts), len(times)), "", dtype=object)
    if len(used):
        where = {h: i for i, h in enumerate(hosts)}
        row = used["host"].map(where).to_numpy(dtype=float)
        keep = ~np.isnan(row)  # a host not in `hosts` has no row of the heatmap
        r, c = row[keep].astype(np.int64), col.reshape(-1)[keep]
        used_b = used["mem_used_bytes"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)[keep]
        total = used["mem_total_bytes"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)[keep]
        pct[r, c] = used_b / total * 100  # one row per (host, bucket): memlib.fleet.used_memory's contract
        text[r, c] = [f"{v / UNITS[unit]:.1f} {unit}" if v == v else "" for v in used_b]
    x = _x(pd.Series(pd.to_datetime(times, utc=True))) if len(times) else []
    fig = go.Figure(
        go.Heatmap(
            z=pct,
            x=x,
            y=[plain(h) for h in hosts],
            text=text,
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
