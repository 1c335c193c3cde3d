"""Time and byte helpers: the one place that turns text into UTC times, times into text, and bytes into text.

Times: every memlib/ui time is a tz-aware UTC ``pd.Timestamp``. ``parse_time`` reads ISO 8601 (a time without a
zone is UTC); ``iso_z`` writes the shortest ISO text that is still exact at the store's precision (microseconds):
whole seconds print as ``...T10:05:02Z``, others with 3 or 6 fraction digits. Text printed by ``iso_z`` (the CLI's
output, the dashboard's URLs and labels), given back to ``parse_time``, is the very same instant, so it selects the
very same snapshot (memlib.query.resolve matches exactly first, then the nearest snapshot within half an interval).

Zones (seed dumps stamp local time): ``local_zone`` ($TZ, else /etc/localtime, else UTC), ``resolve_zone``.

Bytes: ``fmt_bytes`` writes binary prefixes ('1.5 GiB'); null -> '–'. ``MIB`` is 2**20. Durations:
``fmt_duration`` ('3 d 4 h', '2 h 5 min', '40 s').
"""

from __future__ import annotations

import math
import os
import zoneinfo
from datetime import tzinfo

import numpy as np
import pandas as pd

MIB = 1 << 20
BYTE_STEPS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
TIME_HELP = "ISO 8601 (e.g. 2026-11-27T17:02:13Z; no zone = UTC)"


def to_utc(value: object) -> pd.Timestamp:
    """A datetime, Timestamp, numpy datetime64 or ISO text -> tz-aware UTC Timestamp (naive values are UTC)."""
    ts = pd.Timestamp(value)  # type: ignore[arg-type]  # any of the kinds above; pandas raises on others
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def parse_time(text: str) -> pd.Timestamp:
    """ISO 8601 text -> UTC Timestamp (a time without zone is UTC); ValueError naming the text otherwise."""
    try:
        ts = pd.Timestamp(str(text).strip())
    except (ValueError, TypeError, OverflowError):
        ts = None
    if ts is None or ts is pd.NaT or pd.isna(ts):
        raise ValueError(f"{text!r} is not a time: use {TIME_HELP} or 'latest'")
    return to_utc(ts)


def iso_z(value: object) -> str:
    """A time -> the shortest exact ISO 8601 UTC text: '2026-11-27T10:05:02Z', '...02.250Z' or '...02.250123Z'."""
    ts = to_utc(value)
    base = ts.strftime("%Y-%m-%dT%H:%M:%S")
    us = ts.microsecond
    if ts.nanosecond:
        return f"{base}.{us:06d}{ts.nanosecond:03d}Z"
    if us % 1000:
        return f"{base}.{us:06d}Z"
    if us:
        return f"{base}.{us // 1000:03d}Z"
    return base + "Z"


def iso_z_series(values: pd.Series) -> pd.Series:
    """A datetime column -> object column of iso_z text (nulls stay None); one format for the whole column."""
    ts = values.dt.tz_convert("UTC") if values.dt.tz is not None else values.dt.tz_localize("UTC")
    ns = ts.dropna().array.as_unit("ns").asi8
    if (ns % 1000 != 0).any():
        text = ts.dt.strftime("%Y-%m-%dT%H:%M:%S.") + (ts.dt.microsecond * 1000 + ts.dt.nanosecond).map(
            lambda v: f"{int(v):09d}Z" if v == v else ""
        )
    elif (ns % 1_000_000 != 0).any():
        text = ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    elif (ns % 1_000_000_000 != 0).any():
        text = ts.dt.strftime("%Y-%m-%dT%H:%M:%S.") + (ts.dt.microsecond // 1000).map(
            lambda v: f"{int(v):03d}Z" if v == v else ""
        )
    else:
        text = ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return text.astype(object).where(ts.notna(), None)


def ns_of(times: pd.Series) -> np.ndarray:
    """A datetime column (any unit, UTC) -> int64 nanoseconds since the epoch (NaT -> INT64_MIN)."""
    return times.array.as_unit("ns").asi8


def fmt_duration(seconds: float | None) -> str:
    """Seconds -> '3 d 4 h', '2 h 5 min', '4 min 10 s', '40 s'; null -> '–'."""
    if seconds is None or seconds is pd.NA or (isinstance(seconds, float) and math.isnan(seconds)):
        return "–"
    s = float(seconds)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    if s < 86400:
        return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    return f"{int(s // 86400)} d {int(s % 86400 // 3600)} h"


def fmt_bytes(n: float | int | None) -> str:
    """Bytes -> human text with binary prefixes ('1.5 GiB', '-300 MiB', '12 B'); null -> '–'."""
    if n is None or n is pd.NA or (isinstance(n, float) and math.isnan(n)):
        return "–"
    n = float(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    i = 0
    while n >= 1024 and i < len(BYTE_STEPS) - 1:
        n /= 1024
        i += 1
    if i == 0:
        return f"{sign}{int(n)} B"
    return f"{sign}{n:.1f} {BYTE_STEPS[i]}" if n < 100 else f"{sign}{n:.0f} {BYTE_STEPS[i]}"


def local_zone() -> tzinfo:
    """The zone of this machine: $TZ if it names a zone, else /etc/localtime, else UTC."""
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return zoneinfo.ZoneInfo(env)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return zoneinfo.ZoneInfo(target.split("zoneinfo/", 1)[1])
        with open("/etc/localtime", "rb") as fh:
            return zoneinfo.ZoneInfo.from_file(fh, key="localtime")
    except (OSError, zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def resolve_zone(tz: str | None) -> tzinfo:
    """Zone name (IANA, e.g. "Europe/Berlin", or "UTC") or None (local zone) -> tzinfo; ValueError if unknown."""
    if tz is None or tz == "":
        return local_zone()
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Berlin' or 'UTC')") from None
