"""Slow, obviously-correct reference implementations (plain dicts and loops) to check the vectorised memlib code.

Rules, written out as directly as possible:
- parent of a row: the first row of the same snapshot whose pid equals its ppid, unless ppid is 0 or its own pid;
- a row whose parent chain comes back to itself (a cycle) is a root;
- level: number of parent steps to a root; descendants: rows whose chain passes through it;
- subtree total: own value plus every descendant's; for nullable metrics the sum of known values, None if none known.
"""

from __future__ import annotations

import math

import pandas as pd

METRICS = ("rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes")


def _value(v):
    return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else int(v)


def rows_of(procs: pd.DataFrame) -> list[dict]:
    """PROCS frame -> list of plain dicts (nulls as None), one per row in frame order."""
    out = []
    for rec in procs.to_dict("records"):
        out.append({k: (_value(v) if k in METRICS else v) for k, v in rec.items()})
    return out


def parents(rows: list[dict]) -> list[int]:
    """Rows -> parent row position per row (-1 for a root), cycles made roots."""
    first: dict[tuple[int, int], int] = {}
    for i, r in enumerate(rows):
        first.setdefault((r["snap"], r["pid"]), i)
    parent = []
    for r in rows:
        p = first.get((r["snap"], r["ppid"]), -1)
        if r["ppid"] == 0 or r["ppid"] == r["pid"]:
            p = -1
        parent.append(p)
    on_cycle = []
    for i in range(len(rows)):
        seen = set()
        j = parent[i]
        while j != -1 and j not in seen and j != i:
            seen.add(j)
            j = parent[j]
        on_cycle.append(j == i)
    return [-1 if on_cycle[i] else parent[i] for i in range(len(rows))]


def chain_up(parent: list[int], i: int) -> list[int]:
    """Row -> its ancestors from its parent up to the root."""
    out = []
    j = parent[i]
    while j != -1:
        out.append(j)
        j = parent[j]
    return out


def trees(procs: pd.DataFrame) -> list[dict]:
    """PROCS frame -> per row: level, parent_row, descendants, subtree_<metric> (None when no member is known)."""
    rows = rows_of(procs)
    parent = parents(rows)
    out = [{"level": 0, "parent_row": parent[i], "descendants": 0} for i in range(len(rows))]
    for m in METRICS:
        for i, r in enumerate(rows):
            out[i]["subtree_" + m] = r.get(m)
    for i, r in enumerate(rows):
        ups = chain_up(parent, i)
        out[i]["level"] = len(ups)
        for a in ups:
            out[a]["descendants"] += 1
            for m in METRICS:
                v = r.get(m)
                if v is not None:
                    key = "subtree_" + m
                    out[a][key] = v if out[a][key] is None else out[a][key] + v
    return out


def timeline(procs: pd.DataFrame, proc_id: int, pre: tuple | None = None) -> list[dict]:
    """PROCS frame, proc_id -> per snapshot it lives in (ascending): snap, pid, own and subtree metrics, descendants.

    `pre` = (rows_of(procs), trees(procs)) when already computed.
    """
    rows, tr = pre or (rows_of(procs), trees(procs))
    out = []
    for i, r in enumerate(rows):
        if r["proc_id"] == proc_id:
            rec = {"snap": r["snap"], "pid": r["pid"], "descendants": tr[i]["descendants"], "level": tr[i]["level"]}
            for m in METRICS:
                rec[m] = r.get(m)
                rec["subtree_" + m] = tr[i]["subtree_" + m]
            out.append(rec)
    return sorted(out, key=lambda x: x["snap"])


def children(procs: pd.DataFrame, proc_id: int, metric: str = "rss_bytes", pre: tuple | None = None) -> list[tuple]:
    """PROCS frame, proc_id -> sorted (snap, child_pid, child_proc_id, child subtree metric) of direct children."""
    rows, tr = pre or (rows_of(procs), trees(procs))
    out = []
    for i, r in enumerate(rows):
        p = tr[i]["parent_row"]
        if p != -1 and rows[p]["proc_id"] == proc_id:
            out.append((r["snap"], r["pid"], r["proc_id"], tr[i]["subtree_" + metric]))
    return sorted(out)


def subtree_peak(procs: pd.DataFrame, proc_id: int, metric: str = "rss_bytes", pre: tuple | None = None) -> int | None:
    """PROCS frame, proc_id -> max over its snapshots of its subtree total at that moment."""
    values = [t["subtree_" + metric] for t in timeline(procs, proc_id, pre) if t["subtree_" + metric] is not None]
    return max(values) if values else None


def stats(procs: pd.DataFrame) -> dict[int, dict]:
    """PROCS frame -> per proc_id: samples, first/last snap, min/max/last of own and subtree RSS, growth per hour."""
    rows = rows_of(procs)
    tr = trees(procs)
    acc: dict[int, list] = {}
    for i, r in enumerate(rows):
        acc.setdefault(r["proc_id"], []).append((r["snap"], r["ts"], r["rss_bytes"], tr[i]["subtree_rss_bytes"]))
    out = {}
    for pid, samples in acc.items():
        samples.sort(key=lambda s: s[0])
        own = [s[2] for s in samples]
        sub = [s[3] for s in samples]
        hours = [(s[1] - samples[0][1]).total_seconds() / 3600 for s in samples]
        out[pid] = {
            "samples": len(samples),
            "first_seen": samples[0][1],
            "last_seen": samples[-1][1],
            "rss_min_bytes": min(own),
            "rss_mean_bytes": sum(own) / len(own),
            "rss_p95_bytes": _percentile(own, 0.95),
            "subtree_rss_p95_bytes": _percentile(sub, 0.95),
            "rss_max_bytes": max(own),
            "rss_last_bytes": own[-1],
            "subtree_rss_min_bytes": min(sub),
            "subtree_rss_max_bytes": max(sub),
            "subtree_rss_last_bytes": sub[-1],
            "growth_bytes_per_hour": _slope(hours, own),
        }
    return out


