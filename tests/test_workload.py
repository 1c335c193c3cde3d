"""The demo workload (sample/workload.py) at tiny scale and high speed: the tree it builds, its memory, its cleanup."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

WORKLOAD = Path(__file__).resolve().parent.parent / "sample" / "workload.py"
MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
SCALE = 0.2
SPEED = 60.0
MINUTES = 13.0  # covers the orphaner exit (3), the exec (5) and the spike (12) in 13 s
PREFIX = "wltest-"  # not demo-: a test run that happens during a sample recording must not pass for the sample's tree

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def load_workload():
    spec = importlib.util.spec_from_file_location("workload", WORKLOAD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@dataclass
class Seen:
    pid: int
    roles: list[str] = field(default_factory=list)
    ppids: list[int] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    cmdlines: set[str] = field(default_factory=set)
    sids: set[int] = field(default_factory=set)
    zombie_times: list[float] = field(default_factory=list)


def ours(token: bytes) -> dict[int, tuple[str, int, int, str, int, str]]:
    """pid -> (comm, ppid, rss bytes, cmdline, session id, state) of processes whose command line holds `token`,
    plus exited-but-unreaped (zombie) children of those (a zombie's command line is empty)."""
    out, zombies = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            cmd = b""
            if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z":
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
                if token not in cmd:
                    continue
        except OSError:
            continue
        comm = stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode()
        fields = stat[stat.rindex(b")") + 2 :].split()
        info = (comm, int(fields[1]), int(fields[21]) * PAGE, cmd.replace(b"\0", b" ").decode(), int(fields[3]))
        (zombies if not cmd else out)[int(entry)] = (*info, fields[0].decode())
    out.update({pid: z for pid, z in zombies.items() if z[1] in out})
    return out


def watch(proc: subprocess.Popen, token: bytes, timeout: float) -> dict[int, Seen]:
    """Poll /proc until `proc` exits; every process of the run with its roles, parents, RSS and command lines."""
    seen: dict[int, Seen] = {}
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, "workload did not finish in time"
        now = ours(token)
        t = time.monotonic()
        for pid, (comm, ppid, rss, cmd, sid, state) in now.items():
            if not comm.startswith(PREFIX) or now.get(ppid, ("",))[0] == comm:
                continue  # between fork and exec/set_name a child still looks like its parent
            s = seen.setdefault(pid, Seen(pid))
            if state == "Z":
                s.zombie_times.append(t)
                continue
            role = comm.removeprefix(PREFIX)
            if not s.roles or s.roles[-1] != role:
                s.roles.append(role)
            s.ppids.append(ppid)
            s.rss.append(rss)
            s.cmdlines.add(cmd)
            s.sids.add(sid)
        time.sleep(0.03)
    return seen


def by_role(seen: dict[int, Seen], role: str) -> list[Seen]:
    return [s for s in seen.values() if role in s.roles]


def wait_gone(token: bytes, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    left = ours(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = ours(token)
    return left


def test_plan_lists_the_scheduled_events():
    wl = load_workload()
    events = wl.plan(31)
    times = [t for t, _ in events]
    assert times == sorted(times)
    assert sum("job starts" in what for _, what in events) == 31
    assert (180.0, "orphaner exits; orphan is re-parented (PID 1 or the nearest subreaper)") in events
    assert any(t == 720.0 and "spiker +150" in what for t, what in events)
    assert events[-1][0] == 31 * 60


def test_workload_builds_the_tree_and_cleans_up(tmp_path):
    run_dir = tmp_path / "run"
    token = str(run_dir).encode()
    cmd = [sys.executable, str(WORKLOAD), "--minutes", str(MINUTES), "--scale", str(SCALE), "--speed", str(SPEED)]
    cmd += ["--run-dir", str(run_dir), "--name-prefix", PREFIX]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        seen = watch(proc, token, timeout=MINUTES * 60 / SPEED + 20)
    finally:
        if proc.poll() is None:
            proc.terminate()
        log = proc.communicate(timeout=20)[1]
    assert proc.returncode == 0, log

    (root,) = by_role(seen, "root")
    assert root.pid == proc.pid  # the re-exec that adds the fake secret keeps the PID
    assert any("--db-password s3cr3t" in c for c in root.cmdlines)
    for role in ["leaker", "steady", "execer", "orphaner", "jobs", "pool"]:
        (s,) = by_role(seen, role)
        assert s.ppids[0] == root.pid, role
    (leaker,) = by_role(seen, "leaker")
    assert any("--token=tok_live_SECRET123" in c for c in leaker.cmdlines)
    (steady,) = by_role(seen, "steady")
    (spiker,) = by_role(seen, "spiker")
    assert set(spiker.ppids) == {steady.pid}

    # exec: one PID, two roles and two command lines
    (execer,) = by_role(seen, "execer")
    assert execer.roles == ["execer", "execer2"]
    assert any("--role execer --" in c for c in execer.cmdlines)
    assert any("--role execer2 --" in c for c in execer.cmdlines)

    # orphan: child of the orphaner, then re-parented elsewhere once the orphaner exits
    (orphaner,) = by_role(seen, "orphaner")
    (orphan,) = by_role(seen, "orphan")
    assert f"leaving orphan pid={orphan.pid}" in log  # its parent's word: under heavy load it may be named too late
    assert orphan.ppids[-1] not in (orphaner.pid, root.pid)
    assert orphan.sids == {orphan.pid}  # a session of its own
    assert root.sids != {root.pid}

    (jobs,) = by_role(seen, "jobs")
    job_list = by_role(seen, "job")
    assert job_list and all(set(j.ppids) == {jobs.pid} for j in job_list)
    (pool,) = by_role(seen, "pool")
    workers = by_role(seen, "worker")
    assert len(workers) == 3 and all(set(w.ppids) == {pool.pid} for w in workers)

    # memory is really resident
    assert max(steady.rss) - max(root.rss) >= 0.8 * (60 - 10) * SCALE * MIB
    assert max(spiker.rss) - min(spiker.rss) >= 0.8 * 150 * SCALE * MIB
    assert leaker.rss[-1] - leaker.rss[0] >= 0.25 * 3 * MINUTES * SCALE * MIB  # lenient: late first sight under load

    # exited children are reaped within a tick: no zombie stays in the tree (the orphaner at minute 3, the jobs)
    for s in seen.values():
        if s.zombie_times:
            assert s.zombie_times[-1] - s.zombie_times[0] < 0.4, (s.roles, len(s.zombie_times))

    assert wait_gone(token) == {}
    assert not run_dir.exists()
    assert "spike +30 MiB" in log and "exec as execer2" in log


def test_sigterm_stops_every_process(tmp_path):
    run_dir = tmp_path / "run"
    token = str(run_dir).encode()
    cmd = [sys.executable, str(WORKLOAD), "--minutes", "31", "--scale", "0.05", "--speed", "60"]
    cmd += ["--run-dir", str(run_dir), "--name-prefix", PREFIX]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        # wait past the orphaner's exit (3 min = 3 s) so the orphan is no longer anybody's child of ours
        while time.monotonic() < deadline:
            roles = {comm for comm, *_, state in ours(token).values() if state != "Z"}
            if f"{PREFIX}orphan" in roles and f"{PREFIX}orphaner" not in roles:
                break
            time.sleep(0.1)
        assert {f"{PREFIX}root", f"{PREFIX}orphan", f"{PREFIX}worker"} <= {
            comm for comm, *_, st in ours(token).values() if st != "Z"
        }
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_gone(token) == {}


# ---------------------------------------------------------------- the shipped recording (sample/dumps)

SAMPLE = WORKLOAD.parent / "dumps"
SECRET_TEXTS = ["s3cr3t", "SECRET123", "tok_live"]


def sample_files() -> list[Path]:
    files = sorted(
        p for p in [*SAMPLE.glob("seg-*"), *SAMPLE.glob("*/host=*/date=*/seg-*")] if not p.name.endswith(".tmp")
    )
    assert files, f"{SAMPLE} holds no recording (see sample/README.md to regenerate it)"
    return files


def test_shipped_sample_is_small_and_holds_no_secret():
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sample_files()
    assert all(f.name.endswith(".parquet") for f in files), "the recording was not compacted (a .current is left)"
    assert sum(f.stat().st_size for f in files) <= 5_000_000
    for f in files:
        table = pq.read_table(f)
        meta = b" ".join(k + b"=" + v for k, v in (pq.read_metadata(f).metadata or {}).items())
        for secret in SECRET_TEXTS:
            assert secret.encode() not in meta, f.name
            for name in table.column_names:
                col = table.column(name)
                if pa.types.is_dictionary(col.type):
                    col = col.cast(pa.string())
                if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                    assert not pc.any(pc.match_substring(col, secret)).as_py(), (f.name, name, secret)


def test_shipped_sample_shows_the_demo_tree(sample_rec):
    from memlib import query

    rec = sample_rec
    assert rec.kind == "native" and not [n for n in rec.notices if "converted" not in n], rec
    ts = query.snapshots(rec)["ts"]
    assert ts.max() - ts.min() >= pd.Timedelta(minutes=30)
    assert 4.5 <= ts.diff().dt.total_seconds().median() <= 5.5
    p = query.window_rows(rec)  # a 31-minute recording: every row is small enough here
    demo = p[p["name"].astype(str).str.startswith("demo-")]
    names = set(demo["name"].astype(str))
    assert {
        f"demo-{r}" for r in ["root", "leaker", "steady", "spiker", "execer", "execer2", "orphaner", "orphan"]
    } <= names
    assert {"demo-jobs", "demo-job", "demo-pool", "demo-worker"} <= names

    def one(name: str):
        rows = demo[demo["name"] == name]
        assert rows["proc_id"].nunique() == 1, name
        return rows

    root = one("demo-root")
    assert root["cmdline"].astype(str).str.contains("--db-password").all()
    assert root["descendants"].max() >= 11  # 6 children + spiker, orphan, 3 workers (+ a job now and then)
    root_pid = int(root["pid"].iloc[0])
    for name in ["demo-leaker", "demo-steady", "demo-orphaner", "demo-jobs", "demo-pool"]:
        assert set(one(name)["ppid"]) == {root_pid}, name
    # exec: same pid and identity before and after, new name and command line
    execer = demo[demo["name"].isin(["demo-execer", "demo-execer2"])]
    assert execer["proc_id"].nunique() == 1 and execer["name"].astype(str).nunique() == 2
    assert execer["cmdline"].astype(str).str.contains("--role execer2").any()
    # the orphan moves from the orphaner to another parent, the orphaner vanishes
    orphan = one("demo-orphan")
    orphaner = one("demo-orphaner")
    assert orphan["ppid"].iloc[0] == orphaner["pid"].iloc[0] and orphan["ppid"].iloc[-1] != orphaner["pid"].iloc[0]
    assert (orphaner["state"].astype(str) == "Z").sum() <= 1  # a sample may catch the exit; the root reaps within 1 s
    # memory: the spike, the leak, shared pages of the pool (PSS well below RSS)
    spiker = one("demo-spiker")
    assert spiker["rss_bytes"].max() - spiker["rss_bytes"].min() >= 140 * MIB
    leaker = one("demo-leaker")
    assert leaker["rss_bytes"].iloc[-1] - leaker["rss_bytes"].iloc[0] >= 80 * MIB
    # (rows of the last sample, caught while exiting, have RSS 0 next to an older PSS reading)
    workers = demo[(demo["name"] == "demo-worker") & (demo["rss_bytes"] > 0)].dropna(subset=["pss_bytes"])
    assert len(workers) and (workers["pss_bytes"] < workers["rss_bytes"] * 0.6).all()
