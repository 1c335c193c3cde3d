"""Tiny recordings written through the real writer (store.SegmentWriter) for the store and source tests, the store
read back whole (``read_store``), and the helpers of the tests that kill a real collector (start it, see its first
sample, count the whole samples on disk, restart it to recover)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import store
from memlib import source
from memlib.tree import stored_tree
from store import frames

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20
T0 = pd.Timestamp("2026-11-27T10:00:00Z")


def sample_procs(rows: list[tuple[int, int, int]], start: dict[int, pd.Timestamp] | None = None) -> dict[str, list]:
    """[(pid, ppid, rss MiB)] -> the columns SegmentWriter.append takes (start times T0 - pid s unless given)."""
    start = start or {}
    pids = [r[0] for r in rows]
    return {
        "pid": pids,
        "ppid": [r[1] for r in rows],
        "start_time": [start.get(p, T0 - pd.Timedelta(seconds=p)).value for p in pids],
        "uid": [1000] * len(rows),
        "user": ["alice"] * len(rows),
        "state": ["S"] * len(rows),
        "name": [f"p{p}" for p in pids],
        "cmdline": [f"/bin/p{p} --run" for p in pids],
        "rss_bytes": [r[2] * MIB for r in rows],
        "vsz_bytes": [r[2] * 4 * MIB for r in rows],
        "threads": [1] * len(rows),
        "cgroup": ["/user.slice"] * len(rows),
        "pss_bytes": [r[2] * MIB // 2 for r in rows],
        "uss_bytes": [None] * len(rows),
        "swap_bytes": [0] * len(rows),
        "smaps_ts": [None] * len(rows),
    }


FAKE_T0 = pd.Timestamp("2026-01-05 10:00:00", tz="UTC")


def fake_procs(n: int, k: int, rng: np.random.Generator | None = None) -> dict[str, list]:
    """Sample k of n processes: realistic-looking columns (times as int ns), some smaps nulls."""
    pid = list(range(100, 100 + n))
    rss = [(1000 + 37 * p + (k * p) % 97) * 4096 for p in pid]
    if rng is not None:
        rss = [int(r + rng.integers(0, 3) * 4096) for r in rss]
    start = [int(FAKE_T0.value - 3600 * 10**9 + p * 10**7) for p in pid]
    has_smaps = [p % 3 != 0 for p in pid]
    return {
        "pid": pid,
        "ppid": [1 if p < 110 else 100 + (p % 10) for p in pid],
        "start_time": start,
        "uid": [0 if p % 2 else 1000 for p in pid],
        "user": ["root" if p % 2 else "alice" for p in pid],
        "state": ["S" if (p + k) % 7 else "R" for p in pid],
        "name": [f"proc-{p % 40}" for p in pid],
        "cmdline": [
            f"/usr/lib/app/bin/proc-{p % 40} --config /etc/app/{p}.toml --workers 4 --log-level info" for p in pid
        ],
        "rss_bytes": rss,
        "vsz_bytes": [r * 5 for r in rss],
        "threads": [1 + p % 9 for p in pid],
        "cgroup": [f"/system.slice/app-{p % 12}.service" for p in pid],
        "pss_bytes": [r // 2 if h else None for r, h in zip(rss, has_smaps, strict=True)],
        "uss_bytes": [r // 3 if h else None for r, h in zip(rss, has_smaps, strict=True)],
        "swap_bytes": [0 if h else None for h in has_smaps],
        "smaps_ts": [
            int(FAKE_T0.value + (k - p % 12) * 5 * 10**9) if h else None for p, h in zip(pid, has_smaps, strict=True)
        ],
    }


def meminfo(k: int) -> dict[str, int]:
    """/proc/meminfo of sample k (one value above 2**53, which must survive exactly)."""
    return {
        "MemTotal": 16 << 30,
        "MemFree": (8 << 30) - k * 4096,
        "Active(anon)": 1 << 30,
        "HugePages_Total": 0,
        "VmallocTotal": 34359738367 * 1024,  # > 2**53: must survive exactly
    }


MEMINFO = {"MemTotal": 4096 * MIB, "MemFree": 1024 * MIB, "MemAvailable": 2048 * MIB, "HugePages_Total": 0}


def writer(root: Path, host: str = "vm", boot_id: str = "boot-1", period_s: float = 3600) -> store.SegmentWriter:
    """A SegmentWriter for `root` deriving trees with memlib.tree.stored_tree."""
    return store.SegmentWriter(root, host, boot_id, period_s, derive=stored_tree)


def write_simple(root: Path, n: int = 3, close: bool = True, step_s: float = 5.0, host: str = "vm") -> Path:
    """n samples of a 3-process tree (1 <- 10 <- 11, rss 10/20/30+k MiB), one cgroup; closed unless `close` False."""
    w = writer(root, host=host)
    for k in range(n):
        ts = T0 + pd.Timedelta(seconds=step_s * k)
        w.append(ts, sample_procs([(1, 0, 10), (10, 1, 20), (11, 10, 30 + k)]), MEMINFO, cgroup_mem={"/x": 5 * MIB})
    if close:
        w.close()
    elif w._fd is not None:
        os.close(w._fd)  # leave the .current as a running (or crashed) collector would
    return root


@dataclass
class StoreRead:
    """Everything a store holds, closed files and active segments together (pandas, ts as UTC datetimes)."""

    procs: pd.DataFrame
    system: pd.DataFrame
    cgroups: pd.DataFrame
    notices: list[str]


def read_store(root: Path, tz: str | None = None) -> StoreRead:
    """Every row of the store at `root` (or of the seed folder, imported with `tz`) through memlib.source (verified
    closed files + active segments)."""
    source.clear_cache()
    rec = source.open_recording(root, tz=tz)
    act = source.active(rec)
    out = {}
    for table in ("procs", "system", "cgroups"):
        parts = []
        for path in source.parquet_files(rec, table):
            t = pq.read_table(path, partitioning=None)
            t = t.cast(pa.schema([pa.field(f.name, getattr(f.type, "value_type", f.type)) for f in t.schema]))
            parts.append(t.append_column("host", pa.array([path.parent.parent.name[len("host=") :]] * t.num_rows)))
        active_part = getattr(act, table)
        if active_part.num_rows:
            parts.append(active_part)
        if parts:
            frame = pa.concat_tables([p.replace_schema_metadata(None) for p in parts], promote_options="permissive")
            out[table] = frame.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        else:
            empty = pa.schema([*store.schema.SCHEMAS[table], ("host", pa.string())]).empty_table()
            out[table] = empty.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return StoreRead(out["procs"], out["system"], out["cgroups"], list(rec.notices) + list(act.notices))


def us(t: object) -> pd.Timestamp:
    """A time floored to the microsecond (what the store keeps)."""
    return pd.Timestamp(t).floor("us")


# ---------------------------------------------------------------------------------------------------- a real collector


def start_collector(dumps: Path, interval: float, period: float, stderr: object = subprocess.PIPE) -> subprocess.Popen:
    """A real `python -m collector` on /proc writing into `dumps` (smaps off), stderr to `stderr` (text)."""
    argv = ["--dumps", str(dumps), "--interval", str(interval), "--period", str(period), "--smaps", "off"]
    return subprocess.Popen(
        [sys.executable, "-m", "collector", *argv], cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr, text=True
    )


def fresh_current(dumps: Path, old: set[str]) -> bool:
    """True once a .current not in `old` holds at least one whole sample (cheap: names and sizes only)."""
    for name in os.listdir(dumps):
        if name.endswith(".current") and name not in old:
            with contextlib.suppress(FileNotFoundError):
                if (dumps / name).stat().st_size > frames.HEADER.size + 2 * frames.FRAME.size:
                    return True
    return False


def whole_samples_in_currents(dumps: Path) -> int:
    """Whole samples over the .current files of `dumps`, from the raw frames (asserts there is no damage)."""
    whole = 0
    for path in dumps.glob("*.current"):
        with contextlib.suppress(FileNotFoundError):
            data = path.read_bytes()
            if len(data) >= frames.HEADER.size:
                scan = frames.scan_frames(data[frames.HEADER.size :])
                assert not scan.problems and not scan.lost_samples, (path.name, scan.problems)
                whole += len(scan.frames) // 2
    return whole


def recover_by_restart(dumps: Path) -> StoreRead:
    """The next clean start of the collector (`--duration 0`: recover, no sample) -> the store read back; asserts
    it exits 0 and leaves no .current, temp or damaged file."""
    done = subprocess.run(
        [sys.executable, "-m", "collector", "--dumps", str(dumps), "--duration", "0", "--smaps", "off"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not list(dumps.glob("*.current")) and not list(dumps.rglob("*.tmp")) and not list(dumps.glob("*.damaged"))
    return read_store(dumps)
