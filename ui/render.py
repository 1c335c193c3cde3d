"""Safe rendering helpers: tables (names only as dataframe cells, control and bidi characters shown as escapes by
memlib.display), durations and times as screen text, downloads.

Bytes and URL times come from memlib.units (the one module for them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from memlib import filters, summary
from memlib.display import visible_frame
from memlib.filters import Filters
from memlib.units import fmt_bytes, fmt_duration  # noqa: F401  (re-exported for the pages)
from ui import nav
from ui.state import UNITS


def fmt_durations(seconds: pd.Series) -> pd.Series:
    """Series of seconds -> series of texts as fmt_duration gives them, vectorised ('–' for null)."""
    s = pd.to_numeric(seconds, errors="coerce").astype(float).to_numpy()
    known = ~np.isnan(s)
    v = np.where(known, s, 0.0).astype(np.int64)
    d, h, m, sec = v // 86400, v % 86400 // 3600, v % 3600 // 60, v % 60

    def as_text(a: np.ndarray) -> pd.Series:
        return pd.Series(a).astype(str)

    out = np.select(
        [~known, s < 60, s < 3600, s < 86400],
        [
            "–",
            (as_text(np.round(np.where(known, s, 0)).astype(np.int64)) + " s").to_numpy(),
            (as_text(v // 60) + " min " + as_text(sec) + " s").to_numpy(),
            (as_text(v // 3600) + " h " + as_text(m) + " min").to_numpy(),
        ],
        (as_text(d) + " d " + as_text(h) + " h").to_numpy(),
    )
    return pd.Series(out, index=seconds.index, dtype=object)


def fmt_ts(ts: pd.Timestamp | None) -> str:
    """UTC timestamp -> '2026-11-27 10:05:02 UTC'; null -> '–'."""
    if ts is None or pd.isna(ts):
        return "–"
    return pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M:%S UTC")


MISSING = "–"  # how a table shows an unknown value (never "None", never 0)


def in_unit(values: pd.Series, unit: str) -> pd.Series:
    """Byte series -> float series in `unit` (MiB or GiB), nulls kept."""
    return values.astype("Float64") / UNITS[unit]


def file_stamp(ts: pd.Timestamp | None) -> str:
    """Timestamp -> file-name-safe UTC stamp '2026-11-27T10-05-02Z' ('latest' when None)."""
    if ts is None or pd.isna(ts):
        return "latest"
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H-%M-%SZ")


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """Frame -> UTF-8 CSV bytes (no index, ISO UTC times)."""
    return df.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ").encode("utf-8")


def to_json_bytes(df: pd.DataFrame) -> bytes:
    """Frame -> UTF-8 JSON bytes: a list of records, ISO UTC times, nulls as null."""
    return df.to_json(orient="records", date_format="iso", date_unit="ms", indent=1).encode("utf-8")


def download_buttons(df: pd.DataFrame, name: str, key: str, about: str | None = None) -> None:
    """CSV and JSON download buttons for exactly the rows of `df`, files named `<name>.csv` / `<name>.json`; `about`
    (what the columns are) is added to the buttons' help."""
    rows = f"{len(df):,} row" + ("" if len(df) == 1 else "s")
    box = st.container(horizontal=True, gap="small")
    for ext, mime, encode in (("csv", "text/csv", to_csv_bytes), ("json", "application/json", to_json_bytes)):
        box.download_button(
            f"⬇ {ext.upper()}",
            data=lambda encode=encode: encode(df),
            file_name=f"{name}.{ext}",
            mime=mime,
            key=f"{key}_{ext}",
            on_click="ignore",
            help=f"{rows} as {name}.{ext}" + (f". {about}." if about else ""),
        )


def memory_format(unit: str) -> str:
    """printf format of a memory value already converted to `unit` ('%.1f MiB', '%.2f GiB')."""
    return f"%.{1 if unit == 'MiB' else 2}f {unit}"


def memory_column(label: str, unit: str, help: str | None = None) -> st.column_config.NumberColumn:
    """Column config for a memory column already converted to `unit`."""
    return st.column_config.NumberColumn(label, format=memory_format(unit), help=help)


NAME_PX = 150  # width of a process-name column: room for ~20 characters


