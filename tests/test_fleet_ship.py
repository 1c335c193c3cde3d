"""The collector ships into a fleet store: two real collectors (``--host``) into one shared directory, listed by
``python -m memlib fleet hosts``; a third claiming a taken name from another machine is refused (exit 2); retention
never deletes a segment that is not shipped yet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from collector import ship
from store import apply_retention
from tests.test_ship import _segment

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def _collector(local: Path, *args: str) -> subprocess.Popen:
    argv = [PY, "-m", "collector", "--dumps", str(local), "--interval", "0.2", "--smaps", "off", *args]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_collectors_ship_into_one_store_and_a_taken_name_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    a = _collector(tmp_path / "a", "--duration", "3", "--period", "1", "--store", str(shared), "--host", "alpha")
    b = _collector(tmp_path / "b", "--duration", "3", "--period", "1", "--store", str(shared), "--host", "beta")
    for proc in (a, b):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "shipping closed segments to" in err
    for host, local in (("alpha", tmp_path / "a"), ("beta", tmp_path / "b")):
        mine = sorted(p.relative_to(local) for p in local.rglob("*.parquet"))
        assert len(mine) >= 3 * 2  # several closed segments (period 1 s), all tables
        assert all(f"host={host}" in str(p) for p in mine)
        shipped = sorted(p.relative_to(shared) for p in shared.rglob(f"host={host}/*/*.parquet"))
        assert shipped == mine  # every closed segment, the last one (closed at exit) included
    out = subprocess.run(
        [PY, "-m", "memlib", "fleet", "hosts", "--dumps", str(shared), "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["host"] for r in rows] == ["alpha", "beta"]
    assert all(r["samples"] >= 10 and r["mem_used_bytes"] > 0 for r in rows)
    # a third collector on "another machine" claiming alpha: refused with the reason, nothing shipped as alpha
    before = sorted(shared.rglob("*.parquet"))
    c = _collector(tmp_path / "c", "--duration", "2", "--store", str(shared), "--host", "alpha", "--machine-id", "m2")
    _, err = c.communicate(timeout=120)
    assert c.returncode == 2
    assert "host name 'alpha' is already shipped to" in err and "--host" in err
    assert sorted(shared.rglob("*.parquet")) == before


def test_retention_keeps_segments_until_they_are_shipped(tmp_path: Path) -> None:
    local = tmp_path / "local"
    _segment(local, "web1", "2026-12-01", "seg-20261201T100000.000Z")
    _segment(local, "web1", "2026-12-02", "seg-20261202T100000.000Z")
    shipper = ship.Shipper(local, str(tmp_path / "fleet"), "web1", "m1")
    assert apply_retention(local, 0.000001, 1, keep=shipper.unshipped) == []  # nothing shipped: nothing deleted
    assert len(list(local.rglob("*.parquet"))) == 6
    assert len(shipper.ship().sent) == 6
    assert len(apply_retention(local, None, 1, keep=shipper.unshipped)) == 6  # shipped: retention applies again


def test_a_collector_whose_store_is_unreachable_records_and_keeps_everything(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # the target lies below a file: every write to it fails
    local = tmp_path / "local"
    proc = _collector(local, "--duration", "2", "--period", "0.5", "--retain-mb", "0.000001",
                      "--store", str(blocker / "fleet"), "--host", "gamma")  # fmt: skip
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "not reachable now" in err
    assert len(list((local / "procs").rglob("*.parquet"))) >= 3  # retention (1 byte!) deleted none of them
    assert "retention: deleted" not in err
