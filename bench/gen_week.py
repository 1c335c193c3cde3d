"""Synthetic multi-day recording for the 7-day benchmark (issue 7 item 4), written with bounded memory.

``write_week`` generates one day at a time with ``bench.gen_day.generate`` (as parts of one recording: day d starts at
T0 + d x 24 h, the base tree keeps its pids and start times, each day has its own churn) and writes it as hourly native
segments through the store's own compaction (``bench.bench_store.write_via_compaction``), then drops it before the
next day: peak memory is that of one generated day, never the whole week (7 days at 5 s, 300 processes ~ 36 M rows).

CLI: ``python -m bench.gen_week OUT [--days 7] [--interval 5] [--procs 300] [--seed 0] [--day-hours 24]`` prints the
summary as JSON and writes the marker next to OUT (``OUT.marker.json``) that bench/bench_week.py checks before reusing
a cached week.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import pandas as pd

from bench.gen_day import T0, generate

MARKER_VERSION = 1  # bump when the generator's output changes: cached weeks with another version are regenerated


def peak_rss_mib() -> float:
    """Peak RSS of this process (VmHWM) in MiB; NaN where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def params(days: int = 7, interval_s: float = 5, n_procs: int = 300, seed: int = 0, day_hours: float = 24) -> dict:
    """The generator parameters as the marker records them (a cached week is reused only when they are equal)."""
    return {
        "version": MARKER_VERSION,
        "days": int(days),
        "interval_s": float(interval_s),
        "n_procs": int(n_procs),
        "seed": int(seed),
        "day_hours": float(day_hours),
    }


def write_week(
    out: Path, days: int = 7, interval_s: float = 5, n_procs: int = 300, seed: int = 0, day_hours: float = 24
) -> dict:
    """Write `days` consecutive generated days (each `day_hours` long) into `out` as hourly native segments.

    Returns {rows, snapshots, days, bytes, seconds, peak_rss_mib, first_ts, last_ts, segments}. `out` is created if
    needed; existing segment files in it are not removed (write into an empty directory).
    """
    from bench.bench_store import write_via_compaction  # imports pyarrow and the store: only when writing
    from memlib import store

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    rows = snaps = 0
    first_ts = last_ts = None
    span = pd.Timedelta(hours=day_hours)
    for d in range(days):
        procs, system = generate(
            hours=day_hours,
            interval_s=interval_s,
            n_procs=n_procs,
            seed=seed,
            t0=T0 + d * span,
            epoch=T0,
            churn_seed=seed * 1000 + d + 1,
        )
        write_via_compaction(procs, system, out)
        rows += len(procs)
        snaps += len(system)
        first_ts = first_ts if first_ts is not None else system["ts"].iloc[0]
        last_ts = system["ts"].iloc[-1]
        del procs, system
        gc.collect()
    return {
        "rows": rows,
        "snapshots": snaps,
        "days": days,
        "bytes": store.store_bytes(out),
        "segments": len(list(out.glob("*.procs.parquet"))),
        "seconds": round(time.perf_counter() - t, 2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "first_ts": None if first_ts is None else first_ts.isoformat(),
        "last_ts": None if last_ts is None else last_ts.isoformat(),
    }


def marker_path(out: Path) -> Path:
    """Where the marker of the week in `out` lives: next to the directory (the dumps directory holds segments only)."""
    out = Path(out)
    return out.parent / f"{out.name}.marker.json"


def write_marker(out: Path, summary: dict, **kwargs: float) -> Path:
    """Record that `out` holds a complete week generated with `kwargs` (see params) -> the marker's path."""
    path = marker_path(out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"params": params(**kwargs), "summary": summary}, indent=1))
    tmp.replace(path)
    return path


def read_marker(out: Path, **kwargs: float) -> dict | None:
    """The summary recorded for `out` when its marker matches params(**kwargs) and segments exist, else None."""
    try:
        data = json.loads(marker_path(out).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("params") != params(**kwargs):
        return None
    summary = data.get("summary")
    if not isinstance(summary, dict) or summary.get("segments", 0) != len(list(Path(out).glob("*.procs.parquet"))):
        return None
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gen_week", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="dumps directory to write (should be empty or missing)")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--interval", type=float, default=5.0, help="seconds between snapshots")
    p.add_argument("--procs", type=int, default=300, help="processes alive per snapshot (about)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--day-hours", type=float, default=24.0, help="length of one generated day (tiny runs)")
    args = p.parse_args(argv)
    if args.out.is_dir() and any(args.out.glob("seg-*")):
        p.error(f"{args.out} already holds segments: remove it or choose another directory")
    kwargs = {
        "days": args.days,
        "interval_s": args.interval,
        "n_procs": args.procs,
        "seed": args.seed,
        "day_hours": args.day_hours,
    }
    summary = write_week(args.out, **kwargs)
    write_marker(args.out, summary, **kwargs)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
