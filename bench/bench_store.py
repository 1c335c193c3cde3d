"""Issue 7 §3: bytes per process-sample on disk, writer cost per sample, and loading a day through memlib.load.

Rows:
- a generated day (``bench.gen_day.generate``: 24 h at 5 s, 300 processes) split into hourly segments and written
  through the store's own compaction (``memlib.store.compact_current`` on a `.current` holding the hour's frames):
  bytes per process-sample (procs + system files), compaction time per hour;
- one generated hour written sample by sample through ``memlib.store.SegmentWriter`` (what the collector does):
  append time per sample, close (compaction) time, bytes per process-sample;
- the shipped recording ``sample/dumps``: bytes per process-sample;
- ``memlib.load.load_dumps`` of the day in fresh subprocesses: cold load, warm reload (unchanged files), peak RSS.
"""

from __future__ import annotations

import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from bench.gen_day import generate
from bench.timing import row
from memlib import store
from memlib.schema import MIB

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DUMPS = REPO / "sample" / "dumps"
HOST = "benchhost"
BOOT_ID = "0f0e-bench-boot"
TS_TYPE = pa.timestamp("ns", tz="UTC")
BYTES_TARGET = 8.0
COLD_TARGET_S = 2.0

FULL = {"hours": 24.0, "interval_s": 5.0, "n_procs": 300, "writer_hours": 1.0, "load_repeats": 3, "warm_repeats": 5}
QUICK = {"hours": 0.1, "interval_s": 5.0, "n_procs": 40, "writer_hours": 0.02, "load_repeats": 1, "warm_repeats": 2}

# run in a fresh interpreter: cold load, warm reloads, peak RSS; prints one JSON line
LOAD_SCRIPT = """
import json, resource, sys, time
t = time.perf_counter()
from memlib.load import load_dumps
imports = time.perf_counter() - t
def hwm():  # peak RSS of this process image in KiB (VmHWM restarts at exec; ru_maxrss keeps the parent's at fork)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
rss0 = hwm()
t = time.perf_counter()
ds = load_dumps(sys.argv[1])
cold = time.perf_counter() - t
warm = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    again = load_dumps(sys.argv[1])
    warm.append(time.perf_counter() - t)
print(json.dumps({"imports_s": imports, "cold_s": cold, "warm_s": warm, "rows": len(ds.procs),
                  "snapshots": len(ds.snapshots), "rss_before_kib": rss0,
                  "peak_kib": hwm(), "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def arrow_hour(procs: pd.DataFrame) -> pa.Table:
    """PROCS rows -> the Arrow table a `.current` frame holds (ts + store.SAMPLE_PROC_COLUMNS at store types)."""
    schema = pa.schema([("ts", TS_TYPE), *store.PROC_ARROW_TYPES.items()])
    cols = ["ts", *store.SAMPLE_PROC_COLUMNS]
    return pa.Table.from_pandas(procs[cols], preserve_index=False).cast(schema)


def system_arrow(system: pd.DataFrame) -> pa.Table:
    """SYSTEM rows -> Arrow table (ts + meminfo fields as int64) as store.system_table builds per sample."""
    fields = [c for c in system.columns if c not in ("snap", "ts", "host", "boot_id")]
    arrays = [pa.Array.from_pandas(system["ts"]).cast(TS_TYPE)]
    arrays += [pa.Array.from_pandas(system[c], type=pa.int64()) for c in fields]
    return pa.Table.from_arrays(arrays, names=["ts", *fields])


def write_via_compaction(procs: pd.DataFrame, system: pd.DataFrame, out: Path) -> list[float]:
    """Write the recording as hourly segments through store.compact_current -> seconds spent per hour."""
    t0 = system["ts"].iloc[0]
    hour = ((procs["ts"] - t0).dt.total_seconds() // 3600).to_numpy()  # procs are sorted by snap
    sys_hour = ((system["ts"] - t0).dt.total_seconds() // 3600).to_numpy()
    hours = np.unique(hour)
    bounds = [*np.searchsorted(hour, hours, side="left").tolist(), len(procs)]
    times = []
    for i, h in enumerate(hours):
        part = procs.iloc[bounds[i] : bounds[i + 1]]
        first = part["ts"].iloc[0].tz_convert("UTC")
        stamp = first.strftime("%Y%m%dT%H%M%S.") + f"{first.microsecond // 1000:03d}"
        current = out / f"{store.segment_stem(stamp, HOST)}.current"
        t = time.perf_counter()
        data = store.HEADER.pack(store.MAGIC, store.SCHEMA_VERSION, 0)
        data += store.encode_frame(store.KIND_PROCS, arrow_hour(part), HOST, BOOT_ID)
        data += store.encode_frame(store.KIND_SYSTEM, system_arrow(system[sys_hour == h]), HOST, BOOT_ID)
        current.write_bytes(data)
        if store.compact_current(current) is None:
            raise RuntimeError(f"compaction of {current.name} published nothing")
        times.append(time.perf_counter() - t)
    return times


def _values(s: pd.Series) -> np.ndarray:
    """A column as an object array the collector would pass: None for null, times as int ns since epoch."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype(np.int64).astype(object)
        out[s.isna().to_numpy()] = None
        return out
    return s.to_numpy(dtype=object, na_value=None)


