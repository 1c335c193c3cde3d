"""Data source choice and the caches over memlib that every page shares.

Order: `PMI_DUMPS=DIR` or `streamlit run app.py -- --dumps DIR`, else `dumps/` when it holds data, else the shipped
`sample/dumps/`. Every cached result is keyed on the files' (name, size, mtime) fingerprint, so a collector writing
new samples invalidates the caches on the next run while unchanged files cost one directory listing.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from memlib import alerts, cgroups, compare, groups, leaks, load, spikes, stats, store, summary, timeline, tree, window
from memlib.schema import MEMORY_METRICS

APP_DIR = Path(__file__).resolve().parent.parent
MAX_CHART_POINTS = 1500
MAX_DATASETS = 2  # recordings kept loaded at once (server default + one viewer choice): bounds server memory


@dataclass(frozen=True)
class DataSource:
    """Where the data comes from: `path` (None when nothing exists), `origin` and a human sentence about it."""

    path: Path | None
    origin: str  # "env" | "arg" | "dumps" | "sample" | "none"
    description: str
    tz: str | None = None

    @property
    def is_sample(self) -> bool:
        """True when the app shows the shipped sample recording."""
        return self.origin == "sample"


def _arg_dumps(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--dumps" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--dumps="):
            return arg.split("=", 1)[1]
    return None


def holds_data(path: Path) -> bool:
    """True when `path` has native segments (`seg-*`) or seed CSVs (`time/process_mem_*.csv`)."""
    if not path.is_dir():
        return False
    if any(path.glob("seg-*")):
        return True
    return any((path / "time").glob("process_mem_*.csv"))


def resolve_source(argv: Sequence[str], env: Mapping[str, str], app_dir: Path = APP_DIR) -> DataSource:
    """argv (after `--`), environment and app folder -> the DataSource the app shows."""
    tz = env.get("PMI_TZ") or None
    explicit = env.get("PMI_DUMPS") or None
    origin = "env"
    if explicit is None:
        explicit = _arg_dumps(argv)
        origin = "arg"
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        how = "PMI_DUMPS" if origin == "env" else "--dumps"
        if not path.is_dir():
            return DataSource(None, "none", f"The dumps folder {path} (from {how}) does not exist.", tz)
        return DataSource(path, origin, f"{path} (from {how})", tz)
    dumps = app_dir / "dumps"
    if holds_data(dumps):
        return DataSource(dumps, "dumps", f"{dumps}", tz)
    sample = app_dir / "sample" / "dumps"
    if holds_data(sample):
        return DataSource(sample, "sample", f"the shipped sample recording ({sample}): dumps/ holds no data yet", tz)
    return DataSource(None, "none", "No data: dumps/ is empty and the shipped sample is missing.", tz)


def server_source() -> DataSource:
    """The DataSource for this server process (sys.argv after `--`, os.environ), before any viewer choice."""
    return resolve_source(sys.argv[1:], os.environ)


def current_source() -> DataSource:
    """The DataSource of this run: the viewer's listed choice (URL `source`, see ui.source), else server_source()."""
    from ui import source  # ui.source imports this module

    return source.current_choice().source


def fingerprint(path: Path, keys: tuple[str, ...] | None = None) -> tuple:
    """(name, size, mtime_ns) of every file in `path` and `path/time` (with `keys`: of the native segments with
    those keys only, plus every other file), sorted: changes when samples are added."""
    out = []
    for folder in (path, path / "time"):
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if keys is not None and folder is path and _segment_key(entry.name) not in (None, *keys):
                        continue
                    if entry.is_file():
                        st_ = entry.stat()
                        out.append((folder.name, entry.name, st_.st_size, st_.st_mtime_ns))
        except FileNotFoundError:
            continue
    return tuple(sorted(out))


def _segment_key(name: str) -> str | None:
    m = store.SEGMENT_RE.match(name)
    return None if m is None else f"{m.group(1)}Z-{m.group(2)}"


def _load(path: str, tz: str | None, window: tuple | None) -> load.Dataset:
    """memlib's cached loader (it keeps the 2 most recent recordings, one window of a long one; an unchanged folder
    costs a listing, appended samples are read alone), with a spinner when the data is not in memory yet."""
    if load.is_loaded(path, tz, window):
        return load.load_dumps(path, tz=tz, window=window)
    with st.spinner("Loading the recording…"):
        return load.load_dumps(path, tz=tz, window=window)


