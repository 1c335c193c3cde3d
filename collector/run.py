"""Collector CLI: lock the dumps directory, sample on a fixed schedule, write segments, apply retention.

    python -m collector [--dumps DIR] [--interval SECONDS] [--duration SECONDS] [--smaps auto|on|off]
                        [--smaps-every SECONDS] [--smaps-cpu PERCENT]
                        [--retain-days N] [--retain-mb N] [--period SECONDS]
                        [--store DIR|URI] [--host NAME] [--machine-id ID]

Sample k is due at t0 + k*interval on the monotonic clock (no drift); a sample that overruns its slot logs a warning
and the missed slots are skipped (no burst). SIGTERM/SIGINT finish the current sample, compact and exit 0.

Alerts: ``--alert-rules FILE`` (memlib.alerts format, docs/alerts.example.toml; a bad file exits 2 at start) keeps the
recent samples in memory (the longest rule window + 60 s) and evaluates the rules on them every ``--alert-every``
samples (default: about every 30 s). An alert that starts firing is logged and, with ``--on-alert CMD``, CMD runs
through the shell with the alert as one JSON object (and a newline) on stdin, without waiting for it; it runs again
only after the alert stopped and started firing again. An evaluation error is logged and never stops sampling.

Prometheus: ``--metrics-addr [HOST:]PORT`` serves /metrics from the latest sample (collector.metrics; loopback
unless a host is written; ``--metrics-top``, ``--metrics-groups``, ``--metrics-group-by``); a port in use exits 1.

Fleet: ``--store DIR|URI`` ships every closed segment into a shared store (a mounted path, ``file://`` or
``s3://bucket/prefix?endpoint_override=…``) with collector.ship: kicked whenever a segment closes, retried with
back-off while the target fails, the local store staying the buffer (retention never deletes a file not shipped
yet). At start the host name is claimed in the target; a name another machine ships as exits 2 with the message.
``--host NAME`` records (and ships) under NAME instead of this machine's host name; ``--machine-id ID`` tells
machines apart when /etc/machine-id is shared (containers).

Numbers are checked at parse time (exit 2 with the accepted range): nan, inf and values outside sensible bounds
(``--interval`` 0.05 s .. 1 day, ``--period`` 0.1 s .. 7 days, ``--duration`` >= 0, ``--retain-*`` > 0) are refused.

A full disk (ENOSPC/EDQUOT) never stops the collector: it keeps sampling, skips the samples it has no room for (one
warning per minute) and writes again by itself when space frees; the first sample written then carries the number
skipped as the system field ``CollectorSkippedSamples`` (memlib.schema.SKIPPED_SAMPLES_FIELD), also logged.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import math
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from collector import metrics as prom
from collector.sampler import SMAPS_CPU, SMAPS_EVERY_S
from memlib.cli_args import number
from memlib.schema import SKIPPED_SAMPLES_FIELD
from memlib.tree import stored_tree
from store import SegmentWriter, apply_retention, lock, recover
from store.files import safe_host

MAX_FAILURES = 10  # consecutive failed samples before the collector gives up (exit 1)
MIN_INTERVAL_S = 0.05  # below this the collector would spin; 20 samples/s is already far past any real use
DAY_S = 86400.0
AlreadyRunning = lock.Locked  # another collector holds the lock on the dumps directory


def log(message: str) -> None:
    """One line on stderr, prefixed with the UTC time (a log on a full disk loses the line, never the collector)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with contextlib.suppress(OSError):
        print(f"{stamp} collector: {message}", file=sys.stderr, flush=True)


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull:
    """Writes samples through a full disk: a sample the disk has no room for is counted and skipped (one warning
    per `warn_every_s`), never a failure; the first sample written afterwards carries the count as the system
    field SKIPPED_SAMPLES_FIELD, and the log says how many were skipped and for how long."""

    def __init__(self, warn_every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Nothing skipped yet."""
        self.warn_every_s = warn_every_s
        self.clock = clock
        self.skipped = 0  # samples skipped since the disk became full
        self.total_skipped = 0
        self._since = 0.0
        self._warned_at: float | None = None

    def write(self, writer: SegmentWriter, sample: object) -> bool:
        """Append `sample` -> True when written, False when skipped because the disk is full (other errors raise)."""
        meminfo = sample.meminfo
        if self.skipped:
            meminfo = {**meminfo, SKIPPED_SAMPLES_FIELD: self.skipped}
        try:
            writer.append(sample.ts, sample.procs, meminfo, cgroup_mem=sample.cgroup_mem)
        except OSError as exc:
            if exc.errno not in DISK_FULL_ERRNOS:
                raise
            self._skip(exc)
            return False
        if self.skipped:
            log(
                f"writing again: {self.skipped} sample(s) skipped while the disk was full "
                f"({self.clock() - self._since:.0f} s); the count is stored with this sample ({SKIPPED_SAMPLES_FIELD})"
            )
            self.skipped = 0  # the warning clock is kept: a disk that fills again soon warns once a minute at most
        return True

    def _skip(self, exc: OSError) -> None:
        now = self.clock()
        if not self.skipped:
            self._since = now
        self.skipped += 1
        self.total_skipped += 1
        if self._warned_at is None or now - self._warned_at >= self.warn_every_s:
            self._warned_at = now
            log(
                f"disk full ({exc.strerror or exc}): {self.skipped} sample(s) skipped so far; "
                "still sampling, writing resumes by itself when space frees"
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line -> options (dumps, interval, duration, smaps, smaps_every, smaps_cpu, retain_days, retain_mb,
    period, alert options)."""
    p = argparse.ArgumentParser(prog="python -m collector", description="Record every process's memory into DIR.")
    p.add_argument("--dumps", default="dumps", help="dumps directory (default: dumps/)")
    p.add_argument(
        "--interval",
        type=number(MIN_INTERVAL_S, maximum=DAY_S),
        default=5.0,
        help="seconds between samples (default 5)",
    )
    p.add_argument(
        "--duration",
        type=number(0, maximum=100 * 365 * DAY_S),
        default=None,
        help="stop after this many seconds (default: forever)",
    )
    p.add_argument("--smaps", choices=("auto", "on", "off"), default="auto", help="read smaps_rollup (PSS/USS/swap)")
    p.add_argument(
        "--smaps-every",
        type=number(0, above=True, maximum=DAY_S),
        default=SMAPS_EVERY_S,
        metavar="SECONDS",
        help=f"PSS/USS/swap of every process alive this long is at most this old (default {SMAPS_EVERY_S:g})",
    )
    p.add_argument(
        "--smaps-cpu",
        type=number(0, above=True, maximum=100),
        default=SMAPS_CPU * 100,
        metavar="PERCENT",
        help=f"CPU budget for reading smaps_rollup, %% of one core (default {SMAPS_CPU * 100:g}); a shortfall is "
        "recorded in every sample (smaps_stale)",
    )
    p.add_argument(
        "--retain-days",
        type=number(0, above=True, maximum=100 * 365),
        default=None,
        help="delete closed segments older than N days",
    )
    p.add_argument(
        "--retain-mb",
        type=number(0, above=True, maximum=1e12),
        default=None,
        help="keep the store under N MB (oldest deleted first)",
    )
    p.add_argument(
        "--period",
        type=number(0.1, maximum=7 * DAY_S),
        default=3600.0,
        help="seconds covered by one closed segment (default 3600)",
    )
    p.add_argument("--alert-rules", default=None, metavar="FILE", help="TOML alert rules evaluated on recent samples")
    p.add_argument("--on-alert", default=None, metavar="CMD", help="shell command run with the alert JSON on stdin")
    p.add_argument("--alert-every", type=int, default=None, metavar="N", help="evaluate the rules every N samples")
    p.add_argument("--store", default=None, metavar="DIR|URI", help="ship closed segments into this fleet store")
    p.add_argument("--host", default=None, metavar="NAME", help="host name to record and ship as (default: this one)")
    p.add_argument("--machine-id", default=None, metavar="ID", help="this machine's id (default: /etc/machine-id)")
    prom.add_arguments(p)
    args = p.parse_args(argv)
    if args.host is not None and not args.host.strip():
        p.error("--host must not be empty")
    if args.machine_id is not None and args.store is None:
        p.error("--machine-id needs --store")
    args.rules = _alert_rules(p, args)
    args.metrics = prom.options_from_args(p, args)
    return args


def _alert_rules(p: argparse.ArgumentParser, args: argparse.Namespace) -> list | None:
    """--alert-rules FILE -> parsed rules (None without the option); a bad or unreadable file is a usage error."""
    if args.alert_rules is None:
        if args.on_alert is not None or args.alert_every is not None:
            p.error("--on-alert and --alert-every need --alert-rules FILE")
        return None
    if args.alert_every is not None and args.alert_every < 1:
        p.error("--alert-every must be >= 1")
    from memlib.alerts import RulesError, parse_rules

    try:
        return parse_rules(Path(args.alert_rules).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        p.error(f"cannot read --alert-rules {args.alert_rules}: {getattr(exc, 'strerror', None) or exc}")
    except RulesError as exc:
        p.error(f"bad --alert-rules {args.alert_rules}: {exc}")
    return None


def make_sampler(smaps: str, smaps_every: float = SMAPS_EVERY_S, smaps_cpu: float = SMAPS_CPU) -> object:
    """The /proc sampler on Linux (smaps coverage target in seconds, budget as a share of one core), the psutil one
    elsewhere."""
    if sys.platform.startswith("linux") and os.path.isdir("/proc/self"):
        from collector.sampler import Sampler

        return Sampler(smaps=smaps, smaps_every=smaps_every, smaps_cpu=smaps_cpu)
    from collector.psutil_sampler import PsutilSampler

    return PsutilSampler(smaps=smaps)


class Stopper:
    """SIGTERM/SIGINT set `stop`; `sleep_until` wakes early on a signal (via a wakeup pipe)."""

    def __init__(self) -> None:
        """Install the handlers (main thread only)."""
        self.stop = False
        self.signal_name = ""
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._poll = select.poll()  # not select(): the sampler keeps many fds open, select breaks above 1023
        self._poll.register(self._r, select.POLLIN)
        self._old_fd = signal.set_wakeup_fd(self._w)
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum: int, _frame: object) -> None:
        self.stop = True
        self.signal_name = signal.Signals(signum).name

    def sleep_until(self, deadline: float) -> None:
        """Sleep until monotonic `deadline` or a stop signal."""
        while not self.stop:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(InterruptedError):
                self._poll.poll(max(1, math.ceil(remaining * 1000)))
            with contextlib.suppress(BlockingIOError):
                os.read(self._r, 512)

    def restore(self) -> None:
        """Put the previous handlers back."""
        for s, h in self._old.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(self._old_fd)
        os.close(self._r)
        os.close(self._w)


EXIT_HOST_CLAIMED = 2  # --store: another machine already ships under this host name


class _Shipping:
    """--store: a ShipLoop over a Shipper whose host claim is made before its first round (at start when the target
    answers, else in the loop once it does); `unshipped(paths)` protects files from retention until shipped."""

    def __init__(self, dumps: Path, target: str, host: str, machine_id: str | None) -> None:
        """Open the target (ValueError/OSError on a bad URI) and claim the host (HostClaimed when taken)."""
        from collector.ship import ShipLoop, Shipper, read_machine_id

        self.shipper = Shipper(dumps, target, host, machine_id or read_machine_id())
        self.claimed = False
        self.refused: str | None = None
        try:
            self._claim()
        except OSError as exc:
            log(f"shipping: {target} not reachable now ({exc}); recording goes on, shipping starts once it is")
        self.target = target
        self.loop = ShipLoop(self, on_report=self._report)

    def _claim(self) -> None:
        if not self.claimed:
            self.shipper.claim()
            self.claimed = True
            log(f"shipping closed segments to {self.shipper.target} as host {self.shipper.host}")

    def ship(self) -> object:
        """ShipLoop's round: claim first if not yet done, then ship what is pending."""
        from collector.ship import HostClaimed, ShipReport

        if self.refused:
            return ShipReport()
        try:
            self._claim()
        except HostClaimed as exc:
            self.refused = str(exc)
            log(f"shipping stopped: {exc}")
            return ShipReport()
        except OSError as exc:
            return ShipReport(error=f"claiming the host name: {exc}")
        return self.shipper.ship()

    def _report(self, report: object) -> None:
        if report.sent:
            log(f"shipped {len(report.sent)} file(s) to {self.shipper.target}")

    def unshipped(self, paths: list[Path]) -> bool:
        """True when one of these closed files of this host is not in the target yet (retention keeps them)."""
        return self.shipper.unshipped(paths)


def run(args: argparse.Namespace, sampler_factory: Callable[[str], object] | None = None) -> int:
    """Record until --duration or a signal; returns the exit status (0 ok, 1 refused/failed, 2 host name taken in
    the --store target). `sampler_factory`
    (smaps mode -> sampler) defaults to make_sampler with the --smaps-every / --smaps-cpu options."""
    every, cpu = getattr(args, "smaps_every", SMAPS_EVERY_S), getattr(args, "smaps_cpu", SMAPS_CPU * 100) / 100
    if sampler_factory is None:

        def sampler_factory(smaps: str) -> object:
            return make_sampler(smaps, every, cpu)

    dumps = Path(args.dumps)
    try:
        dumps.mkdir(parents=True, exist_ok=True)
        lock_fds = lock.acquire(dumps)
    except AlreadyRunning as exc:
        log(str(exc))
        return 1
    except OSError as exc:
        log(f"cannot use dumps directory {dumps}: {exc.strerror or exc}")
        return 1
    stopper = Stopper()
    alerting: _Alerting | None = None
    writer: SegmentWriter | None = None
    sampler = None
    metrics: prom.MetricsExporter | None = None
    shipping: _Shipping | None = None
    try:
        try:
            for note in recover(dumps, stored_tree):
                log(note)
        except OSError as exc:  # a full disk at start: the old segment stays readable, the next start compacts it
            if exc.errno not in DISK_FULL_ERRNOS:
                raise
            log(f"could not compact the previous run's segment now ({exc.strerror or exc}); it stays readable")
        sampler = sampler_factory(args.smaps)
        if getattr(args, "host", None):
            sampler.host = args.host
        if getattr(args, "store", None):
            from collector.ship import HostClaimed

            try:
                shipping = _Shipping(dumps, args.store, safe_host(sampler.host), getattr(args, "machine_id", None))
            except HostClaimed as exc:
                log(str(exc))
                return EXIT_HOST_CLAIMED
            except (ValueError, OSError) as exc:  # a malformed URI or an unknown scheme
                log(f"cannot use --store {args.store}: {exc}")
                return EXIT_HOST_CLAIMED
            shipping.loop.start()
        writer = SegmentWriter(dumps, sampler.host, sampler.boot_id, period_s=args.period, derive=stored_tree)
        gc.collect()
        gc.freeze()  # imports are done: keep the long-lived heap out of every later collection
        retain_bytes = None if args.retain_mb is None else int(args.retain_mb * 1_000_000)
        alerting = _Alerting(args, sampler) if getattr(args, "rules", None) else None
        if getattr(args, "metrics", None) is not None:
            metrics = prom.MetricsExporter(args.metrics, args.interval, log)
            metrics.serve()
        log(f"recording into {dumps} every {args.interval:g} s (pid {os.getpid()}, smaps {args.smaps})")
        if args.smaps != "off":
            log(f"smaps: values at most {every:g} s old, within {cpu * 100:g} % of one core")
        t0 = time.monotonic()
        end = math.inf if args.duration is None else t0 + args.duration
        k = 0
        closed_seen = 0
        failures = 0
        disk_full = DiskFull()
        while not stopper.stop:
            due = t0 + k * args.interval
            if due >= end:
                break
            stopper.sleep_until(due)
            if stopper.stop:
                break
            try:
                sample = sampler.sample()
                if metrics is not None:
                    metrics.observe(sample)
                if disk_full.write(writer, sample):
                    failures = 0
                if alerting is not None:
                    alerting.after_sample(sample)
            except (OSError, ValueError) as exc:  # one bad sample is logged and skipped; many in a row stop us
                failures += 1
                if metrics is not None:
                    metrics.failed()
                log(f"sample failed ({failures} in a row): {type(exc).__name__}: {exc}")
                if failures >= MAX_FAILURES:
                    raise
            if len(writer.closed) > closed_seen or k == 0:
                closed_seen = len(writer.closed)
                for note in writer.notes:
                    log(note)
                writer.notes = []
                if shipping is not None and k > 0:
                    shipping.loop.kick()
                _retention(dumps, args.retain_days, retain_bytes, shipping)
            took = time.monotonic() - due
            k += 1
            if took > args.interval:
                next_k = math.ceil((time.monotonic() - t0) / args.interval)
                log(
                    f"sample took {took:.2f} s, longer than the {args.interval:g} s interval; "
                    f"skipping {next_k - k} slot(s)"
                )
                if metrics is not None:
                    metrics.overran(next_k - k)
                k = max(k, next_k)
        if stopper.stop:
            log(f"{stopper.signal_name}: flushing and exiting")
        return 0
    except Exception as exc:  # keep the recorded data: compact below, then report
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        if writer is not None:
            try:
                writer.close()
                if shipping is not None:
                    shipping.loop.stop()  # one last round: the segment just closed
                _retention(
                    dumps, args.retain_days, None if args.retain_mb is None else int(args.retain_mb * 1e6), shipping
                )
            except Exception as exc:
                log(f"could not compact the active segment (it stays readable; the next run compacts it): {exc}")
        close = getattr(sampler, "close", None)
        if close is not None:
            close()
        if alerting is not None:
            alerting.close()
        if metrics is not None:
            metrics.close()
        stopper.restore()
        lock.release(lock_fds)


class _Alerting:
    """Alert rules over the collector's recent samples (memlib.alerts.AlertWindow) and the --on-alert commands."""

    def __init__(self, args: argparse.Namespace, sampler: object) -> None:
        """Window over args.rules, evaluated every --alert-every samples (default ~30 s worth)."""
        from memlib.alerts import AlertWindow

        every = args.alert_every or max(1, round(30.0 / args.interval))
        host, boot = getattr(sampler, "host", ""), getattr(sampler, "boot_id", "")
        self.window = AlertWindow(args.rules, every=every, host=host, boot_id=boot)
        self.command: str | None = args.on_alert
        self.running: list[subprocess.Popen] = []
        log(f"alerts: {len(args.rules)} rule(s) from {args.alert_rules}, evaluated every {every} sample(s)")

    def after_sample(self, sample: object) -> None:
        """Add the sample; for each alert that started firing, log it and start the command (never raises)."""
        from memlib.alerts import alert_json

        self.running = [c for c in self.running if c.poll() is None]  # reap finished commands
        try:
            started = self.window.add(sample.ts, sample.procs, sample.meminfo)
        except Exception as exc:  # a rule problem must never stop the recording
            log(f"alerts: evaluation failed: {type(exc).__name__}: {exc}")
            return
        for _, row in started.iterrows():  # alerts that just started: a handful at most
            log(f"alert: {row['rule']}: {row['message']}")
            if self.command:
                self._run(alert_json(row) + "\n")

    def _run(self, payload: str) -> None:
        try:
            child = subprocess.Popen(
                self.command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True
            )
        except OSError as exc:
            log(f"alerts: cannot run --on-alert command: {exc}")
            return
        try:
            assert child.stdin is not None
            child.stdin.write(payload.encode())
            child.stdin.close()
        except OSError as exc:  # the command exited without reading its input
            log(f"alerts: --on-alert command did not take the alert: {exc}")
        self.running.append(child)

    def close(self, timeout: float = 5.0) -> None:
        """Wait up to `timeout` s for commands still running (they are left running after that)."""
        deadline = time.monotonic() + timeout
        for child in self.running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.0, deadline - time.monotonic()))


def _retention(dumps: Path, days: float | None, max_bytes: int | None, shipping: _Shipping | None = None) -> None:
    if days is None and max_bytes is None:
        return
    keep = None if shipping is None else shipping.unshipped
    for path in apply_retention(dumps, days, max_bytes, keep=keep):
        log(f"retention: deleted {path.name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m collector`."""
    return run(parse_args(argv))
