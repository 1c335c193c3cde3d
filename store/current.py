"""Reading an active segment (``.current``): header check, frames from a byte offset, damage reported, not fatal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from store import frames as fr
from store.schema import CURRENT_VERSION


@dataclass
class CurrentRead:
    """read_current's result: decoded process rows (ts + sample columns) and wide system rows of the whole samples
    read (None when none), host and boot id from the frames, where to continue, samples lost, problems."""

    procs: pa.Table | None
    system: pa.Table | None
    host: str
    boot_id: str
    next_offset: int
    lost_samples: int = 0
    problems: list[str] = field(default_factory=list)
    readable: bool = True  # False: not ours (bad header) or a newer format; nothing was read


def read_current(path: Path, offset: int = 0, data: bytes | None = None) -> CurrentRead:
    """A `.current` from byte `offset` (0 = from the header) -> CurrentRead; raises OSError only when unreadable.
    `data`: the whole file's bytes when already in memory. A zero-byte file or one shorter than its header is a
    problem (nothing readable), not an error."""
    if data is None:
        with open(path, "rb") as fh:
            head = fh.read(fr.HEADER.size)
            start = max(offset, fr.HEADER.size)
            fh.seek(start)
            body = fh.read()  # a grown file: only what follows the samples already read
    else:
        head = data[: fr.HEADER.size]
        start = max(offset, fr.HEADER.size)
        body = data[start:]
    if len(head) < fr.HEADER.size:
        what = "empty file (zero bytes)" if not head else "shorter than its header"
        return CurrentRead(None, None, "", "", 0, 0, [what], readable=False)
    magic, version, _ = fr.HEADER.unpack_from(head, 0)
    if magic != fr.MAGIC:
        return CurrentRead(None, None, "", "", 0, 0, ["not a PMI segment (bad header)"], readable=False)
    if version > CURRENT_VERSION:
        problem = f"format version {version} is newer than this reader ({CURRENT_VERSION}), skipped"
        return CurrentRead(None, None, "", "", 0, 0, [problem], readable=False)
    scan = fr.scan_frames(body, start)
    problems = list(scan.problems)
    if scan.lost_samples:
        problems.append(f"{scan.lost_samples} sample(s) lost to damage, the rest read")
    if not scan.frames:
        return CurrentRead(None, None, "", "", start + scan.end, scan.lost_samples, problems)
    host, boot_id = fr.frames_meta(scan.frames)
    procs = fr.frames_table(scan.frames, fr.KIND_PROCS)
    system = fr.frames_table(scan.frames, fr.KIND_SYSTEM)
    return CurrentRead(procs, system, host, boot_id, start + scan.end, scan.lost_samples, problems)
