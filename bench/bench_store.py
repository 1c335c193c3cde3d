"""The store's figures: bytes per process-sample on disk (tree columns included), compaction cost, the collector's
writer per sample.

Rows:
- a generated day (``bench.gen_day.write_recording``: 24 h at 5 s, 300 processes, hourly segments through
  ``store.segment.build_tables`` + ``publish``, the compaction path): bytes per process-sample (procs + system +
  cgroups files), the procs files alone;
- compaction of one generated hour from a ``.current`` holding its frames: ``store.compact_current`` (tree columns
  derived, partitioned files, checksums), CPU seconds;
- one generated hour written sample by sample through ``store.SegmentWriter`` (what the collector does): append time
  per sample, close (compaction) time, bytes per process-sample;
- the shipped recording ``sample/dumps``: bytes per process-sample.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import store
from bench.gen_day import generate, write_recording
from bench.timing import row
from memlib.schema import MIB
from memlib.tree import stored_tree
from store import frames
from store.schema import SAMPLE_COLUMNS, SAMPLE_TYPES

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DUMPS = REPO / "sample" / "dumps"
HOST = "benchhost"
BOOT_ID = "0f0e-bench-boot"
TS_TYPE = pa.timestamp("ns", tz="UTC")
BYTES_TARGET = 8.0

FULL = {"hours": 24.0, "interval_s": 5.0, "n_procs": 300, "writer_hours": 1.0, "repeats": 5}
QUICK = {"hours": 0.1, "interval_s": 5.0, "n_procs": 40, "writer_hours": 0.02, "repeats": 2}


def arrow_hour(procs: pd.DataFrame) -> pa.Table:
    """PROCS rows -> the Arrow table a `.current` frame holds (ts + store.schema.SAMPLE_COLUMNS at their types)."""
    schema = pa.schema([("ts", TS_TYPE), *SAMPLE_TYPES.items()])
    return pa.Table.from_pandas(procs[["ts", *SAMPLE_COLUMNS]], preserve_index=False).cast(schema)


def system_arrow(system: pd.DataFrame) -> pa.Table:
    """SYSTEM rows -> Arrow table (ts + meminfo fields as int64), wide, as a .current's system frames decode."""
    fields = [c for c in system.columns if c not in ("snap", "ts", "host", "boot_id")]
    arrays = [pa.Array.from_pandas(system["ts"]).cast(TS_TYPE)]
    arrays += [pa.Array.from_pandas(system[c], type=pa.int64()) for c in fields]
    return pa.Table.from_arrays(arrays, names=["ts", *fields])


def current_bytes(procs: pd.DataFrame, system: pd.DataFrame) -> bytes:
    """A `.current` holding these rows as one procs and one system frame (Arrow IPC payloads)."""
    data = frames.header_bytes()
    data += frames.encode_frame(frames.KIND_PROCS, arrow_hour(procs), HOST, BOOT_ID)
    data += frames.encode_frame(frames.KIND_SYSTEM, system_arrow(system), HOST, BOOT_ID)
    return data


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
    columns = {c: np.split(_values(procs[c]), cuts) for c in SAMPLE_COLUMNS}
    fields = [c for c in system.columns if c not in ("snap", "ts", "host", "boot_id")]
    sys_cols = {c: _values(system[c]) for c in fields}
    sys_rows = [{c: sys_cols[c][i] for c in fields} for i in range(len(system))]
    ts_list = procs["ts"].iloc[np.r_[0, cuts]].tolist()
    return [(ts_list[i], {c: columns[c][i].tolist() for c in SAMPLE_COLUMNS}, sys_rows[i]) for i in range(len(ts_list))]


def dir_bytes(path: Path) -> int:
    """Bytes of every closed file and active segment of the store at `path`."""
    return store.store_bytes(path)


def compaction_cpu(data: bytes, work: Path) -> float:
    """CPU seconds of one compaction (store.compact_current) of the `.current` bytes `data`."""
    d = Path(tempfile.mkdtemp(dir=work))
    try:
        cur = d / "seg-20260302T000000.000Z-benchhost.current"
        cur.write_bytes(data)
        gc.collect()
        t = time.process_time()
        store.compact_current(cur, stored_tree)
        return time.process_time() - t
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run(quick: bool = False) -> list[dict]:
    """Store benchmarks -> rows (see the module docstring); `quick` uses a tiny recording."""
    cfg = QUICK if quick else FULL
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="pmi-bench-store-"))
    try:
        day = work / "day"
        summary = write_recording(day, cfg["hours"], 1, cfg["interval_s"], cfg["n_procs"], seed=0)
        n_rows = summary["rows"]
        total = dir_bytes(day)
        procs_only = sum(p.stat().st_size for p in (day / "procs").rglob("*.parquet"))
        bpr = total / n_rows
        rows.append(
            row(
                "generated day in the store: bytes per process-sample (all files, tree columns included)",
                [bpr],
                "B",
                f"≤ {BYTES_TARGET:g}",
                None if quick else bpr <= BYTES_TARGET,
                f"{cfg['hours']:g} h at {cfg['interval_s']:g} s, {n_rows:,} rows, {summary['snapshots']:,} samples; "
                f"{total / MIB:.1f} MiB in {summary['files']} files; procs files alone "
                f"{procs_only / n_rows:.2f} B/row; written in {summary['seconds']:.1f} s",
            )
        )
        hours = max(cfg["writer_hours"], 1.0 if not quick else cfg["writer_hours"])
        procs, system = generate(hours=hours, interval_s=cfg["interval_s"], n_procs=cfg["n_procs"], seed=0)
        data = current_bytes(procs, system)
        new = [compaction_cpu(data, work) for _ in range(cfg["repeats"])]
        note = f"{len(procs):,} rows of {hours:g} h; CPU time (process_time), median"
        rows.append(row("compaction of one hour: store.compact_current", new, "s", note=note))

        # the collector's path: one append per sample through SegmentWriter, then close() compacts
        n_writer = max(2, round(cfg["writer_hours"] * 3600 / cfg["interval_s"]))
        first = procs["snap"].to_numpy() < n_writer
        inputs = per_sample_inputs(procs[first], system.iloc[:n_writer])
        n_writer_rows = int(first.sum())
        del procs, system, first
        gc.collect()
        wdir = work / "writer"
        writer = store.SegmentWriter(wdir, HOST, BOOT_ID, period_s=10**9, derive=stored_tree)
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

        closed, _ = store.list_closed(SAMPLE_DUMPS, ["procs", "system", "cgroups"])
        if closed:
            n = sum(pq.read_metadata(f.path).num_rows for f in closed if f.table == "procs")
            sb = dir_bytes(SAMPLE_DUMPS)
            sbpr = sb / max(1, n)
            rows.append(
                row(
                    "shipped sample (sample/dumps): bytes per process-sample",
                    [sbpr],
                    "B",
                    f"≤ {BYTES_TARGET:g}",
                    sbpr <= BYTES_TARGET,
                    f"{sb / 1e6:.2f} MB, {n:,} rows",
                )
            )
        else:
            rows.append(row("shipped sample (sample/dumps)", [float("nan")], "B", note="sample/dumps has no segments"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows
