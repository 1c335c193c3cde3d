"""``python -m memlib fleet hosts|top|leaks|groups|rollup --dumps STORE …``: memlib.fleet on the command line.

Same conventions as the single-host commands (memlib.cli: ``--format table|csv|json``, bytes, exact ISO UTC times,
notes on stderr, one-line errors with exit 2), every row naming its ``host``:

- ``hosts [--now T] [--stale-after S]``: host, status (ok | stale), stale_since, first_sample, last_sample, samples,
  period_s, mem_total_bytes, mem_used_bytes (at the last sample), behind_s; staleness against the newest sample of
  the store unless ``--now`` (a stale host keeps its last values and says since when); partitions with a fresh
  rollup are read from ``host_minute``, only the others from the files
- ``top [--at T] [--by rss|subtree] [--limit K]``: rank, host, ts (that host's snapshot at or just before T), pid,
  start_time, name, user, rss_bytes, subtree_rss_bytes, descendants, cmdline
- ``leaks [--top K]``: the process_day rollup's ranking (floor growth x r2): rank, host, boot_id, pid, start_time,
  name, user, days, samples, first_seen, last_seen, rss_max_bytes, floor_growth_bytes_per_hour, floor_r2, score
- ``groups [--by name|command|user|cgroup] [--match TEXT] [--from T1] [--to T2] [--bins N] [--top K]``: host, ts
  (bucket start), group, processes, rss_bytes (peak), rss_bytes_min, samples
- ``rollup [--engine duckdb|local[N]|spark://HOST:PORT] [--top K]``: partition, action (computed | skipped)
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from memlib import cli_args, fleet, groups, rollup, source
from memlib.display import visible

FLEET_COMMANDS = ("hosts", "top", "leaks", "groups", "rollup")


def add_parser(sub: argparse._SubParsersAction, shown: argparse.ArgumentParser) -> None:
    """Add ``fleet`` and its commands to the CLI's sub-parsers (`shown`: the parent with --dumps/--tz/--format)."""
    fp = sub.add_parser("fleet", help="questions across every host of a fleet store")
    fsub = fp.add_subparsers(dest="fleet_command", required=True, metavar="FLEET_COMMAND")
    p = fsub.add_parser("hosts", parents=[shown], help="every host: first/last sample, used memory, stale or not")
    p.add_argument("--now", default=None, help="measure staleness against this time (default: the newest sample)")
    p.add_argument("--stale-after", type=cli_args.number(0, above=True), default=None, metavar="S",
                   help="seconds behind after which a host is stale (default: 1.5 segment periods + 60 s)")  # fmt: skip
    p = fsub.add_parser("top", parents=[shown], help="largest processes or subtrees across hosts at a moment")
    p.add_argument("--at", default="latest", help="ISO 8601 time or 'latest' (default)")
    p.add_argument("--by", choices=["rss", "subtree"], default="rss")
    p.add_argument("--limit", type=cli_args.whole(1), default=10)
    p = fsub.add_parser("leaks", parents=[shown], help="the fleet's leak ranking (from the rollups)")
    p.add_argument("--top", type=cli_args.whole(1), default=20, help="the K most suspicious (default 20)")
    p = fsub.add_parser("groups", parents=[shown], help="group totals per host over time (e.g. every postgres)")
    p.add_argument("--by", choices=list(groups.GROUP_BY), default="name")
    p.add_argument("--match", default="", help="only groups whose label contains this (case-insensitive)")
    p.add_argument("--from", dest="from_", default=None, metavar="T1", help="window start (default: first sample)")
    p.add_argument("--to", default=None, metavar="T2", help="window end (default: last sample)")
    p.add_argument("--bins", type=cli_args.whole(1), default=24, help="time buckets (default 24)")
    p.add_argument("--top", type=cli_args.whole(1), default=10, help="without --match: the K largest groups")
    p = fsub.add_parser("rollup", parents=[shown], help="compute the rollup tables the Fleet page reads")
    p.add_argument("--engine", default="duckdb", help="duckdb (default) | local[N] | spark://HOST:PORT")
    p.add_argument("--top", type=cli_args.whole(1), default=10, help="processes and subtrees kept per host and minute")


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def run(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    """Run the fleet command in `args` on `rec` -> its rows (notes on stderr, files skipped while answering named
    there too); ValueError for a user error."""
    seen = len(rec.notices)
    try:
        return _command(rec, args)
    finally:
        for notice in rec.notices[seen:]:  # damaged files found while answering: named, their host's rest shown
            _note(visible(notice))


def _command(rec: source.Recording, args: argparse.Namespace) -> pd.DataFrame:
    cmd = args.fleet_command
    if cmd == "hosts":
        got = fleet.hosts(rec, cli_args.time_option(args.now, "--now"), args.stale_after)
        for note in got.notes:
            _note(note)
        for _, row in got.rows[got.rows["status"] == "stale"].iterrows():
            _note(f"host {row['host']} is stale: no data since {row['stale_since'].isoformat()}")
        return got.rows
    if cmd == "top":
        got = fleet.top(
            rec, None if args.at == "latest" else cli_args.time_option(args.at, "--at"), args.by, args.limit
        )
        for note in got.notes:
            _note(note)
        return got.rows
    if cmd == "leaks":
        got = fleet.leaks(rec, args.top)
        if not (got.state.fresh or got.state.stale):
            raise ValueError(
                f"no rollups in {rec.shown}: run `python -m memlib fleet rollup --dumps {rec.shown}` first"
            )
        if got.note:
            _note(got.note)
        return got.rows
    if cmd == "groups":
        t_from, t_to = cli_args.time_option(args.from_, "--from"), cli_args.time_option(args.to, "--to")
        if t_from is not None and t_to is not None and t_from > t_to:
            raise ValueError("--from is after --to")
        return fleet.groups(rec, args.by, args.match, t_from, t_to, bins=args.bins, top=args.top)
    if cmd == "rollup":
        try:
            report = rollup.rollup(rec.root, engine=args.engine, top=args.top, progress=_note)
        except ImportError as exc:
            raise ValueError(f"--engine {args.engine} needs pyspark (make spark-deps): {exc}") from None
        for note in report.damaged:
            _note(visible(note))
        _note(f"rolled up {len(report.computed)} partition(s), {len(report.skipped)} unchanged")
        return pd.DataFrame(
            {
                "partition": [*report.computed, *report.skipped],
                "action": ["computed"] * len(report.computed) + ["skipped"] * len(report.skipped),
            }
        )
    raise ValueError(f"unknown fleet command {cmd!r}")
