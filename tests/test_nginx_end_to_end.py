"""Real software end to end: Debian's nginx (a master and 4 workers on 127.0.0.1, own config and prefix in a temp
dir) under a few requests, recorded by the real collector loop (collector.run.run in-process, default smaps
settings), checked against an independent read of /proc (tests/realproc.py) taken right before and right after each
sample (stat, statm) and right before and after each of the collector's smaps_rollup reads of an nginx process (its
injectable reader), then read back through the CLI (`python -m memlib export` / `timeline`).

For idle processes (the reads before and after agree) the recorded RSS and PSS equal the independent values
exactly; tree (ppid, descendants), start times, PSS coverage and subtree totals are checked the same way.
`make test` installs nginx (Makefile target `nginx`); without it the test fails under CI=true and skips elsewhere.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import in_ci

from collector import run as run_mod
from collector import sampler as sampler_mod
from tests.realproc import boot_time_s, cli_json, smaps_rollup, start_time_ns, stat_fields, statm_rss

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
WORKERS = 4
REQUESTS_PER_SAMPLE = 5

CONFIG = """
worker_processes {workers};
pid {d}/nginx.pid;
lock_file {d}/nginx.lock;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read()
    finally:
        conn.close()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """A running nginx master (foreground) with WORKERS workers on a free port; stopped after the test."""
    if NGINX is None:
        if in_ci():
            pytest.fail("nginx is not installed (make test installs it: `make nginx`)")
        pytest.skip("nginx is not installed (`make nginx` installs it)")
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    (prefix / "nginx.conf").write_text(CONFIG.format(workers=WORKERS, d=prefix, port=port))
    cmd = [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
    master = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert get(port) == b"ok\n"
                break
            except OSError:
                if master.poll() is not None or time.monotonic() > deadline:
                    out = master.stdout.read().decode(errors="replace") if master.stdout else ""
                    pytest.fail(f"nginx did not start ({master.poll()}): {out[-2000:]}")
                time.sleep(0.05)
        while len(children_of(master.pid)) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.05)
        yield master, port
    finally:
        master.send_signal(signal.SIGQUIT)  # graceful: the workers finish and exit, then the master
        try:
            master.wait(20)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
        if master.stdout is not None:
            master.stdout.close()


