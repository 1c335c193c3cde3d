"""URL query-string state: every value that defines a view, parsed, validated and written back without defaults.

The URL is the state. Pages read a `ViewState` at the top of every run, widgets are seeded from it, widget callbacks
write the changed value back into `st.query_params`, and navigation passes `to_query(...)` to `st.switch_page`.
`from`/`to` are the time window; `/compare` picks its two moments with `a` and `b` (ISO times), `/groups` its key
with `by` (name|command|user|cgroup) and the listed group with `group`, `/cgroups` the selected path with `cgroup`;
`host` the host shown when a recording holds several.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from memlib.schema import MEMORY_METRICS
from memlib.units import iso_z, parse_time

UNITS: dict[str, int] = {"MiB": 1 << 20, "GiB": 1 << 30}


@dataclass(frozen=True)
class ViewState:
    """Everything a view depends on; `None` / default values are omitted from the URL."""

    pid: int | None = None
    start: pd.Timestamp | None = None  # start time of the process, when the pid was reused
    at: pd.Timestamp | None = None  # snapshot moment; None = latest
    level: int = 0
    min_lifetime: float = 0.0  # seconds
    min_rss_mb: float = 0.0  # MiB
    min_subtree_mb: float = 0.0  # MiB
    match: str = ""
    from_: pd.Timestamp | None = None  # time window start; None = the default window (ui.sidebar.window_of)
    to: pd.Timestamp | None = None  # time window end; None = last sample
    metric: str | None = None  # None = the default metric (PSS when known for nearly every process, else RSS)
    unit: str = "MiB"
    by: str = "name"  # /groups: group processes by name | command | user | cgroup
    group: str | None = None  # /groups: the group whose processes are listed
    cgroup: str | None = None  # /cgroups: the selected cgroup path; None = the root "/"
    a: pd.Timestamp | None = None  # /compare: first moment; None = start of the time window
    b: pd.Timestamp | None = None  # /compare: second moment; None = the snapshot moment (`at`, latest by default)
    host: str | None = None  # the host shown when a recording holds several; None = the first

    def replace(self, **changes: object) -> ViewState:
        """A copy of this state with `changes` applied (field names as in the dataclass)."""
        return dataclasses.replace(self, **changes)


DEFAULT = ViewState()
# URL parameter name -> dataclass field name
PARAM_FIELDS: dict[str, str] = {
    "pid": "pid",
    "start": "start",
    "at": "at",
    "level": "level",
    "min_lifetime": "min_lifetime",
    "min_rss_mb": "min_rss_mb",
    "min_subtree_mb": "min_subtree_mb",
    "match": "match",
    "from": "from_",
    "to": "to",
    "metric": "metric",
    "unit": "unit",
    "by": "by",
    "group": "group",
    "cgroup": "cgroup",
    "a": "a",
    "b": "b",
    "host": "host",
}
FIELD_PARAMS: dict[str, str] = {f: p for p, f in PARAM_FIELDS.items()}
TIME_FIELDS = frozenset({"start", "at", "from_", "to", "a", "b"})
GROUP_BY = ("name", "command", "user", "cgroup")  # memlib.groups.GROUP_BY
MAX_MATCH_LEN = 200


PID_MAX = 4_194_304  # the kernel's largest possible pid (PID_MAX_LIMIT on 64-bit)
MAX_LEVEL = 10_000
_WHOLE = re.compile(r"\+?[0-9]+")


def _parse_whole(text: str, maximum: int, what: str) -> int:
    """A URL value -> a whole number in [0, maximum]; ValueError saying what is wrong (not how Python failed)."""
    text = text.strip()
    if text.startswith("-") and _WHOLE.fullmatch(text[1:]):
        raise ValueError("must be 0 or more")
    if not _WHOLE.fullmatch(text):
        raise ValueError("must be a whole number")
    value = int(text)
    if value > maximum:
        raise ValueError(f"must be at most {maximum:,} ({what})")
    return value


def _parse_number(text: str) -> float:
    """A URL value -> a finite number >= 0; ValueError saying what is wrong."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a number >= 0")
    return value