@dataclass(frozen=True)
class Loaded:
    """A loaded dataset plus the cache key (`token`) the derived caches use.

    For a recording longer than window.MAX_WINDOW_HOURS, `ds` holds the process rows of `window` only (whole
    segments around it) and `span` is the whole recording's (first, last); both are None otherwise. `partial`: `ds`
    is only the most recent part (FIRST_PAINT_HOURS) while the rest loads in the background (see load_current)."""

    source: DataSource
    ds: load.Dataset
    token: tuple
    span: tuple[pd.Timestamp, pd.Timestamp] | None = None
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None
    partial: bool = False


@dataclass(frozen=True)
class _Plan:
    token: tuple
    keys: tuple[str, ...] | None
    span: tuple[pd.Timestamp, pd.Timestamp] | None  # the whole recording, when only a window of it is loaded
    window: tuple[pd.Timestamp, pd.Timestamp] | None
    recording: tuple[pd.Timestamp, pd.Timestamp] | None  # first/last sample of the native segments (None: unknown)
    rows: int  # process rows the plan loads (closed segments; 0 when unknown)
    at: pd.Timestamp | None  # the URL's moment (None = latest)


def _plan(source: DataSource) -> _Plan:
    """What to load for the current URL: the whole folder, or for a long native recording the segments around the
    view's window (URL from/to/at, see window.choose_window) -> cache token, keys, spans, window, rows."""
    assert source.path is not None
    from ui import state  # ui.state imports nothing of this module; imported here to keep its import light

    view = state.read_state()
    span = win = keys = None
    spans = window.segment_spans(source.path)
    recording = window.recording_span(spans)
    if window.needs_window(spans, max_window_hours()):
        span = recording
        assert span is not None
        win = window.choose_window(span, view.from_, view.to, view.at, max_window_hours())
        keys = window.selected_keys(spans, *win)
    fp = fingerprint(source.path, keys)
    rows = window.selected_rows(spans, keys)
    return _Plan((str(source.path), source.tz, keys, hash(fp)), keys, span, win, recording, rows, view.at)


def max_window_hours() -> float:
    """Hours of process rows held in memory at once (`PMI_WINDOW_HOURS`, default window.MAX_WINDOW_HOURS)."""
    try:
        return max(1.0, float(os.environ.get("PMI_WINDOW_HOURS", window.MAX_WINDOW_HOURS)))
    except ValueError:
        return window.MAX_WINDOW_HOURS


def load_token(source: DataSource) -> tuple:
    """The cache token load_current would use now (changes when the data or the loaded window changes)."""
    return _plan(source).token if source.path is not None else ()


def fully_loaded(source: DataSource) -> bool:
    """True when what load_current plans to show for `source` is in memory (a partial first paint can go)."""
    if source.path is None:
        return True
    plan = _plan(source)
    with _BACKGROUND_LOCK:
        running = _BACKGROUND.get((str(source.path), source.tz, plan.window))
    return (running is None or running.done()) and load.is_loaded(str(source.path), source.tz, plan.window)


FIRST_PAINT_ROWS = 1_000_000  # a load of more process rows than this shows the last FIRST_PAINT_HOURS first
FIRST_PAINT_HOURS = 1.0
_BACKGROUND: dict[tuple, Future] = {}
_BACKGROUND_LOCK = threading.Lock()
_LOADER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pmi-load")


def _load_and_index(path: str, tz: str | None, win: tuple | None) -> load.Dataset:
    """load_dumps, then the TreeIndex every page needs (so the swap to the whole recording does not build it)."""
    ds = load.load_dumps(path, tz=tz, window=win)
    load.tree_index(ds)
    return ds


def _background_load(path: str, tz: str | None, win: tuple | None) -> Future:
    """Start (once per path, zone and window) load_dumps in the loader thread -> its Future."""
    key = (path, tz, win)
    with _BACKGROUND_LOCK:
        fut = _BACKGROUND.get(key)
        if fut is None:
            for old in [k for k, f in _BACKGROUND.items() if f.done()]:
                del _BACKGROUND[old]  # the result lives in memlib's cache; the Future is not needed any more
            fut = _LOADER.submit(_load_and_index, path, tz, win)
            _BACKGROUND[key] = fut
        return fut


