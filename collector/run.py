"""Collector CLI: lock the dumps directory, sample on a fixed schedule, write segments, apply retention.

    python -m collector [--dumps DIR] [--interval SECONDS] [--duration SECONDS] [--smaps auto|on|off]
                        [--retain-days N] [--retain-mb N] [--period SECONDS]

Sample k is due at t0 + k*interval on the monotonic clock (no drift); a sample that overruns its slot logs a warning
and the missed slots are skipped (no burst). SIGTERM/SIGINT finish the current sample, compact and exit 0.

Alerts: ``--alert-rules FILE`` (memlib.alerts format, docs/alerts.example.toml; a bad file exits 2 at start) keeps the
recent samples in memory (the longest rule window + 60 s) and evaluates the rules on them every ``--alert-every``
samples (default: about every 30 s). An alert that starts firing is logged and, with ``--on-alert CMD``, CMD runs
through the shell with the alert as one JSON object (and a newline) on stdin, without waiting for it; it runs again
only after the alert stopped and started firing again. An evaluation error is logged and never stops sampling.
"""

from __future__ import annotations

import argparse
import contextlib
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

from memlib.tree import stored_tree
from store import SegmentWriter, apply_retention, lock, recover

MAX_FAILURES = 10  # consecutive failed samples before the collector gives up (exit 1)
AlreadyRunning = lock.Locked  # another collector holds the lock on the dumps directory


def log(message: str) -> None:
    """One line on stderr, prefixed with the UTC time."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} collector: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line -> options (dumps, interval, duration, smaps, retain_days, retain_mb, period)."""
    p = argparse.ArgumentParser(prog="python -m collector", description="Record every process's memory into DIR.")
    p.add_argument("--dumps", default="dumps", help="dumps directory (default: dumps/)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: forever)")
    p.add_argument("--smaps", choices=("auto", "on", "off"), default="auto", help="read smaps_rollup (PSS/USS/swap)")
    p.add_argument("--retain-days", type=float, default=None, help="delete closed segments older than N days")
    p.add_argument("--retain-mb", type=float, default=None, help="keep the store under N MB (oldest deleted first)")
    p.add_argument("--period", type=float, default=3600.0, help="seconds covered by one closed segment (default 3600)")
    p.add_argument("--alert-rules", default=None, metavar="FILE", help="TOML alert rules evaluated on recent samples")
    p.add_argument("--on-alert", default=None, metavar="CMD", help="shell command run with the alert JSON on stdin")
    p.add_argument("--alert-every", type=int, default=None, metavar="N", help="evaluate the rules every N samples")
    args = p.parse_args(argv)
    if not args.interval > 0:
        p.error("--interval must be > 0")
    if args.duration is not None and args.duration < 0:
        p.error("--duration must be >= 0")
    if args.period <= 0:
        p.error("--period must be > 0")
    for name in ("retain_days", "retain_mb"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    args.rules = _alert_rules(p, args)
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


def make_sampler(smaps: str) -> object:
    """The /proc sampler on Linux, the psutil one elsewhere."""
    if sys.platform.startswith("linux") and os.path.isdir("/proc/self"):
        from collector.sampler import Sampler

        return Sampler(smaps=smaps)
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


def run(args: argparse.Namespace, sampler_factory: Callable[[str], object] = make_sampler) -> int:
    """Record until --duration or a signal; returns the exit status (0 ok, 1 refused/failed)."""
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
    try:
        for note in recover(dumps, stored_tree):
            log(note)
        sampler = sampler_factory(args.smaps)
        writer = SegmentWriter(dumps, sampler.host, sampler.boot_id, period_s=args.period, derive=stored_tree)
        gc.collect()
        gc.freeze()  # imports are done: keep the long-lived heap out of every later collection
        retain_bytes = None if args.retain_mb is None else int(args.retain_mb * 1_000_000)
        alerting = _Alerting(args, sampler) if getattr(args, "rules", None) else None
        log(f"recording into {dumps} every {args.interval:g} s (pid {os.getpid()}, smaps {args.smaps})")
        t0 = time.monotonic()
        end = math.inf if args.duration is None else t0 + args.duration
        k = 0
        closed_seen = 0
        failures = 0
        while not stopper.stop:
            due = t0 + k * args.interval
            if due >= end:
                break
            stopper.sleep_until(due)
            if stopper.stop:
                break
            try:
                sample = sampler.sample()
                writer.append(sample.ts, sample.procs, sample.meminfo, cgroup_mem=sample.cgroup_mem)
                failures = 0
                if alerting is not None:
                    alerting.after_sample(sample)
            except (OSError, ValueError) as exc:  # one bad sample is logged and skipped; many in a row stop us
                failures += 1
                log(f"sample failed ({failures} in a row): {type(exc).__name__}: {exc}")
                if failures >= MAX_FAILURES:
                    raise
            if len(writer.closed) > closed_seen or k == 0:
                closed_seen = len(writer.closed)
                for note in writer.notes:
                    log(note)
                writer.notes = []
                _retention(dumps, args.retain_days, retain_bytes)
            took = time.monotonic() - due
            k += 1
            if took > args.interval:
                next_k = math.ceil((time.monotonic() - t0) / args.interval)
                log(
                    f"sample took {took:.2f} s, longer than the {args.interval:g} s interval; "
                    f"skipping {next_k - k} slot(s)"
                )
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
                _retention(dumps, args.retain_days, None if args.retain_mb is None else int(args.retain_mb * 1e6))
            except Exception as exc:
                log(f"could not compact the active segment (it stays readable; the next run compacts it): {exc}")
        close = getattr(sampler, "close", None)
        if close is not None:
            close()
        if alerting is not None:
            alerting.close()
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


def _retention(dumps: Path, days: float | None, max_bytes: int | None) -> None:
    if days is None and max_bytes is None:
        return
    for path in apply_retention(dumps, days, max_bytes):
        log(f"retention: deleted {path.name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m collector`."""
    return run(parse_args(argv))
