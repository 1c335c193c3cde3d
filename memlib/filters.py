"""Filters over one moment's process tree (issue 5): minimum lifetime, own and subtree memory, and a text match.

Semantics (design.md §3, mistakes 3 and 4):
1. Trees first. Filters never change tree shape or totals: levels and subtree totals come from the whole snapshot
   (memlib.tree) and a filtered-out process still counts in its ancestors' subtree totals.
2. Every filter is evaluated at the chosen moment (the snapshot's ``ts``): lifetime = ts - start_time, own and
   subtree memory of the chosen metric at that moment. A row is ``kept`` when it passes all filters. Unknown values
   (e.g. PSS unreadable) fail a threshold above 0 and pass a threshold of 0.
3. ``match`` is a case-insensitive substring of name, command line or user (plain text, not a regex).
4. ``level`` (when given) restricts the kept rows to that tree level. Choosing the level comes before any limit.
5. ``limit`` comes last: the top ``limit`` kept rows by the metric (own value by default, or subtree total).
6. Every ancestor of a kept row is returned too, with ``context`` True (``kept`` False unless it passes itself), so a
   tree view keeps each kept row's chain to its root visible.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from memlib import schema
from memlib.tree import link_rows, with_tree


@dataclass(frozen=True)
class Filters:
    """Filter settings; defaults keep everything. ``metric`` names the memory metric the MiB thresholds apply to."""

    min_lifetime_s: float = 0.0
    min_rss_mib: float = 0.0  # own memory of `metric`, MiB
    min_subtree_mib: float = 0.0  # subtree total of `metric`, MiB
    match: str = ""
    metric: str = "rss"

    def __post_init__(self) -> None:
        if self.metric not in schema.MEMORY_METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; expected one of {sorted(schema.MEMORY_METRICS)}")
        for name in ("min_lifetime_s", "min_rss_mib", "min_subtree_mib"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.match, str):
            raise ValueError(f"match must be text, got {type(self.match).__name__}")

    def is_default(self) -> bool:
        """True when no filter is active."""
        return self == Filters(metric=self.metric)

    def to_dict(self) -> dict[str, str]:
        """Filters -> plain dict of strings for URL state; fields at their default value are omitted."""
        default = Filters()
        out = {}
        for key, value in asdict(self).items():
            if value != getattr(default, key):
                out[key] = f"{value:g}" if isinstance(value, float) else str(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Filters:
        """Plain dict (e.g. URL query params, values as text) -> Filters; unknown keys ignored, bad values named."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data or data[f.name] is None:
                continue
            raw = data[f.name]
            if isinstance(raw, list):  # multi-valued query param: last one wins
                if not raw:
                    continue
                raw = raw[-1]
            if f.name in ("match", "metric"):
                kwargs[f.name] = str(raw)
                continue
            try:
                kwargs[f.name] = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"{f.name} must be a number, got {raw!r}") from None
        return cls(**kwargs)


def lifetime_s(snap_df: pd.DataFrame) -> pd.Series:
    """PROCS rows -> lifetime in seconds at each row's moment (ts - start_time), float, NaN when start is unknown."""
    return (snap_df["ts"] - snap_df["start_time"]).dt.total_seconds()


def _text_match(snap_df: pd.DataFrame, needle: str) -> np.ndarray:
    """Case-insensitive substring match over name, cmdline and user, evaluated once per category value."""
    hit = np.zeros(len(snap_df), bool)
    low = needle.casefold()
    for col in ("name", "cmdline", "user"):
        if col not in snap_df.columns:
            continue
        s = snap_df[col]
        if isinstance(s.dtype, pd.CategoricalDtype):  # test each distinct value present once
            codes = s.cat.codes.to_numpy()
            used = np.unique(codes[codes >= 0])
            texts = s.cat.categories[used].astype(str).tolist()
            used_hit = np.fromiter((low in t.casefold() for t in texts), bool, len(texts))
            cat_hit = np.zeros(len(s.cat.categories) + 1, bool)  # last slot: code -1 (null)
            cat_hit[used] = used_hit
            hit |= cat_hit[codes]
        else:
            hit |= s.astype("string").str.casefold().str.contains(low, regex=False).fillna(False).to_numpy(bool)
    return hit


def _at_least(values: pd.Series, threshold_bytes: float) -> np.ndarray:
    if threshold_bytes <= 0:
        return np.ones(len(values), bool)
    return values.astype("Float64").to_numpy(dtype=float, na_value=-np.inf) >= threshold_bytes


def filter_snapshot(
    snap_df: pd.DataFrame,
    f: Filters,
    level: int | None = None,
    limit: int | None = None,
    rank_by: str = "own",
) -> pd.DataFrame:
    """One snapshot's PROCS(+TREE) rows and Filters -> kept rows plus their ancestors, with `kept` and `context`.

    Semantics in the module docstring: trees first, filters at the moment, level, then the limit (top `limit` kept
    rows by own value of ``f.metric``, or by subtree total with ``rank_by="subtree"``; ties keep row order).
    Returned rows keep the input order and columns; ``parent_row`` is recomputed positional in the result.
    """
    if rank_by not in ("own", "subtree"):
        raise ValueError(f"rank_by must be 'own' or 'subtree', got {rank_by!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if len(snap_df) and snap_df["snap"].nunique() > 1:
        raise ValueError("filter_snapshot takes the rows of one snapshot (see memlib.tree.snapshot)")
    df = with_tree(snap_df)
    col = schema.MEMORY_METRICS[f.metric]
    own = df[col] if col in df.columns else pd.Series(pd.NA, index=df.index, dtype="Int64")
    sub = df[schema.subtree_column(col)]
    keep = _at_least(own, f.min_rss_mib * schema.MIB) & _at_least(sub, f.min_subtree_mib * schema.MIB)
    if f.min_lifetime_s > 0:
        keep &= lifetime_s(df).to_numpy(dtype=float, na_value=-np.inf) >= f.min_lifetime_s
    if f.match:
        keep &= _text_match(df, f.match)
    if level is not None:
        keep &= df["level"].to_numpy() == level
    if limit is not None:
        rank = (own if rank_by == "own" else sub).astype("Float64").to_numpy(dtype=float, na_value=-np.inf)
        cand = np.flatnonzero(keep)
        top = cand[np.argsort(-rank[cand], kind="stable")[:limit]]
        keep = np.zeros(len(df), bool)
        keep[top] = True
    # ancestors of kept rows, within this snapshot
    parent, _ = link_rows(df["snap"].to_numpy(), df["pid"].to_numpy(), df["ppid"].to_numpy())
    context = np.zeros(len(df), bool)
    frontier = parent[keep]
    while frontier.size:
        frontier = np.unique(frontier[frontier >= 0])
        frontier = frontier[~context[frontier]]
        context[frontier] = True
        frontier = parent[frontier]
    context &= ~keep
    show = keep | context
    out = df[show].copy()
    out["kept"] = keep[show]
    out["context"] = context[show]
    local_parent, _ = link_rows(out["snap"].to_numpy(), out["pid"].to_numpy(), out["ppid"].to_numpy())
    out["parent_row"] = local_parent
    return out