def _first_paint(source: DataSource, plan: _Plan) -> load.Dataset | None:
    """For a big load not in memory yet: start it in the background and return a part of it to show meanwhile (the
    last FIRST_PAINT_HOURS of the planned window, or the hour around the URL's moment); None when the whole load is
    quick or done."""
    path = str(source.path)
    if plan.rows <= FIRST_PAINT_ROWS or plan.recording is None or load.is_loaded(path, source.tz, plan.window):
        return None
    key = (path, source.tz, plan.window)
    with _BACKGROUND_LOCK:
        running = _BACKGROUND.get(key)
    if running is not None and running.done():
        return None
    lo, hi = plan.window if plan.window is not None else plan.recording
    width = pd.Timedelta(hours=FIRST_PAINT_HOURS)
    if plan.at is not None and lo <= plan.at < hi - width / 2:  # a moment asked for: the hour around it
        part: tuple = (plan.at - width / 2, plan.at + width / 2)
    else:
        part = (hi - width, None if plan.window is None else hi)
    ds = load.load_dumps(path, tz=source.tz, window=part)  # before the big load starts: it has both cores to itself
    _background_load(path, source.tz, plan.window)
    return ds if len(ds.snapshots) else None


def load_current(source: DataSource | None = None) -> Loaded | None:
    """Load the current source (cached on its fingerprint); None when there is no data folder.

    A load of more than FIRST_PAINT_ROWS process rows that is not in memory yet runs in a background thread while
    the page shows its last FIRST_PAINT_HOURS (`partial=True`; the sidebar says so and the page reruns by itself
    when the rest is in)."""
    source = source or current_source()
    if source.path is None:
        return None
    plan = _plan(source)
    first = _first_paint(source, plan)
    if first is not None:
        return Loaded(source, first, (*plan.token, "partial"), plan.span, plan.window, partial=True)
    ds = _load(str(source.path), source.tz, plan.window)
    return Loaded(source, ds, plan.token, plan.span, plan.window)


# ---- derived, cached per dataset token (the `_ds` argument is not hashed) ----


@st.cache_resource(max_entries=MAX_DATASETS, show_spinner=False)
def system_summary(token: tuple, _ds: load.Dataset) -> pd.DataFrame:
    """summary.system_summary for the dataset: ts, mem_total/used/available/cached, swap_*, procs_rss, unattributed."""
    return summary.system_summary(_ds.system, _ds.procs)


@st.cache_resource(max_entries=64, show_spinner=False)
def process_stats(token: tuple, _ds: load.Dataset, proc_ids: tuple[int, ...]) -> pd.DataFrame:
    """stats.process_stats for the given processes (one row per proc_id, sorted by proc_id)."""
    return stats.process_stats(_ds.procs, list(proc_ids), lifetime_exact=_ds.info.start_times_exact)


def tree_index(token: tuple, _ds: load.Dataset) -> tree.TreeIndex:
    """tree.TreeIndex over the dataset's procs (row lookups by snapshot and by proc_id), kept with the Dataset
    (load.tree_index; a background load builds it before the page swaps the whole recording in)."""
    if "tree_index" in _ds.derived:
        return load.tree_index(_ds)
    with st.spinner("Indexing the recording…"):
        return load.tree_index(_ds)


@st.cache_resource(max_entries=64, show_spinner=False)
def snapshot(token: tuple, _ds: load.Dataset, snap: int) -> pd.DataFrame:
    """tree.snapshot rows (PROCS + TREE) of one snapshot."""
    return tree.snapshot(_ds.procs, snap, index=tree_index(token, _ds))


@st.cache_resource(max_entries=64, show_spinner=False)
def process_timeline(token: tuple, _ds: load.Dataset, proc_id: int) -> pd.DataFrame:
    """timeline.process_timeline of one process."""
    return timeline.process_timeline(_ds.procs, proc_id, index=tree_index(token, _ds))


@st.cache_resource(max_entries=64, show_spinner=False)
def children_trends(token: tuple, _ds: load.Dataset, proc_id: int, metric: str) -> pd.DataFrame:
    """timeline.children_trends of one process for one metric."""
    return timeline.children_trends(_ds.procs, proc_id, metric=metric, index=tree_index(token, _ds))


@st.cache_resource(max_entries=64, show_spinner=False)
def ancestors(token: tuple, _ds: load.Dataset, proc_id: int, snap: int) -> pd.DataFrame:
    """tree.ancestors: the chain from the root to the process at `snap`."""
    return tree.ancestors(_ds.procs, proc_id, snap, index=tree_index(token, _ds))


