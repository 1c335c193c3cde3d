"""A real Prometheus (Debian's `prometheus`, `make prometheus`) scraping a real collector with the shipped scrape
config: a PromQL query returns the value the collector recorded for a known process; the shipped alerting rules
load, pass their unit tests and are loaded by that Prometheus; every query of the Grafana dashboard returns data.

Locally a missing Prometheus skips these tests; under CI=true it is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import in_ci
from prometheus_client.parser import text_string_to_metric_families
from test_metrics import stop

from bench.bench_load import free_port

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "prometheus"
DASHBOARD = REPO / "docs" / "grafana" / "pmi-dashboard.json"
PROMETHEUS, PROMTOOL = Path("/usr/bin/prometheus"), Path("/usr/bin/promtool")
CHILD_BYTES = 96 << 20
WAIT_S = 60


def need(tool: Path) -> str:
    """Path of a Prometheus binary; skip locally when missing, fail under CI."""
    if not tool.exists():
        message = f"{tool} missing: `make prometheus` installs Debian's prometheus"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return str(tool)


def promtool(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([need(PROMTOOL), *argv], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_shipped_rules_and_config_pass_promtool() -> None:
    rules = promtool("check", "rules", str(DOCS / "alerts.yml"))
    assert rules.returncode == 0 and "SUCCESS: 6 rules found" in rules.stdout, rules.stdout + rules.stderr
    config = promtool("check", "config", str(DOCS / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout  # the config loads the shipped rules
    tests = promtool("test", "rules", str(DOCS / "alerts_test.yml"))
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr


def wait_for(what: str, check, log: Path | None = None, timeout_s: float = WAIT_S):
    """Poll `check()` until it returns something truthy (-> that value); AssertionError with the log on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = check()
        except requests.RequestException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f":\n{log.read_text()[-3000:]}" if log else ""))
        time.sleep(0.2)


