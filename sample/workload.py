#!/usr/bin/env python3
"""Demo workload for PID Memory Inspector: a process tree whose memory does known things at known times.

Run ``python sample/workload.py --minutes 31`` (stdlib only, Linux). Every process touches its memory so it is
really resident. The tree (sizes in MiB before ``--scale``, times in minutes after the start):

    root      10, argv carries a fake secret ``--db-password s3cr3t`` (the collector must scrub it)
    leaker    10, grows steadily by 3 MiB per minute; argv carries ``--token=tok_live_SECRET123``
    steady    60, flat
      spiker  20, +150 for 60 s from minute 12
    execer    30, re-execs itself as ``--role execer2`` at minute 5 (same PID, new command line and name)
    orphaner   5, starts ``orphan`` (40, own session) and exits at minute 3: the orphan is re-parented
    jobs       5, starts a 25 MiB ``job`` every 60 s (first at 0:30) that lives 20 s
    pool      40 shared, forks 3 ``worker`` processes (8 private each) that share those 40 MiB (RSS vs PSS)

Every process sets its name (comm) to ``demo-<role>`` (``--name-prefix`` changes ``demo-``; the tests use another one
so their short runs never pass for the sample's tree). ``--speed F`` runs the same schedule F times faster (tests).
Every process writes ``<run-dir>/<pid>``; the root removes the whole tree on exit, SIGTERM, SIGINT or SIGHUP, and
every other process also exits by itself when the root is gone or the schedule is over.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
PAGE = 4096
SCRIPT = str(Path(__file__).resolve())

ROOT_SECRET = ["--db-password", "s3cr3t"]
LEAKER_SECRET = "--token=tok_live_SECRET123"

# schedule, in workload seconds (divided by --speed for wall-clock seconds)
ORPHANER_EXIT_AT = 3 * 60
EXEC_AT = 5 * 60
SPIKE_AT = 12 * 60
SPIKE_FOR = 60
JOB_FIRST_AT = 30
JOB_EVERY = 60
JOB_LIVES = 20
LEAK_MIB_PER_MIN = 3.0
POOL_WORKERS = 3
GRACE_S = 10.0  # wall-clock seconds a process may outlive the schedule before it leaves by itself

# resident sizes in MiB before --scale
SIZE_MIB = {
    "root": 10,
    "leaker": 10,
    "steady": 60,
    "spiker": 20,
    "spike": 150,
    "execer": 30,
    "execer2": 30,
    "orphaner": 5,
    "orphan": 40,
    "jobs": 5,
    "job": 25,
    "pool": 40,
    "worker": 8,
}
CHILD_ROLES = ["leaker", "steady", "execer", "orphaner", "jobs", "pool"]
ALL_ROLES = ["root", *CHILD_ROLES, "spiker", "execer2", "orphan", "job", "worker"]


def plan(minutes: float = 31.0) -> list[tuple[float, str]]:
    """Scheduled events of a run of `minutes` -> [(workload seconds after start, description)], sorted."""
    end = minutes * 60
    events = [
        (0.0, "start: root, leaker, steady, spiker, execer, orphaner, orphan, jobs, pool + 3 workers"),
        (ORPHANER_EXIT_AT, "orphaner exits; orphan is re-parented (PID 1 or the nearest subreaper)"),
        (EXEC_AT, "execer re-execs itself as execer2 (same PID and start time)"),
        (SPIKE_AT, "spiker +150 MiB"),
        (SPIKE_AT + SPIKE_FOR, "spiker back to 20 MiB"),
    ]
    t = JOB_FIRST_AT
    while t < end:
        events.append((float(t), "job starts (25 MiB, lives 20 s)"))
        t += JOB_EVERY
    events.append((end, "end: the root stops the whole tree"))
    return sorted(e for e in events if e[0] <= end)


class Ballast:
    """Resident memory held by this process: bytearrays whose every page has been written."""

    def __init__(self) -> None:
        self.chunks: list[bytearray] = []
        self.nbytes = 0

    def add(self, nbytes: int) -> bytearray:
        """Allocate `nbytes`, write one byte per page so the kernel backs them, keep and return the buffer."""
        buf = bytearray(max(int(nbytes), 1))
        buf[::PAGE] = b"\x01" * len(range(0, len(buf), PAGE))
        self.chunks.append(buf)
        self.nbytes += len(buf)
        return buf

    def drop(self, buf: bytearray) -> None:
        """Release one buffer added before (large buffers go straight back to the kernel)."""
        self.chunks.remove(buf)
        self.nbytes -= len(buf)


class Run:
    """Schedule clock and shared settings of one workload run, as passed on every child's command line."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.minutes: float = args.minutes
        self.scale: float = args.scale
        self.speed: float = args.speed
        self.t0: float = args.t0 if args.t0 is not None else time.time()
        self.run_dir = Path(args.run_dir)
        self.root_pid: int = args.root_pid if args.root_pid is not None else os.getpid()
        self.prefix: str = args.name_prefix
        self.tick = min(1.0, 5.0 / self.speed)

    def now(self) -> float:
        """Workload seconds since the start."""
        return (time.time() - self.t0) * self.speed

    def end(self) -> float:
        """Workload seconds at which the schedule is over."""
        return self.minutes * 60.0

    def size(self, role: str) -> int:
        """Bytes `role` holds, after --scale."""
        return max(PAGE, int(SIZE_MIB[role] * self.scale * MIB))

    def argv(self, role: str) -> list[str]:
        """Command line that starts `role` in this run."""
        cmd = [sys.executable, SCRIPT, "--role", role, "--minutes", repr(self.minutes), "--scale", repr(self.scale)]
        cmd += ["--speed", repr(self.speed), "--t0", repr(self.t0), "--root-pid", str(self.root_pid)]
        cmd += ["--run-dir", str(self.run_dir), "--name-prefix", self.prefix]
        if role == "leaker":
            cmd.append(LEAKER_SECRET)
        return cmd

    def spawn(self, role: str, new_session: bool = False) -> subprocess.Popen:
        """Start `role` as a child of this process."""
        return subprocess.Popen(self.argv(role), stdin=subprocess.DEVNULL, start_new_session=new_session)

    def should_stop(self) -> bool:
        """True once the schedule (plus a grace) is over or the root process is gone."""
        if self.now() > self.end() + GRACE_S * self.speed:
            return True
        if self.root_pid == os.getpid():
            return False
        try:
            os.kill(self.root_pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def sleep_until(self, t: float) -> bool:
        """Sleep until workload second `t`, reaping exited children every tick; False when the run should stop first."""
        while self.now() < t:
            reap_exited()
            if self.should_stop():
                return False
            time.sleep(max(0.0, min(self.tick, (t - self.now()) / self.speed)))
        reap_exited()
        return True

    def log(self, role: str, message: str) -> None:
        """One line on stderr: UTC time, workload minute, pid, role, message."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        minute = self.now() / 60.0
        print(f"{stamp} +{minute:6.2f}min pid={os.getpid()} {role}: {message}", file=sys.stderr, flush=True)


def reap_exited() -> None:
    """Reap every child that has exited, so none lingers as a zombie (Popen and waitpid callers cope with that)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def set_name(prefix: str, role: str) -> None:
    """Set this process's comm to <prefix><role>, cut to 15 characters (what /proc/<pid>/stat shows as the name)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(f"{prefix}{role}"[:15])


def register(run: Run, role: str) -> None:
    """Write <run-dir>/<pid> so the root can find and stop this process even when it is not its child."""
    with contextlib.suppress(OSError):
        (run.run_dir / str(os.getpid())).write_text(role + "\n")


def term_to_exit(signum: int, _frame: object) -> None:
    """Turn a termination signal into SystemExit so `finally` blocks clean up."""
    raise SystemExit(128 + signum)


def ignore_signals() -> None:
    """Ignore further termination signals while this process cleans up (a second SIGTERM must not cut it short)."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def stop_children(children: list[subprocess.Popen], timeout: float = 5.0) -> None:
    """SIGTERM every still-running child, wait up to `timeout` s, then SIGKILL and reap what is left."""
    for p in children:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
    deadline = time.monotonic() + timeout
    for p in children:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()


def idle(run: Run, until: float | None = None) -> None:
    """Sleep until workload second `until` (default: the end of the schedule) or until the run stops."""
    run.sleep_until(run.end() + GRACE_S * run.speed if until is None else until)


# ---------------------------------------------------------------- roles


def role_leaker(run: Run, mem: Ballast) -> None:
    """Grow steadily from the base size by LEAK_MIB_PER_MIN, touched as it grows."""
    base = run.size("leaker")
    rate = LEAK_MIB_PER_MIN * run.scale * MIB / 60.0
    while not run.should_stop():
        target = base + rate * max(0.0, min(run.now(), run.end()))
        if target - mem.nbytes >= PAGE:
            mem.add(int(target - mem.nbytes))
        time.sleep(run.tick)


def role_steady(run: Run, mem: Ballast) -> None:
    """Hold a flat size and keep one child, the spiker."""
    spiker = run.spawn("spiker")
    try:
        idle(run)
    finally:
        ignore_signals()
        stop_children([spiker])


def role_spiker(run: Run, mem: Ballast) -> None:
    """Hold the base size, add the spike at SPIKE_AT for SPIKE_FOR seconds."""
    if run.now() < SPIKE_AT + SPIKE_FOR and run.sleep_until(SPIKE_AT):
        spike = mem.add(run.size("spike"))
        run.log("spiker", f"spike +{len(spike) / MIB:.0f} MiB")
        if run.sleep_until(SPIKE_AT + SPIKE_FOR):
            mem.drop(spike)
            del spike
            run.log("spiker", "spike released")
    idle(run)


def role_execer(run: Run, mem: Ballast) -> None:
    """Hold the base size, then at EXEC_AT replace this program by `--role execer2` (same PID)."""
    if not run.sleep_until(EXEC_AT):
        return
    run.log("execer", "exec as execer2")
    argv = run.argv("execer2")
    sys.stderr.flush()
    os.execv(argv[0], argv)


def role_orphaner(run: Run, mem: Ballast) -> None:
    """Start the orphan in its own session, exit at ORPHANER_EXIT_AT without reaping it."""
    orphan = run.spawn("orphan", new_session=True)
    left = False
    try:
        left = run.sleep_until(ORPHANER_EXIT_AT)
        if left:
            run.log("orphaner", f"exit, leaving orphan pid={orphan.pid}")
    finally:
        if not left:
            ignore_signals()
            stop_children([orphan])
    if left:
        os._exit(0)  # skip interpreter teardown: the orphan must outlive us unreaped


def role_jobs(run: Run, mem: Ballast) -> None:
    """Start a job every JOB_EVERY seconds (first at JOB_FIRST_AT); each job lives JOB_LIVES seconds."""
    running: list[subprocess.Popen] = []
    try:
        t = JOB_FIRST_AT
        while t < run.end() and run.sleep_until(t):
            if run.now() < t + JOB_LIVES:
                running.append(run.spawn("job"))
            running = [p for p in running if p.poll() is None]
            t += JOB_EVERY
        idle(run)
    finally:
        ignore_signals()
        stop_children(running)


def role_job(run: Run, mem: Ballast) -> None:
    """Live JOB_LIVES seconds from now, then exit."""
    idle(run, run.now() + JOB_LIVES)


def role_pool(run: Run, mem: Ballast) -> None:
    """Fork POOL_WORKERS workers after filling the pool's memory: they share those pages copy-on-write."""
    workers: list[int] = []
    try:
        for _ in range(POOL_WORKERS):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    set_name(run.prefix, "worker")
                    register(run, "worker")
                    own = Ballast()
                    own.add(run.size("worker"))
                    idle(run)
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else 1
                finally:
                    os._exit(code)
            workers.append(pid)
        idle(run)
    finally:
        ignore_signals()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in workers:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def role_idle(run: Run, mem: Ballast) -> None:
    """Hold the base size until the end of the schedule."""
    idle(run)


ROLES = {
    "leaker": role_leaker,
    "steady": role_steady,
    "spiker": role_spiker,
    "execer": role_execer,
    "execer2": role_idle,
    "orphaner": role_orphaner,
    "orphan": role_idle,
    "jobs": role_jobs,
    "job": role_job,
    "pool": role_pool,
}


def run_root(run: Run) -> int:
    """Start every child role, wait out the schedule, then stop the whole tree (also on SIGTERM/SIGINT/SIGHUP)."""
    children: list[subprocess.Popen] = []
    try:
        run.log("root", f"start: {run.minutes} min, scale {run.scale}, speed {run.speed}, run dir {run.run_dir}")
        for role in CHILD_ROLES:
            children.append(run.spawn(role))
        run.sleep_until(run.end())
        run.log("root", "end of schedule")
    finally:
        ignore_signals()
        stop_children(children)
        sweep(run)
        run.log("root", "stopped every process")
    return 0


def sweep(run: Run, timeout: float = 5.0) -> None:
    """Stop processes registered in the run dir that are still alive (the orphan, strays), remove the pid files."""
    token = str(run.run_dir).encode()
    alive = []
    for f in run.run_dir.iterdir() if run.run_dir.is_dir() else []:
        if not f.name.isdigit() or int(f.name) == os.getpid():
            continue
        pid = int(f.name)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            cmdline = b""
        if token in cmdline:  # still ours (not a reused PID, not a zombie)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
                alive.append(pid)
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if token in _cmdline(p)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for f in run.run_dir.iterdir() if run.run_dir.is_dir() else []:
        if f.name.isdigit():
            f.unlink(missing_ok=True)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options (the secrets are accepted and ignored: they only have to be visible in argv)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=31.0, help="length of the schedule (default 31)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every size by this (default 1)")
    p.add_argument("--speed", type=float, default=1.0, help="run the schedule this many times faster (default 1)")
    p.add_argument("--run-dir", help="directory for pid files (default: a new temporary directory)")
    p.add_argument("--name-prefix", default="demo-", help="process names are <prefix><role> (default demo-)")
    p.add_argument("--plan", action="store_true", help="print the schedule and exit")
    p.add_argument("--role", default="root", choices=["root", *ROLES], help=argparse.SUPPRESS)
    p.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    p.add_argument("--root-pid", type=int, help=argparse.SUPPRESS)
    p.add_argument("--db-password", help=argparse.SUPPRESS)
    p.add_argument("--token", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.scale <= 0 or args.speed <= 0:
        p.error("--minutes, --scale and --speed must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: the root re-execs itself once with the fake secret and a run dir on its command line."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.plan:
        for t, what in plan(args.minutes):
            print(f"{int(t // 60):3d}:{int(t % 60):02d}  {what}")
        return 0
    if args.role == "root" and (args.db_password is None or args.run_dir is None):
        extra = [] if args.db_password is not None else ROOT_SECRET
        if args.run_dir is None:
            extra += ["--run-dir", tempfile.mkdtemp(prefix="pmi-workload-")]
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, SCRIPT, *argv, *extra])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, term_to_exit)
    run = Run(args)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    set_name(run.prefix, args.role)
    register(run, args.role)
    mem = Ballast()
    mem.add(run.size(args.role))
    if args.role == "root":
        try:
            return run_root(run)
        finally:
            with contextlib.suppress(OSError):
                run.run_dir.rmdir()
    try:
        ROLES[args.role](run, mem)
    finally:
        with contextlib.suppress(OSError):
            (run.run_dir / str(os.getpid())).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
