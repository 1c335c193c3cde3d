"""A process tree with known memory, for tests: `python -S tests/sharedmem_tree.py SHARED PRIVATE N`.

The parent maps SHARED bytes (MAP_SHARED | MAP_ANONYMOUS) and writes every page, forks N children and then unmaps
its own copy, so exactly the N children map it. Each child reads every page of the shared mapping (mapping them into
its page tables: fork does not copy page tables of shared mappings), then maps PRIVATE bytes of its own
(MAP_PRIVATE | MAP_ANONYMOUS) and writes every page. When all children are ready the parent prints
"ready <parent pid> <child pid> ..." and everything sleeps until SIGTERM (the parent stops and reaps its children)
or until the parent's stdin closes; an orphaned child exits by itself within 2 s. Only the standard library (and
-S: no site) keeps the interpreters small.
"""

from __future__ import annotations

import mmap
import os
import signal
import sys

PAGE = mmap.PAGESIZE


def touch(m: mmap.mmap | None, size: int, write: bool) -> int:
    """Write (or read) one byte of every page of `m` -> a checksum (keeps the reads from being optimised away)."""
    total = 0
    if m is None:
        return total
    for off in range(0, size, PAGE):
        if write:
            m[off] = 1
        else:
            total += m[off]
    return total


def child(shared: mmap.mmap | None, shared_b: int, private_b: int, ready_w: int) -> None:
    """Map the shared pages, write a private mapping, report ready, sleep until killed or orphaned; never returns."""
    parent = os.getppid()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, lambda *_: None)  # wakes pause() to look for the parent
    touch(shared, shared_b, write=False)
    private = mmap.mmap(-1, private_b, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS) if private_b else None
    touch(private, private_b, write=True)
    os.write(ready_w, b".")
    os.close(ready_w)
    while os.getppid() == parent:
        signal.alarm(2)
        signal.pause()
    os._exit(0)


def main() -> None:
    shared_b, private_b, n = (int(a) for a in sys.argv[1:4])
    shared = mmap.mmap(-1, shared_b, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS) if shared_b else None
    touch(shared, shared_b, write=True)
    ready_r, ready_w = os.pipe()
    kids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            child(shared, shared_b, private_b, ready_w)
        kids.append(pid)
    os.close(ready_w)
    if shared is not None:
        shared.close()  # munmap: from now on only the children map the shared pages

    def stop(_sig: int = 0, _frame: object = None) -> None:
        for pid in kids:
            os.kill(pid, signal.SIGTERM)
        for pid in kids:
            os.waitpid(pid, 0)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    got = 0
    while got < n:
        chunk = os.read(ready_r, 64)
        if not chunk:
            break
        got += len(chunk)
    print("ready", os.getpid(), *kids, flush=True)
    sys.stdin.read()  # until the test closes our stdin (or dies)
    stop()


if __name__ == "__main__":
    main()
