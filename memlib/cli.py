"""Command line: ``python -m memlib COMMAND --dumps DIR [--format table|csv|json] [--tz ZONE]``.

Commands (memory columns in bytes, times ISO 8601 UTC, ``--at`` = ISO 8601 or ``latest`` -> the last snapshot at
or before it; a time without zone is UTC; ``--min-rss``/``--min-subtree`` are MiB):

- ``system``: ts, snap, mem_total_bytes, mem_used_bytes (MemTotal - MemAvailable), mem_available_bytes, cached_bytes,
  swap_total_bytes, swap_used_bytes, procs_rss_bytes, processes
- ``snapshot [--at T] [--level N] [--min-lifetime S] [--min-rss MB] [--min-subtree MB] [--match TEXT] [--limit K]``:
  ts, pid, ppid, start_time, name, cmdline, user, level, rss_bytes, subtree_rss_bytes, descendants, lifetime_s
  (the processes passing the filters, in pid order; filters as in memlib.filters: trees first, limit last)
- ``timeline --pid P [--start-time T]``: ts, snap, pid, ppid, name, rss_bytes, subtree_rss_bytes, descendants
- ``children --pid P [--start-time T]``: ts, pid, child_pid, child_name, subtree_rss_bytes
- ``top [--at T] [--by rss|subtree|growth] [--since T] [--limit K]``: rank, ts, pid, start_time, name, cmdline,
  rss_bytes, subtree_rss_bytes, descendants (+ subtree_share for subtree); growth: change between ``--since``
  (default: first snapshot) and ``--at`` (summary.growers), columns pid, start_time, name, cmdline, status,
  before_bytes, after_bytes, delta_bytes, subtree_before_bytes, subtree_after_bytes, subtree_delta_bytes
- ``processes --pid P``: the processes that had that pid (proc_id, pid, start_time, first_seen, last_seen, ...)
- ``export [--at T | --all] [filters] [--format csv|json|parquet] [--out FILE]``: every PROCS + TREE column of the
  rows passing the filters (at one snapshot, default latest, or every snapshot with ``--all``)
- ``groups --by name|command|user|cgroup [--top K]``: ts, group, processes, rss_bytes, plus pss_bytes, uss_bytes,
  swap_bytes when known for some process (memlib.groups; ``--top`` folds smaller groups into "(other)")
- ``compare --from T1 --to T2 [--metric rss|pss|uss|swap] [--limit K]``: pid, start_time, name, change (new, exited,
  grown, shrunk, unchanged, unknown), <metric>_before_bytes, <metric>_after_bytes, delta_bytes; largest |delta| first
  (memlib.compare; a pid reused between the moments is one exited and one new process)
- ``leaks [--from T1 --to T2] [--top K] [--subtrees] [--min-duration S]``: pid, start_time, name, cmdline,
  rate_bytes_per_hour, growing_since, score; most suspicious first, score > 0 only (memlib.leaks; --subtrees ranks
  subtrees by the sum of their members' growth and adds top_member_pid, top_member_name)
- ``alerts --rules FILE [--at T] [--format table|json]``: the alerts firing (memlib.alerts; rules format in
  docs/alerts.example.toml): rule, kind, ts, pid, start_time, name, cmdline, value, threshold, unit, message.
  Exit status 1 when any alert fires, 0 when none; a bad rules file is one line on stderr and exit 2

A pid names the latest process with that pid unless ``--start-time`` picks another (nearest within 1 s).
Errors (unknown pid, empty or missing dumps directory, bad time or zone) print one line on stderr and exit 2.
Skipped files are counted on stderr (one line); the data goes to stdout.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from memlib import alerts, compare, filters, groups, leaks, load, schema, stats, summary, timeline, tree
from memlib.display import visible, visible_frame

EXIT_ERROR = 2
TABLE_TEXT_WIDTH = 100  # cmdline cut in table output only

SYSTEM_COLUMNS = [
    "ts", "snap", "mem_total_bytes", "mem_used_bytes", "mem_available_bytes", "cached_bytes", "swap_total_bytes",
    "swap_used_bytes", "procs_rss_bytes", "processes",
]  # fmt: skip
SNAPSHOT_COLUMNS = [
    "ts", "pid", "ppid", "start_time", "name", "cmdline", "user", "level", "rss_bytes", "subtree_rss_bytes",
    "descendants", "lifetime_s",
]  # fmt: skip
TIMELINE_COLUMNS = ["ts", "snap", "pid", "ppid", "name", "rss_bytes", "subtree_rss_bytes", "descendants"]
CHILDREN_COLUMNS = ["ts", "pid", "child_pid", "child_name", "subtree_rss_bytes"]
TOP_COLUMNS = [
    "rank", "ts", "pid", "start_time", "name", "cmdline", "rss_bytes", "subtree_rss_bytes", "descendants",
]  # fmt: skip
GROWTH_COLUMNS = [
    "rank", "pid", "start_time", "name", "cmdline", "status", "before_bytes", "after_bytes", "delta_bytes",
    "subtree_before_bytes", "subtree_after_bytes", "subtree_delta_bytes",
]  # fmt: skip


class CliError(Exception):
    """A user-facing error: printed as one line on stderr, exit status 2."""


# ------------------------------------------------------------------------------------------------ arguments


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0: {text!r}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a pid: {text!r}") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"not a pid: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m memlib`` (one sub-command per view)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dumps",
        default=os.environ.get("PMI_DUMPS", "dumps"),
        help="dumps directory (native segments, seed CSVs under time/); default $PMI_DUMPS or ./dumps",
    )
    common.add_argument("--tz", default=None, help="zone of seed-dump stamps (IANA name); default: this machine's")
    common.add_argument(
        "--load-from", default=None, metavar="T", help="load only native files with samples at or after T (ISO 8601)"
    )
    common.add_argument(
        "--load-to", default=None, metavar="T", help="load only native files with samples at or before T (ISO 8601)"
    )

    def at_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--at", default="latest", help="ISO 8601 time or 'latest' (default)")

    def filter_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--level", type=_nonneg_int, default=None, help="only processes at this tree level")
        p.add_argument("--min-lifetime", type=_nonneg_float, default=0.0, metavar="S", help="seconds")
        p.add_argument("--min-rss", type=_nonneg_float, default=0.0, metavar="MB", help="own RSS, MiB")
        p.add_argument("--min-subtree", type=_nonneg_float, default=0.0, metavar="MB", help="subtree RSS, MiB")
        p.add_argument("--match", default="", help="text in name, command line or user (case-insensitive)")
        p.add_argument("--limit", type=_nonneg_int, default=None, help="top K by own RSS (applied last)")

    def pid_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--pid", type=_pid, required=True)
        p.add_argument("--start-time", default=None, help="ISO 8601 start time (default: the latest such process)")

    shown = argparse.ArgumentParser(add_help=False, parents=[common])
    shown.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")

    parser = argparse.ArgumentParser(
        prog="python -m memlib", description="Query PID Memory Inspector dumps (memory in bytes, times UTC)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("system", parents=[shown], help="system memory per snapshot")
    p = sub.add_parser("snapshot", parents=[shown], help="processes at one moment, filtered")
    at_option(p)
    filter_options(p)
    p = sub.add_parser("timeline", parents=[shown], help="one process over time")
    pid_options(p)
    p = sub.add_parser("children", parents=[shown], help="a process's direct children's subtree totals over time")
    pid_options(p)
    p = sub.add_parser("top", parents=[shown], help="largest processes, subtrees or growers")
    at_option(p)
    p.add_argument("--by", choices=["rss", "subtree", "growth"], default="rss")
    p.add_argument("--since", default=None, help="growth: from this time (default: first snapshot)")
    p.add_argument("--limit", type=_nonneg_int, default=10)
    p = sub.add_parser("processes", parents=[shown], help="the processes that had a pid")
    p.add_argument("--pid", type=_pid, required=True)
    p = sub.add_parser("export", parents=[common], help="filtered rows with every column")
    p.add_argument("--format", choices=["csv", "json", "parquet"], default="csv", help="output format")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--at", default=None, help="ISO 8601 time or 'latest' (default)")
    group.add_argument("--all", action="store_true", help="every snapshot")
    filter_options(p)
    p.add_argument("--out", default=None, help="write to this file instead of stdout")
    p = sub.add_parser("groups", parents=[shown], help="totals over time per name, command, user or cgroup")
    p.add_argument("--by", choices=list(groups.GROUP_BY), default="name")
    p.add_argument("--top", type=_nonneg_int, default=None, help="keep the K largest groups, fold the rest")
    p = sub.add_parser("compare", parents=[shown], help="processes new, exited, grown, shrunk between two moments")
    p.add_argument("--from", dest="from_", required=True, metavar="T1", help="ISO 8601 time or 'latest'")
    p.add_argument("--to", required=True, metavar="T2", help="ISO 8601 time or 'latest'")
    p.add_argument("--metric", choices=list(schema.MEMORY_METRICS), default="rss")
    p.add_argument("--limit", type=_nonneg_int, default=None, help="largest K changes only")
    p = sub.add_parser("leaks", parents=[shown], help="processes or subtrees that keep growing")
    p.add_argument("--from", dest="from_", default=None, metavar="T1", help="window start (default: first sample)")
    p.add_argument("--to", default=None, metavar="T2", help="window end (default: last sample)")
    p.add_argument("--top", type=_nonneg_int, default=10, help="the K most suspicious (default 10)")
    p.add_argument("--subtrees", action="store_true", help="rank subtrees (sum of their members' growth)")
    p.add_argument("--min-duration", type=_nonneg_float, default=600.0, metavar="S",
                   help="seconds a process must be seen in the window to be a suspect (default 600)")  # fmt: skip
    p = sub.add_parser("alerts", parents=[common], help="alert rules firing now (exit 1 when any fires)")
    p.add_argument("--rules", required=True, metavar="FILE", help="TOML rules file (docs/alerts.example.toml)")
    p.add_argument("--at", default="latest", help="ISO 8601 time or 'latest' (default)")
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    return parser


# ------------------------------------------------------------------------------------------------ helpers


def _load(args: argparse.Namespace) -> load.Dataset:
    try:
        lo, hi = (None if t is None else load.parse_time(t) for t in (args.load_from, args.load_to))
        window = None if lo is None and hi is None else (lo, hi)
        ds = load.load_dumps(args.dumps, tz=args.tz, window=window)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if ds.info.kind == "empty":
        reason = ds.info.notices[0] if ds.info.notices else "no data"
        raise CliError(f"no snapshots in {args.dumps}: {reason}")
    if ds.info.notices:
        for notice in ds.info.notices:  # every skipped or damaged part is named
            print(f"note: {visible(notice)}", file=sys.stderr)  # file names never drive the terminal
    return ds


def _snap(ds: load.Dataset, text: str | None) -> int:
    try:
        return load.resolve_at(ds, text or "latest")
    except ValueError as exc:
        raise CliError(f"--at: {exc}") from None


def _proc_id(ds: load.Dataset, pid: int, start_time: str | None) -> int:
    try:
        found = load.find_process(ds, pid, start_time)
    except ValueError as exc:
        raise CliError(f"--start-time: {exc}") from None
    if found.empty:
        when = f" with start time {start_time}" if start_time else ""
        raise CliError(f"no process with pid {pid}{when} in {ds.info.path}")
    return int(found["proc_id"].iloc[-1])


def _filters(args: argparse.Namespace) -> filters.Filters:
    return filters.Filters(
        min_lifetime_s=args.min_lifetime, min_rss_mib=args.min_rss, min_subtree_mib=args.min_subtree, match=args.match
    )


def _filtered(
    ds: load.Dataset, snap: int, args: argparse.Namespace, index: tree.TreeIndex | None = None
) -> pd.DataFrame:
    """Rows of one snapshot passing the CLI filters (kept rows only), with lifetime_s."""
    snap_df = tree.snapshot(ds.procs, snap, index)
    out = filters.filter_snapshot(snap_df, _filters(args), level=args.level, limit=args.limit)
    out = out[out["kept"].to_numpy(bool)].drop(columns=["kept", "context"])
    return out.assign(lifetime_s=filters.lifetime_s(out))


def _iso(values: pd.Series) -> pd.Series:
    """datetime64[ns, UTC] -> ISO 8601 text with Z (fractional seconds only when present); nulls stay null."""
    ts = values.dt.tz_convert("UTC")
    fractional = (ts.dropna().astype("int64").to_numpy() % 10**9 != 0).any()
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if fractional else "%Y-%m-%dT%H:%M:%SZ"
    return ts.dt.strftime(fmt).astype(object).where(ts.notna(), None)


def _text_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Times as ISO text, categories as plain values; for csv/json/table output."""
    out = df.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[col] = _iso(out[col])
        elif isinstance(dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def _table(df: pd.DataFrame) -> str:
    if df.empty:
        return "(no rows)\n"
    out = visible_frame(_text_frame(df))  # control and bidi characters as escapes, never sent to the terminal
    for col in ("cmdline", "name", "child_name", "user"):
        if col in out.columns:
            text = out[col].astype(str)
            out[col] = text.where(text.str.len() <= TABLE_TEXT_WIDTH, text.str.slice(0, TABLE_TEXT_WIDTH - 1) + "…")
    if "lifetime_s" in out.columns:
        out["lifetime_s"] = out["lifetime_s"].round(3)
    return out.to_string(index=False, na_rep="") + "\n"


def render(df: pd.DataFrame, fmt: str) -> bytes:
    """Result frame -> output bytes in table, csv, json (records) or parquet."""
    if fmt == "table":
        return _table(df).encode()
    if fmt == "parquet":
        buf = io.BytesIO()
        df.reset_index(drop=True).to_parquet(buf, index=False)
        return buf.getvalue()
    text = _text_frame(df).reset_index(drop=True)
    if fmt == "csv":
        return text.to_csv(index=False).encode()
    if fmt == "json":
        return (text.to_json(orient="records", force_ascii=False, indent=None) + "\n").encode()
    raise CliError(f"unknown format {fmt!r}")


# ------------------------------------------------------------------------------------------------ commands


def cmd_system(ds: load.Dataset, args: argparse.Namespace) -> pd.DataFrame:
    """SYSTEM -> one row per snapshot: SYSTEM_COLUMNS."""
    return summary.system_summary(ds.system, ds.procs)[SYSTEM_COLUMNS]


def cmd_snapshot(ds: load.Dataset, args: argparse.Namespace) -> pd.DataFrame:
    """Processes of one snapshot passing the filters: SNAPSHOT_COLUMNS."""
    return _filtered(ds, _snap(ds, args.at), args)[SNAPSHOT_COLUMNS].reset_index(drop=True)


def cmd_timeline(ds: load.Dataset, args: argparse.Namespace) -> pd.DataFrame:
    """One process over time: TIMELINE_COLUMNS."""
    tl = timeline.process_timeline(ds.procs, _proc_id(ds, args.pid, args.start_time))
    return tl[TIMELINE_COLUMNS]


def cmd_children(ds: load.Dataset, args: argparse.Namespace) -> pd.DataFrame:
    """Direct children's subtree RSS over time: CHILDREN_COLUMNS."""
    trends = timeline.children_trends(ds.procs, _proc_id(ds, args.pid, args.start_time), metric="rss")
    return trends.assign(pid=np.int32(args.pid))[CHILDREN_COLUMNS]


def cmd_top(ds: load.Dataset, args: argparse.Namespace) -> pd.DataFrame:
    """Largest processes (own RSS), subtrees, or growers between --since and --at."""
    snap = _snap(ds, args.at)
    if args.by == "growth":
        since = int(ds.snapshots["snap"].iloc[0]) if args.since is None else _snap(ds, args.since)
        if since > snap:
            raise CliError("--since is after --at")
        out = summary.growers(ds.procs, since, snap, metric="rss", limit=args.limit)
        starts = ds.procs.drop_duplicates("proc_id").set_index("proc_id")["start_time"]
        out = out.assign(start_time=starts.reindex(out["proc_id"]).to_numpy())
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        return out[GROWTH_COLUMNS]
    if args.by == "subtree":
        out = summary.top_subtrees(ds.procs, snap, metric="rss", limit=args.limit)
        cols = [*TOP_COLUMNS, "subtree_share"]
    else:
        out = summary.top_processes(ds.procs, snap, metric="rss", limit=args.limit)
        cols = TOP_COLUMNS
    out = out.reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[cols]


def cmd_processes(ds: load.Dataset, args: argparse.Namespace) -> pd.DataFrame:
    """Processes that had --pid: load.FIND_COLUMNS plus lifetime stats (samples, lifetime_s)."""
    found = load.find_process(ds, args.pid)
    if found.empty:
        raise CliError(f"no process with pid {args.pid} in {ds.info.path}")
    st = stats.process_stats(ds.procs, list(found["proc_id"]), lifetime_exact=ds.info.start_times_exact)
    return found.merge(st[["proc_id", "samples", "lifetime_s", "rss_max_bytes"]], on="proc_id", how="left")


def cmd_export(ds: load.Dataset, args: argparse.Namespace) -> pd.DataFrame:
    """Rows passing the filters with every PROCS + TREE column (+ lifetime_s), one snapshot or all of them."""
    if not args.all:
        out = _filtered(ds, _snap(ds, args.at), args)
    else:
        f = _filters(args)
        if f.is_default() and args.level is None and args.limit is None:
            out = ds.procs.assign(lifetime_s=filters.lifetime_s(ds.procs))
        else:
            index = tree.TreeIndex.build(ds.procs)  # one pass, then each snapshot costs only its own rows
            parts = [_filtered(ds, int(s), args, index) for s in ds.snapshots["snap"]]
            out = pd.concat(parts, ignore_index=True) if parts else ds.procs.iloc[0:0]
    # parent_row is a row position: meaningless outside the frame it was computed in
    return out.drop(columns=["parent_row"]).reset_index(drop=True)


def cmd_groups(ds: load.Dataset, args: argparse.Namespace) -> pd.DataFrame:
    """Group totals over time: ts, group, processes, rss_bytes (+ pss/uss/swap_bytes when any is known)."""
    out = groups.group_totals(ds.procs, args.by, top=args.top)
    cols = ["ts", "group", "processes", "rss_bytes"]
    cols += [c for c in ("pss_bytes", "uss_bytes", "swap_bytes") if out[c].notna().any()]
    return out[cols]


def cmd_compare(ds: load.Dataset, args: argparse.Namespace) -> pd.DataFrame:
    """Two moments: pid, start_time, name, change, <m>_before_bytes, <m>_after_bytes, delta_bytes."""
    try:
        snap_from, snap_to = load.resolve_at(ds, args.from_), load.resolve_at(ds, args.to)
    except ValueError as exc:
        raise CliError(f"--from/--to: {exc}") from None
    out = compare.compare_processes(ds.procs, snap_from, snap_to, metric=args.metric)
    m = args.metric
    out = out.rename(columns={"before_bytes": f"{m}_before_bytes", "after_bytes": f"{m}_after_bytes"})
    out = out[["pid", "start_time", "name", "change", f"{m}_before_bytes", f"{m}_after_bytes", "delta_bytes"]]
    return out if args.limit is None else out.head(args.limit)


LEAK_COLUMNS = ["pid", "start_time", "name", "cmdline", "rate_bytes_per_hour", "growing_since", "score"]
ALERT_COLUMNS = [
    "rule", "kind", "ts", "pid", "start_time", "name", "cmdline", "value", "threshold", "unit", "message",
]  # fmt: skip
EXIT_ALERT = 1


def _time_arg(text: str | None, option: str) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        return load.parse_time(text)
    except ValueError as exc:
        raise CliError(f"{option}: {exc}") from None


def cmd_leaks(ds: load.Dataset, args: argparse.Namespace) -> pd.DataFrame:
    """Leak suspects in the window, score > 0, top K: LEAK_COLUMNS (+ top_member_pid/name with --subtrees)."""
    t_from, t_to = _time_arg(args.from_, "--from"), _time_arg(args.to, "--to")
    if t_from is not None and t_to is not None and t_from > t_to:
        raise CliError("--from is after --to")
    out = leaks.leak_scores(ds.procs, t_from, t_to, min_duration_s=args.min_duration)
    cols = LEAK_COLUMNS
    if args.subtrees:
        out = leaks.subtree_leak_scores(ds.procs, t_from, t_to, min_duration_s=args.min_duration, process_scores=out)
        cols = [*LEAK_COLUMNS, "top_member_pid", "top_member_name"]
    out = out[out["score"].to_numpy() > 0]
    return out[cols].head(args.top).reset_index(drop=True)


def cmd_alerts(ds: load.Dataset, args: argparse.Namespace) -> pd.DataFrame:
    """Alerts firing at --at under the --rules file: ALERT_COLUMNS (main exits 1 when there is any)."""
    try:
        text = Path(args.rules).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read rules file {args.rules}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        rules = alerts.parse_rules(text)
    except alerts.RulesError as exc:
        raise CliError(f"bad rules file {args.rules}: {exc}") from None
    at = None if str(args.at).strip().lower() == "latest" else _time_arg(args.at, "--at")
    return alerts.evaluate(rules, ds, at=at)[ALERT_COLUMNS]


COMMANDS = {
    "leaks": cmd_leaks,
    "alerts": cmd_alerts,
    "system": cmd_system,
    "snapshot": cmd_snapshot,
    "timeline": cmd_timeline,
    "children": cmd_children,
    "top": cmd_top,
    "processes": cmd_processes,
    "export": cmd_export,
    "groups": cmd_groups,
    "compare": cmd_compare,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with `argv` (default sys.argv[1:]); returns the exit status (0 ok, 2 error)."""
    args = build_parser().parse_args(argv)
    try:
        ds = _load(args)
        result = COMMANDS[args.command](ds, args)
        data = render(result, args.format)
        out_path = getattr(args, "out", None)
        if out_path:
            try:
                Path(out_path).write_bytes(data)
            except OSError as exc:
                raise CliError(f"cannot write {out_path}: {exc.strerror or exc}") from None
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return EXIT_ALERT if args.command == "alerts" and len(result) else 0