@dataclass
class Stack:
    """A child with a known RSS, the collector serving /metrics, and Prometheus scraping it."""

    child: subprocess.Popen
    collector_url: str
    target: str
    prom_url: str
    collector_log: Path
    prom_log: Path

    def query(self, promql: str) -> list[dict]:
        """Instant PromQL query through the HTTP API -> result vector (AssertionError on an API error)."""
        r = requests.get(f"{self.prom_url}/api/v1/query", params={"query": promql}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (promql, body)
        return body["data"]["result"]


def scrape_config(port: int) -> str:
    """The shipped prometheus.yml with the target on `port`, 1 s scrapes and the rules file by absolute path."""
    text = (DOCS / "prometheus.yml").read_text()
    subs = [
        (r'"127\.0\.0\.1:9187"', f'"127.0.0.1:{port}"'),
        (r"scrape_interval: 5s", "scrape_interval: 1s"),
        (r"scrape_timeout: 5s", "scrape_timeout: 1s"),
        (r"- alerts\.yml", f"- {DOCS / 'alerts.yml'}"),
    ]
    for pattern, repl in subs:
        text, n = re.subn(pattern, repl, text)
        assert n == 1, f"docs/prometheus/prometheus.yml no longer has {pattern}"
    return text


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = need(PROMETHEUS)
    tmp = tmp_path_factory.mktemp("prometheus")
    started: list[subprocess.Popen] = []
    try:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import time; b = b'x' * {CHILD_BYTES}; print('ready', flush=True); time.sleep(600)",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(child)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        port, prom_port = free_port(), free_port()
        collector_log, prom_log = tmp / "collector.log", tmp / "prometheus.log"
        collector = subprocess.Popen(
            [sys.executable, "-m", "collector", "--dumps", str(tmp / "dumps"), "--interval", "1", "--smaps", "off",
             "--metrics-addr", f"127.0.0.1:{port}", "--metrics-top", "100000"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=collector_log.open("w"),
        )  # fmt: skip
        started.append(collector)
        collector_url = f"http://127.0.0.1:{port}/metrics"
        wait_for(
            "the collector's first sample", lambda: "pmi_process_rss_bytes{" in get_text(collector_url), collector_log
        )
        config = tmp / "prometheus.yml"
        config.write_text(scrape_config(port))
        prom = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=prom_log.open("w"),
        )  # fmt: skip
        started.append(prom)
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_for("Prometheus ready", lambda: requests.get(f"{prom_url}/-/ready", timeout=2).ok, prom_log)
        yield Stack(child, collector_url, f"127.0.0.1:{port}", prom_url, collector_log, prom_log)
    finally:
        for proc in reversed(started):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def get_text(url: str) -> str:
    return requests.get(url, timeout=10).text


def collector_value(url: str, name: str, pid: int) -> tuple[float, dict[str, str]] | None:
    """The collector's own /metrics value and labels of `name` for `pid` (None if absent)."""
    for fam in text_string_to_metric_families(get_text(url)):
        for s in fam.samples:
            if s.name == name and s.labels.get("pid") == str(pid):
                return s.value, s.labels
    return None


def test_promql_returns_the_rss_the_collector_recorded_for_a_known_process(stack: Stack) -> None:
    pid = stack.child.pid
    promql = f'pmi_process_rss_bytes{{job="pmi", pid="{pid}"}}'
    result = wait_for("a scrape holding the child", lambda: stack.query(promql), stack.prom_log)
    assert len(result) == 1
    prom_value = float(result[0]["value"][1])
    recorded = collector_value(stack.collector_url, "pmi_process_rss_bytes", pid)
    assert recorded is not None
    value, labels = recorded
    assert prom_value == value  # the child's memory is still: the same bytes the collector holds for its pid
    assert CHILD_BYTES <= value < CHILD_BYTES + (64 << 20)
    # the series carries the process identity (pid, start time) and no command line
    series = result[0]["metric"]
    assert series["instance"] == stack.target and series["name"] == labels["name"] and labels["name"].startswith("py")
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    btime = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime"))
    start = btime + int(stat[19]) / os.sysconf("SC_CLK_TCK")
    assert abs(float(series["start_time"]) - start) < 0.02
    assert (
        {"pid", "start_time", "name", "user"}
        <= set(series)
        <= {"__name__", "instance", "job", "pid", "start_time", "name", "user", "cgroup"}
    )  # an unknown cgroup is an empty label, which Prometheus drops


def test_prometheus_loads_the_shipped_rules_and_sees_the_collector_up(stack: Stack) -> None:
    wait_for("up == 1", lambda: stack.query('up{job="pmi"} == 1'), stack.prom_log)
    body = requests.get(f"{stack.prom_url}/api/v1/rules", timeout=10).json()
    names = {rule["name"] for group in body["data"]["groups"] for rule in group["rules"]}
    assert {"PmiProcessGrowing", "PmiSubtreeLarge", "PmiAvailableMemoryLow", "PmiCollectorStale"} <= names
    assert all(rule["health"] != "err" for group in body["data"]["groups"] for rule in group["rules"])
    value = float(stack.query("pmi_memory_available_bytes / pmi_memory_total_bytes")[0]["value"][1])
    assert 0 < value < 1


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) for every query of the shipped Grafana dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]


def test_every_dashboard_query_returns_data_from_the_collector(stack: Stack) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 12
    values = {"$instance": stack.target, "${metric}": "rss", "$metric": "rss", "$by": "name", "$k": "5",
              "$__rate_interval": "1m"}  # fmt: skip
    # rates and slopes need two scrapes
    wait_for("two scrapes", lambda: stack.query("count_over_time(pmi_collector_samples_total[1m]) >= 3"))
    empty = []
    for title, expr in queries:
        promql = expr
        for var, value in values.items():
            promql = promql.replace(var, value)
        assert "$" not in promql, (title, promql)
        if not stack.query(promql):
            empty.append((title, promql))
    assert not empty, empty
