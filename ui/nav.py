"""The page router (every page's url path), the bootstrap every page file runs first, and click -> view helpers.

A `pages/` folder next to app.py makes Streamlit run a deep link such as `/pid?pid=1` on a fresh server as the bare
page file, without app.py (legacy auto-discovery stays on until `st.navigation` ran once in the server process).
Every page file therefore calls `ensure_router()` first: when app.py's router is not active in this run it runs the
router itself (which calls `st.navigation` with the same url paths, so the same page is chosen) and stops.
`preload()` imports what the pages need (the query engine, plotly, the sidebar) and opens the query engine; serve.py
calls it at server start, so the first viewer's page does not pay for it.
With `PMI_RUN_TIMES=FILE` in the environment every script run appends its page and server time to FILE (the
load benchmark's server-side figure); without it nothing is timed.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from memlib.units import to_utc  # (fails early and clearly when memlib is not importable)
from ui import auth, state

PAGE_OVERVIEW = "pages/overview.py"
PAGE_LEVEL = "pages/level.py"
PAGE_PID = "pages/pid.py"
PAGE_GROUPS = "pages/groups.py"
PAGE_CGROUPS = "pages/cgroups.py"
PAGE_COMPARE = "pages/compare.py"
PAGE_LEAKS = "pages/leaks.py"
PAGE_FLEET = "pages/fleet.py"

# a local file, served by this server: a ":material/...:" page icon makes every browser fetch it from fonts.gstatic.com
PAGE_ICON = Path(__file__).resolve().parent / "icon.png"

_local = threading.local()


def preload() -> None:
    """Import the modules every page uses and open the query engine (server start, before any viewer)."""
    import plotly.graph_objects  # noqa: F401  (the charts' library: the heaviest import)

    from memlib import query
    from ui import charts, data, render, sidebar  # noqa: F401

    query.warm_up()


def pages() -> list[Any]:
    """The st.Page objects of the app, in sidebar order."""
    return [
        st.Page(PAGE_OVERVIEW, title="Overview", icon=":material/monitoring:", url_path="", default=True),
        st.Page(PAGE_LEVEL, title="Level view", icon=":material/account_tree:", url_path="level"),
        st.Page(PAGE_PID, title="PID drill-down", icon=":material/memory:", url_path="pid"),
        st.Page(PAGE_GROUPS, title="Groups", icon=":material/category:", url_path="groups"),
        st.Page(PAGE_CGROUPS, title="cgroups", icon=":material/folder_open:", url_path="cgroups"),
        st.Page(PAGE_COMPARE, title="Compare two moments", icon=":material/compare_arrows:", url_path="compare"),
        st.Page(PAGE_LEAKS, title="Leaks & spikes", icon=":material/trending_up:", url_path="leaks"),
        st.Page(PAGE_FLEET, title="Fleet", icon=":material/dns:", url_path="fleet"),
    ]


RUN_TIMES_ENV = "PMI_RUN_TIMES"  # a file: every script run appends {"page", "s", "end"} (bench.bench_load sets it)
_times_lock = threading.Lock()


def run_router() -> None:
    """Set the page config, declare the navigation and run the chosen page (what app.py does)."""
    t0 = time.perf_counter()
    st.set_page_config(page_title="PID Memory Inspector", page_icon=str(PAGE_ICON), layout="wide")
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    auth.install_server_guards()  # idempotent; serve.py installs them at server start already
    page, end = None, "done"
    try:
        auth.gate(pages)  # PMI_TOKEN / OIDC access control before any page (deep links included)
        chosen = st.navigation(pages())
        page = chosen.url_path
        chosen.run()
    except BaseException as exc:  # st.stop / st.rerun / st.switch_page end a run by raising
        end = type(exc).__name__
        raise
    finally:
        _local.depth = depth
        if depth == 0 and os.environ.get(RUN_TIMES_ENV):
            _record_run(os.environ[RUN_TIMES_ENV], page, time.perf_counter() - t0, end)
        if depth == 0:
            _release_queries()
            _collect()


_frozen = False


def _release_queries() -> None:
    """This run's thread is done with memlib.query: its cursor (and the query memory it holds) is closed now."""
    query = sys.modules.get("memlib.query")  # (not imported here: a page imports it when it needs it)
    if query is not None:
        query.release_thread()


def _collect() -> None:
    """After a page run: a full garbage collection, so frames caught in reference cycles (pandas makes them) are freed
    now rather than at the collector's next full pass, which counts objects, not bytes (a day's leak scoring left
    ~250 MB that way). After the process's first run, instead, the young garbage is collected and everything alive
    (the imported libraries, mostly) is moved out of the collector's sight (gc.freeze): later full collections then
    take about a millisecond instead of ~0.1 s."""
    global _frozen
    if _frozen:
        gc.collect()
    else:
        _frozen = True
        gc.collect(1)
        gc.freeze()


def _record_run(path: str, page: str | None, seconds: float, end: str) -> None:
    """Append one script run's server time to the PMI_RUN_TIMES file (one JSON line)."""
    line = json.dumps({"page": page, "s": round(seconds, 6), "end": end}) + "\n"
    with _times_lock, open(path, "a", encoding="utf-8") as fh:
        fh.write(line)


def ensure_router() -> None:
    """Called first by every page file: when the page runs without app.py's router, route through it and stop."""
    if getattr(_local, "depth", 0) > 0:
        return
    run_router()
    st.stop()


def go(page: str, view: state.ViewState) -> None:
    """Switch to `page` showing `view` (the URL carries the whole view)."""
    st.switch_page(page, query_params=state.to_query(view))


def _selection(event: Any) -> Any:
    sel = getattr(event, "selection", None)
    if sel is None and isinstance(event, dict):
        sel = event.get("selection")
    return sel


def clicked_process(event: Any, rows: Any, snap_df: Any) -> Any:
    """Dataframe selection event over `rows` (the process rows shown, same order) -> the row to open, or None.

    A selected row or a cell opens that row; a cell in the `ppid` column opens its parent (looked up in `snap_df`,
    the whole snapshot, by pid and the parent's start time when known), None when the parent is not in it.
    """
    sel = _selection(event)
    if sel is None:
        return None
    row, column = None, None
    cells = sel.get("cells") or [] if isinstance(sel, dict) else getattr(sel, "cells", []) or []
    picked_rows = sel.get("rows") or [] if isinstance(sel, dict) else getattr(sel, "rows", []) or []
    if cells:
        row, column = int(cells[0][0]), str(cells[0][1])
    elif picked_rows:
        row = int(picked_rows[0])
    if row is None or row >= len(rows):
        return None
    picked = rows.iloc[row]
    if column != "ppid":
        return picked
    if snap_df is None:
        return None
    parent = snap_df[snap_df["pid"].to_numpy() == int(picked["ppid"])]
    if "parent_start_time" in picked and pd.notna(picked["parent_start_time"]) and len(parent) > 1:
        parent = parent[parent["start_time"] == picked["parent_start_time"]]
    return parent.iloc[0] if len(parent) else None


def process_view(view: state.ViewState, row: Any, at: Any = None) -> state.ViewState:
    """A process row (pid, start_time) -> `view` showing exactly that process on the drill-down (pid + start), at
    the moment `at` when given."""
    changes: dict[str, Any] = {"pid": int(row["pid"]), "start": to_utc(row["start_time"])}
    if at is not None:
        changes["at"] = to_utc(at)
    return view.replace(**changes)


def clicked_point(event: Any) -> Any:
    """Plotly selection event -> the first selected point's customdata value (a `{"0": v}` dict unwrapped), or None."""
    sel = _selection(event)
    points = (sel.get("points") if isinstance(sel, dict) else getattr(sel, "points", None)) if sel else None
    if not points:
        return None
    cd = points[0].get("customdata")
    if isinstance(cd, dict):
        cd = cd.get("0", next(iter(cd.values()), None))
    elif isinstance(cd, list | tuple):
        cd = cd[0] if cd else None
    return cd


def clicked_node(event: Any) -> int | None:
    """Plotly treemap click event -> the clicked node's id as proc_id (ids are proc_ids), or None."""
    sel = _selection(event)
    points = (sel.get("points") if isinstance(sel, dict) else getattr(sel, "points", None)) if sel else None
    if not points:
        return None
    node = points[0].get("id")
    try:
        return int(node)
    except (TypeError, ValueError):
        return None


def parse_moment(value: Any) -> Any:
    """A clicked point's customdata (ISO time text) -> UTC Timestamp, or None when absent or not a time."""
    if value is None:
        return None
    try:
        return state.parse_time(str(value))
    except ValueError:
        return None
