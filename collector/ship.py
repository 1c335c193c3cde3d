"""Shipping closed segments from the local store to a shared fleet store (a path or a URI pyarrow can open).

``Shipper(local_root, target, host, machine_id)`` publishes this host's closed Parquet files (``procs``, ``system``,
``cgroups`` under ``host=<host>/date=…/``) to the same relative paths under ``target``: a shared mount
(``/mnt/fleet``, ``file:///mnt/fleet``) or S3-compatible object storage (``s3://bucket/prefix?endpoint_override=…``),
through ``pyarrow.fs``. The local store stays the buffer: ``ship()`` sends what is pending and stops at the first
failure (the caller retries later, ``ShipLoop`` with exponential back-off); nothing is lost while the remote is down.

Contract:
- Atomic: on a filesystem the file is written under a dot-name (which readers skip) and renamed into place; on an
  object store a single PUT is atomic, so the final key is written directly. A reader never sees half a file.
- Ordered: within a segment, cgroups and system files go before the procs file, as in the local store.
- Exactly once: each shipped file is appended to the journal ``<local_root>/.shipped`` (relative path and size) only
  after the remote copy is complete; after a crash between the copy and the journal line, a remote file of the same
  size counts as shipped; one of another size is never overwritten (named in the report, left for a person).
- One writer per host: ``claim()`` records the machine id under ``_hosts/<host>.json`` in the target and refuses
  (``HostClaimed``) a host name another machine already ships as; ``--host NAME`` tells such machines apart.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

TABLE_ORDER = ("cgroups", "system", "procs")  # procs last: it marks a segment complete
JOURNAL = ".shipped"
COPY_CHUNK = 1 << 20
log = logging.getLogger(__name__)


class HostClaimed(RuntimeError):
    """Another machine already ships under this host name."""


@dataclass
class ShipReport:
    """What one ``ship()`` call did: files sent, files found already there, conflicts, and the error that stopped it."""

    sent: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    error: str | None = None


def open_target(target: str) -> tuple[pafs.FileSystem, str]:
    """A path or URI -> (filesystem, base path inside it); a plain path is a local (or mounted) directory."""
    if "://" not in target:
        return pafs.LocalFileSystem(), str(Path(target).resolve())
    fs, base = pafs.FileSystem.from_uri(target)
    return fs, base.rstrip("/")


def read_machine_id(root: str = "/") -> str:
    """/etc/machine-id (or the D-Bus copy); the host name when neither exists."""
    for rel in ("etc/machine-id", "var/lib/dbus/machine-id"):
        try:
            text = (Path(root) / rel).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return os.uname().nodename


class Shipper:
    """Publishes one host's closed segment files from a local store to a target store."""

    def __init__(self, local_root: Path, target: str, host: str, machine_id: str) -> None:
        self.local_root = Path(local_root)
        self.target = target
        self.host = host
        self.machine_id = machine_id
        self.fs, self.base = open_target(target)
        self.atomic_put = self.fs.type_name != "local"  # object stores: a PUT is atomic; filesystems: rename
        self._journal = self.local_root / JOURNAL
        self._shipped: dict[str, int] = self._read_journal()

    # -------------------------------------------------------------------------------------------- bookkeeping

    def _read_journal(self) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            lines = self._journal.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            rel, _, size = line.rpartition("\t")
            if rel and size.isdigit():
                out[rel] = int(size)
        return out

    def _record(self, rel: str, size: int) -> None:
        with open(self._journal, "a", encoding="utf-8") as fh:
            fh.write(f"{rel}\t{size}\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._shipped[rel] = size

    def _remote(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    # -------------------------------------------------------------------------------------------- claim

    def claim(self) -> None:
        """Record this machine as the host's shipper in the target, or raise HostClaimed when another one is."""
        path = self._remote(f"_hosts/{self.host}.json")
        info = self.fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            with self.fs.open_input_stream(path) as fh:
                try:
                    owner = json.loads(fh.read().decode("utf-8"))
                except ValueError:
                    owner = {}
            if owner.get("machine_id") != self.machine_id:
                raise HostClaimed(
                    f"host name {self.host!r} is already shipped to {self.target} by another machine"
                    f" ({owner.get('machine_id', 'unknown')!s:.12}…); give this one another name with --host"
                )
            return
        self.fs.create_dir(self._remote("_hosts"), recursive=True)
        body = json.dumps({"host": self.host, "machine_id": self.machine_id, "claimed": time.time()}).encode()
        self._put(path, body)

    # -------------------------------------------------------------------------------------------- shipping

    def pending(self) -> list[str]:
        """Relative paths of this host's closed files not shipped yet, oldest segment first, procs last per segment."""
        found = []
        for order, table in enumerate(TABLE_ORDER):
            host_dir = self.local_root / table / f"host={self.host}"
            if not host_dir.is_dir():
                continue
            for date_dir in sorted(host_dir.glob("date=*")):
                for entry in sorted(os.scandir(date_dir), key=lambda e: e.name):
                    if entry.name.startswith((".", "_")) or not entry.name.endswith(".parquet"):
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    rel = f"{table}/{host_dir.name}/{date_dir.name}/{entry.name}"
                    if rel not in self._shipped:
                        found.append((date_dir.name, entry.name, order, rel))
        return [rel for *_, rel in sorted(found)]

    def unshipped(self, paths: list[Path]) -> bool:
        """True when one of these local files is this host's closed file and not shipped yet (retention keeps it)."""
        for path in paths:
            try:
                rel = Path(path).relative_to(self.local_root).as_posix()
            except ValueError:
                continue
            parts = rel.split("/")
            if len(parts) == 4 and parts[1] == f"host={self.host}" and rel not in self._shipped:
                return True
        return False

    def _put(self, final: str, data: bytes | Path) -> None:
        """Write `data` (bytes or a local file) to `final` so that no reader sees a partial file."""
        parent = final.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        dest = final if self.atomic_put else f"{parent}/.{final.rsplit('/', 1)[1]}.tmp"
        with self.fs.open_output_stream(dest) as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                with open(data, "rb") as src:
                    while chunk := src.read(COPY_CHUNK):
                        out.write(chunk)
        if not self.atomic_put:
            if isinstance(self.fs, pafs.LocalFileSystem):
                with open(dest, "rb+") as fh:
                    os.fsync(fh.fileno())
            self.fs.move(dest, final)

    def ship(self) -> ShipReport:
        """Send every pending file in order; stop at the first failure (its message in ``error``)."""
        report = ShipReport()
        for rel in self.pending():
            local = self.local_root / rel
            try:
                size = local.stat().st_size
                remote = self.fs.get_file_info(self._remote(rel))
                if remote.type == pafs.FileType.File:
                    if remote.size == size:
                        self._record(rel, size)
                        report.already.append(rel)
                    elif rel not in report.conflicts:
                        report.conflicts.append(rel)
                    continue
                self._put(self._remote(rel), local)
                self._record(rel, size)
                report.sent.append(rel)
            except FileNotFoundError:
                continue  # removed locally (retention) since it was listed
            except OSError as exc:
                report.error = f"{rel}: {exc}"
                break
        return report


class ShipLoop:
    """Runs ``Shipper.ship`` in a background thread: on ``kick()`` (a segment closed) and after failures, with
    exponential back-off (1 s doubling to ``max_backoff_s``); one warning per failure streak, one line on recovery."""

    def __init__(
        self, shipper: Shipper, max_backoff_s: float = 300.0, on_report: Callable[[ShipReport], None] | None = None
    ) -> None:
        self.shipper = shipper
        self.max_backoff_s = max_backoff_s
        self.on_report = on_report
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pmi-ship", daemon=True)
        self.failures = 0

    def start(self) -> None:
        """Start the thread and ship what is pending now."""
        self._wake.set()
        self._thread.start()

    def kick(self) -> None:
        """Ask for a shipping round now (a segment closed)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """One last round, then stop the thread."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        backoff = 1.0
        while True:
            self._wake.wait(None if self.failures == 0 else backoff)
            self._wake.clear()
            report = self.shipper.ship()
            if self.on_report:
                self.on_report(report)
            for rel in report.conflicts:
                log.warning("not shipped: %s exists in the fleet store with another size (left as it is)", rel)
            if report.error:
                if self.failures == 0:
                    log.warning("shipping to %s failed, retrying with back-off: %s", self.shipper.target, report.error)
                self.failures += 1
                backoff = min(self.max_backoff_s, 2.0 ** min(self.failures - 1, 20))
            else:
                if self.failures:
                    log.warning("shipping to %s works again after %d failed tries", self.shipper.target, self.failures)
                self.failures = 0
                backoff = 1.0
            if self._stop.is_set():
                return