@st.cache_resource(max_entries=MAX_DATASETS, show_spinner=False)
def metrics_available(token: tuple, _ds: load.Dataset) -> list[str]:
    """Metric names (rss, pss, uss, swap) that have at least one non-null value in the dataset."""
    out = []
    for name, col in MEMORY_METRICS.items():
        if col in _ds.procs.columns and (name == "rss" or _ds.procs[col].notna().any()):
            out.append(name)
    return out


def decimate(df: pd.DataFrame, max_points: int = MAX_CHART_POINTS, ts: str = "ts") -> pd.DataFrame:
    """Frame of a time series -> at most ~max_points rows, keeping each bucket's maximum (spikes stay visible)."""
    n = len(df)
    if n <= max_points:
        return df
    step = int(np.ceil(n / max_points))
    bucket = np.arange(n) // step
    numeric = df.select_dtypes(include="number").columns
    agg = df[numeric].groupby(bucket).max()
    agg.insert(0, ts, df[ts].groupby(bucket).first().to_numpy())
    return agg.reset_index(drop=True)


@st.cache_resource(max_entries=MAX_DATASETS, show_spinner=False)
def directory(token: tuple, _ds: load.Dataset) -> pd.DataFrame:
    """One row per process (proc_id): pid, start_time, name, cmdline, user, first_ts, last_ts, pid_uses.

    `pid_uses` counts the processes that carried the same pid (>1 means the pid was reused).
    """
    idx = tree_index(token, _ds)
    procs = _ds.procs
    if idx.n_rows == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=procs[c].dtype) for c in ["proc_id", "pid", "start_time", "name", "cmdline", "user"]}
        ).assign(first_ts=pd.Series(dtype=procs["ts"].dtype), last_ts=pd.Series(dtype=procs["ts"].dtype), pid_uses=0)
    first = idx.proc_order[idx.proc_starts[:-1]]
    last = idx.proc_order[idx.proc_starts[1:] - 1]
    out = procs.iloc[first][["proc_id", "pid", "start_time", "name", "cmdline", "user"]].reset_index(drop=True)
    out["first_ts"] = procs["ts"].iloc[first].reset_index(drop=True)
    out["last_ts"] = procs["ts"].iloc[last].reset_index(drop=True)
    out["pid_uses"] = out.groupby("pid")["proc_id"].transform("size").astype("int32")
    return out


def view_for_process(token: tuple, ds: load.Dataset, proc_id: int, view) -> object:
    """A ViewState showing `proc_id` on the drill-down: pid, and start only when the pid was reused."""
    d = directory(token, ds)
    row = d.iloc[int(np.searchsorted(d["proc_id"].to_numpy(), proc_id))]
    start = row["start_time"] if int(row["pid_uses"]) > 1 else None
    return view.replace(pid=int(row["pid"]), start=start)


@st.cache_resource(max_entries=64, show_spinner=False)
def descendants(token: tuple, _ds: load.Dataset, proc_id: int, snap: int) -> pd.DataFrame:
    """tree.descendants_of: the process and everything below it at `snap` (PROCS + TREE rows)."""
    return tree.descendants_of(_ds.procs, proc_id, snap, index=tree_index(token, _ds))


@st.cache_resource(max_entries=32, show_spinner=False)
def top_processes(token: tuple, _ds: load.Dataset, snap: int, metric: str, limit: int = 10) -> pd.DataFrame:
    """summary.top_processes at `snap`: PROCS + TREE rows by own metric, descending."""
    return summary.top_processes(_ds.procs, snap, metric=metric, limit=limit, index=tree_index(token, _ds))


@st.cache_resource(max_entries=32, show_spinner=False)
def top_subtrees(token: tuple, _ds: load.Dataset, snap: int, metric: str, limit: int = 10) -> pd.DataFrame:
    """summary.top_subtrees at `snap`: PROCS + TREE rows by subtree total, descending."""
    return summary.top_subtrees(_ds.procs, snap, metric=metric, limit=limit, index=tree_index(token, _ds))


@st.cache_resource(max_entries=32, show_spinner=False)
def growers(
    token: tuple, _ds: load.Dataset, snap_from: int, snap_to: int, metric: str, by: str = "own", limit: int = 10
) -> pd.DataFrame:
    """summary.growers between two snapshots (GROWER_COLUMNS), biggest growth first."""
    return summary.growers(
        _ds.procs, snap_from, snap_to, metric=metric, limit=limit, by=by, index=tree_index(token, _ds)
    )