def per_sample_inputs(procs: pd.DataFrame, system: pd.DataFrame) -> list[tuple[pd.Timestamp, dict, dict]]:
    """Split PROCS/SYSTEM into what the collector hands SegmentWriter.append per sample (lists; times int ns)."""
    snap = procs["snap"].to_numpy()
    cuts = np.flatnonzero(np.diff(snap)) + 1
    columns = {c: np.split(_values(procs[c]), cuts) for c in store.SAMPLE_PROC_COLUMNS}
    fields = [c for c in system.columns if c not in ("snap", "ts", "host", "boot_id")]
    sys_cols = {c: _values(system[c]) for c in fields}
    sys_rows = [{c: sys_cols[c][i] for c in fields} for i in range(len(system))]
    ts_list = procs["ts"].iloc[np.r_[0, cuts]].tolist()
    return [
        (ts_list[i], {c: columns[c][i].tolist() for c in store.SAMPLE_PROC_COLUMNS}, sys_rows[i])
        for i in range(len(ts_list))
    ]


def dir_bytes(path: Path) -> int:
    """Bytes of every segment file in `path`."""
    return store.store_bytes(path)


def load_in_subprocess(path: Path, warm_repeats: int) -> dict:
    """Run LOAD_SCRIPT on `path` in a fresh interpreter -> its JSON result."""
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(path), str(warm_repeats)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load_dumps subprocess failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict]:
    """Store benchmarks -> rows (see the module docstring); `quick` uses a tiny recording."""
    cfg = QUICK if quick else FULL
    rows: list[dict] = []
    t = time.perf_counter()
    procs, system = generate(hours=cfg["hours"], interval_s=cfg["interval_s"], n_procs=cfg["n_procs"], seed=0)
    gen_s = time.perf_counter() - t
    n_rows, n_snaps = len(procs), len(system)
    size_note = f"{cfg['hours']:g} h at {cfg['interval_s']:g} s, {n_rows:,} rows, {n_snaps:,} snapshots"
    work = Path(tempfile.mkdtemp(prefix="pmi-bench-store-"))
    try:
        day = work / "day"
        day.mkdir()
        hour_times = write_via_compaction(procs, system, day)
        total = dir_bytes(day)
        procs_only = sum(p.stat().st_size for p in day.glob("*.procs.parquet"))
        bpr = total / n_rows
        rows.append(
            row(
                "generated day: bytes per process-sample (procs + system files)",
                [bpr],
                "B",
                f"≤ {BYTES_TARGET:g}",
                None if quick else bpr <= BYTES_TARGET,
                f"{size_note}; {total / MIB:.1f} MiB in {len(hour_times)} hourly pairs; "
                f"procs files alone {procs_only / n_rows:.2f} B/row; generated in {gen_s:.1f} s",
            )
        )
        rows.append(row("compaction of one hour of the generated day", hour_times, "s", note="store.compact_current"))

        # the collector's path: one append per sample through SegmentWriter, then close() compacts
        n_writer = max(2, round(cfg["writer_hours"] * 3600 / cfg["interval_s"]))
        first = procs["snap"].to_numpy() < n_writer
        inputs = per_sample_inputs(procs[first], system.iloc[:n_writer])
        n_writer_rows = int(first.sum())
        del procs, system, first  # the loads below run in subprocesses: leave them the memory
        gc.collect()
        wdir = work / "writer"
        writer = store.SegmentWriter(wdir, HOST, BOOT_ID, period_s=10**9)
        append_s = []
        for ts, sample, meminfo in inputs:
            t = time.perf_counter()
            writer.append(ts, sample, meminfo)
            append_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        writer.close()
        close_s = time.perf_counter() - t
        per_sample = n_writer_rows / len(inputs)
        rows.append(
            row(
                "SegmentWriter.append, one sample",
                [v * 1e3 for v in append_s],
                "ms",
                note=f"{per_sample:.0f} processes per sample; {len(inputs)} samples",
            )
        )
        rows.append(row("SegmentWriter.close (compaction)", [close_s], "s", note=f"{len(inputs)} samples"))
        wb = dir_bytes(wdir) / n_writer_rows
        rows.append(
            row(
                "writer-written segment: bytes per process-sample",
                [wb],
                "B",
                f"≤ {BYTES_TARGET:g}",
                None if quick else wb <= BYTES_TARGET,
                f"{len(inputs)} samples of {per_sample:.0f} processes (fixed per-file overhead weighs more here)",
            )
        )

        # the shipped recording
        if SAMPLE_DUMPS.is_dir() and store.list_segments(SAMPLE_DUMPS):
            sample = store.read_dumps_dir(SAMPLE_DUMPS)
            sb = dir_bytes(SAMPLE_DUMPS)
            sbpr = sb / max(1, len(sample.procs))
            rows.append(
                row(
                    "shipped sample (sample/dumps): bytes per process-sample",
                    [sbpr],
                    "B",
                    f"≤ {BYTES_TARGET:g}",
                    sbpr <= BYTES_TARGET,
                    f"{sb / 1e6:.2f} MB, {len(sample.procs):,} rows, {sample.system['ts'].nunique():,} snapshots",
                )
            )
        else:
            rows.append(row("shipped sample (sample/dumps)", [float("nan")], "B", note="sample/dumps has no segments"))

        # loading the day through memlib.load in fresh interpreters
        loads = [load_in_subprocess(day, cfg["warm_repeats"]) for _ in range(cfg["load_repeats"])]
        cold = [r["cold_s"] for r in loads]
        cold_ok = statistics.median(cold) <= COLD_TARGET_S
        rows.append(
            row(
                "load_dumps cold (fresh process, files in page cache)",
                cold,
                "s",
                f"≤ {COLD_TARGET_S:g} (day)",
                cold_ok if not quick else None,
                f"{loads[0]['rows']:,} rows, {loads[0]['snapshots']:,} snapshots; imports {loads[0]['imports_s']:.2f} s"
                + ("" if not quick else "; target applies to a full day only"),
            )
        )
        rows.append(row("load_dumps warm reload (unchanged files)", [w for r in loads for w in r["warm_s"]], "s"))
        peak = [r["peak_kib"] / 1024 for r in loads]
        base = statistics.median(r["rss_before_kib"] / 1024 for r in loads)
        rows.append(
            row(
                "peak RSS of the loading process",
                peak,
                "MiB",
                note=f"VmHWM; {base:.0f} MiB after imports (ru_maxrss would include the bench process's RSS at fork)",
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows
