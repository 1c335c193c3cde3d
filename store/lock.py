"""The writer's lock on a store root: one collector (or migration) at a time per directory.

The lock is an exclusive ``flock`` on the root directory itself (deleting a file cannot release it) and on
``.collector.lock`` (which also carries the holder's pid for messages, and is what earlier versions locked).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_NAME = ".collector.lock"


class Locked(RuntimeError):
    """Another process holds the lock on the store root."""


def acquire(root: Path) -> tuple[int, int]:
    """flock `root` and root/.collector.lock (non-blocking), write our pid -> (dir fd, file fd). Locked if held."""
    root = Path(root)
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    file_fd = -1
    try:
        _flock(dir_fd, root)
        file_fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        _flock(file_fd, root)
    except BaseException:
        if file_fd >= 0:
            os.close(file_fd)
        os.close(dir_fd)
        raise
    os.ftruncate(file_fd, 0)
    os.pwrite(file_fd, f"{os.getpid()}\n".encode(), 0)
    return dir_fd, file_fd


def _flock(fd: int, root: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        raise Locked(
            f"another collector (pid {holder(root)}) is already recording into {root}; stop it first"
        ) from None


def dir_locked(root: Path) -> bool:
    """True when another process holds the directory lock (a collector of this version, or a conversion)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def holder(root: Path) -> str:
    """The pid written in root/.collector.lock ('unknown' when unreadable)."""
    try:
        return (Path(root) / LOCK_NAME).read_text("ascii", "replace").strip()[:20] or "unknown"
    except OSError:
        return "unknown"


def release(fds: tuple[int, int]) -> None:
    """Release what acquire returned."""
    for fd in fds[::-1]:
        if fd >= 0:
            os.close(fd)
