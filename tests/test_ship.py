"""Shipping closed segments to a fleet store: a shared directory and S3-compatible storage (moto's S3 server on
127.0.0.1), atomic and ordered, retried after failures, never lost or duplicated, one machine per host name."""

from __future__ import annotations

import socket
import time

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from collector import ship


def _segment(root, host: str, date: str, stem: str, rows: int = 5) -> None:
    ts = pd.date_range(f"{date}T10:00:00Z", periods=rows, freq="5s").astype("datetime64[us, UTC]")
    for table in ship.TABLE_ORDER:
        path = root / table / f"host={host}" / f"date={date}" / f"{stem}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        cols = {"ts": pa.array(ts), "boot_id": pa.array(["b"] * rows)}
        if table == "procs":
            cols |= {"pid": pa.array(range(rows), pa.int32()), "rss_bytes": pa.array([1 << 20] * rows, pa.int64())}
        pq.write_table(pa.table(cols), path)


@pytest.fixture
def local_store(tmp_path):
    root = tmp_path / "local"
    _segment(root, "web1", "2026-12-01", "seg-20261201T100000.000Z")
    _segment(root, "web1", "2026-12-02", "seg-20261202T100000.000Z")
    _segment(root, "other", "2026-12-01", "seg-20261201T100000.000Z")  # another host's files are not ours to ship
    return root


def _remote_files(base) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file() and "_hosts" not in p.parts)


def test_ships_every_closed_file_once_in_order(local_store, tmp_path):
    target = tmp_path / "fleet"
    s = ship.Shipper(local_store, str(target), "web1", "machine-a")
    s.claim()
    pending = s.pending()
    assert len(pending) == 6 and all("host=web1" in p for p in pending)
    for i in range(0, 6, 3):  # per segment: cgroups, system, then procs
        assert [p.split("/")[0] for p in pending[i : i + 3]] == ["cgroups", "system", "procs"]
    report = s.ship()
    assert report.sent == pending and report.error is None
    assert _remote_files(target) == sorted(pending)
    for rel in pending:
        assert (target / rel).read_bytes() == (local_store / rel).read_bytes()
    # nothing twice, also for a new shipper (the journal survives a restart)
    assert ship.Shipper(local_store, str(target), "web1", "machine-a").ship().sent == []
    # the fleet store is a dataset as it is
    got = duckdb.sql(
        f"SELECT host, count(*) AS n FROM read_parquet('{target}/procs/*/*/*.parquet', hive_partitioning = true)"
        " GROUP BY host"
    ).fetchall()
    assert got == [("web1", 10)]


def test_a_failing_target_loses_nothing_and_resumes(local_store, tmp_path):
    blocker = tmp_path / "fleet"
    blocker.write_text("not a directory")  # the share is 'down': every write fails with a real OSError
    s = ship.Shipper(local_store, str(blocker / "store"), "web1", "machine-a")
    report = s.ship()
    assert report.sent == [] and report.error
    assert len(s.pending()) == 6
    blocker.unlink()  # the share is back
    report = s.ship()
    assert len(report.sent) == 6 and report.error is None
    assert not [p for p in (blocker / "store").rglob(".*")]  # no temporary file left behind


def test_crash_between_copy_and_journal_is_not_a_duplicate(local_store, tmp_path):
    target = tmp_path / "fleet"
    s = ship.Shipper(local_store, str(target), "web1", "machine-a")
    first = s.pending()[0]
    (target / first).parent.mkdir(parents=True)
    (target / first).write_bytes((local_store / first).read_bytes())  # copied, journal line never written
    second = s.pending()[1]
    (target / second).parent.mkdir(parents=True, exist_ok=True)
    (target / second).write_bytes(b"someone else's bytes")
    report = ship.Shipper(local_store, str(target), "web1", "machine-a").ship()
    assert report.already == [first]
    assert report.conflicts == [second] and (target / second).read_bytes() == b"someone else's bytes"
    assert len(report.sent) == 4


def test_two_machines_cannot_ship_as_one_host(local_store, tmp_path):
    target = str(tmp_path / "fleet")
    ship.Shipper(local_store, target, "web1", "machine-a").claim()
    ship.Shipper(local_store, target, "web1", "machine-a").claim()  # the same machine again: fine
    with pytest.raises(ship.HostClaimed, match="--host"):
        ship.Shipper(local_store, target, "web1", "machine-b").claim()


def test_ship_loop_retries_with_backoff_until_the_target_works(local_store, tmp_path):
    blocker = tmp_path / "fleet"
    blocker.write_text("down")
    reports: list[ship.ShipReport] = []
    loop = ship.ShipLoop(ship.Shipper(local_store, str(blocker / "s"), "web1", "m"), on_report=reports.append)
    loop.start()
    deadline = time.monotonic() + 10
    while loop.failures < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loop.failures >= 2
    blocker.unlink()
    deadline = time.monotonic() + 15
    while not any(r.sent for r in reports) and time.monotonic() < deadline:
        time.sleep(0.05)
    loop.stop()
    assert sum(len(r.sent) for r in reports) == 6 and loop.failures == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3-compatible server on 127.0.0.1 (a real HTTP S3 API), with a bucket; stopped after the test."""
    from moto.server import ThreadedMotoServer

    for k, v in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        fs = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1", allow_bucket_creation=True
        )
        fs.create_dir("fleet")
        yield port, fs
    finally:
        server.stop()


def test_ships_to_s3_compatible_storage(local_store, s3_server):
    port, fs = s3_server
    uri = f"s3://fleet/pmi?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    s = ship.Shipper(local_store, uri, "web1", "machine-a")
    assert s.atomic_put  # an object store: one PUT per file, no rename
    s.claim()
    report = s.ship()
    assert len(report.sent) == 6 and report.error is None
    for rel in report.sent:
        with fs.open_input_stream(f"fleet/pmi/{rel}") as fh:
            assert fh.read() == (local_store / rel).read_bytes()
    listed = fs.get_file_info(pafs.FileSelector("fleet/pmi", recursive=True))
    assert not [i.path for i in listed if "/." in i.path]
    with pytest.raises(ship.HostClaimed):
        ship.Shipper(local_store, uri, "web1", "machine-b").claim()
    assert ship.Shipper(local_store, uri, "web1", "machine-a").ship().sent == []
