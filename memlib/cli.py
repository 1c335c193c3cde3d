"""Command line: ``python -m memlib COMMAND --dumps DIR [--format table|csv|json] [--tz ZONE]``.

Every command is a query over the store (memlib.query): nothing is loaded whole, so any length of history answers at
the speed of what is printed. Memory columns in bytes; times ISO 8601 UTC printed exactly at the stored precision
(memlib.units.iso_z), so a printed time given back as ``--at``/``--from``/``--to``/``--since``/``--start-time``
selects that very snapshot (exact match, else the nearest within half the sampling interval, else inside a gap the
snapshot before it; before the first or after the last sample is an error). ``latest`` = the last snapshot; a time
without zone is UTC; ``--min-rss``/``--min-subtree`` are MiB. ``--metric auto`` (default where offered) is PSS when
PSS is known for >= 95 % of the RSS at that moment, else RSS; the choice is said on stderr.

- ``system [--from T1] [--to T2]``: ts, snap, mem_total_bytes, mem_used_bytes (MemTotal - MemAvailable),
  mem_available_bytes, cached_bytes (Buffers + Cached + SReclaimable), swap_total_bytes, swap_used_bytes,
  procs_rss_bytes, processes (snap numbers the printed rows)
- ``snapshot [--at T] [--level N] [--min-lifetime S] [--min-rss MB] [--min-subtree MB] [--match TEXT] [--limit K]
  [--sort rss|subtree|pid]``: ts, pid, ppid, start_time, name, cmdline, user, level, rss_bytes, subtree_rss_bytes,
  descendants, lifetime_s (the processes passing the filters, biggest own RSS first by default; filters as in
  memlib.filters: trees first, limit last). The table leaves out ts (said once on stderr) and start_time. No row:
  stderr says why (nothing matched --match at that moment, and when a match was last or first seen; or which
  filters left nothing)
- ``timeline --pid P [--start-time T]``: ts, snap, pid, ppid, name, rss_bytes, subtree_rss_bytes, descendants;
  stderr says when a process that exited was last seen, and the --start-time of other processes with that pid
- ``children --pid P [--start-time T]``: ts, pid, child_pid, child_name, subtree_rss_bytes
- ``top [--at T] [--by rss|subtree|growth] [--metric auto|rss|pss|uss|swap] [--since T] [--limit K]``: rank, ts,
  pid, start_time, name, cmdline, rss_bytes, subtree_rss_bytes, descendants (+ <metric>_bytes and
  subtree_<metric>_bytes when the metric is not RSS; + subtree_share for subtree), ranked by the metric (``--by rss``
  ranks by the process's own value of it); growth: each process's rise within the window from ``--since``
  (default: first snapshot) to ``--at``: its last value there minus its first (one that started or exited inside
  the window counts by its own rise; memlib.query.growers), columns pid, start_time, name, cmdline, status (alive,
  new, exited, "new, exited"), first_seen, last_seen, before_bytes, after_bytes, delta_bytes, subtree_before_bytes,
  subtree_after_bytes, subtree_delta_bytes
- ``processes --pid P``: the processes that had that pid (host, pid, start_time, first_seen, last_seen, name,
  cmdline, samples, lifetime_s, rss_max_bytes)
- ``export [--at T | --all] [filters] [--format csv|json|parquet] [--out FILE]``: every PROCS + TREE column of the
  rows passing the filters (at one snapshot, default latest, or every snapshot with ``--all``, written one hour
  at a time)
- ``groups --by name|command|user|cgroup [--top K]``: ts, group, processes, rss_bytes, plus pss_bytes, uss_bytes,
  swap_bytes when known for some process (memlib.groups; ``--top`` folds smaller groups into "(other)")
- ``compare --from T1 --to T2 [--metric auto|rss|pss|uss|swap] [--limit K]``: pid, start_time, name, change (new,
  exited, grown, shrunk, unchanged, unknown), <metric>_before_bytes, <metric>_after_bytes, delta_bytes; largest
  |delta| first (memlib.compare; a pid reused between the moments is one exited and one new process)
- ``leaks [--from T1 --to T2] [--top K] [--subtrees] [--min-duration S]``: pid, start_time, name, cmdline,
  rate_bytes_per_hour, growing_since, confidence (0-1: how long and how often it was seen), score; most suspicious
  first, score > 0 only (memlib.leaks; the minimum duration follows the window unless given; --subtrees ranks
  subtrees by the sum of their members' growth and adds top_member_pid, top_member_name). No suspect: "(no rows)"
  and a note on stderr saying why (processes considered, too short, not growing) and what to try; exit 0
- ``fleet hosts|top|leaks|groups|rollup``: the same questions across every host of a fleet store, with a ``host``
  column (memlib.fleet_cli lists the columns)
- ``alerts --rules FILE [--at T] [--format table|json]``: the alerts firing (memlib.alerts; rules format in
  docs/alerts.example.toml): rule, kind, ts, pid, start_time, name, cmdline, value, threshold, unit, message.
  Exit status 1 when any alert fires, 0 when none; a bad rules file is one line on stderr and exit 2

A pid names the latest process with that pid unless ``--start-time`` picks another (nearest within 1 s).
Seed-format dumps are imported into a store once (progress on stderr), then queried like any store.
Table output is cut to ``--width N`` characters a line (default: the terminal's width, 160 when not a terminal; 0 =
never cut): names at 16 characters, the command line (last column) to what is left, at least 20; csv and json are
never cut.
Errors (unknown pid, empty or missing dumps directory, bad time or zone) print one line on stderr and exit 2.
Skipped files are counted on stderr (one line); the data goes to stdout.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from memlib import alerts, cli_args, filters, fleet_cli, groups, leaks, query, schema, source
from memlib.display import visible, visible_frame
from memlib.units import iso_z_series

EXIT_ERROR = 2
DEFAULT_WIDTH = 160  # table line width when stdout is not a terminal (--width)
MIN_CMDLINE_WIDTH = 20  # a command line is never cut shorter than this to fit a table line
NAME_WIDTH = 16  # names and users cut in a width-limited table (a Linux comm is at most 15 characters)
# snapshot --sort: columns, descending each (pid ascending breaks ties)
SNAPSHOT_SORTS = {"rss": ["rss_bytes", "subtree_rss_bytes"], "subtree": ["subtree_rss_bytes", "rss_bytes"], "pid": []}

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
    "rank", "pid", "start_time", "name", "cmdline", "status", "first_seen", "last_seen", "before_bytes",
    "after_bytes", "delta_bytes", "subtree_before_bytes", "subtree_after_bytes", "subtree_delta_bytes",
]  # fmt: skip


METRIC_CHOICES = ["auto", *schema.MEMORY_METRICS]


class CliError(Exception):
    """A user-facing error: printed as one line on stderr, exit status 2."""


# ------------------------------------------------------------------------------------------------ arguments


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m memlib`` (one sub-command per view)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dumps",
        default=os.environ.get("PMI_DUMPS", "dumps"),
        help="dumps directory (native segments, seed CSVs under time/); default $PMI_DUMPS or ./dumps",
    )
    common.add_argument("--tz", default=None, help="zone of seed-dump stamps (IANA name); default: this machine's")

    def at_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--at", default="latest", help="ISO 8601 time or 'latest' (default)")

    def filter_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--level", type=cli_args.whole(0), default=None, help="only processes at this tree level")
        p.add_argument("--min-lifetime", type=cli_args.number(0), default=0.0, metavar="S", help="seconds")
        p.add_argument("--min-rss", type=cli_args.number(0), default=0.0, metavar="MB", help="own RSS, MiB")
        p.add_argument("--min-subtree", type=cli_args.number(0), default=0.0, metavar="MB", help="subtree RSS, MiB")
        p.add_argument("--match", default="", help="text in name, command line or user (case-insensitive)")
        p.add_argument("--limit", type=cli_args.whole(0), default=None, help="top K by own RSS (applied last)")

    def pid_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--pid", type=cli_args.pid, required=True)
        p.add_argument("--start-time", default=None, help="ISO 8601 start time (default: the latest such process)")

    shown = argparse.ArgumentParser(add_help=False, parents=[common])
    shown.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")
    shown.add_argument(
        "--width",
        type=cli_args.whole(0),
        default=None,
        metavar="N",
        help="table lines at most N characters, the command line cut to fit (default: the terminal's width, "
        f"{DEFAULT_WIDTH} when not a terminal; 0 = never cut); csv and json are never cut",
    )

    parser = argparse.ArgumentParser(
        prog="python -m memlib", description="Query PID Memory Inspector dumps (memory in bytes, times UTC)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("system", parents=[shown], help="system memory per snapshot")
    p.add_argument("--from", dest="from_", default=None, metavar="T1", help="first sample (default: the first)")
    p.add_argument("--to", default=None, metavar="T2", help="last sample (default: the last)")
    p = sub.add_parser("snapshot", parents=[shown], help="processes at one moment, filtered")
    at_option(p)
    filter_options(p)
    p.add_argument(
        "--sort",
        choices=list(SNAPSHOT_SORTS),
        default="rss",
        help="row order: rss = biggest own RSS first (default), subtree = biggest subtree first, pid",
    )
    p = sub.add_parser("timeline", parents=[shown], help="one process over time")
    pid_options(p)
    p = sub.add_parser("children", parents=[shown], help="a process's direct children's subtree totals over time")
    pid_options(p)
    p = sub.add_parser("top", parents=[shown], help="largest processes, subtrees, or growers within a window")
    at_option(p)
    p.add_argument("--by", choices=["rss", "subtree", "growth"], default="rss")
    p.add_argument("--metric", choices=METRIC_CHOICES, default="auto", help="auto: PSS when known for >= 95 %% of RSS")
    p.add_argument("--since", default=None,
                   help="growth: the window from this time to --at (default: first snapshot)")  # fmt: skip
    p.add_argument("--limit", type=cli_args.whole(0), default=10)
    p = sub.add_parser("processes", parents=[shown], help="the processes that had a pid")
    p.add_argument("--pid", type=cli_args.pid, required=True)
    p = sub.add_parser("export", parents=[common], help="filtered rows with every column")
    p.add_argument("--format", choices=["csv", "json", "parquet"], default="csv", help="output format")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--at", default=None, help="ISO 8601 time or 'latest' (default)")
    group.add_argument("--all", action="store_true", help="every snapshot")
    filter_options(p)
    p.add_argument("--out", default=None, help="write to this file instead of stdout")
    p = sub.add_parser("groups", parents=[shown], help="totals over time per name, command, user or cgroup")
    p.add_argument("--by", choices=list(groups.GROUP_BY), default="name")
    p.add_argument("--top", type=cli_args.whole(0), default=None, help="keep the K largest groups, fold the rest")
    p = sub.add_parser("compare", parents=[shown], help="processes new, exited, grown, shrunk between two moments")
    p.add_argument("--from", dest="from_", required=True, metavar="T1", help="ISO 8601 time or 'latest'")
    p.add_argument("--to", required=True, metavar="T2", help="ISO 8601 time or 'latest'")
    p.add_argument("--metric", choices=METRIC_CHOICES, default="auto", help="auto: PSS when known for >= 95 %% of RSS")
    p.add_argument("--limit", type=cli_args.whole(0), default=None, help="largest K changes only")
    p = sub.add_parser("leaks", parents=[shown], help="processes or subtrees that keep growing")
    p.add_argument("--from", dest="from_", default=None, metavar="T1", help="window start (default: first sample)")
    p.add_argument("--to", default=None, metavar="T2", help="window end (default: last sample)")
    p.add_argument("--top", type=cli_args.whole(0), default=10, help="the K most suspicious (default 10)")
    p.add_argument("--subtrees", action="store_true", help="rank subtrees (sum of their members' growth)")
    p.add_argument("--min-duration", type=cli_args.number(0), default=None, metavar="S",
                   help="seconds a process must be seen in the window to be a suspect (default: a quarter of the "
                        "window, at most 600)")  # fmt: skip
    p = sub.add_parser("alerts", parents=[common], help="alert rules firing now (exit 1 when any fires)")
    p.add_argument("--rules", required=True, metavar="FILE", help="TOML rules file (docs/alerts.example.toml)")
    p.add_argument("--at", default="latest", help="ISO 8601 time or 'latest' (default)")
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    fleet_cli.add_parser(sub, shown)
    return parser


# ------------------------------------------------------------------------------------------------ helpers


def _open(args: argparse.Namespace) -> source.Recording:
    try:
        rec = source.open_recording(args.dumps, tz=args.tz, progress=lambda line: print(line, file=sys.stderr))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except (OSError, KeyError, pa.ArrowException) as exc:  # a store that cannot be opened or converted: one line
        raise CliError(f"cannot open {args.dumps}: {type(exc).__name__}: {exc}") from None
    if rec.kind == "empty" or rec.span is None:
        reason = rec.notices[0] if rec.notices else "no data"
        raise CliError(f"no snapshots in {args.dumps}: {reason}")
    for notice in rec.notices:  # every skipped or damaged part is named
        print(f"note: {visible(notice)}", file=sys.stderr)  # file names never drive the terminal
    return rec


def _moment(rec: source.Recording, text: str | None, option: str = "--at") -> query.Moment:
    try:
        return query.resolve(rec, text or "latest")
    except ValueError as exc:
        raise CliError(f"{option}: {exc}") from None


def _proc(rec: source.Recording, pid: int, start_time: str | None) -> query.Proc:
    try:
        found = query.process(rec, pid, start_time)
    except ValueError as exc:
        raise CliError(f"--start-time: {exc}") from None
    if found is None:
        when = f" with start time {start_time}" if start_time else ""
        raise CliError(f"no process with pid {pid}{when} in {rec.shown}")
    return found


def _metric(rec: source.Recording, m: query.Moment, chosen: str) -> str:
    """--metric value -> the metric to use; 'auto' follows summary.choose_metric at that moment (said on stderr)."""
    if chosen != "auto":
        return chosen
    choice = query.default_metric(rec, m)
    if choice.metric != "rss":  # the non-obvious default is said; RSS is what every tool shows
        print(f"note: metric {choice.reason}; --metric rss for RSS", file=sys.stderr)
    return choice.metric


def _filters(args: argparse.Namespace) -> filters.Filters:
    return filters.Filters(
        min_lifetime_s=args.min_lifetime, min_rss_mib=args.min_rss, min_subtree_mib=args.min_subtree, match=args.match
    )


def _filtered(snap_df: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    """Rows of one snapshot (query.moment) passing the CLI filters (kept rows only), with lifetime_s."""
    out = filters.filter_snapshot(snap_df, _filters(args), level=args.level, limit=args.limit)
    out = out[out["kept"].to_numpy(bool)].drop(columns=["kept", "context"])
    return out.assign(lifetime_s=filters.lifetime_s(out))


def _text_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Times as exact ISO text (units.iso_z), categories as plain values; for csv/json/table output."""
    out = df.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[col] = iso_z_series(out[col])
        elif isinstance(dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def _cut(text: pd.Series, width: int) -> pd.Series:
    return text.where(text.str.len() <= width, text.str.slice(0, max(width - 1, 0)) + "…")


def _lines(out: pd.DataFrame) -> str:
    """Frame of texts and numbers -> table lines: a header, text columns left-aligned, numbers right-aligned, two
    spaces between columns, unknown values blank, no trailing blanks."""
    columns = []
    for col in out.columns:
        values = out[col]
        cells = [str(col)] + ["" if v is None or v is pd.NA or v != v else str(v) for v in values.tolist()]
        width = max(map(len, cells))
        left = not pd.api.types.is_numeric_dtype(values.dtype)
        columns.append([c.ljust(width) if left else c.rjust(width) for c in cells])
    return "".join("  ".join(row).rstrip() + "\n" for row in zip(*columns, strict=True))


def _table(df: pd.DataFrame, width: int | None = None) -> str:
    """Result frame -> a text table; with `width` > 0 the lines are cut to it: names and users at NAME_WIDTH, the
    command line (moved last) to what is left of the line (at least MIN_CMDLINE_WIDTH characters)."""
    if df.empty:
        return "(no rows)\n"
    out = visible_frame(_text_frame(df))  # control and bidi characters as escapes, never sent to the terminal
    if "lifetime_s" in out.columns:
        out["lifetime_s"] = out["lifetime_s"].round(3)
    for col in ("cmdline", "name", "child_name", "user"):
        if col in out.columns:
            out[col] = out[col].astype(object).where(out[col].notna(), "").astype(str)
    if "cmdline" in out.columns:  # the long one last
        out = out[[c for c in out.columns if c != "cmdline"] + ["cmdline"]]
    if not width:
        return _lines(out)
    for col in ("name", "child_name", "user"):
        if col in out.columns:
            out[col] = _cut(out[col], NAME_WIDTH)
    if "cmdline" in out.columns:
        rest = out.drop(columns=["cmdline"])
        used = len(_lines(rest).splitlines()[0]) + 2 if len(rest.columns) else 0
        out = rest.assign(cmdline=_cut(out["cmdline"], max(width - used, MIN_CMDLINE_WIDTH)))
    return _lines(out)


def table_width(chosen: int | None) -> int:
    """--width value -> the table line width: as given, else the terminal's width (COLUMNS or the tty), else
    DEFAULT_WIDTH; 0 = never cut."""
    if chosen is not None:
        return chosen
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def render(df: pd.DataFrame, fmt: str, width: int | None = None) -> bytes:
    """Result frame -> output bytes in table (lines cut to `width` when > 0), csv, json (records) or parquet."""
    if fmt == "table":
        return _table(df, width).encode()
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


def _time_arg(text: str | None, option: str) -> pd.Timestamp | None:
    try:
        return cli_args.time_option(text, option)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _range(args: argparse.Namespace) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    t_from, t_to = _time_arg(args.from_, "--from"), _time_arg(args.to, "--to")
    if t_from is not None and t_to is not None and t_from > t_to:
        raise CliError("--from is after --to")
    return t_from, t_to


# ------------------------------------------------------------------------------------------------ commands


def cmd_system(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """System memory per snapshot: SYSTEM_COLUMNS."""
    out = query.system(rec, *_range(args))
    return out.assign(snap=np.arange(len(out), dtype=np.int32))[SYSTEM_COLUMNS]


def cmd_snapshot(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """Processes of one snapshot passing the filters: SNAPSHOT_COLUMNS in --sort order; when none passes, why is
    said on stderr."""
    m = _moment(rec, args.at)
    snap_df = query.moment(rec, m)
    out = _filtered(snap_df, args)[SNAPSHOT_COLUMNS]
    by = SNAPSHOT_SORTS[args.sort]
    out = out.sort_values(
        [*by, "pid"], ascending=[False] * len(by) + [True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    if out.empty:
        _note(_why_no_rows(rec, m, snap_df, args))
    elif args.format == "table":  # the moment once, not on every line; csv and json keep every column
        at = iso_z_series(pd.Series([m.ts]))[0]
        _note(f"snapshot at {at}: {len(out):,} of {len(snap_df):,} processes (csv/json add ts and start_time)")
        out = out.drop(columns=["ts", "start_time"])
    return out


def _note(text: str) -> None:
    print(f"note: {visible(text)}", file=sys.stderr)


def _filter_words(args: argparse.Namespace) -> list[str]:
    """The filters given other than --match, as the options that set them."""
    given = [
        ("--level", args.level, None),
        ("--min-lifetime", args.min_lifetime, 0),
        ("--min-rss", args.min_rss, 0),
        ("--min-subtree", args.min_subtree, 0),
        ("--limit", args.limit, None),
    ]
    return [f"{opt} {value:g}" for opt, value, unset in given if value is not None and value != unset]


def _why_no_rows(rec: source.Recording, m: query.Moment, snap_df: pd.DataFrame, args: argparse.Namespace) -> str:
    """Why `snapshot` printed no row: nothing matched --match at that moment (and when it was seen, if ever), or
    the other filters removed every process."""
    at = iso_z_series(pd.Series([m.ts]))[0]
    others = _filter_words(args)
    if args.match:
        matching = filters.filter_snapshot(snap_df, filters.Filters(match=args.match))
        n = int(matching["kept"].sum())
        if n == 0:
            return f"no process at {at} has {args.match!r} in its name, command line or user; " + _when_seen(
                rec, args.match, m
            )
        return f"{n} process(es) at {at} match {args.match!r}, but {' '.join(others)} leave(s) none"
    if args.level is not None and len(snap_df) and args.level > int(snap_df["level"].max()):
        return f"level {args.level} is empty at {at}: the deepest level is {int(snap_df['level'].max())}"
    return f"none of the {len(snap_df):,} processes at {at} passes {' '.join(others)}"


def _when_seen(rec: source.Recording, text: str, m: query.Moment) -> str:
    """When processes matching `text` were seen in the recording, and the --at that shows one."""
    seen = query.find_matching(rec, text, host=m.host or None, limit=None)
    if seen.empty:
        return "no process in this recording ever matched it"
    before, after = seen[seen["last_seen"] < m.ts], seen[seen["first_seen"] > m.ts]
    parts = []
    if len(before):
        row = before.sort_values("last_seen").iloc[-1]
        when = iso_z_series(pd.Series([row["last_seen"]]))[0]
        parts.append(f"last seen at {when} (pid {int(row['pid'])}, {row['name']}): --at {when} shows it")
    if len(after):
        row = after.sort_values("first_seen").iloc[0]
        when = iso_z_series(pd.Series([row["first_seen"]]))[0]
        parts.append(f"first seen after this moment at {when} (pid {int(row['pid'])}, {row['name']}): --at {when}")
    return "; ".join(parts)


def _snap_numbers(rec: source.Recording, ts: pd.Series, t_from: pd.Timestamp) -> np.ndarray:
    """Sample times -> their position in the recording's snapshot list (the recording's snapshot numbers)."""
    before = len(query.snapshots(rec, None, t_from - pd.Timedelta(microseconds=1)))
    times = query.snapshots(rec, t_from, None)["ts"]
    return (before + times.searchsorted(ts)).astype(np.int64)


def cmd_timeline(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """One process over time: TIMELINE_COLUMNS; stderr says when it exited (its last sample before the end of the
    recording) and which other processes had the pid (with the --start-time that selects each)."""
    p = _proc(rec, args.pid, args.start_time)
    tl = query.timeline(rec, p)
    _about_process(rec, p, tl)
    return tl.assign(snap=_snap_numbers(rec, tl["ts"], p.start_time))[TIMELINE_COLUMNS]


def _about_process(rec: source.Recording, p: query.Proc, tl: pd.DataFrame) -> None:
    """Notes on stderr: the process exited before the recording's end (last seen when), the pid names others."""
    if len(tl):
        name = visible(str(tl["name"].iloc[-1]))
        first, last = iso_z_series(tl["ts"].iloc[[0, -1]].reset_index(drop=True)).tolist()
        end = query.resolve(rec, "latest", p.host or None).ts
        if tl["ts"].iloc[-1] < end:
            _note(
                f"pid {p.pid} ({name}) is gone at the end of the recording ({iso_z_series(pd.Series([end]))[0]}): "
                f"seen {first} – {last}; snapshot --at {last} shows it at its last sample"
            )
    others = query.find_processes(rec, p.pid, host=p.host or None)
    others = others[others["start_time"] != p.start_time]
    for row in others.itertuples():
        start = iso_z_series(pd.Series([row.start_time]))[0]
        seen = iso_z_series(pd.Series([row.first_seen, row.last_seen])).tolist()
        _note(
            f"pid {p.pid} was also {visible(str(row.name))}, seen {seen[0]} – {seen[1]}: --start-time {start} "
            "selects it"
        )


def cmd_children(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """Direct children's subtree RSS over time: CHILDREN_COLUMNS."""
    trends = query.children(rec, _proc(rec, args.pid, args.start_time), metric="rss")
    return trends.assign(pid=np.int32(args.pid))[CHILDREN_COLUMNS]


def cmd_top(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """Largest processes, subtrees, or growers between --since and --at, by the chosen metric."""
    m = _moment(rec, args.at)
    if args.by == "growth":
        since = _moment(rec, args.since or rec.span[0], "--since")
        if since.ts > m.ts:
            raise CliError("--since is after --at")
    metric = _metric(rec, m, args.metric)
    if args.by == "growth":
        out = query.growers(rec, since, m, metric=metric, limit=args.limit)
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        return out[GROWTH_COLUMNS]
    extra = [] if metric == "rss" else [f"{metric}_bytes", f"subtree_{metric}_bytes"]
    if args.by == "subtree":
        out = query.top_subtrees(rec, m, metric=metric, limit=args.limit)
        cols = [*TOP_COLUMNS, *extra, "subtree_share"]
    else:
        out = query.top_processes(rec, m, metric=metric, limit=args.limit)
        cols = [*TOP_COLUMNS, *extra]
    out = out.reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[cols]


def cmd_processes(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """Processes that had --pid: host, pid, start_time, first_seen, last_seen, name, cmdline, samples, lifetime_s,
    rss_max_bytes (lifetime from the start time; the observed span for seed dumps)."""
    found = query.find_processes(rec, args.pid)
    if found.empty:
        raise CliError(f"no process with pid {args.pid} in {rec.shown}")
    end = found["last_seen"]
    life = (end - (found["start_time"] if rec.start_times_exact else found["first_seen"])).dt.total_seconds()
    out = found.assign(lifetime_s=life)
    return out[["host", "pid", "start_time", "first_seen", "last_seen", "name", "cmdline", "samples", "lifetime_s",
                "rss_max_bytes"]]  # fmt: skip


def _export_rows(snap_df: pd.DataFrame, args: argparse.Namespace, unfiltered: bool) -> pd.DataFrame:
    out = snap_df.assign(lifetime_s=filters.lifetime_s(snap_df)) if unfiltered else _filtered(snap_df, args)
    # parent_row is a row position: meaningless outside the frame it was computed in; proc_id numbers this answer
    return out.drop(columns=["parent_row", "snap"]).reset_index(drop=True)


def cmd_export(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Rows passing the filters with every PROCS + TREE column (+ lifetime_s): one snapshot, or with --all every
    snapshot, one hour of samples at a time (an iterator of frames)."""
    if not args.all:
        return _export_rows(query.moment(rec, _moment(rec, args.at)), args, False)
    unfiltered = _filters(args).is_default() and args.level is None and args.limit is None

    def chunks() -> Iterator[pd.DataFrame]:
        first, last = rec.span
        start = first.floor("h")
        while start <= last:
            end = start + pd.Timedelta(hours=1) - pd.Timedelta(microseconds=1)
            rows = query.window_rows(rec, start, end)
            for _, snap_df in rows.groupby("snap", sort=True):
                yield _export_rows(_renumber(snap_df), args, unfiltered)
            start = start + pd.Timedelta(hours=1)

    return chunks()


def _renumber(snap_df: pd.DataFrame) -> pd.DataFrame:
    """One snapshot's rows cut from a multi-snapshot frame -> snap 0, parent_row local again."""
    out = snap_df.reset_index(drop=True)
    rows = np.flatnonzero(np.ones(len(snap_df), bool))
    old = snap_df.index.to_numpy()
    pos = pd.Series(rows, index=old)
    parent = out["parent_row"].to_numpy()
    out["parent_row"] = np.where(parent >= 0, pos.reindex(parent).fillna(-1).to_numpy(np.int64), -1)
    return out.assign(snap=np.int32(0))


def cmd_groups(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """Group totals over time: ts, group, processes, rss_bytes (+ pss/uss/swap_bytes when any is known)."""
    out = query.groups(rec, args.by, top=args.top)
    cols = ["ts", "group", "processes", "rss_bytes"]
    cols += [c for c in ("pss_bytes", "uss_bytes", "swap_bytes") if out[c].notna().any()]
    return out[cols]


def cmd_compare(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """Two moments: pid, start_time, name, change, <m>_before_bytes, <m>_after_bytes, delta_bytes."""
    a, b = _moment(rec, args.from_, "--from/--to"), _moment(rec, args.to, "--from/--to")
    m = _metric(rec, b, args.metric)
    out = query.compare(rec, a, b, metric=m)
    out = out.rename(columns={"before_bytes": f"{m}_before_bytes", "after_bytes": f"{m}_after_bytes"})
    out = out[["pid", "start_time", "name", "change", f"{m}_before_bytes", f"{m}_after_bytes", "delta_bytes"]]
    return out if args.limit is None else out.head(args.limit)


LEAK_COLUMNS = ["pid", "start_time", "name", "cmdline", "rate_bytes_per_hour", "growing_since", "confidence", "score"]
SUBTREE_LEAK_COLUMNS = [
    "pid", "start_time", "name", "cmdline", "rate_bytes_per_hour", "growing_since", "score", "top_member_pid",
    "top_member_name",
]  # fmt: skip
WIDER = "widen the window (--from/--to) or give a shorter --min-duration"
ALERT_COLUMNS = [
    "rule", "kind", "ts", "pid", "start_time", "name", "cmdline", "value", "threshold", "unit", "message",
]  # fmt: skip
EXIT_ALERT = 1


def cmd_leaks(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """Leak suspects in the window, score > 0, top K: LEAK_COLUMNS (SUBTREE_LEAK_COLUMNS with --subtrees); when
    there is none, a note on stderr says why."""
    t_from, t_to = _range(args)
    report = query.leak_report(rec, t_from, t_to, min_duration_s=args.min_duration)
    out, cols = report.scores, LEAK_COLUMNS
    if args.subtrees:
        out = query.subtree_leak_scores(rec, t_from, t_to, min_duration_s=report.census.min_duration_s,
                                        process_scores=out)  # fmt: skip
        cols = SUBTREE_LEAK_COLUMNS
    out = out[out["score"].to_numpy() > 0]
    if out.empty:
        why = report.census.why_empty("RSS", WIDER)
        if not why:  # process suspects, but none below a subtree root (init's and kthreadd's subtrees are not ranked)
            why = (f"no subtree has a steadily growing member: the {report.census.suspects} process suspect(s) have "
                   "no subtree root above them but init or kthreadd; see `leaks` without --subtrees")  # fmt: skip
        print(f"note: {why}", file=sys.stderr)
    elif not args.subtrees and (caution := leaks.low_confidence_note(out)):
        print(f"note: {caution}", file=sys.stderr)
    return out[cols].head(args.top).reset_index(drop=True)


def cmd_alerts(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """Alerts firing at --at under the --rules file: ALERT_COLUMNS (main exits 1 when there is any)."""
    try:
        text = Path(args.rules).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read rules file {args.rules}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        rules = alerts.parse_rules(text)
    except alerts.RulesError as exc:
        raise CliError(f"bad rules file {args.rules}: {exc}") from None
    m = _moment(rec, args.at)
    return query.alerts(rec, rules, m.ts)[ALERT_COLUMNS]


def cmd_fleet(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """``fleet …``: memlib.fleet_cli (every row names its host)."""
    try:
        return fleet_cli.run(rec, args)
    except ValueError as exc:
        raise CliError(str(exc)) from None


COMMANDS = {
    "fleet": cmd_fleet,
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


def _write_chunks(chunks: Iterator[pd.DataFrame], fmt: str, out: BinaryIO) -> int:
    """Frames -> one csv / json array / parquet file written piece by piece; returns the rows written."""
    n = 0
    writer = None
    first = True
    if fmt == "json":
        out.write(b"[")
    for df in chunks:
        if df.empty:
            continue
        if fmt == "parquet":
            table = pa.Table.from_pandas(df, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema)
            writer.write_table(table.cast(writer.schema))
        elif fmt == "csv":
            out.write(_text_frame(df).to_csv(index=False, header=first).encode())
        else:
            body = _text_frame(df).to_json(orient="records", force_ascii=False)[1:-1]
            out.write((b"" if first else b",") + body.encode())
        first = False
        n += len(df)
    if fmt == "json":
        out.write(b"]\n")
    if writer is not None:
        writer.close()
    return n


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with `argv` (default sys.argv[1:]); returns the exit status (0 ok, 1 alerts firing, 2 error)."""
    args = build_parser().parse_args(argv)
    try:
        rec = _open(args)
        result = COMMANDS[args.command](rec, args)
        out_path = getattr(args, "out", None)
        if not isinstance(result, pd.DataFrame):
            _emit_chunks(result, args.format, out_path)
            return 0
        data = render(result, args.format, table_width(getattr(args, "width", None)))
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


def _emit_chunks(chunks: Iterator[pd.DataFrame], fmt: str, out_path: str | None) -> None:
    if not out_path:
        _write_chunks(chunks, fmt, sys.stdout.buffer)
        sys.stdout.flush()
        return
    try:
        with open(out_path, "wb") as fh:
            _write_chunks(chunks, fmt, fh)
    except OSError as exc:
        raise CliError(f"cannot write {out_path}: {exc.strerror or exc}") from None