def process_table_config(unit: str, metric_label: str = "RSS") -> dict[str, object]:
    """Column configs for a process table (PID, PPID, name, cmdline, user, memory, lifetime)."""
    return {
        "pid": st.column_config.NumberColumn("PID", format="%d", help="Click to open the PID drill-down"),
        "ppid": st.column_config.NumberColumn("PPID", format="%d", help="Click to open the parent"),
        "name": st.column_config.TextColumn("Name", width=NAME_PX),  # not sized to the first rows' short names
        "cmdline": st.column_config.TextColumn("Command line", width="large"),
        "user": st.column_config.TextColumn("User"),
        "own": memory_column(f"Own {metric_label}", unit),
        "subtree": memory_column(f"Subtree {metric_label}", unit, "Own + all descendants at this moment"),
        "peak": memory_column(
            f"Peak subtree {metric_label}", unit, "Highest subtree total at any one moment of the recording"
        ),
        "descendants": st.column_config.NumberColumn("Descendants", format="%d"),
        "lifetime": st.column_config.TextColumn("Lifetime"),
        "start": st.column_config.DatetimeColumn("Started", format="YYYY-MM-DD HH:mm:ss"),
        "level": st.column_config.NumberColumn("Level", format="%d"),
        "status": st.column_config.TextColumn("Status", help="alive at both ends of the window, new, or exited"),
        "before": memory_column(f"{metric_label} at start", unit),
        "after": memory_column(f"{metric_label} at end", unit),
        "growth": memory_column(f"Growth {metric_label}", unit, "Own growth between the window's ends"),
        "subtree growth": memory_column(f"Subtree growth {metric_label}", unit),
    }


def table_height(rows: int, cap: int = 420) -> int:
    """Pixel height of a dataframe showing `rows` rows (header + 35 px a row, at least one row), at most `cap`."""
    return min(38 + 35 * max(rows, 1), cap)


def clickable_table(
    table: pd.DataFrame,
    *,
    key: str,
    column_config: Mapping[str, Any],
    on_row: Callable[[pd.Series], None] | None = None,
    processes: pd.DataFrame | None = None,
    snapshot: pd.DataFrame | None = None,
    max_height: int | None = 420,
    width: str = "stretch",
) -> pd.Series | None:
    """A table whose rows and cells can be clicked, one at a time (names only as cells, never Markdown or HTML).

    Returns the clicked row of `processes` (the rows shown, same order; default: `table` itself), or None; a click
    on a cell of the `ppid` column returns the parent's row from `snapshot` (None when it is not in it). A click also
    calls `on_row` with that row. The height fits the rows up to `max_height` px (None: Streamlit's automatic height).
    """
    event = st.dataframe(
        visible_frame(table),
        hide_index=True,
        placeholder=MISSING,
        width=width,
        height="auto" if max_height is None else table_height(len(table), max_height),
        column_config=column_config,
        on_select="rerun",
        selection_mode=["single-row", "single-cell"],
        key=key,
    )
    picked = nav.clicked_process(event, processes if processes is not None else table, snapshot)
    if picked is not None and on_row is not None:
        on_row(picked)
    return picked


def shown_members(
    members: pd.DataFrame, snap_df: pd.DataFrame, keep: Filters, own_col: str
) -> tuple[pd.DataFrame, int]:
    """Member rows of a group or cgroup (rows of `snap_df`, the snapshot) and the sidebar filters -> (the members the
    filters keep, biggest own value first; how many the filters hide)."""
    members = members.sort_values([own_col, "pid"], ascending=[False, True], na_position="last", kind="stable")
    kept = filters.filter_snapshot(snap_df, keep)
    inside = members["proc_id"].isin(kept.loc[kept["kept"].to_numpy(dtype=bool), "proc_id"]).to_numpy()
    return members[inside].reset_index(drop=True), int((~inside).sum())


def process_rows(rows: pd.DataFrame, unit: str, own_col: str, sub_col: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Process rows (snapshot columns) -> the shown process table: pid, ppid, name, own, subtree (in `unit`),
    descendants, user, `extra` text columns, cmdline (names as plain values for dataframe cells, never Markdown)."""
    out = {
        "pid": rows["pid"].to_numpy(),
        "ppid": rows["ppid"].to_numpy(),
        "name": rows["name"].astype(str).to_numpy(),
        "own": in_unit(rows[own_col], unit).to_numpy(),
        "subtree": in_unit(rows[sub_col], unit).to_numpy(),
        "descendants": rows["descendants"].to_numpy(),
        "user": rows["user"].astype(str).to_numpy(),
    }
    out |= {col: rows[col].astype(str).to_numpy() for col in extra}
    out["cmdline"] = rows["cmdline"].astype(str).to_numpy()
    return pd.DataFrame(out)


def unattributed(now: pd.Series, metric: str) -> tuple[str, str]:
    """A latest_system row and the shown metric -> (headline text, explanation) of RAM used that no process
    accounts for (summary.attributed): when the process sum exceeds used RAM the text says so, never a bare
    negative number."""
    basis = "pss" if metric == "pss" else "rss"
    row = summary.attributed(now.to_frame().T, basis).iloc[0]
    label = basis.upper()
    if pd.isna(row["unattributed_bytes"]):
        return "–", f"Unknown at this moment (RAM used or the process {label} sum is missing)."
    if row["overcounted_bytes"] > 0:
        return "none", (
            f"The sum of process {label} exceeds RAM used by {fmt_bytes(row['overcounted_bytes'])}: shared pages "
            "are counted once per process that maps them, so nothing is left to attribute."
        )
    return fmt_bytes(row["unattributed_bytes"]), (
        f"RAM used minus the sum of process {label} (kernel, page tables, shared memory not mapped…)."
    )
