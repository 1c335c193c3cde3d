"""Extra idle processes for benchmarks: a tree several levels deep, started from a small interpreter and reaped after.

    with ProcTree(300) as tree:      # 300 more processes on the machine while the block runs
        ...                          # tree.pids: every pid of the tree (the top first)

The top process is ``python -m bench.proctree N FANOUT`` (no pandas/numpy: forked children stay small); it forks the
rest breadth-first, each node with up to FANOUT children (300 at fanout 6: 4 levels below the top). Every node blocks
in ``signal.pause()``; SIGTERM makes a node stop its children, reap them and exit, so nothing is left as a zombie or
orphan. Each node also leaves by itself after ``max_s`` seconds or when its parent is gone.

    with BigProcesses(3, 1100 * 2**20) as big:   # 3 processes holding 1.1 GiB of touched private memory each
        ...                                      # big.pids

Each big process (``python -S -c``) maps and writes its memory once, then sleeps until its stdin closes (``Held``:
any such "print ready, wait for stdin to close" helper process).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

DEFAULT_MAX_S = 900.0


def _shares(size: int, fanout: int) -> list[int]:
    """Split the `size - 1` processes below a node among up to `fanout` children, as evenly as possible."""
    rest = size - 1
    return [rest // fanout + (1 if i < rest % fanout else 0) for i in range(min(fanout, rest))]


def _fork_children(size: int, fanout: int, ready_fd: int, max_s: float) -> list[int]:
    """Fork the children of a node owning `size` processes; in each child run its own node (never returns there)."""
    children: list[int] = []
    for share in _shares(size, fanout):
        pid = os.fork()
        if pid == 0:
            _node(share, fanout, ready_fd, max_s)
        children.append(pid)
    return children


def _idle(children: list[int], max_s: float) -> None:
    """Block until SIGTERM, `max_s` seconds or the parent's death, then stop and reap `children` and exit."""
    parent = os.getppid()

    def stop(_sig: int = 0, _frame: object = None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, lambda *_: None)  # only wakes signal.pause() to check the deadline and the parent
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline and os.getppid() == parent:
        signal.alarm(max(1, min(5, int(deadline - time.monotonic()) + 1)))
        signal.pause()
    stop()


def _node(size: int, fanout: int, ready_fd: int, max_s: float) -> None:
    """A non-top node: fork its subtree, report one byte on `ready_fd`, idle; never returns."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    children = _fork_children(size, fanout, ready_fd, max_s)
    os.write(ready_fd, b".")
    os.close(ready_fd)
    _idle(children, max_s)


def serve(size: int, fanout: int, max_s: float = DEFAULT_MAX_S, start_timeout: float = 60.0) -> None:
    """Top of the tree: fork `size - 1` descendants, print "ready <pid> <count>" once all are up, idle."""
    r, w = os.pipe()
    children = _fork_children(size, fanout, w, max_s)
    os.close(w)
    got, deadline = 0, time.monotonic() + start_timeout
    while got < size - 1 and time.monotonic() < deadline:
        if select.select([r], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            got += len(chunk)
    os.close(r)
    print(f"ready {os.getpid()} {got + 1}", flush=True)
    _idle(children, max_s)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (from /proc/<p>/task/<p>/children), breadth-first."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop(0)
        try:
            kids = [int(x) for x in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            kids = []
        out.extend(kids)
        todo.extend(kids)
    return out


class ProcTree:
    """Context manager: `n` extra idle processes in a tree (top + descendants) for the duration of a `with` block."""

    def __init__(self, n: int = 300, fanout: int = 6, max_s: float = DEFAULT_MAX_S, timeout: float = 60.0) -> None:
        """`n` processes in all (>= 1), each node with up to `fanout` children; `max_s` caps their life."""
        if n < 1 or fanout < 1:
            raise ValueError(f"need n >= 1 and fanout >= 1, got n={n}, fanout={fanout}")
        self.n, self.fanout, self.max_s, self.timeout = n, fanout, max_s, timeout
        self.proc: subprocess.Popen | None = None
        self.pids: list[int] = []

    def __enter__(self) -> ProcTree:
        cmd = [sys.executable, "-m", "bench.proctree", str(self.n), str(self.fanout), str(self.max_s)]
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 3 or line[0] != "ready" or int(line[2]) != self.n:
            self.__exit__(None, None, None)
            raise RuntimeError(f"process tree did not start (got {line!r})")
        self.pids = [self.proc.pid, *descendants(self.proc.pid)]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            for pid in reversed([self.proc.pid, *descendants(self.proc.pid)]):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


_BIG_CODE = """
import mmap, sys
size = int(sys.argv[1])
m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
chunk = b"\\x01" * (1 << 20)
for _ in range(size >> 20):
    m.write(chunk)
print("ready", flush=True)
sys.stdin.read()
"""


class Held:
    """Context manager: one process started from `cmd` that prints a line "ready ..." once set up and exits when its
    stdin closes; `words` holds that line's words after "ready"."""

    def __init__(self, cmd: list[str], timeout: float = 120.0) -> None:
        """`timeout`: seconds to wait for it to exit before it is killed."""
        self.cmd, self.timeout = cmd, timeout
        self.proc: subprocess.Popen | None = None
        self.words: list[str] = []

    @property
    def pid(self) -> int:
        """Its pid."""
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Held:
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            self.__exit__(None, None, None)
            raise RuntimeError(f"{' '.join(self.cmd[-4:])} did not start (got {line!r}; out of memory?)")
        self.words = line[1:]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


class BigProcesses:
    """Context manager: `count` idle processes each holding `size` bytes of touched anonymous memory."""

    def __init__(self, count: int, size: int) -> None:
        """`size` is rounded down to whole MiB."""
        self.held = [Held([sys.executable, "-S", "-c", _BIG_CODE, str(size)]) for _ in range(count)]
        self._stack = contextlib.ExitStack()

    @property
    def pids(self) -> list[int]:
        """Their pids."""
        return [h.pid for h in self.held]

    def __enter__(self) -> BigProcesses:
        with contextlib.ExitStack() as stack:
            for h in self.held:
                stack.enter_context(h)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()


def levels(pids: list[int], top: int) -> int:
    """Depth of the tree formed by `pids` below `top` (0 = only the top), from /proc/<pid>/stat ppids."""
    parent = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        parent[pid] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    depth = 0
    for pid in parent:
        d, p = 0, pid
        while p != top and p in parent:
            p, d = parent[p], d + 1
        depth = max(depth, d)
    return depth


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 6,
          float(sys.argv[3]) if len(sys.argv) > 3 else DEFAULT_MAX_S)  # fmt: skip