def _parse_field(field: str, text: str) -> object:
    if field in TIME_FIELDS:
        return parse_time(text)
    if field == "pid":
        return _parse_whole(text, PID_MAX, "the kernel's largest PID")
    if field == "level":
        return _parse_whole(text, MAX_LEVEL, "tree levels")
    if field in ("min_lifetime", "min_rss_mb", "min_subtree_mb"):
        return _parse_number(text)
    if field == "match":
        return text[:MAX_MATCH_LEN]
    if field == "metric":
        if text not in MEMORY_METRICS:
            raise ValueError(f"must be one of {', '.join(MEMORY_METRICS)}")
        return text
    if field == "unit":
        if text not in UNITS:
            raise ValueError(f"must be one of {', '.join(UNITS)}")
        return text
    if field == "by":
        if text not in GROUP_BY:
            raise ValueError(f"must be one of {', '.join(GROUP_BY)}")
        return text
    if field == "host":
        return text[:MAX_MATCH_LEN]
    if field in ("group", "cgroup"):
        if field == "cgroup" and not text.startswith("/"):
            raise ValueError("must be a cgroup path starting with '/'")
        return text[:MAX_MATCH_LEN]
    raise ValueError("unknown parameter")


def parse_query(params: Mapping[str, str | list[str]]) -> tuple[ViewState, list[str]]:
    """Query params -> (ViewState, warnings); a bad value is dropped with a warning saying what is wrong in words
    ("pid must be a whole number, got 'abc'"), never raised; an empty pid is named too."""
    values: dict[str, object] = {}
    warnings: list[str] = []
    for param, field in PARAM_FIELDS.items():
        if param not in params:
            continue
        raw = params[param]
        text = raw[-1] if isinstance(raw, list) else raw
        if text is None or str(text).strip() == "":
            if param == "pid":
                warnings.append("pid is empty (give a process ID, a whole number).")
            continue
        try:
            values[field] = _parse_field(field, str(text))
        except ValueError as exc:
            said = f"{param}: {exc}" if field in TIME_FIELDS else f"{param} {exc}, got {str(text)[:60]!r}"
            warnings.append(f"{said}.")
    state = ViewState(**values)
    if state.from_ is not None and state.to is not None and state.from_ > state.to:
        warnings.append("Ignored the time window: 'from' is after 'to'.")
        state = state.replace(from_=None, to=None)
    return state, warnings


def _format_value(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return iso_z(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


STICKY_PARAMS = ("source",)  # the chosen recording (ui/source.py)


def to_query(state: ViewState) -> dict[str, str]:
    """ViewState -> query params dict with every default value left out (ordered as PARAM_FIELDS)."""
    out: dict[str, str] = {}
    for param, field in PARAM_FIELDS.items():
        value = getattr(state, field)
        if value is None or value == getattr(DEFAULT, field):
            continue
        out[param] = _format_value(value)
    return out


def read_state() -> ViewState:
    """The current URL's ViewState (warnings about bad parameters are kept for `url_warnings`)."""
    state, warnings = parse_query(st.query_params.to_dict())
    st.session_state["_pmi_url_warnings"] = warnings
    return state


def url_warnings() -> list[str]:
    """Warnings of the last `read_state` call (ignored, malformed URL parameters)."""
    return list(st.session_state.get("_pmi_url_warnings", []))


def write_state(state: ViewState) -> None:
    """Make the browser URL show `state` (defaults omitted); no message is sent when nothing changed."""
    wanted = to_query(state)
    current = st.query_params.to_dict()
    for sticky in STICKY_PARAMS:  # not part of the view state, but must survive a widget change
        if sticky in current:
            wanted[sticky] = current[sticky]
    if current != wanted:
        st.query_params.from_dict(wanted)


def update_state(**changes: object) -> None:
    """Callback helper: apply `changes` (ViewState field names) to the current URL state."""
    write_state(read_state().replace(**changes))
