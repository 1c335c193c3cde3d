"""A generated fleet (bench.gen_day --hosts): 10 hosts x 1 day and 100 hosts x 1 hour.

Per fleet: the rollup time on DuckDB and on Spark with two one-core workers (bench.spark_cluster, skipped with a note
when pyspark or Java is missing), the Fleet page's first paint from the rollups (server time in AppTest, a fresh
interpreter, target <= 1 s) and without them, ``fleet hosts`` from the rollups, and one host's pages on the fleet
store vs the same host's own store (the host's partitions copied alone): the per-host queries of the Overview
(resolve, moment, system over a day, top) warm, and the Overview's first paint with ``host=`` in the URL (target:
ratio <= 1.2); each side measured PAIRS times, alternated with the other, and the medians compared.

    python -m bench.bench_fleet [--quick] [--only 10x1d|100x1h] [--procs N] [--jobs N] [--no-spark] [--work DIR]

``run(quick=True)`` (the harness smoke test): 2 hosts x 0.1 h, DuckDB only, not judged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.bench_week import ROOT, SCRIPT
from bench.gen_day import write_recording
from bench.timing import row as _row
from bench.timing import time_calls

PAINT_TARGET_S = 1.0
RATIO_TARGET = 1.2
FLEETS = {"10x1d": (10, 24.0), "100x1h": (100, 1.0)}
HOST = "benchhost-01"
PAIRS = 5  # fleet-store / own-store measurements alternated; their medians are compared


def _visit(dumps: Path, pages: list[tuple[str, dict[str, str]]]) -> dict:
    """Pages run one after another in one fresh interpreter over `dumps` (bench.bench_week's AppTest script) ->
    {page: {cold, warm}} server times."""
    env = {**os.environ, "PMI_DUMPS": str(dumps), "PMI_TZ": "UTC"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), json.dumps(pages)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"pages {pages} on {dumps}: {proc.stderr[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def own_store(fleet: Path, host: str, dest: Path) -> Path:
    """The partitions of `host` copied alone into `dest` (the store that host would have on its own)."""
    for table in ("procs", "system", "cgroups"):
        src = fleet / table / f"host={host}"
        if src.is_dir():
            shutil.copytree(src, dest / table / f"host={host}")
    return dest


def host_queries(root: Path, host: str, repeats: int = 3) -> tuple[float, float]:
    """The Overview's per-host queries on the store at `root` -> (first call, median of warm repeats) seconds."""
    from memlib import query as q
    from memlib import source

    def once() -> None:
        rec = source.open_recording(root, host=host)  # as the dashboard opens a host's pages
        m = q.resolve(rec, None, host)
        q.moment(rec, m)
        q.system(rec, m.ts - pd.Timedelta(hours=24), m.ts, host, bins=1000)
        q.top_processes(rec, m, "rss", 10)

    source.clear_cache()
    first = time_calls(once, 1)[0]
    return first, statistics.median(time_calls(once, repeats))


def hosts_time(root: Path) -> float:
    """Seconds of memlib.fleet.hosts on the store at `root` (opened first; no file verified or cached before)."""
    from memlib import fleet, query, source

    source.clear_cache()
    rec = source.open_recording(root)
    query._run("SELECT 1")  # the embedded database is opened once per process, not per question
    t = time.perf_counter()
    fleet.hosts(rec)
    return time.perf_counter() - t


def rollup_time(root: Path, engine: str) -> float:
    """Seconds of a full rollup of the store with `engine` (previous rollups removed first)."""
    from memlib import rollup

    shutil.rmtree(root / rollup.ROLLUP_DIR, ignore_errors=True)
    t = time.perf_counter()
    report = rollup.rollup(root, engine=engine)
    took = time.perf_counter() - t
    if not report.computed:
        raise RuntimeError(f"{engine}: nothing rolled up in {root}")
    return took


def _spark_ready() -> str | None:
    """None when pyspark and a Java runtime are there, else why not."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark not installed (make spark-deps)"
    if not shutil.which("java"):
        return "no Java runtime (make spark-deps)"
    return None


def bench_fleet(label: str, hosts: int, hours: float, procs: int, jobs: int, spark: bool, work: Path,
                judge: bool) -> list[dict]:  # fmt: skip
    """Generate one fleet in `work` and measure it -> result rows."""
    store = work / f"fleet-{label}"
    shutil.rmtree(store, ignore_errors=True)
    made = write_recording(store, hours, hosts=hosts, n_procs=procs, jobs=jobs)
    rows = [_row(f"{label}: generated", [made["seconds"]], "s", note=f"{made['rows']:,} rows, {made['bytes']:,} B, "
                 f"{made['bytes_per_row']} B/row, {made['files']} files")]  # fmt: skip
    duck = rollup_time(store, "duckdb")
    rows.append(_row(f"{label}: rollup, DuckDB (embedded)", [duck], "s"))
    why_not = _spark_ready() if spark else "not asked (--no-spark / quick)"
    if why_not is None:
        from bench.spark_cluster import loopback_env, standalone_cluster

        os.environ.update(loopback_env())
        with standalone_cluster(work / "spark", workers=2) as master:
            took = rollup_time(store, master)
        rows.append(_row(f"{label}: rollup, Spark standalone (2 one-core workers)", [took], "s",
                         note="includes the Spark session start"))  # fmt: skip
        rollup_time(store, "duckdb")  # the page below reads DuckDB's rollups (the same rows)
    elif judge:  # a full run says why Spark is missing; the quick run (finite values only) leaves the row out
        rows.append(_row(f"{label}: rollup, Spark", [], "s", note=f"skipped: {why_not}"))
    paint = _visit(store, [("pages/fleet.py", {})])["pages/fleet.py"]
    rows.append(_row(f"{label}: Fleet page first paint (from the rollups)", [paint["cold"]], "s",
                     f"<= {PAINT_TARGET_S:g} s", (paint["cold"] <= PAINT_TARGET_S) if judge else None,
                     f"warm rerun {paint['warm']:.3f} s"))  # fmt: skip
    rows.append(_row(f"{label}: fleet hosts (fresh rollups, cold)", [hosts_time(store)], "s",
                     note="host_minute only: no data file opened"))  # fmt: skip
    aside = store.parent / f"{store.name}-rollups"
    (store / "rollups").rename(aside)  # the same fleet before its first rollup
    try:
        bare = _visit(store, [("pages/fleet.py", {})])["pages/fleet.py"]
    finally:
        aside.rename(store / "rollups")
    rows.append(_row(f"{label}: Fleet page first paint without rollups", [bare["cold"]], "s",
                     note="says to run the rollup; top across hosts from the files after a click"))  # fmt: skip
    own = own_store(store, HOST, work / f"own-{label}")
    n = PAIRS if judge else 1
    pairs = [(host_queries(store, HOST), host_queries(own, HOST)) for _ in range(n)]  # alternated
    f_first, f_warm = (statistics.median(p[0][i] for p in pairs) for i in (0, 1))
    o_first, o_warm = (statistics.median(p[1][i] for p in pairs) for i in (0, 1))
    ratio = f_warm / o_warm
    rows.append(_row(f"{label}: {HOST}'s Overview queries, fleet store / own store (warm)", [ratio], "x",
                     f"<= {RATIO_TARGET:g}", (ratio <= RATIO_TARGET) if judge else None,
                     f"fleet {f_warm:.3f} s, own {o_warm:.3f} s; first {f_first:.3f}, {o_first:.3f} s; "
                     f"medians of {n} alternated pairs"))  # fmt: skip
    fleet_cold, own_cold = [], []
    for _ in range(n):  # fresh servers, alternated: both see the same minutes of the machine
        fleet_cold.append(_visit(store, [("pages/overview.py", {"host": HOST})])["pages/overview.py"]["cold"])
        own_cold.append(_visit(own, [("pages/overview.py", {})])["pages/overview.py"]["cold"])
    fleet_page, own_page = {"cold": statistics.median(fleet_cold)}, {"cold": statistics.median(own_cold)}
    page_ratio = fleet_page["cold"] / own_page["cold"]
    rows.append(_row(f"{label}: Overview first paint, fleet store (host={HOST}) / own store", [page_ratio], "x",
                     f"<= {RATIO_TARGET:g}", (page_ratio <= RATIO_TARGET) if judge else None,
                     f"fleet {fleet_page['cold']:.3f} s vs own {own_page['cold']:.3f} s (cold servers, medians of "
                     f"{n} alternated)"))  # fmt: skip
    shutil.rmtree(own, ignore_errors=True)
    return rows


def run(quick: bool = False, only: str | None = None, procs: int | None = None, jobs: int = 2, spark: bool = True,
        work: Path | None = None) -> list[dict]:  # fmt: skip
    """Every fleet (or `only` one) -> result rows; quick: 2 hosts x 0.1 h, DuckDB only, not judged."""
    tmp = None
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="pmi-bench-fleet-")
        work = Path(tmp.name)
    try:
        if quick:
            return bench_fleet("2x0.1h", 2, 0.1, procs or 30, 1, False, work, judge=False)
        rows: list[dict] = []
        for label, (hosts, hours) in FLEETS.items():
            if only in (None, label):
                rows += bench_fleet(label, hosts, hours, procs or 300, jobs, spark, work, judge=True)
        return rows
    finally:
        if tmp is not None:
            tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Command line: run the fleets asked and print the rows (one JSON object per line)."""
    p = argparse.ArgumentParser(prog="python -m bench.bench_fleet", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 hosts x 0.1 h, DuckDB only")
    p.add_argument("--only", choices=list(FLEETS), default=None)
    p.add_argument("--procs", type=int, default=None, help="processes per sample (default 300)")
    p.add_argument("--jobs", type=int, default=2, help="host-days generated at once (default 2)")
    p.add_argument("--no-spark", action="store_true")
    p.add_argument("--work", type=Path, default=None, help="keep the generated stores here")
    a = p.parse_args(argv)
    for r in run(a.quick, a.only, a.procs, a.jobs, not a.no_spark, a.work):
        print(json.dumps(r, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
