"""argparse value types shared by the command line's commands (memlib.cli, memlib.fleet_cli): text -> a checked
value, or argparse.ArgumentTypeError saying what was expected (argparse prints it as a usage error, exit 2)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import pandas as pd

from memlib.units import parse_time


def number(minimum: float = 0.0, above: bool = False, maximum: float = math.inf) -> Callable[[str], float]:
    """A type: text -> a finite float >= `minimum` (> it when `above`) and <= `maximum`; nan, inf and out-of-range
    values are usage errors that say which range is accepted."""
    bound = f"{'>' if above else '>='} {minimum:g}" + (f" and <= {maximum:g}" if math.isfinite(maximum) else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < minimum or value > maximum or (above and value == minimum):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: expected a finite number {bound}")
        return value

    return parse


def whole(minimum: int = 0) -> Callable[[str], int]:
    """A type: text -> an int >= `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}: {text!r}")
        return value

    return parse


def pid(text: str) -> int:
    """A type: text -> a process id (0 .. 2**31 - 1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a pid: {text!r}") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"not a pid: {text!r}")
    return value


def time_option(text: str | None, option: str) -> pd.Timestamp | None:
    """An optional time option's text -> UTC Timestamp or None; ValueError naming the option when it is no time."""
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None