def children_of(pid: int) -> list[int]:
    """Every process whose ppid is `pid` (a scan of /proc)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if stat_fields(int(name))[0] == pid:
                    out.append(int(name))
    return sorted(out)


def independent(pids: list[int]) -> dict[int, dict[str, int]]:
    """pid -> {rss (statm), ppid, start_ticks (stat)}, read right now."""
    out = {}
    for pid in pids:
        ppid, ticks = stat_fields(pid)
        out[pid] = {"rss": statm_rss(pid), "ppid": ppid, "start_ticks": ticks}
    return out


class Bracketed:
    """The collector's /proc sampler (default smaps settings) with independent reads of the nginx processes: stat and
    statm right before and after each sample, smaps_rollup right before and after each of the sampler's own reads of
    it; a few requests after each sample."""

    def __init__(self, smaps: str, every: float, cpu: float, pids: list[int], port: int) -> None:
        self.pids, self.port = set(pids), port
        self.records: list[dict] = []
        self.smaps_reads: dict[int, list[dict]] = {pid: [] for pid in pids}  # pid -> its smaps reads, in order
        self.inner = sampler_mod.Sampler(smaps=smaps, smaps_every=every, smaps_cpu=cpu, read_whole=self._read_whole)
        self.host, self.boot_id = self.inner.host, self.inner.boot_id

    def _read_whole(self, path: str) -> bytes:
        parts = path.split("/")
        pid = int(parts[-2]) if parts[-1] == "smaps_rollup" and parts[-2].isdigit() else -1
        if pid not in self.pids:
            return sampler_mod.read_whole(path)
        before = smaps_rollup(pid)
        data = sampler_mod.read_whole(path)
        after = smaps_rollup(pid)
        self.smaps_reads[pid].append({"sample": len(self.records), "before": before, "after": after})
        return data

    def sample(self) -> object:
        before = independent(self.pids)
        smp = self.inner.sample()
        after = independent(self.pids)
        self.records.append({"sample": smp, "before": before, "after": after})
        for _ in range(REQUESTS_PER_SAMPLE):
            assert get(self.port) == b"ok\n"
        return smp

    def close(self) -> None:
        self.inner.close()


def between(value: int, a: int, b: int) -> bool:
    return min(a, b) <= value <= max(a, b)


def test_nginx_recorded_equals_an_independent_read_of_proc(nginx: tuple[subprocess.Popen, int], tmp_path: Path) -> None:
    master, port = nginx
    workers = children_of(master.pid)
    assert len(workers) == WORKERS, workers
    pids = [master.pid, *workers]
    for _ in range(20):  # a few requests before the recording starts
        assert get(port) == b"ok\n"
    dumps = tmp_path / "dumps"
    args = run_mod.parse_args(["--dumps", str(dumps), "--interval", "1", "--duration", "4.5"])
    made: list[Bracketed] = []

    def factory(smaps: str) -> Bracketed:
        made.append(Bracketed(smaps, args.smaps_every, args.smaps_cpu / 100, pids, port))
        return made[0]

    assert run_mod.run(args, sampler_factory=factory) == 0
    records, smaps_reads = made[0].records, made[0].smaps_reads
    assert len(records) >= 4
    btime = boot_time_s()
    idle_rss = idle_pss = 0

    # 1. what the sampler recorded vs the independent reads around it
    for k, rec in enumerate(records):
        procs = rec["sample"].procs
        at = {pid: i for i, pid in enumerate(procs["pid"])}
        for pid in pids:
            i = at[pid]
            b, a = rec["before"][pid], rec["after"][pid]
            assert procs["ppid"][i] == b["ppid"] == a["ppid"] == (os.getpid() if pid == master.pid else master.pid)
            assert procs["start_time"][i] == start_time_ns(b["start_ticks"], btime)
            rss = procs["rss_bytes"][i]
            assert between(rss, b["rss"], a["rss"]), (k, pid, rss, b["rss"], a["rss"])
            if b["rss"] == a["rss"]:
                assert rss == b["rss"]
                idle_rss += 1
            reads = [r for r in smaps_reads[pid] if r["sample"] <= k]
            if k == len(records) - 1:  # PSS coverage: every nginx process has values by the last sample (a few s)
                assert procs["smaps_ts"][i] is not None and reads, (k, pid)
            if procs["smaps_ts"][i] is None:
                assert not reads  # null only while never read
                continue
            # the values come from the sampler's latest read of that process: compare with the reads around it
            sb, sa = reads[-1]["before"], reads[-1]["after"]
            for key in ("pss", "uss", "swap"):
                assert between(procs[f"{key}_bytes"][i], sb[key], sa[key]), (k, pid, key, sb[key], sa[key])
            if sb["pss"] == sa["pss"]:
                assert procs["pss_bytes"][i] == sb["pss"]
                idle_pss += 1
    assert idle_rss >= len(pids) * len(records) // 2  # the equalities above were really exercised
    assert idle_pss >= len(pids)

    # 2. the same through the CLI: every column, tree columns and subtree totals
    exported = pd.DataFrame(cli_json("export", dumps, "--all"))
    exported["ts"] = pd.to_datetime(exported["ts"], utc=True)
    exported["start_time"] = pd.to_datetime(exported["start_time"], utc=True)
    line = pd.DataFrame(cli_json("timeline", dumps, "--pid", str(master.pid)))
    line["ts"] = pd.to_datetime(line["ts"], utc=True)
    for rec in records:
        smp = rec["sample"]
        snap = exported[(exported["ts"] - smp.ts).abs() < pd.Timedelta(microseconds=1)].set_index("pid")
        assert len(snap) == len(smp.procs["pid"]), "the CLI shows a different set of processes"
        at = {pid: i for i, pid in enumerate(smp.procs["pid"])}
        for pid in pids:
            row, i = snap.loc[pid], at[pid]
            assert row["start_time"].value == smp.procs["start_time"][i]
            assert (row["ppid"], row["rss_bytes"]) == (smp.procs["ppid"][i], smp.procs["rss_bytes"][i])
            pss = smp.procs["pss_bytes"][i]
            assert (row["pss_bytes"] is None or pd.isna(row["pss_bytes"])) if pss is None else row["pss_bytes"] == pss
            assert row["level"] == snap.loc[master.pid, "level"] + (pid != master.pid)
        top = snap.loc[master.pid]
        assert top["descendants"] == WORKERS
        independent_rss = [rec["after"][p]["rss"] for p in pids]
        assert top["subtree_rss_bytes"] == sum(smp.procs["rss_bytes"][at[p]] for p in pids)
        if all(rec["before"][p]["rss"] == rec["after"][p]["rss"] for p in pids):
            assert top["subtree_rss_bytes"] == sum(independent_rss)
        psses = [smp.procs["pss_bytes"][at[p]] for p in pids]
        if None not in psses:
            assert top["subtree_pss_bytes"] == sum(psses)
        (tl,) = line[(line["ts"] - smp.ts).abs() < pd.Timedelta(microseconds=1)].to_dict("records")
        assert (tl["subtree_rss_bytes"], tl["descendants"]) == (top["subtree_rss_bytes"], WORKERS)
    # every nginx process has PSS in the last snapshot, so the subtree's PSS is a whole sum, not a partial one
    last = exported[exported["ts"] == exported["ts"].max()].set_index("pid")
    assert last.loc[pids, "pss_bytes"].notna().all()


def test_make_test_installs_nginx() -> None:
    text = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    test_line = next(line for line in text.splitlines() if line.startswith("test:"))
    assert "nginx" in test_line.split()
    recipe = text.split("\nnginx:", 1)[1].split("\n\n", 1)[0]
    assert "install -y -q --no-install-recommends nginx" in recipe
