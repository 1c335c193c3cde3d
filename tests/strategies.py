"""Test data: `make_procs` builds a PROCS frame from plain records; `histories` generates random process histories.

A history is a forest that changes between snapshots: births, exits (children re-parented to init, pid 1), PID
reuse (a small pid pool, a new start time each time), exec (same pid and start time, new name and command line),
processes whose parent is missing from the snapshot, memory changes, and PSS/USS/swap known for some processes only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
from hypothesis import strategies as st

from memlib import schema

T0 = pd.Timestamp("2026-01-05 10:00:00", tz="UTC")
INTERVAL_S = 5
MIB = schema.MIB


def ts_of(snap: int) -> pd.Timestamp:
    """Snapshot number -> its sample time in test data (T0 + 5 s per snapshot)."""
    return T0 + pd.Timedelta(seconds=INTERVAL_S * snap)


def make_procs(records: list[dict]) -> pd.DataFrame:
    """Plain records -> PROCS frame at schema dtypes, sorted by snap, pid, with proc_id as the loader assigns it.

    Each record needs snap, pid, ppid, rss (bytes); optional: start (Timestamp, default T0 - 1 h; identity is
    (pid, start)), name, cmdline, user, pss/uss/swap (bytes or None), ts (default ts_of(snap)).
    proc_id is dense over (pid, start) in order of first appearance (sorted by snap, pid).
    """
    rows = []
    for r in records:
        snap = int(r["snap"])
        rows.append(
            {
                "snap": snap,
                "ts": r.get("ts", ts_of(snap)),
                "host": "testhost",
                "boot_id": "boot-1",
                "pid": int(r["pid"]),
                "ppid": int(r["ppid"]),
                "start_time": r.get("start", T0 - pd.Timedelta(hours=1)),
                "uid": r.get("uid", 1000),
                "user": r.get("user", "alice"),
                "state": r.get("state", "S"),
                "name": r.get("name", f"p{r['pid']}"),
                "cmdline": r.get("cmdline", f"/usr/bin/p{r['pid']} --serve"),
                "rss_bytes": int(r["rss"]),
                "vsz_bytes": int(r.get("vsz", 3 * int(r["rss"]))),
                "threads": r.get("threads", 1),
                "cgroup": r.get("cgroup", "/user.slice"),
                "pss_bytes": r.get("pss"),
                "uss_bytes": r.get("uss"),
                "swap_bytes": r.get("swap"),
                "smaps_ts": r.get("ts", ts_of(snap)) if r.get("pss") is not None else pd.NaT,
            }
        )
    if not rows:
        return schema.empty_procs()
    df = pd.DataFrame(rows)
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    df["start_time"] = pd.to_datetime(df["start_time"], utc=True)
    df["smaps_ts"] = pd.to_datetime(df["smaps_ts"], utc=True)
    for c in ("pss_bytes", "uss_bytes", "swap_bytes", "uid", "threads"):
        df[c] = df[c].astype(object).where(df[c].notna(), None).astype("Int64")
    df = df.sort_values(["snap", "pid"], kind="stable").reset_index(drop=True)
    identity = list(zip(df["pid"], df["start_time"], strict=True))
    first: dict[tuple, int] = {}
    for key in identity:
        first.setdefault(key, len(first))
    df["proc_id"] = [first[k] for k in identity]
    return schema.conform(df, schema.PROC_COLUMNS)


@dataclass(frozen=True)
class _Proc:
    ppid: int
    start: pd.Timestamp
    name: str
    cmdline: str
    rss: int
    smaps: bool  # PSS/USS/swap readable


OPS = ("spawn", "spawn", "exit", "exec", "mem", "detach", "adopt")


def simulate(steps: list[list[tuple[str, int, int]]], pid_pool: int = 12, kthreadd: bool = True) -> list[dict]:
    """Ops per snapshot -> records for make_procs. Deterministic: the ints choose targets modulo what is alive.

    spawn(a, b): a new process under a live one, pid from the free part of the pool (reuse gets a new start time);
    exit(a): a live process other than init/kthreadd exits, its children are re-parented to pid 1; exec(a): new
    name and command line, same pid and start; mem(a, b): new RSS; detach(a): ppid set to a pid that is not alive
    (the parent is absent from the snapshot, so the process is a root); adopt(a, b): a process moves under another
    live one that is not below it (no cycles).
    """
    alive: dict[int, _Proc] = {1: _Proc(0, T0 - pd.Timedelta(days=1), "systemd", "/sbin/init", 12 * MIB, False)}
    if kthreadd:
        alive[2] = _Proc(0, T0 - pd.Timedelta(days=1), "kthreadd", "[kthreadd]", 0, False)
    records: list[dict] = []
    counter = 0
    for snap, ops in enumerate(steps):
        for op, a, b in ops:
            counter += 1
            pids = sorted(alive)
            mortal = [p for p in pids if p > 2]
            if op == "spawn":
                free = [p for p in range(3, 3 + pid_pool) if p not in alive]
                if not free:
                    continue
                pid = free[b % len(free)]
                parent = pids[a % len(pids)]
                start = ts_of(snap) - pd.Timedelta(milliseconds=counter)  # unique per identity
                alive[pid] = _Proc(
                    parent, start, f"job{pid}", f"job{pid} --n {counter}", (a % 50 + 1) * MIB, b % 3 != 0
                )
            elif not mortal:
                continue
            elif op == "exit":
                victim = mortal[a % len(mortal)]
                del alive[victim]
                for pid, p in alive.items():
                    if p.ppid == victim:
                        alive[pid] = replace(p, ppid=1)
            elif op == "exec":
                victim = mortal[a % len(mortal)]
                alive[victim] = replace(alive[victim], name=f"exe{b % 5}", cmdline=f"/bin/exe{b % 5} --after-exec")
            elif op == "mem":
                victim = mortal[a % len(mortal)]
                alive[victim] = replace(alive[victim], rss=(b % 64) * MIB + a)
            elif op == "detach":
                victim = mortal[a % len(mortal)]
                alive[victim] = replace(alive[victim], ppid=100 + b % 5)
            elif op == "adopt":
                victim = mortal[a % len(mortal)]
                below = {victim}
                grew = True
                while grew:
                    extra = {q for q, p in alive.items() if p.ppid in below and q not in below}
                    grew = bool(extra)
                    below |= extra
                targets = [p for p in pids if p not in below]
                alive[victim] = replace(alive[victim], ppid=targets[b % len(targets)])
        for pid, p in sorted(alive.items()):
            rec = {"snap": snap, "pid": pid, "ppid": p.ppid, "start": p.start, "name": p.name, "cmdline": p.cmdline}
            rec["rss"] = p.rss
            rec["user"] = "root" if pid <= 2 else ("alice" if pid % 2 else "bob")
            if p.smaps:
                rec.update(pss=p.rss * 2 // 3, uss=p.rss // 2, swap=(pid % 3) * 4096)
            records.append(rec)
    return records


def steps_strategy(max_snaps: int = 6, max_ops: int = 6) -> st.SearchStrategy:
    """Strategy: a list (one per snapshot) of lists of (op, a, b) tuples for `simulate`."""
    op = st.tuples(st.sampled_from(OPS), st.integers(0, 999), st.integers(0, 999))
    return st.lists(st.lists(op, max_size=max_ops), min_size=1, max_size=max_snaps)


@st.composite
def histories(draw, max_snaps: int = 6, max_ops: int = 6, pid_pool: int = 12) -> pd.DataFrame:
    """Strategy: a random process history as a PROCS frame (see module docstring)."""
    steps = draw(steps_strategy(max_snaps, max_ops))
    kthreadd = draw(st.booleans())
    return make_procs(simulate(steps, pid_pool=pid_pool, kthreadd=kthreadd))


def sample_columns_of(rows: pd.DataFrame) -> dict[str, list]:
    """One snapshot's rows of a PROCS frame -> the columns store.SegmentWriter.append takes."""

    def ints(c: str) -> list:
        return [None if v is pd.NA else int(v) for v in rows[c]]

    return {
        "pid": rows["pid"].tolist(), "ppid": rows["ppid"].tolist(),
        "start_time": [t.value for t in rows["start_time"]], "uid": ints("uid"),
        "user": rows["user"].astype(str).tolist(), "state": rows["state"].astype(str).tolist(),
        "name": rows["name"].astype(str).tolist(), "cmdline": rows["cmdline"].astype(str).tolist(),
        "rss_bytes": rows["rss_bytes"].tolist(), "vsz_bytes": rows["vsz_bytes"].tolist(), "threads": ints("threads"),
        "cgroup": rows["cgroup"].astype(str).tolist(), "pss_bytes": ints("pss_bytes"),
        "uss_bytes": ints("uss_bytes"), "swap_bytes": ints("swap_bytes"), "smaps_ts": [None] * len(rows),
    }  # fmt: skip


MEMINFO = {"MemTotal": 8 << 30, "MemFree": 2 << 30, "MemAvailable": 4 << 30, "Buffers": 1 << 20, "Cached": 1 << 30}


def write_store(root, procs: pd.DataFrame, closes: set[int] = frozenset(), active: bool = False,
                host: str = "testhost", boot_id: str = "boot-1"):  # fmt: skip
    """A PROCS frame (snap, ts per row) -> a store at `root` written sample by sample through the real writer
    (segments closed after the snapshots in `closes`; the last one left active when `active`); returns the
    opened memlib.source.Recording."""
    from memlib import source
    from tests.store_samples import writer

    w = writer(root, host=host, boot_id=boot_id)
    for snap in sorted(set(procs["snap"])):
        rows = procs[procs["snap"] == snap]
        w.append(rows["ts"].iloc[0], sample_columns_of(rows), MEMINFO)
        if snap in closes:
            w.close()
    if not active:
        w.close()
    source.clear_cache()
    return source.open_recording(root)
