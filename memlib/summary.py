"""Summaries of moments: top processes and subtrees, growers and counts between two moments, the default metric
of a moment (PSS when known for nearly all of the RSS), and what part of used memory the processes account for.

The system series itself (used, buff/cache, swap, Σ RSS/PSS per sample) is memlib.query.system; ``attributed``
turns its rows into attributed / not attributed / counted-more-than-once bytes, never a bare negative number.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from memlib import schema
from memlib.timeline import metric_column
from memlib.tree import TreeIndex, snapshot


def _desc_order(values: pd.Series) -> np.ndarray:
    """Positions sorting values descending, nulls last, ties in row order."""
    v = values.astype("Float64").to_numpy(dtype=float, na_value=-np.inf)
    return np.argsort(-v, kind="stable")


def top_processes(
    procs: pd.DataFrame, snap: int, metric: str = "rss", limit: int | None = 10, index: TreeIndex | None = None
) -> pd.DataFrame:
    """PROCS(+TREE) frame, snapshot, metric -> that moment's rows (PROCS+TREE) by own metric, nulls last."""
    df = snapshot(procs, snap, index)
    df = df.iloc[_desc_order(df[metric_column(metric)])]
    return df if limit is None else df.head(limit)


def top_subtrees(
    procs: pd.DataFrame,
    snap: int,
    metric: str = "rss",
    limit: int | None = 10,
    level: int | None = None,
    index: TreeIndex | None = None,
) -> pd.DataFrame:
    """PROCS(+TREE) frame, snapshot, metric -> subtrees at that moment by subtree total descending, nulls last.

    Candidates: with ``level=None`` every process below a root (level >= 1) that has at least one descendant —
    subtrees may nest (a service and its worker pool both appear); roots are left out because init's and kthreadd's
    subtrees are simply everything. With ``level=L`` every process at level L (leaves too), which never nest.
    Adds ``subtree_share``: subtree total / the sum of the metric over all processes at that moment (known values).
    """
    col = metric_column(metric)
    scol = schema.subtree_column(col)
    df = snapshot(procs, snap, index)
    total = df[col].sum(skipna=True) if col in df.columns else 0
    if level is None:
        cand = df[(df["level"].to_numpy() >= 1) & (df["descendants"].to_numpy() >= 1)]
    else:
        cand = df[df["level"].to_numpy() == level]
    cand = cand.iloc[_desc_order(cand[scol])].copy()
    share = (
        cand[scol].astype("Float64") / float(total) if total else pd.Series(pd.NA, index=cand.index, dtype="Float64")
    )
    cand["subtree_share"] = share
    return cand if limit is None else cand.head(limit)


GROWER_COLUMNS = [
    "proc_id", "pid", "name", "cmdline", "user", "status", "before_bytes", "after_bytes", "delta_bytes",
    "subtree_before_bytes", "subtree_after_bytes", "subtree_delta_bytes", "descendants_before", "descendants_after",
]  # fmt: skip


def growers(
    procs: pd.DataFrame,
    snap_from: int,
    snap_to: int,
    metric: str = "rss",
    limit: int | None = 10,
    by: str = "own",
    index: TreeIndex | None = None,
) -> pd.DataFrame:
    """PROCS(+TREE) frame, two snapshots, metric -> processes by growth between the two moments (GROWER_COLUMNS).

    One row per proc_id alive at either moment. ``status``: "alive" (at both), "new" (only at snap_to; before
    counts as 0), "exited" (only at snap_from; after counts as 0). Processes born and gone between the two moments
    are not listed. Own and subtree before/after/delta are given; rows are sorted by ``delta_bytes`` (``by="own"``)
    or ``subtree_delta_bytes`` (``by="subtree"``) descending, nulls (unknown PSS...) last; ``limit=None`` keeps all.
    """
    if by not in ("own", "subtree"):
        raise ValueError(f"by must be 'own' or 'subtree', got {by!r}")
    col = metric_column(metric)
    scol = schema.subtree_column(col)
    keep = ["proc_id", "pid", "name", "cmdline", "user", col, scol, "descendants"]
    a = snapshot(procs, snap_from, index)
    b = snapshot(procs, snap_to, index)
    a = a[[c for c in keep if c in a.columns]]
    b = b[[c for c in keep if c in b.columns]]
    m = a.merge(b, on="proc_id", how="outer", suffixes=("_a", "_b"), indicator=True)
    out = pd.DataFrame({"proc_id": m["proc_id"].astype("int64")})
    for c in ("pid", "name", "cmdline", "user"):
        if f"{c}_b" in m.columns:
            out[c] = m[f"{c}_b"].astype(object).where(m[f"{c}_b"].notna(), m[f"{c}_a"].astype(object))
    status = np.select([m["_merge"] == "both", m["_merge"] == "right_only"], ["alive", "new"], "exited")
    out["status"] = pd.Categorical(status, categories=["alive", "new", "exited"])
    is_new, is_gone = status == "new", status == "exited"
    for src, pre in ((col, ""), (scol, "subtree_")):
        before = m[f"{src}_a"].astype("Int64").mask(is_new, 0)
        after = m[f"{src}_b"].astype("Int64").mask(is_gone, 0)
        out[f"{pre}before_bytes"] = before
        out[f"{pre}after_bytes"] = after
        out[f"{pre}delta_bytes"] = after - before
    out["descendants_before"] = m["descendants_a"].astype("Int64")
    out["descendants_after"] = m["descendants_b"].astype("Int64")
    out["pid"] = out["pid"].astype("int32")
    out = out.iloc[_desc_order(out["delta_bytes" if by == "own" else "subtree_delta_bytes"])].reset_index(drop=True)
    return out[GROWER_COLUMNS] if limit is None else out[GROWER_COLUMNS].head(limit)


