"""collector.metrics: the Prometheus endpoint's families from synthetic samples, its options, its bounded series under
process churn, content negotiation, and a real collector serving /metrics to slow scrapers while it keeps sampling."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench.bench_load import free_port
from collector import metrics
from collector import run as run_mod
from collector.sampler import Sample

REPO = Path(__file__).resolve().parent.parent
GIB, MIB = 1 << 30, 1 << 20
MEMINFO = {
    "MemTotal": 16 * GIB,
    "MemFree": 4 * GIB,
    "MemAvailable": 10 * GIB,
    "Buffers": 100 * MIB,
    "Cached": 2 * GIB,
    "SReclaimable": 300 * MIB,
    "SwapTotal": 2 * GIB,
    "SwapFree": 1536 * MIB,
}

Series = dict[tuple[str, frozenset], float]


def sample(rows: list[tuple], ts_s: float = 1_800_000_000.0, meminfo: dict | None = None) -> Sample:
    """Rows (pid, ppid, name, user, cgroup, rss, pss, uss, swap[, cmdline]) -> a Sample as the sampler returns it."""
    cols: dict[str, list] = {c: [] for c in ("pid", "ppid", "start_time", "name", "user", "cgroup", "cmdline")}
    for c in ("rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes"):
        cols[c] = []
    for pid, ppid, name, user, cgroup, rss, pss, uss, swap, *cmd in rows:
        for c, v in zip(cols, (pid, ppid, 1_700_000_000_000_000_000 + pid * 10**7, name, user, cgroup), strict=False):
            cols[c].append(v)
        cols["cmdline"].append(cmd[0] if cmd else name)
        for c, v in zip(("rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes"), (rss, pss, uss, swap), strict=True):
            cols[c].append(v)
    ts = pd.Timestamp(int(ts_s * 1e9), unit="ns", tz="UTC")
    return Sample(ts, cols, dict(MEMINFO if meminfo is None else meminfo), {"elapsed_s": 0.01})


def scrape(exporter: metrics.MetricsExporter) -> Series:
    """The exporter's text exposition parsed -> {(sample name, labels): value}."""
    text = generate_latest(exporter.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def pick(series: Series, name: str, /, **labels: str) -> dict[frozenset, float]:
    """Series of one name whose labels include `labels` -> {labels: value}."""
    want = set(labels.items())
    return {lab: v for (n, lab), v in series.items() if n == name and want <= lab}


def one(series: Series, name: str, /, **labels: str) -> float:
    """The value of the only series of `name` with those labels (AssertionError if none or several)."""
    hits = pick(series, name, **labels)
    assert len(hits) == 1, (name, labels, hits)
    return next(iter(hits.values()))


# a small machine: init (1) -> sshd (10) -> bash (11) -> hog (12); init -> db (20) -> db worker (21); kthreadd (2)
TREE = [
    (1, 0, "systemd", "root", "/init.scope", 12 * MIB, 6 * MIB, 4 * MIB, 0),
    (2, 0, "kthreadd", "root", None, 0, None, None, None),
    (10, 1, "sshd", "root", "/system.slice/ssh.service", 8 * MIB, 3 * MIB, 2 * MIB, 0),
    (11, 10, "bash", "ann", "/user.slice/user-1000.slice", 5 * MIB, 2 * MIB, 1 * MIB, 0, "bash --password=hunter2"),
    (12, 11, "hog", "ann", "/user.slice/user-1000.slice", 900 * MIB, 800 * MIB, 790 * MIB, 64 * MIB),
    (20, 1, "postgres", "pg", "/system.slice/pg.service", 300 * MIB, 100 * MIB, 50 * MIB, 0),
    (21, 20, "postgres", "pg", "/system.slice/pg.service", 200 * MIB, 60 * MIB, 40 * MIB, 0),
]


def exporter_for(*samples: Sample, **options: object) -> metrics.MetricsExporter:
    exp = metrics.MetricsExporter(metrics.MetricsOptions(**options), 5.0, log=lambda _: None)  # type: ignore[arg-type]
    for s in samples:
        exp.observe(s)
    return exp


def test_system_memory_groups_top_processes_and_subtrees_have_the_sample_values() -> None:
    s = scrape(exporter_for(sample(TREE), top=3))
    assert one(s, "pmi_memory_total_bytes") == 16 * GIB
    assert one(s, "pmi_memory_used_bytes") == 6 * GIB  # MemTotal - MemAvailable
    assert one(s, "pmi_memory_available_bytes") == 10 * GIB
    assert one(s, "pmi_memory_cached_bytes") == 100 * MIB + 2 * GIB + 300 * MIB  # Buffers + Cached + SReclaimable
    assert one(s, "pmi_swap_total_bytes") == 2 * GIB and one(s, "pmi_swap_used_bytes") == 512 * MIB
    # PSS known for every process holding memory (kthreadd holds none): PSS ranks
    assert one(s, "pmi_ranking_info", metric="pss") == 1
    assert one(s, "pmi_collector_smaps_coverage_ratio") == 1.0
    # top 3 processes by PSS: hog, postgres 20, postgres 21 — with every known metric, labels without cmdline
    top = pick(s, "pmi_process_pss_bytes")
    assert sorted(dict(lab)["pid"] for lab in top) == ["12", "20", "21"]
    hog = {"pid": "12", "name": "hog", "user": "ann", "cgroup": "/user.slice/user-1000.slice"}
    assert one(s, "pmi_process_rss_bytes", **hog) == 900 * MIB
    assert one(s, "pmi_process_uss_bytes", **hog) == 790 * MIB
    assert one(s, "pmi_process_swap_bytes", **hog) == 64 * MIB
    assert one(s, "pmi_process_pss_bytes", pid="12")
    assert {dict(lab)["start_time"] for lab in pick(s, "pmi_process_rss_bytes", pid="12")} == {"1700000000.12"}
    # subtrees (not roots, not leaves): sshd 10 (10, 11, 12), bash 11 (11, 12), postgres 20 (20, 21)
    assert one(s, "pmi_subtree_pss_bytes", pid="10") == (3 + 2 + 800) * MIB
    assert one(s, "pmi_subtree_processes", pid="10") == 3
    assert one(s, "pmi_subtree_rss_bytes", pid="20") == 500 * MIB
    assert one(s, "pmi_subtree_swap_bytes", pid="11") == 64 * MIB
    assert {dict(lab)["pid"] for lab in pick(s, "pmi_subtree_rss_bytes")} == {"10", "11", "20"}
    # groups: sums per key; kthreadd has no cgroup ("(unknown)") and no PSS (its PSS series is left out)
    assert one(s, "pmi_group_rss_bytes", by="name", group="postgres") == 500 * MIB
    assert one(s, "pmi_group_processes", by="name", group="postgres") == 2
    assert one(s, "pmi_group_pss_bytes", by="user", group="ann") == 802 * MIB
    assert one(s, "pmi_group_processes", by="user", group="root") == 3
    assert one(s, "pmi_group_processes", by="cgroup", group="(unknown)") == 1
    assert not pick(s, "pmi_group_pss_bytes", by="cgroup", group="(unknown)")  # unknown, not 0
    assert one(s, "pmi_group_uss_bytes", by="cgroup", group="/system.slice/pg.service") == 90 * MIB
    assert one(s, "pmi_collector_samples_total") == 1 and one(s, "pmi_collector_overruns_total") == 0


def test_groups_beyond_the_limit_sum_into_other_and_totals_add_up() -> None:
    s = scrape(exporter_for(sample(TREE), groups=2, group_by=("name",)))
    names = {dict(lab)["group"]: v for lab, v in pick(s, "pmi_group_rss_bytes", by="name").items()}
    assert set(names) == {"hog", "postgres", "(other)"}  # the two largest by PSS, then the rest
    assert names["(other)"] == (12 + 0 + 8 + 5) * MIB
    assert sum(names.values()) == sum(r[5] for r in TREE)
    assert one(s, "pmi_group_processes", by="name", group="(other)") == 4
    assert not pick(s, "pmi_group_rss_bytes", by="user")  # only the groupings asked for


def test_rss_ranks_when_pss_is_unknown_for_many_processes() -> None:
    rows = [r if r[0] not in (12, 20) else (*r[:6], None, None, None) for r in TREE]
    s = scrape(exporter_for(sample(rows), top=1))
    assert one(s, "pmi_ranking_info", metric="rss") == 1
    assert one(s, "pmi_collector_smaps_coverage_ratio") == pytest.approx(4 / 6)
    assert list(pick(s, "pmi_process_rss_bytes")) == [frozenset(one_labels(s, "pmi_process_rss_bytes").items())]
    assert dict(one_labels(s, "pmi_process_rss_bytes"))["pid"] == "12"  # the largest RSS, its PSS unknown
    assert not pick(s, "pmi_process_pss_bytes")  # unknown: no series, never 0
    assert one(s, "pmi_subtree_rss_bytes") == (8 + 5 + 900) * MIB  # sshd's subtree by RSS
    assert one(s, "pmi_subtree_pss_bytes") == (3 + 2) * MIB  # sum of the known ones


def one_labels(series: Series, name: str) -> dict[str, str]:
    hits = pick(series, name)
    assert len(hits) == 1, hits
    return dict(next(iter(hits)))


def test_the_command_line_never_reaches_the_endpoint() -> None:
    exp = exporter_for(sample(TREE), top=100)
    text = generate_latest(exp.registry).decode()
    assert "hunter2" not in text and "password" not in text
    assert 'pid="11"' in text  # bash is exported, only without its command line


def test_health_counts_samples_overruns_and_failures_and_ages() -> None:
    exp = exporter_for()
    s = scrape(exp)
    assert one(s, "pmi_collector_samples_total") == 0 and not pick(s, "pmi_memory_total_bytes")
    assert not pick(s, "pmi_collector_last_sample_age_seconds")  # no sample yet: no age, not 0
    exp.observe(sample(TREE, ts_s=time.time() - 30))
    exp.overran(3)
    exp.failed()
    exp.observe(sample(TREE, ts_s=time.time() - 12))
    s = scrape(exp)
    assert one(s, "pmi_collector_samples_total") == 2
    assert one(s, "pmi_collector_overruns_total") == 1 and one(s, "pmi_collector_skipped_slots_total") == 3
    assert one(s, "pmi_collector_failed_samples_total") == 1
    assert 11 < one(s, "pmi_collector_last_sample_age_seconds") < 60
    assert one(s, "pmi_collector_last_sample_duration_seconds") == 0.01
    assert one(s, "pmi_collector_interval_seconds") == 5


def test_a_bad_sample_is_logged_and_health_still_served() -> None:
    logged: list[str] = []
    exp = metrics.MetricsExporter(metrics.MetricsOptions(), 1.0, log=logged.append)
    exp.observe(object())  # not a sample at all
    bad = sample(TREE)
    bad.procs["rss_bytes"][0] = None  # RSS must be known: this sample cannot be exported
    exp.observe(bad)
    s = scrape(exp)
    assert one(s, "pmi_collector_export_errors_total") == 1 and one(s, "pmi_collector_samples_total") == 1
    assert not pick(s, "pmi_process_rss_bytes")
    assert any("cannot take the sample" in m for m in logged) and any("cannot export" in m for m in logged)
    exp.observe(sample(TREE))  # the next good sample is exported again
    assert pick(scrape(exp), "pmi_process_rss_bytes")


def churn_samples(total: int, per_sample: int, stable: int = 200) -> list[Sample]:
    """Samples of `stable` long-lived processes plus `per_sample` new short ones each (fresh pid, start time, name,
    user and transient cgroup), until `total` short processes came and went."""
    base = [(1, 0, "systemd", "root", "/init.scope", 10 * MIB, 5 * MIB, 4 * MIB, 0)]
    base += [(100 + i, 1, f"svc{i}", f"u{i % 7}", f"/system.slice/s{i}.service", MIB * (i + 1), MIB * i // 2, MIB, 0)
             for i in range(stable)]  # fmt: skip
    out = []
    for k in range(total // per_sample):
        short = [
            (
                10_000 + j,
                100 + j % stable,
                f"job{j}",
                f"tmp{j}",
                f"/run-u{j}.scope",
                MIB * (j % 500),
                MIB * (j % 500),
                MIB,
                0,
            )
            for j in range(k * per_sample, (k + 1) * per_sample)
        ]
        out.append(sample(base + short, ts_s=1_800_000_000 + k))
    return out


def series_count(exporter: metrics.MetricsExporter) -> int:
    return len(scrape(exporter))


def test_series_stay_bounded_while_ten_thousand_processes_come_and_go() -> None:
    options = {"top": 10, "groups": 20}
    bound = metrics.series_bound(metrics.MetricsOptions(**options))  # type: ignore[arg-type]
    exp = exporter_for(**options)
    counts, seen = [], set()
    for s in churn_samples(10_000, 100):
        exp.observe(s)
        series = scrape(exp)
        counts.append(len(series))
        seen.update(dict(lab).get("pid") for lab in pick(series, "pmi_process_rss_bytes"))
    assert len(counts) == 100
    assert max(counts) <= bound < 700, (max(counts), bound)
    assert max(counts) - min(counts) <= 1  # the same shape whatever the churn (the last sample ages, nothing else)
    assert len(seen) > 100  # the top processes did change with the churn: bounded per scrape, not frozen


def test_the_bound_is_exact_for_full_groups() -> None:
    options = metrics.MetricsOptions(top=5, groups=3)
    rows = [(i, 1 if i > 1 else 0, f"n{i}", f"u{i}", f"/c{i}" if i % 2 else None, MIB * i, MIB, MIB, 0)
            for i in range(1, 40)]  # fmt: skip
    rows += [(100 + i, 2 * i + 2, f"k{i}", "x", "/k", MIB, MIB, MIB, 0) for i in range(10)]  # children: subtrees
    rows.append((500, 1, "", None, None, MIB, MIB, MIB, 0))  # unknown name, user and cgroup
    exp = exporter_for(sample(rows), top=5, groups=3)
    assert series_count(exp) == metrics.series_bound(options)


def test_observe_never_waits_for_a_scrape_in_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metrics.sample_families
    inside = threading.Event()

    def slow(latest, options):
        inside.set()
        time.sleep(1.5)  # a scrape computing the families of a huge sample, holding the scrape lock
        return real(latest, options)

    monkeypatch.setattr(metrics, "sample_families", slow)
    exp = exporter_for(sample(TREE))
    scraper = threading.Thread(target=scrape, args=(exp,))
    scraper.start()
    assert inside.wait(5)
    worst = 0.0
    for k in range(200):
        t = time.perf_counter()
        exp.observe(sample(TREE, ts_s=1_800_000_001 + k))
        exp.overran(1)
        worst = max(worst, time.perf_counter() - t)
    scraper.join()
    assert worst < 0.1, worst  # no lock shared with the sampling thread
    assert one(scrape(exp), "pmi_collector_samples_total") == 201


# ---------------------------------------------------------------------------------------------------- options


def test_metrics_address_and_options() -> None:
    assert metrics.parse_addr("9187") == ("127.0.0.1", 9187)
    assert metrics.parse_addr(":9187") == ("127.0.0.1", 9187)
    assert metrics.parse_addr("0.0.0.0:9100") == ("0.0.0.0", 9100)
    assert metrics.parse_addr("[::1]:9187") == ("::1", 9187)
    for bad in ("", "host", "::1:9187", "1.2.3.4:99999", "x:-1"):
        with pytest.raises(ValueError):
            metrics.parse_addr(bad)
    args = run_mod.parse_args(["--metrics-addr", "9200", "--metrics-top", "3", "--metrics-group-by", "user,cgroup"])
    assert args.metrics == metrics.MetricsOptions("127.0.0.1", 9200, 3, 20, ("user", "cgroup"))
    assert run_mod.parse_args([]).metrics is None
    assert run_mod.parse_args(["--metrics-addr", "1", "--metrics-group-by", "none"]).metrics.group_by == ()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics-addr", "::1:80"], "brackets"),
        (["--metrics-addr", "localhost:http"], "[HOST:]PORT"),
        (["--metrics-addr", "1", "--metrics-top", "-1"], "must be >= 0"),
        (["--metrics-addr", "1", "--metrics-group-by", "name,cmdline"], "unknown grouping cmdline"),
        (["--metrics-top", "5"], "need --metrics-addr"),
    ],
)
def test_bad_metrics_options_are_usage_errors(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        run_mod.parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_served_on_loopback_with_content_negotiation_and_a_clear_error_when_the_port_is_taken() -> None:
    exp = metrics.MetricsExporter(metrics.MetricsOptions(port=0), 5.0, log=lambda _: None)
    exp.observe(sample(TREE))
    port = exp.serve()
    try:
        assert exp._server is not None and exp._server[0].server_address[0] == "127.0.0.1"
        url = f"http://127.0.0.1:{port}/metrics"
        text = requests.get(url, timeout=10)
        assert text.headers["Content-Type"].startswith("text/plain")
        assert "pmi_process_rss_bytes{" in text.text and "# EOF" not in text.text
        om = requests.get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=10)
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        assert om.text.rstrip().endswith("# EOF") and "# UNIT pmi_memory_total_bytes bytes" in om.text
        assert "pmi_collector_samples_total 1.0" in om.text and "# TYPE pmi_ranking info" in om.text
        taken = metrics.MetricsExporter(metrics.MetricsOptions(port=port), 5.0)
        with pytest.raises(metrics.MetricsError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            taken.serve()
    finally:
        exp.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


# ---------------------------------------------------------------------------------------------------- real collector


def start_collector(tmp_path: Path, *argv: str) -> tuple[subprocess.Popen, str, Path]:
    """`python -m collector` with --metrics-addr on a free port -> (process, /metrics url, log file)."""
    port = free_port()
    log = tmp_path / "collector.log"
    cmd = [sys.executable, "-m", "collector", "--dumps", str(tmp_path / "dumps"), "--metrics-addr", str(port), *argv]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"collector exited {proc.returncode}: {log.read_text()}")
        try:
            if "pmi_process_rss_bytes{" in requests.get(url, timeout=5).text:
                return proc, url, log
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no metrics within 30 s: {log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(url: str) -> Series:
    text = requests.get(url, timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in
            f.samples}  # fmt: skip


def slow_reader(url_port: int, done: threading.Event, got: list[bytes]) -> None:
    """Connect with a tiny receive buffer, ask for /metrics and read it one byte per second until `done`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        s.connect(("127.0.0.1", url_port))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        while not done.is_set():
            got.append(s.recv(1))
            done.wait(1.0)


def test_real_collector_keeps_its_schedule_under_slow_scrapers_and_bounds_series_under_churn(tmp_path: Path) -> None:
    interval = 0.5
    top, groups = 300, 10  # a big response (hundreds of KiB) that cannot sit in the socket buffers
    proc, url, log = start_collector(
        tmp_path, "--interval", str(interval), "--metrics-top", str(top), "--metrics-groups", str(groups)
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for i in range(50):  # 50 distinct process names for the churn
        os.symlink("/bin/sleep", bin_dir / f"churn{i}")
    done = threading.Event()
    got: list[list[bytes]] = [[] for _ in range(3)]
    port = int(url.split(":")[2].split("/")[0])
    readers = [threading.Thread(target=slow_reader, args=(port, done, g)) for g in got]
    silent = socket.create_connection(("127.0.0.1", port))  # connects and never sends a request
    try:
        before = get(url)
        t0 = time.monotonic()
        for r in readers:
            r.start()
        counts = []
        churned = 0
        while time.monotonic() - t0 < 6:  # short processes in batches, scraped as they come and go
            batch = [subprocess.Popen([str(bin_dir / f"churn{(churned + j) % 50}"), "0.3"]) for j in range(100)]
            churned += len(batch)
            counts.append(len(get(url)))
            for p in batch:
                p.wait()
        after = get(url)
        elapsed = time.monotonic() - t0
        done.set()
        for r in readers:
            r.join(5)
    finally:
        done.set()
        stop(proc)  # exits while a connection is still open and silent
        silent.close()
    assert all(len(g) >= 4 for g in got), [len(g) for g in got]  # the slow scrapers were served, a byte a second
    assert b"".join(got[0]).startswith(b"HTTP/1")
    taken = one(after, "pmi_collector_samples_total") - one(before, "pmi_collector_samples_total")
    assert taken >= elapsed / interval - 2, (taken, elapsed)  # every slot sampled while they were connected
    assert one(after, "pmi_collector_skipped_slots_total") == 0, log.read_text()
    bound = metrics.series_bound(metrics.MetricsOptions(top=top, groups=groups))
    assert churned >= 500 and max(counts) <= bound, (churned, counts, bound)
    assert proc.returncode == 0 and "longer than" not in log.read_text()
    assert re.search(r"metrics: serving http://127\.0\.0\.1:\d+/metrics\n", log.read_text())


def test_a_taken_port_stops_the_collector_at_start_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "collector", "--dumps", str(tmp_path / "d"), "--metrics-addr", str(port)]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}: Address already in use" in proc.stderr
    assert "Traceback" not in proc.stderr
