"""Shared timing helpers for the bench modules: repeat a call, turn the times into a RESULTS.md row."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_calls(fn: Callable[[], object], repeats: int) -> list[float]:
    """Call fn `repeats` times -> the wall time of each call in seconds."""
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def timing_row(name: str, values: list[float], limit_s: float | None, judge: bool, note: str = "") -> dict:
    """Seconds of repeated runs -> a report row {name, median_s, value, unit, min, max, repeats, target, ok, note}.

    `ok` is None (not judged) unless `judge` and a limit are given (quick runs are never judged).
    """
    median = statistics.median(values)
    return {
        "name": name,
        "median_s": median,
        "value": median,
        "unit": "s",
        "min": min(values),
        "max": max(values),
        "min_s": min(values),
        "max_s": max(values),
        "repeats": len(values),
        "target": f"≤ {limit_s:g} s" if limit_s is not None else "",
        "ok": (median <= limit_s) if (judge and limit_s is not None) else None,
        "note": note,
    }


def row(name: str, values: list[float], unit: str, target: str = "", ok: bool | None = None, note: str = "") -> dict:
    """One result row: median of `values` with min/max/repeats (NaN when there are none), a target text and whether
    it was met."""
    nan = float("nan")
    return {
        "name": name,
        "value": statistics.median(values) if values else nan,
        "unit": unit,
        "min": min(values) if values else nan,
        "max": max(values) if values else nan,
        "repeats": len(values),
        "target": target,
        "ok": ok,
        "note": note,
    }