def counts(procs: pd.DataFrame, snap_from: int, snap_to: int) -> dict[str, int]:
    """PROCS frame and a window of snapshots [snap_from, snap_to] -> counts of processes.

    Keys: processes_before (alive at snap_from), processes_now (alive at snap_to), new (seen in (snap_from,
    snap_to] but not alive at snap_from), exited (seen in [snap_from, snap_to) but not alive at snap_to),
    seen (distinct processes in the window). A process born and gone inside the window counts as new and exited.
    """
    if snap_from > snap_to:
        raise ValueError(f"snap_from ({snap_from}) is after snap_to ({snap_to})")
    snap = procs["snap"].to_numpy()
    inside = (snap >= snap_from) & (snap <= snap_to)
    s, p = snap[inside], procs["proc_id"].to_numpy()[inside]
    codes = np.unique(p, return_inverse=True)[1] if p.size and p.max() > 4 * p.size else p  # keep flag arrays small
    size = int(codes.max()) + 1 if codes.size else 0

    def seen(mask: np.ndarray) -> np.ndarray:
        flags = np.zeros(size, bool)
        flags[codes[mask]] = True
        return flags

    at_from, at_to = seen(s == snap_from), seen(s == snap_to)
    after_from, before_to = seen(s > snap_from), seen(s < snap_to)
    return {
        "processes_before": int(at_from.sum()),
        "processes_now": int(at_to.sum()),
        "new": int((after_from & ~at_from).sum()),
        "exited": int((before_to & ~at_to).sum()),
        "seen": int(seen(np.ones(len(codes), bool)).sum()),
    }


PSS_DEFAULT_SHARE = 0.95  # PSS becomes the default metric when known for at least this share of the RSS


class MetricChoice(NamedTuple):
    """The default metric of a moment and why: pss_share = Σ RSS of the processes whose PSS is known / Σ RSS."""

    metric: Literal["pss", "rss"]
    pss_share: float
    reason: str


def choose_metric(snap_df: pd.DataFrame) -> MetricChoice:
    """One moment's rows (rss_bytes, pss_bytes) -> PSS when it is known for >= 95 % of the RSS, else RSS, with the
    sentence that says so ("PSS known for 97 % of the RSS: shared pages split among their users")."""
    rss = snap_df["rss_bytes"].to_numpy(dtype=np.float64, na_value=0.0) if len(snap_df) else np.zeros(0)
    known = snap_df["pss_bytes"].notna().to_numpy() if "pss_bytes" in snap_df.columns else np.zeros(len(rss), bool)
    return metric_choice(float(rss.sum()), float(rss[known].sum()))


def metric_choice(rss_bytes: object, pss_known_rss_bytes: object) -> MetricChoice:
    """A moment's Σ RSS and the Σ RSS of its processes whose PSS is known (a system row's procs_rss_bytes and
    pss_known_rss_bytes; missing = 0) -> choose_metric's answer, without the moment's rows."""
    total = 0.0 if pd.isna(rss_bytes) else float(rss_bytes)  # type: ignore[arg-type]
    known = 0.0 if pd.isna(pss_known_rss_bytes) else float(pss_known_rss_bytes)  # type: ignore[arg-type]
    share = known / total if total > 0 else 0.0
    pct = f"{share * 100:.0f} %"
    if share >= PSS_DEFAULT_SHARE:
        return MetricChoice("pss", share, f"PSS (known for {pct} of the RSS): shared pages split among their users")
    return MetricChoice("rss", share, f"RSS (PSS known for only {pct} of the RSS): shared pages counted in full")


def attributed(system_rows: pd.DataFrame, metric: Literal["pss", "rss"]) -> pd.DataFrame:
    """System rows (memlib.query.SYSTEM_COLUMNS) and the shown metric -> ts, attributed_bytes, unattributed_bytes,
    overcounted_bytes, basis.

    attributed = Σ RSS (metric "rss") or Σ PSS where known plus Σ RSS of the processes without PSS (metric "pss");
    unattributed = used - attributed when that is >= 0 (kernel, page tables, ...), else 0, and overcounted =
    attributed - used (> 0 only when shared pages were counted more than once): never a bare negative number.
    """
    rss = system_rows["procs_rss_bytes"].astype("Int64")
    if metric == "pss":
        pss = system_rows["procs_pss_bytes"].astype("Int64").fillna(0)
        basis = pss + (rss - system_rows["pss_known_rss_bytes"].astype("Int64").fillna(0))
    else:
        basis = rss
    diff = system_rows["mem_used_bytes"].astype("Int64") - basis
    return pd.DataFrame(
        {
            "ts": system_rows["ts"],
            "attributed_bytes": basis,
            "unattributed_bytes": diff.clip(lower=0),
            "overcounted_bytes": (-diff).clip(lower=0),
            "basis": metric,
        }
    )