def _percentile(values: list[int], q: float) -> float:
    s = sorted(values)
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def _slope(x: list[float], y: list[int]) -> float | None:
    n = len(x)
    mx = sum(x) / n
    my = sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sxx


def filter_rows(
    procs: pd.DataFrame, snap: int, min_lifetime_s: float, min_own: float, min_sub: float, match: str, metric: str,
    level: int | None, limit: int | None,
) -> tuple[set[int], set[int]]:  # fmt: skip
    """One snapshot and filter settings -> (proc_ids kept, proc_ids shown only as context ancestors)."""
    rows = rows_of(procs)
    tr = trees(procs)
    idx = [i for i, r in enumerate(rows) if r["snap"] == snap]
    kept = []
    for i in idx:
        r = rows[i]
        own, sub = r.get(metric), tr[i]["subtree_" + metric]
        ok = (r["ts"] - r["start_time"]).total_seconds() >= min_lifetime_s
        ok = ok and (min_own <= 0 or (own is not None and own >= min_own))
        ok = ok and (min_sub <= 0 or (sub is not None and sub >= min_sub))
        texts = [str(r["name"]), str(r["cmdline"]), str(r["user"])]
        ok = ok and (not match or any(match.casefold() in t.casefold() for t in texts))
        ok = ok and (level is None or tr[i]["level"] == level)
        if ok:
            kept.append(i)
    if limit is not None:
        # stable: ties keep row order
        kept = sorted(kept, key=lambda i: -(rows[i].get(metric) if rows[i].get(metric) is not None else -math.inf))
        kept = kept[:limit]
    context = set()
    for i in kept:
        context.update(chain_up([t["parent_row"] for t in tr], i))
    kept_ids = {rows[i]["proc_id"] for i in kept}
    return kept_ids, {rows[i]["proc_id"] for i in context} - kept_ids


def growers_in_window(procs: pd.DataFrame, t_a: pd.Timestamp, t_b: pd.Timestamp, metric: str = "rss_bytes",
                      pre: tuple | None = None) -> dict[int, dict]:  # fmt: skip
    """Per proc_id sampled at a time in [t_a, t_b]: first_seen / last_seen (its first and last sample there),
    before / after (its metric at the first / last of those samples where it is known; None if never), delta
    (after - before), the same of its subtree total (subtree_before, subtree_after, subtree_delta), and status:
    "alive" when sampled at both t_a and t_b, "new" at t_b only, "exited" at t_a only, "new, exited" at neither."""
    rows, tr = pre if pre is not None else (rows_of(procs), trees(procs))
    seen: dict[int, list] = {}
    for r, t in zip(rows, tr, strict=True):
        if t_a <= r["ts"] <= t_b:
            seen.setdefault(r["proc_id"], []).append((r["ts"], r[metric], t["subtree_" + metric]))
    out = {}
    for proc_id, samples in seen.items():
        samples.sort(key=lambda x: x[0])
        row: dict = {"first_seen": samples[0][0], "last_seen": samples[-1][0]}
        for pos, key in ((1, ""), (2, "subtree_")):
            known = [s[pos] for s in samples if s[pos] is not None]
            row[key + "before"] = known[0] if known else None
            row[key + "after"] = known[-1] if known else None
            row[key + "delta"] = known[-1] - known[0] if known else None
        at_a, at_b = row["first_seen"] == t_a, row["last_seen"] == t_b
        row["status"] = "alive" if at_a and at_b else "new" if at_b else "exited" if at_a else "new, exited"
        out[proc_id] = row
    return out


def leak_floors(procs: pd.DataFrame, metric: str = "rss_bytes", max_points: int = 100,
                fine_per_point: int = 4) -> dict[int, list[tuple[int, int, int]]]:  # fmt: skip
    """The whole frame as the window -> per proc_id with two or more known samples over a span > 0: its floors as
    [(bin, floor, samples)] by bin. Rules: times in whole microseconds; the grid runs from the frame's first sample
    to its last in fine_per_point x max_points bins of width ceil((last - first + 1) / that), at least 1 us; a
    sample's fine bin is (t - first) // width; a fine bin's mean time is first + (sum of its samples' t - first) //
    their count; it joins the process's own bin min((mean - own first) x max_points // own span, max_points - 1);
    a bin's floor is the minimum of its samples' values."""
    rows = rows_of(procs)
    us = [pd.Timestamp(r["ts"]).value // 1000 for r in rows]
    origin, end = min(us), max(us)
    width = max(1, -(-(end - origin + 1) // (fine_per_point * max_points)))
    per: dict[int, list[tuple[int, int]]] = {}
    for r, t in zip(rows, us, strict=True):
        if r[metric] is not None:
            per.setdefault(r["proc_id"], []).append((t, r[metric]))
    out = {}
    for proc_id, samples in per.items():
        first, last = min(t for t, _ in samples), max(t for t, _ in samples)
        if len(samples) < 2 or last == first:
            continue
        fine: dict[int, list[tuple[int, int]]] = {}
        for t, v in samples:
            fine.setdefault((t - origin) // width, []).append((t, v))
        own: dict[int, list[tuple[int, int]]] = {}
        for members in fine.values():
            mean = origin + sum(t - origin for t, _ in members) // len(members)
            b = min((mean - first) * max_points // (last - first), max_points - 1)
            own.setdefault(b, []).extend(members)
        out[proc_id] = sorted((b, min(v for _, v in m), len(m)) for b, m in own.items())
    return out
