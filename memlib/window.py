"""Which part of a long recording to hold in memory: time spans of native segments, and the window a view loads.

A day of 5 s samples of ~300 processes is ~5 M rows (~0.8 GB as frames); a week would not fit a dashboard's memory.
Process rows are therefore loaded for a window of at most ``MAX_WINDOW_HOURS`` (whole segments overlapping it); the
time spans of all segments come from Parquet footers (no data read), so the whole recording's extent is known at once.
Seed-format CSVs carry no spans: a folder with seed files is always loaded whole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from memlib import store

MAX_WINDOW_HOURS = 24.0


@dataclass(frozen=True)
class SegmentSpan:
    """A native segment's key (stamp + host), kind, first/last sample time (ns) and process rows (None: unknown)."""

    key: str
    kind: str
    first_ns: int | None
    last_ns: int | None
    rows: int | None = None


_SPANS: dict[tuple[str, int, int, str], SegmentSpan] = {}  # (path, size, mtime_ns, kind) -> span
_LOCK = threading.Lock()


def segment_spans(path: str | Path) -> list[SegmentSpan]:
    """Dumps folder -> one SegmentSpan per visible native segment, by key (footers read once per file version)."""
    out = []
    for seg in store.list_segments(Path(path)):
        try:
            st = seg.path.stat()
        except OSError:
            continue
        cache_key = (str(seg.path), st.st_size, st.st_mtime_ns, seg.kind)
        with _LOCK:
            span = _SPANS.get(cache_key)
        if span is None:
            ns = store.segment_span(seg)
            span = SegmentSpan(seg.key, seg.kind, *(ns if ns else (None, None)), store.segment_rows(seg))
            with _LOCK:
                if len(_SPANS) > 10_000:
                    _SPANS.clear()
                _SPANS[cache_key] = span
        out.append(span)
    return out


def recording_span(spans: list[SegmentSpan]) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Segment spans -> (first, last) sample time of the whole recording (UTC), None when no span is known."""
    firsts = [s.first_ns for s in spans if s.first_ns is not None]
    lasts = [s.last_ns for s in spans if s.last_ns is not None]
    if not firsts or not lasts:
        return None
    return pd.Timestamp(min(firsts), tz="UTC"), pd.Timestamp(max(lasts), tz="UTC")


def needs_window(spans: list[SegmentSpan], max_hours: float = MAX_WINDOW_HOURS) -> bool:
    """True when the native recording spans more than `max_hours` (so only a window of it should be loaded)."""
    span = recording_span(spans)
    return span is not None and (span[1] - span[0]) > pd.Timedelta(hours=max_hours)


def choose_window(
    span: tuple[pd.Timestamp, pd.Timestamp],
    from_: pd.Timestamp | None,
    to: pd.Timestamp | None,
    at: pd.Timestamp | None,
    max_hours: float = MAX_WINDOW_HOURS,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Recording (first, last), the view's window and moment (None = default) -> the window to load: at most
    `max_hours` long, inside the recording, ending at `to` (default: the end), containing `at` when it is given
    (the window moves to it), starting no earlier than `from_` allows."""
    first, last = span
    width = pd.Timedelta(hours=max_hours)
    hi = min(max(to, first), last) if to is not None else last
    lo = max(from_, first) if from_ is not None else hi - width
    if from_ is not None and to is None:
        hi = min(lo + width, last)
    lo, hi = max(lo, first), min(hi, last)
    if hi - lo > width:
        lo = hi - width
    if hi < lo:
        lo = hi
    if at is not None:
        at = min(max(at, first), last)
        if not lo <= at <= hi:  # centre on the moment, shifted (not cut) to stay inside the recording
            lo, hi = at - width / 2, at + width / 2
            if lo < first:
                lo, hi = first, min(first + width, last)
            elif hi > last:
                lo, hi = max(last - width, first), last
    return lo, hi


def selected_keys(spans: list[SegmentSpan], lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[str, ...]:
    """Segment spans and a window -> keys of the segments overlapping it (unknown spans always overlap), sorted."""
    a, b = lo.value, hi.value
    keep = {
        s.key
        for s in spans
        if s.first_ns is None
        or s.last_ns is None
        or (s.first_ns <= b and s.last_ns >= a)
        or (s.kind == "current" and s.first_ns <= b)
    }
    return tuple(sorted(keep))


def selected_rows(spans: list[SegmentSpan], keys: tuple[str, ...] | None) -> int:
    """Process rows in the segments with `keys` (all segments for None); segments of unknown size count 0."""
    return sum(s.rows or 0 for s in spans if keys is None or s.key in keys)
