"""Fixtures for the Spark tests: pyspark's own launcher runs a standalone master and two workers on 127.0.0.1.

Under CI=true a missing pyspark or Java fails the test (``make test`` installs both); elsewhere it skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

WORKERS = 2


def _require_spark() -> Path:
    try:
        import pyspark
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("pyspark is not installed (make spark-deps)")
        pytest.skip("pyspark is not installed (make spark-deps)")
    if not shutil.which("java"):
        if os.environ.get("CI") == "true":
            pytest.fail("no Java runtime (make spark-deps installs default-jre-headless)")
        pytest.skip("no Java runtime")
    return Path(pyspark.__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def spark_env() -> Iterator[dict[str, str]]:
    """Environment for pyspark on loopback with this interpreter on the executors."""
    home = _require_spark()
    env = {
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _wait_for(path: Path, text: str, count: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{path.name} exited early:\n{path.read_text(errors='replace')[-2000:]}")
        if path.exists() and path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.3)
    raise RuntimeError(f"timed out waiting for {text!r} in {path.name}:\n{path.read_text(errors='replace')[-2000:]}")


@pytest.fixture(scope="session")
def spark_cluster(spark_env, tmp_path_factory) -> Iterator[str]:
    """A standalone Spark master and two one-core workers on 127.0.0.1; yields the master URL, stops all after."""
    home = Path(spark_env["SPARK_HOME"])
    work = tmp_path_factory.mktemp("spark")
    env = {
        **os.environ,
        **spark_env,
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=false",
        "SPARK_LOG_DIR": str(work),
    }
    port, ui = _free_port(), _free_port()
    launcher = str(home / "bin" / "spark-class")
    procs: list[subprocess.Popen] = []

    def start(args: list[str], log: Path) -> subprocess.Popen:
        fh = open(log, "wb")  # noqa: SIM115 (closed with the process)
        p = subprocess.Popen([launcher, *args], env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)
        return p

    try:
        master_log = work / "master.log"
        master = start(
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
             "--webui-port", str(ui)],
            master_log,
        )  # fmt: skip
        _wait_for(master_log, "I have been elected leader", 1, master)
        url = f"spark://127.0.0.1:{port}"
        for i in range(WORKERS):
            start(
                ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                 "--webui-port", str(_free_port()), "--work-dir", str(work / f"worker{i}"), url],
                work / f"worker{i}.log",
            )  # fmt: skip
        _wait_for(master_log, "Registering worker", WORKERS, master)
        yield url
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