@st.cache_resource(max_entries=32, show_spinner=False)
def counts(token: tuple, _ds: load.Dataset, snap_from: int, snap_to: int) -> dict[str, int]:
    """summary.counts over the window [snap_from, snap_to]: processes_before/now, new, exited, seen."""
    return summary.counts(_ds.procs, snap_from, snap_to)


@st.cache_resource(max_entries=32, show_spinner=False)
def figure(kind: str, token: tuple, key: tuple, _build: Callable[[], Any]) -> Any:
    """A Plotly figure built once per (kind, dataset token, key) by `_build()` and shared (never mutate it)."""
    return _build()


# ---- issue 5: groups, cgroups, compare two moments, smaps coverage ----


@st.cache_resource(max_entries=8, show_spinner=False)
def group_totals(token: tuple, _ds: load.Dataset, by: str, metric: str, top: int | None = 10) -> pd.DataFrame:
    """groups.group_totals over the whole recording: ts, snap, group, processes, rss/pss/uss/swap_bytes, smaps_known."""
    return groups.group_totals(_ds.procs, by, top=top, metric=metric)


@st.cache_resource(max_entries=32, show_spinner=False)
def group_members(token: tuple, _ds: load.Dataset, by: str, group: str, snap: int) -> pd.DataFrame:
    """groups.group_members: PROCS + TREE rows of `group` at `snap`, by RSS descending."""
    return groups.group_members(_ds.procs, by, group, snap, index=tree_index(token, _ds))


@st.cache_resource(max_entries=32, show_spinner=False)
def cgroup_tree(token: tuple, _ds: load.Dataset, snap: int) -> pd.DataFrame:
    """cgroups.cgroup_tree at `snap` (CGROUP_TREE_COLUMNS; attrs["unplaced_processes"])."""
    return cgroups.cgroup_tree(_ds.procs, snap, getattr(_ds, "cgroup_mem", None), index=tree_index(token, _ds))


@st.cache_resource(max_entries=16, show_spinner=False)
def cgroup_timeline(token: tuple, _ds: load.Dataset, cgroup: str) -> pd.DataFrame:
    """cgroups.cgroup_timeline of one cgroup, rolled up (CGROUP_TIMELINE_COLUMNS)."""
    return cgroups.cgroup_timeline(
        _ds.procs, cgroups=[cgroup], rollup=True, cgroup_mem=getattr(_ds, "cgroup_mem", None)
    )


@st.cache_resource(max_entries=32, show_spinner=False)
def cgroup_members(token: tuple, _ds: load.Dataset, snap: int, cgroup: str) -> pd.DataFrame:
    """cgroups.cgroup_members: processes in `cgroup` and below it at `snap`, by RSS descending."""
    return cgroups.cgroup_members(_ds.procs, snap, cgroup, recursive=True, index=tree_index(token, _ds))


@st.cache_resource(max_entries=16, show_spinner=False)
def compare_processes(token: tuple, _ds: load.Dataset, snap_a: int, snap_b: int, metric: str) -> pd.DataFrame:
    """compare.compare_processes between two snapshots (COMPARE_COLUMNS), biggest |delta| first."""
    return compare.compare_processes(_ds.procs, snap_a, snap_b, metric=metric, index=tree_index(token, _ds))


@st.cache_resource(max_entries=MAX_DATASETS, show_spinner=False)
def smaps_coverage(token: tuple, _ds: load.Dataset) -> pd.DataFrame:
    """Per snapshot: snap, ts, processes, smaps_known (processes with PSS), smaps_age_s (ts - smaps_ts, median of
    the known ones; null when none is known)."""
    p = _ds.procs
    known = p["pss_bytes"].notna() if "pss_bytes" in p.columns else pd.Series(False, index=p.index)
    age = (p["ts"] - p["smaps_ts"]).dt.total_seconds() if "smaps_ts" in p.columns else pd.Series(np.nan, index=p.index)
    g = pd.DataFrame({"snap": p["snap"], "known": known, "age": age.where(known)}).groupby("snap", sort=True)
    out = pd.DataFrame({"processes": g.size(), "smaps_known": g["known"].sum(), "smaps_age_s": g["age"].median()})
    out = out.reset_index()
    out.insert(1, "ts", _ds.snapshots.set_index("snap")["ts"].reindex(out["snap"]).to_numpy())
    return out


