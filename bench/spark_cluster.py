"""A standalone Apache Spark cluster on 127.0.0.1 for tests and benchmarks: pyspark's own launcher starts a master and
N one-core workers as child processes; ``standalone_cluster()`` yields the master URL and stops them all after.

Needs pyspark (``make spark-deps``) and a Java 17+ runtime. Logs go to the given work directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def spark_home() -> Path:
    """The directory of the installed pyspark package (its bin/ holds spark-class); ImportError when absent."""
    import pyspark

    return Path(pyspark.__file__).parent


def loopback_env() -> dict[str, str]:
    """Environment for pyspark on loopback with this interpreter on driver and executors."""
    return {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(path: Path, text: str, count: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{path.name} exited early:\n{path.read_text(errors='replace')[-2000:]}")
        if path.exists() and path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.3)
    raise RuntimeError(f"timed out waiting for {text!r} in {path.name}:\n{path.read_text(errors='replace')[-2000:]}")


@contextlib.contextmanager
def standalone_cluster(work: Path, workers: int = 2, worker_memory: str = "1g", timeout: float = 120) -> Iterator[str]:
    """Start a master and `workers` one-core workers on 127.0.0.1 (logs in `work`); yield ``spark://127.0.0.1:PORT``."""
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **loopback_env(),
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        "SPARK_LOG_DIR": str(work),
    }
    launcher = str(spark_home() / "bin" / "spark-class")
    procs: list[subprocess.Popen] = []

    def start(args: list[str], log: Path) -> subprocess.Popen:
        with open(log, "wb") as fh:
            p = subprocess.Popen(
                [launcher, *args], env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        procs.append(p)
        return p

    try:
        port = _free_port()
        master_log = work / "master.log"
        master = start(
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
             "--webui-port", str(_free_port())],
            master_log,
        )  # fmt: skip
        _wait_for(master_log, "I have been elected leader", 1, master, timeout)
        url = f"spark://127.0.0.1:{port}"
        for i in range(workers):
            start(
                ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1", "--memory",
                 worker_memory, "--webui-port", str(_free_port()), "--work-dir", str(work / f"worker{i}"), url],
                work / f"worker{i}.log",
            )  # fmt: skip
        _wait_for(master_log, "Registering worker", workers, master, timeout)
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
