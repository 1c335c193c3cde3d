"""Fixtures for the Spark tests (``bench.spark_cluster`` starts the cluster). Under CI=true a missing pyspark or Java
fails the test (``make test`` installs both through ``make spark-deps``); elsewhere it skips."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from bench.spark_cluster import loopback_env, standalone_cluster


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (make spark-deps installs it)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def spark_env() -> Iterator[dict[str, str]]:
    """pyspark on loopback with this interpreter on the executors (set in os.environ for the session)."""
    try:
        env = loopback_env()
    except ImportError:
        _missing("pyspark is not installed")
    if not shutil.which("java"):
        _missing("no Java runtime")
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def spark_cluster(spark_env, tmp_path_factory) -> Iterator[str]:
    """A standalone Spark master and two one-core workers on 127.0.0.1; yields the master URL, stops all after."""
    with standalone_cluster(tmp_path_factory.mktemp("spark"), workers=2) as url:
        yield url