@st.cache_resource(max_entries=8, show_spinner=False)
def swap_holders(token: tuple, _ds: load.Dataset, top: int = 5) -> pd.DataFrame:
    """Top swap holders over time by name: groups.group_totals(procs, "name", top, metric="swap")."""
    return groups.group_totals(_ds.procs, "name", top=top, metric="swap")


# ---- issue 6: leak scores, spikes, alert rules (keyed on the token and the window) ----


@st.cache_resource(max_entries=16, show_spinner="Scoring leaks…")
def leak_scores(token: tuple, _ds: load.Dataset, lo: pd.Timestamp, hi: pd.Timestamp, metric: str) -> pd.DataFrame:
    """leaks.leak_scores over [lo, hi] (LEAK_COLUMNS), most suspicious first."""
    return leaks.leak_scores(_ds.procs, lo, hi, metric=metric, index=tree_index(token, _ds))


@st.cache_resource(max_entries=16, show_spinner="Scoring subtrees…")
def subtree_leak_scores(
    token: tuple, _ds: load.Dataset, lo: pd.Timestamp, hi: pd.Timestamp, metric: str
) -> pd.DataFrame:
    """leaks.subtree_leak_scores over [lo, hi] (SUBTREE_LEAK_COLUMNS), reusing the cached process scores."""
    scores = leak_scores(token, _ds, lo, hi, metric)
    return leaks.subtree_leak_scores(
        _ds.procs, lo, hi, metric=metric, process_scores=scores, index=tree_index(token, _ds)
    )


@st.cache_resource(max_entries=32, show_spinner=False)
def leak_series(
    token: tuple,
    _ds: load.Dataset,
    proc_ids: tuple[int, ...],
    lo: pd.Timestamp,
    hi: pd.Timestamp,
    metric: str,
    subtree: bool = False,
) -> pd.DataFrame:
    """leaks.leak_series (proc_id, ts, floor_bytes) of the given processes' own metric, or of their subtree total."""
    procs = _ds.procs
    if subtree:  # the same resampled floors over the subtree column, under the own column's name
        col = MEMORY_METRICS[metric]
        procs = procs[["ts", "proc_id", "subtree_" + col]].rename(columns={"subtree_" + col: col})
    return leaks.leak_series(procs, list(proc_ids), lo, hi, metric=metric)


@st.cache_resource(max_entries=16, show_spinner=False)
def process_spikes(token: tuple, _ds: load.Dataset, lo: pd.Timestamp, hi: pd.Timestamp, metric: str) -> pd.DataFrame:
    """spikes.process_spikes over [lo, hi] (PROCESS_SPIKE_COLUMNS), largest first."""
    return spikes.process_spikes(_ds.procs, lo, hi, metric=metric, index=tree_index(token, _ds))


@st.cache_resource(max_entries=64, show_spinner=False)
def spikes_of_process(
    token: tuple, _ds: load.Dataset, proc_id: int, lo: pd.Timestamp, hi: pd.Timestamp, metric: str
) -> pd.DataFrame:
    """spikes.process_spikes of one process over [lo, hi] (PROCESS_SPIKE_COLUMNS)."""
    rows = tree_index(token, _ds).rows_of_proc(proc_id)
    return spikes.process_spikes(_ds.procs.iloc[rows], lo, hi, metric=metric)


@st.cache_resource(max_entries=16, show_spinner=False)
def system_spikes(token: tuple, _ds: load.Dataset, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
    """spikes.system_spikes of used RAM over [lo, hi] (SYSTEM_SPIKE_COLUMNS), in time order."""
    system = _ds.system
    ts = system["ts"]
    inside = system[((ts >= lo) & (ts <= hi)).to_numpy()]
    # the window is cut here (baseline included): only used RAM matters, so no process rows are needed
    return spikes.system_spikes(inside, _ds.procs.iloc[0:0])


@st.cache_resource(max_entries=8, show_spinner="Evaluating alert rules…")
def firing_alerts(token: tuple, _ds: load.Dataset, rules_text: str, at: pd.Timestamp | None) -> pd.DataFrame:
    """alerts.evaluate of the rules in `rules_text` at `at` (None = latest): ALERT_COLUMNS, one row per firing alert.

    Raises alerts.RulesError (one line naming the rule and field) when the rules cannot be used.
    """
    return alerts.evaluate(alerts.parse_rules(rules_text), _ds, at=at)
