"""Leak scores: which processes, and which subtrees, keep growing over a window; why none does.

Per process (``leak_report`` / ``leak_scores``), over the rows whose ``ts`` lies in [t_from, t_to] and whose metric
value is known:

1. Candidates: processes with at least ``min_samples`` (12) samples spanning at least the minimum duration in the
   window. The minimum duration follows the window (``min_duration_for``): a quarter of the time the window's samples
   cover, at most 10 minutes, so a 3-minute recording can still show a steady leak while in an hour or a day a job
   that starts and exits within minutes is churn, not a leak. An explicit ``min_duration_s`` overrides it.
2. Resampling: each candidate's own observed span is cut into ``max_points`` (100) equal bins (bin of a sample =
   (t - first) * max_points // span, in whole microseconds, the last sample in the last bin); a bin holds the
   **minimum** of the metric over its samples (the floor) and the mean time of those samples. A leak raises the floor;
   a short spike does not. A day at 5 s (17,280 samples) becomes 100 points, so the cost per process is bounded.
3. Pre-filter: only processes whose floor rose (median of the last quarter of bins > median of the first quarter)
   go on; the others are not growing and are left out of the result. The Theil-Sen step below then runs over the
   remaining candidates in chunks of rows of a (process x bin) matrix (a loop per chunk, not per process).
4. ``rate_bytes_per_hour``: Theil-Sen slope of the floor against time (median of the slopes between every pair of
   bins), robust to a spike (a few outlying bins move the median of ~5,000 pair slopes very little).
   ``late_rate_bytes_per_hour``: the same over the second half of the bins only (pairs whose both bins lie there).
5. ``rising_share``: share of steps between consecutive bins in which the floor rose (a steady leak: close to 1;
   a grow-once-then-plateau step: close to 0). ``fit_r2``: 1 - SS_res / SS_tot of the Theil-Sen line (intercept
   = median of y - slope * x), clipped to [0, 1]. ``growth_bytes``: last bin's floor - lowest floor.
   ``growing_since``: the time of the last bin whose floor is within ``max(1 MiB, 2 % of the range)`` of the lowest
   floor (the process has been growing since it last was at its low); within the window.
6. ``confidence`` (0..1): how much evidence there is, sqrt(min(1, span / 30 min) x min(1, samples / 60)): a process
   seen for 2 minutes can rise steadily and still be a warm-up; one seen rising for half an hour is a leak.
7. ``score`` = log2(1 + rate / (1 MiB/h)) x rising_share x fit_r2 x late_factor x sqrt(growing_s / window)
   x confidence, where late_factor = clip(late_rate / rate, 0, 1) (a process that grew and then stopped scores ~0),
   growing_s = last_seen - growing_since and window = the time covered by the window's samples (growing over the
   whole window counts fully, growing over a quarter of it half: how long it has been growing). The score is 0 when
   the rate is <= 0 or the fitted growth over the observed span (rate x span) is below ``min_growth_bytes``. It is a
   ranking, not a probability: above ~1 means a steady rise of a few MiB/h or more.

``LeakReport`` carries the scores, a ``LeakCensus`` (how many processes were considered, too short, not growing,
rose a little, suspects; the resolved minimum duration) whose ``why_empty`` says in words why nothing is a suspect
and what to try, and ``trends``: the suspects' floors regrouped into ``TREND_POINTS`` bins of their span for
sparklines (own bin b joins trend bin b x TREND_POINTS // max_points).

Per subtree (``subtree_leak_scores``), decision: **the sum of per-member growth**. A subtree's members are the
process itself and every process seen below it at sampled moments of the window (snapshots on a grid with a step of
``min_duration_s / 2``, plus each long-lived process's last snapshot: a member that stays ``min_duration_s`` is always
seen). Its rate is the sum of the rates of the members scored above (long-lived, floor rising). Children that come and
go are short-lived and never scored, so a subtree whose total moves only because children start and exit gets no rate
(neither does one that only gains long-lived flat children: that is more processes, not a leak; ``members`` shows
it); a long-lived child born mid-window contributes its own growth, not its birth. Members whose floor did not rise
add nothing (the rate is an upper bound of the net trend when a member shrinks). A process re-parented away (an
orphan) stays a member of the subtree it was seen in. A subtree's steadiness is the rate-weighted mean, over its
growing members, of each member's score without its rate term (rising_share x fit_r2 x late_factor x duration
factor x confidence); score = log2(1 + rate / (1 MiB/h)) x steadiness; ``growing_since`` the earliest among members
with a positive score. Roots: long-lived processes at level >= 1 (init and kthreadd's subtrees are everything) with
at least one member besides themselves; subtrees nest (a leaker's parent, grandparent... all list it;
``top_member_*`` names it). Only subtrees with at least one scored member are listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from memlib import schema
from memlib.timeline import metric_column
from memlib.tree import group_bounds, with_tree
from memlib.units import fmt_duration, ns_of, to_utc

NS_PER_H = 3_600_000_000_000
US_PER_H = 3_600_000_000
MIB = schema.MIB
MAX_POINTS = 100
FINE_PER_POINT = 4  # the window's grid has FINE_PER_POINT x max_points bins
TREND_POINTS = 50
MIN_SAMPLES = 12
MAX_MIN_DURATION_S = 600.0  # the minimum duration of a suspect in a long window
MIN_DURATION_SHARE = 0.25  # ... and in a short one: this share of the window
CONFIDENT_SPAN_S = 1800.0
CONFIDENT_SAMPLES = 60
LOW_CONFIDENCE = 0.5  # below it the top suspect comes with a word of caution
_PAIR_BUDGET = 3_000_000  # pair slopes held at once by the chunked Theil-Sen (~24 MB of float64)

LEAK_COLUMNS = [
    "proc_id", "pid", "start_time", "name", "cmdline", "user", "first_seen", "last_seen", "samples",
    "rate_bytes_per_hour", "late_rate_bytes_per_hour", "rising_share", "fit_r2", "growth_bytes", "growing_since",
    "growing_s", "start_floor_bytes", "end_floor_bytes", "confidence", "score",
]  # fmt: skip
SUBTREE_LEAK_COLUMNS = [
    "proc_id", "pid", "start_time", "name", "cmdline", "user", "last_seen", "members", "growing_members",
    "rate_bytes_per_hour", "growing_since", "top_member_pid", "top_member_name", "top_member_rate_bytes_per_hour",
    "score",
]  # fmt: skip
CANDIDATE_COLUMNS = ["proc_id", "first_ns", "last_ns", "samples"]


def min_duration_for(window_s: float) -> float:
    """Seconds the window's samples cover -> seconds a process must be seen to be a suspect (a quarter, <= 10 min)."""
    return min(MAX_MIN_DURATION_S, MIN_DURATION_SHARE * max(float(window_s), 0.0))


def is_candidate(samples: np.ndarray, span_ns: np.ndarray, min_samples: int, min_duration_s: float) -> np.ndarray:
    """Per process: its samples and observed span (ns) in the window -> whether it is seen long enough to be scored."""
    return (samples >= max(2, min_samples)) & (span_ns >= min_duration_s * 1e9) & (span_ns > 0)


@dataclass(frozen=True)
class LeakCensus:
    """What a leak ranking looked at: processes with a known value in the window, the most samples any of them has,
    the seconds the window's samples cover, the thresholds used, and how many processes ended where."""

    processes: int
    samples: int
    window_s: float
    min_samples: int
    min_duration_s: float
    too_short: int = 0
    not_rising: int = 0
    weak: int = 0
    suspects: int = 0

    def why_empty(self, metric_label: str = "RSS", wider: str = "widen the window") -> str:
        """Why no process is a suspect (or "" when some is), with what to try; `wider` names how to widen it."""
        if self.suspects:
            return ""
        if self.processes == 0:
            return f"No process has a known {metric_label} value in this window: nothing to score. Try another metric."
        need = f"{self.min_samples} samples over at least {fmt_duration(self.min_duration_s)}"
        if self.samples < self.min_samples:
            return (
                f"The window is too short: no process has more than {self.samples} sample(s) in it "
                f"({fmt_duration(self.window_s)}), and a suspect needs {self.min_samples}. Try: {wider}."
            )
        parts = [
            f"{self.processes:,} processes considered",
            f"{self.too_short:,} seen for less than {need} (too short to judge)",
            f"{self.not_rising:,} not growing",
            f"{self.weak:,} rose a little but not steadily (grew once then stopped, or less than 1 MiB)",
        ]
        hint = (
            f"Try: {wider} to follow the long-lived processes for longer."
            if self.too_short < self.processes
            else f"Every process was seen too briefly. Try: {wider}."
        )
        return f"No steady growth of {metric_label}: " + "; ".join(parts) + ". " + hint


def low_confidence_note(scores: pd.DataFrame) -> str:
    """Leak scores -> a caution when the top suspect's confidence is below LOW_CONFIDENCE, else ""."""
    suspects = scores[scores["score"].to_numpy() > 0]
    if suspects.empty or suspects["confidence"].iloc[0] >= LOW_CONFIDENCE:
        return ""
    top = suspects.iloc[0]
    seen = fmt_duration((top["last_seen"] - top["first_seen"]).total_seconds())
    return (
        f"Low confidence: the top suspect was seen for {seen} ({int(top['samples'])} samples). A steady rise that "
        "short can still be a warm-up; record longer to be sure."
    )


class LeakReport(NamedTuple):
    """A leak ranking: scores (LEAK_COLUMNS, most suspicious first), census (LeakCensus) and trends (the suspects'
    floors for sparklines: proc_id (+ identity in memlib.query), ts, floor_bytes)."""

    scores: pd.DataFrame
    census: LeakCensus
    trends: pd.DataFrame


def _window_mask(ts: pd.Series, t_from: pd.Timestamp | None, t_to: pd.Timestamp | None) -> np.ndarray:
    t = ns_of(ts)
    mask = np.ones(len(t), bool)
    if t_from is not None:
        mask &= t >= to_utc(t_from).as_unit("ns").value
    if t_to is not None:
        mask &= t <= to_utc(t_to).as_unit("ns").value
    return mask


def theil_sen(x: np.ndarray, y: np.ndarray, from_col: int = 0) -> np.ndarray:
    """(rows x points) times and values, NaN = empty -> Theil-Sen slope per row (y units per x unit; NaN: < 2 points).

    Only pairs whose both points lie at column >= from_col are used (from_col=0: every pair). Rows are processed in
    chunks so at most ~3 M pair slopes exist at once.
    """
    n_rows, n_pts = y.shape
    i, j = np.triu_indices(n_pts, k=1)
    keep = i >= from_col
    i, j = i[keep], j[keep]
    out = np.full(n_rows, np.nan)
    if len(i) == 0:
        return out
    step = max(1, _PAIR_BUDGET // len(i))
    for a in range(0, n_rows, step):  # a loop per chunk of rows, each chunk fully vectorised
        xs, ys = x[a : a + step], y[a : a + step]
        with np.errstate(invalid="ignore", divide="ignore"):
            s = (ys[:, j] - ys[:, i]) / (xs[:, j] - xs[:, i])
        s[~np.isfinite(s)] = np.nan
        valid = np.count_nonzero(~np.isnan(s), axis=1)
        med = np.full(len(valid), np.nan)
        for k in np.unique(valid[valid > 0]):  # rows with as many slopes: their median by selection (NaN last)
            rows = np.flatnonzero(valid == k)
            lo, hi = (k - 1) // 2, k // 2
            part = np.partition(s[rows], [lo, hi], axis=1)
            med[rows] = (part[:, lo] + part[:, hi]) / 2
        out[a : a + step] = med
    return out


def _empty_leaks(like: pd.DataFrame | None = None) -> pd.DataFrame:
    out: dict[str, pd.Series] = {}
    for c in LEAK_COLUMNS:
        if c in ("start_time", "first_seen", "last_seen", "growing_since"):
            out[c] = pd.Series(dtype=schema.UTC_NS)
        elif c in ("name", "cmdline", "user"):
            has = like is not None and c in like.columns
            out[c] = like[c].iloc[0:0].reset_index(drop=True) if has else pd.Series(dtype=object)  # type: ignore[index]
        elif c in ("proc_id", "growth_bytes", "start_floor_bytes", "end_floor_bytes"):
            out[c] = pd.Series(dtype="int64")
        elif c in ("pid", "samples"):
            out[c] = pd.Series(dtype="int32")
        else:
            out[c] = pd.Series(dtype="float64")
    return pd.DataFrame(out)


def empty_trends(like: pd.DataFrame | None = None) -> pd.DataFrame:
    """No trends: proc_id, ts, floor_bytes (+ the identity columns host, boot_id, pid, start_time `like` has)."""
    ident = [] if like is None else [c for c in ("host", "boot_id", "pid", "start_time") if c in like.columns]
    out = pd.DataFrame({"proc_id": pd.Series(dtype="int64")})
    for c in ident:
        out[c] = like[c].iloc[0:0].to_numpy() if like is not None else []
    out["ts"] = pd.Series(dtype=schema.UTC_NS)
    out["floor_bytes"] = pd.Series(dtype="int64")
    return out


def bin_of(offset_us: np.ndarray, span_us: np.ndarray, points: int) -> np.ndarray:
    """Microseconds since a process's first sample and its span (us) -> bin number in 0..points-1 (integers)."""
    return np.minimum(offset_us * points // np.maximum(span_us, 1), points - 1)


class Fine(NamedTuple):
    """Per (process, fine bin of the window's grid), in any order: the process key (int64), the fine bin number, the
    floor (minimum of the metric), the samples, the sum of their microseconds since the grid's origin, the first
    and the last sample's time (microseconds since the epoch)."""

    key: np.ndarray
    fb: np.ndarray
    floor: np.ndarray
    samples: np.ndarray
    offset_sum_us: np.ndarray
    first_us: np.ndarray
    last_us: np.ndarray


def fine_grid(first_us: int, last_us: int, max_points: int = MAX_POINTS) -> tuple[int, int]:
    """The window's first and last sample (us) -> (origin, width) of its grid of FINE_PER_POINT x max_points bins."""
    return first_us, max(1, -(-(last_us - first_us + 1) // (FINE_PER_POINT * max_points)))


def floors_of(
    fine: Fine, origin_us: int, min_samples: int, min_duration_s: float | None, max_points: int = MAX_POINTS
) -> tuple[pd.DataFrame, Floors, LeakCensus]:
    """Fine bins -> (candidates: proc_id (= key), first_ns, last_ns, samples; their Floors; the census so far).

    Each process's first/last sample and count are exact (min/max/sum over its fine bins); each fine bin joins the
    bin of the candidate's own span (bin_of) that holds its samples' mean time.
    """
    if len(fine.key) == 0:
        return (
            pd.DataFrame({c: pd.Series(dtype="int64") for c in ("proc_id", "first_ns", "last_ns", "samples")}),
            Floors(*(np.zeros(0, np.int64) for _ in Floors._fields)),
            LeakCensus(0, 0, 0.0, min_samples, min_duration_s or 0.0),
        )
    o = np.lexsort((fine.fb, fine.key))
    key, samples, off = fine.key[o], fine.samples[o].astype(np.int64), fine.offset_sum_us[o].astype(np.int64)
    ids, bounds = group_bounds(key)
    starts = bounds[:-1]
    first = np.minimum.reduceat(fine.first_us[o].astype(np.int64), starts)
    last = np.maximum.reduceat(fine.last_us[o].astype(np.int64), starts)
    counts = np.add.reduceat(samples, starts)
    window_s = (int(last.max()) - int(first.min())) / 1e6  # the time the window's samples cover
    min_dur = min_duration_for(window_s) if min_duration_s is None else float(min_duration_s)
    keep = is_candidate(counts, (last - first) * 1000, min_samples, min_dur)
    census = LeakCensus(len(ids), int(counts.max()), window_s, min_samples, min_dur, too_short=int((~keep).sum()))
    per = np.diff(bounds)
    rows = np.repeat(keep, per)
    g = np.repeat(np.arange(int(keep.sum())), per[keep])
    first, last, counts = first[keep], last[keep], counts[keep]
    samples, off = samples[rows], off[rows]
    mean_off = off // samples + (origin_us - first[g])  # mean time of the fine bin, us since the candidate's first
    b = bin_of(mean_off, (last - first)[g], max_points)
    _, kb = group_bounds(g * max_points + b)  # fine bins are in (process, time) order: so are their own bins
    ks = kb[:-1]
    n = np.add.reduceat(samples, ks) if len(ks) else np.zeros(0, np.int64)
    floors = Floors(
        g[ks],
        b[ks],
        np.minimum.reduceat(fine.floor[o][rows].astype(np.float64), ks) if len(ks) else np.zeros(0),
        (np.add.reduceat(off, ks) if len(ks) else np.zeros(0, np.int64)) + n * (origin_us - first[g[ks]]),
        n,
    )
    cand = pd.DataFrame(
        {"proc_id": ids[keep].astype(np.int64), "first_ns": first * 1000, "last_ns": last * 1000, "samples": counts}
    )
    return cand, floors, census


def leak_report(
    procs: pd.DataFrame,
    t_from: pd.Timestamp | str | None = None,
    t_to: pd.Timestamp | str | None = None,
    metric: str = "rss",
    min_samples: int = MIN_SAMPLES,
    min_duration_s: float | None = None,
    min_growth_bytes: int = MIB,
    max_points: int = MAX_POINTS,
) -> LeakReport:
    """PROCS frame and a window -> LeakReport: the growing candidates' scores (see leak_scores), the census, trends.

    min_duration_s None: min_duration_for(the seconds the window's samples cover). Rows with a null metric value
    (PSS/USS unread) are ignored.
    """
    cand, floors, base = window_floors(procs, t_from, t_to, metric, min_samples, min_duration_s, max_points)
    if cand.empty:
        return LeakReport(_empty_leaks(procs), base, empty_trends())
    scores = score_floors(cand, floors, base.window_s, max_points, min_growth_bytes)
    return LeakReport(scores, census_of(base, len(cand), scores), trends(cand, floors, scores, max_points))


def window_floors(
    procs: pd.DataFrame,
    t_from: pd.Timestamp | str | None = None,
    t_to: pd.Timestamp | str | None = None,
    metric: str = "rss",
    min_samples: int = MIN_SAMPLES,
    min_duration_s: float | None = None,
    max_points: int = MAX_POINTS,
) -> tuple[pd.DataFrame, Floors, LeakCensus]:
    """PROCS frame and a window -> (candidates: proc_id, pid, start_time, first_ns, last_ns, samples + name, cmdline,
    user of the last sample; their Floors; the census so far), as memlib.query computes them: fine bins on the grid
    of the window's samples (every process's, known metric or not), then floors_of."""
    col = metric_column(metric)
    missing = [c for c in ("ts", "proc_id", "pid", "start_time", col) if c not in procs.columns]
    if missing:
        raise KeyError(f"procs frame lacks column(s) {missing}")
    if max_points < 4:
        raise ValueError(f"max_points must be >= 4, got {max_points}")
    window = _window_mask(procs["ts"], t_from, t_to)
    values = procs[col]
    mask = window & values.notna().to_numpy() if values.hasnans else window
    rows = np.flatnonzero(mask)
    order = rows[np.lexsort((ns_of(procs["ts"])[rows], procs["proc_id"].to_numpy()[rows]))]  # process, then time
    if order.size == 0:
        return floors_of(Fine(*(np.zeros(0, np.int64) for _ in Fine._fields)), 0, min_samples, min_duration_s)
    t_window = ns_of(procs["ts"])[window] // 1000
    origin, width = fine_grid(int(t_window.min()), int(t_window.max()), max_points)
    pid_codes = procs["proc_id"].to_numpy()[order]
    t_us = ns_of(procs["ts"])[order] // 1000
    fb = (t_us - origin) // width
    _, kb = group_bounds(pid_codes.astype(np.int64) * (FINE_PER_POINT * max_points + 1) + fb)
    ks = kb[:-1]
    v = values.to_numpy(dtype=np.float64, na_value=np.nan)[order]
    fine = Fine(
        pid_codes[ks].astype(np.int64), fb[ks], np.minimum.reduceat(v, ks), np.diff(kb),
        np.add.reduceat(t_us - origin, ks), t_us[ks], t_us[kb[1:] - 1],
    )  # fmt: skip
    cand, floors, base = floors_of(fine, origin, min_samples, min_duration_s, max_points)
    if cand.empty:
        return cand, floors, base
    _, bounds = group_bounds(pid_codes)
    first_row, last_row = order[bounds[:-1]], order[bounds[1:] - 1]
    at = pd.Index(pid_codes[bounds[:-1]]).get_indexer(cand["proc_id"].to_numpy())
    cand.insert(1, "pid", procs["pid"].to_numpy()[first_row[at]])
    cand.insert(2, "start_time", procs["start_time"].array.take(first_row[at]))
    for c in ("name", "cmdline", "user"):
        if c in procs.columns:
            cand[c] = procs[c].array.take(last_row[at])
    return cand, floors, base


def leak_scores(
    procs: pd.DataFrame,
    t_from: pd.Timestamp | str | None = None,
    t_to: pd.Timestamp | str | None = None,
    metric: str = "rss",
    min_samples: int = MIN_SAMPLES,
    min_duration_s: float | None = None,
    min_growth_bytes: int = MIB,
    max_points: int = MAX_POINTS,
) -> pd.DataFrame:
    """PROCS frame and a window -> one row per growing candidate process, most suspicious first: LEAK_COLUMNS.

    proc_id, pid, start_time, name, cmdline, user (last seen in the window), first_seen, last_seen, samples (in the
    window), rate_bytes_per_hour (Theil-Sen), late_rate_bytes_per_hour, rising_share, fit_r2, growth_bytes,
    growing_since, growing_s, start_floor_bytes, end_floor_bytes, confidence, score. Definitions in the module
    docstring (leak_report gives the census and trends too). Sorted by score, then rate, descending.
    """
    kw = {"min_samples": min_samples, "min_duration_s": min_duration_s, "min_growth_bytes": min_growth_bytes}
    return leak_report(procs, t_from, t_to, metric, max_points=max_points, **kw).scores


def census_of(base: LeakCensus, candidates: int, scores: pd.DataFrame) -> LeakCensus:
    """The census before scoring (processes, samples, window, thresholds, too_short), the number of candidates and
    their scores -> the full census (not_rising, weak, suspects)."""
    suspects = int((scores["score"].to_numpy() > 0).sum())
    return LeakCensus(
        base.processes, base.samples, base.window_s, base.min_samples, base.min_duration_s, base.too_short,
        not_rising=candidates - len(scores), weak=len(scores) - suspects, suspects=suspects,
    )  # fmt: skip


class Floors(NamedTuple):
    """Per-bin floors, one entry per non-empty (candidate, bin), sorted by candidate then bin: the candidate's row
    position, the bin number (0..max_points-1), the minimum of the metric, the sum of the samples' microseconds since
    the candidate's first sample, the number of samples."""

    g: np.ndarray
    b: np.ndarray
    floor: np.ndarray
    offset_sum_us: np.ndarray
    samples: np.ndarray


def trends(cand: pd.DataFrame, floors: Floors, scores: pd.DataFrame, max_points: int = MAX_POINTS,
           points: int = TREND_POINTS) -> pd.DataFrame:  # fmt: skip
    """The suspects' (score > 0) floors regrouped into `points` bins of their span (own bin b joins b x points //
    max_points): proc_id, ts (mean time of the samples), floor_bytes (their minimum). Extra columns of `cand` (host,
    boot_id, pid, start_time) are carried. By the order of `scores`, then ts."""
    wanted = scores.loc[scores["score"].to_numpy() > 0, "proc_id"].to_numpy()
    if wanted.size == 0:
        return empty_trends(cand)
    rank = pd.Series(np.arange(len(wanted)), index=wanted)
    r = rank.reindex(cand["proc_id"].to_numpy()).to_numpy()  # rank of each candidate, NaN when not a suspect
    sel = ~np.isnan(r[floors.g])
    g, cb = floors.g[sel], floors.b[sel] * points // max_points
    o = np.lexsort((cb, r[g]))
    g, cb = g[o], cb[o]
    _, kb = group_bounds(g.astype(np.int64) * points + cb)
    ks = kb[:-1]
    floor = np.minimum.reduceat(floors.floor[sel][o], ks)
    off = np.add.reduceat(floors.offset_sum_us[sel][o], ks)
    n = np.add.reduceat(floors.samples[sel][o], ks)
    first_ns = cand["first_ns"].to_numpy(np.int64)[g[ks]]
    ts = first_ns + np.rint(off * 1000 / n).astype(np.int64)
    out = pd.DataFrame({"proc_id": cand["proc_id"].to_numpy(np.int64)[g[ks]]})
    for c in ("host", "boot_id", "pid", "start_time"):
        if c in cand.columns:
            out[c] = cand[c].array.take(g[ks])
    out["ts"] = pd.DatetimeIndex(ts).tz_localize("UTC")
    out["floor_bytes"] = floor.astype(np.int64)
    return out


def score_floors(
    cand: pd.DataFrame, floors: Floors, window_s: float, max_points: int = MAX_POINTS, min_growth_bytes: int = MIB
) -> pd.DataFrame:
    """Candidates and their per-bin floors -> leak scores: LEAK_COLUMNS, most suspicious first (steps 3-7 of the
    module docstring).

    `cand`: one row per candidate, CANDIDATE_COLUMNS (first_ns/last_ns: its first and last sample in the window,
    samples: its count there) and optionally name, cmdline, user (its last values in the window) and any columns
    constant per process (host, boot_id), which are carried into the result. `floors`: Floors whose g are row
    positions in `cand`. window_s: the seconds the window's samples cover.
    """
    nb = max_points
    if len(cand) == 0 or len(floors.g) == 0:
        return _empty_leaks(cand)
    kg = floors.g.astype(np.int64)
    kbin = floors.b.astype(np.int64)
    floor = floors.floor.astype(np.float64)
    tmean = floors.offset_sum_us / floors.samples / US_PER_H  # hours since the candidate's first sample
    n_proc = len(cand)
    gb = np.searchsorted(kg, np.arange(n_proc + 1))
    gstart = gb[:-1]
    per_proc_bins = np.diff(gb)
    first_t = cand["first_ns"].to_numpy(np.int64)
    last_t = cand["last_ns"].to_numpy(np.int64)
    span = last_t - first_t
    counts = cand["samples"].to_numpy(np.int64)
    Y = np.full((n_proc, nb), np.nan)
    X = np.full((n_proc, nb), np.nan)
    Y[kg, kbin] = floor
    X[kg, kbin] = tmean

    # pre-filter: the floor rose between the first and the last quarter of the bins
    q = nb // 4
    with np.errstate(all="ignore"):
        early = np.nanmedian(Y[:, :q], axis=1)
        late = np.nanmedian(Y[:, nb - q :], axis=1)
    rising = (late > early) & (per_proc_bins > 0)
    if not rising.any():
        return _empty_leaks(cand)
    sel = np.flatnonzero(rising)
    Ys, Xs = Y[sel], X[sel]
    rate = theil_sen(Xs, Ys)
    late_rate = theil_sen(Xs, Ys, from_col=nb // 2)

    # fit quality of the robust line
    with np.errstate(all="ignore"):
        intercept = np.nanmedian(Ys - rate[:, None] * Xs, axis=1)
        resid = Ys - (intercept[:, None] + rate[:, None] * Xs)
        ss_res = np.nansum(resid * resid, axis=1)
        dev = Ys - np.nanmean(Ys, axis=1)[:, None]
        ss_tot = np.nansum(dev * dev, axis=1)
        r2 = np.where(ss_tot > 0, np.clip(1 - ss_res / ss_tot, 0, 1), 0.0)

    # rising share, growth and growing-since from the compact (non-empty bins) arrays
    same = kg[1:] == kg[:-1]
    ups = np.bincount(kg[1:][same & (floor[1:] > floor[:-1])], minlength=n_proc)
    steps = np.maximum(per_proc_bins - 1, 1)
    share = ups / steps
    at = np.minimum(gstart, len(floor) - 1)
    lo = np.minimum.reduceat(floor, at)
    hi = np.maximum.reduceat(floor, at)
    tol = np.maximum(MIB, 0.02 * (hi - lo))
    near_low = floor <= (lo + tol)[kg]
    pos = np.where(near_low, np.arange(len(floor)), -1)
    last_low = np.maximum.reduceat(pos, at)
    since_ns = first_t + np.rint(tmean[last_low] * NS_PER_H).astype(np.int64)
    end_floor = floor[np.maximum(gstart + per_proc_bins - 1, 0)]
    start_floor = floor[at]

    share = share[sel]
    late_factor = np.where(rate > 0, np.clip(np.nan_to_num(late_rate / np.where(rate > 0, rate, 1)), 0, 1), 0.0)
    fitted_growth = rate * span[sel] / NS_PER_H
    growing_s = (last_t[sel] - since_ns[sel]) / 1e9
    duration_factor = np.sqrt(np.clip(growing_s / max(window_s, 1e-9), 0, 1))
    confidence = np.sqrt(
        np.clip(span[sel] / 1e9 / CONFIDENT_SPAN_S, 0, 1) * np.clip(counts[sel] / CONFIDENT_SAMPLES, 0, 1)
    )
    score = np.log2(1 + np.clip(rate, 0, None) / MIB) * share * r2 * late_factor * duration_factor * confidence
    score = np.where((rate > 0) & (fitted_growth >= min_growth_bytes), score, 0.0)
    score = np.nan_to_num(score)

    out = pd.DataFrame({"proc_id": cand["proc_id"].to_numpy(np.int64)[sel]})
    for c in cand.columns:
        if c not in CANDIDATE_COLUMNS:
            out[c] = cand[c].array.take(sel)
    if "pid" in out.columns:
        out["pid"] = out["pid"].astype(np.int32)
    out["first_seen"] = pd.DatetimeIndex(first_t[sel]).tz_localize("UTC")
    out["last_seen"] = pd.DatetimeIndex(last_t[sel]).tz_localize("UTC")
    out["samples"] = counts[sel].astype(np.int32)
    out["rate_bytes_per_hour"] = rate
    out["late_rate_bytes_per_hour"] = late_rate
    out["rising_share"] = share
    out["fit_r2"] = r2
    out["growth_bytes"] = (end_floor - lo)[sel].astype(np.int64)
    out["growing_since"] = pd.DatetimeIndex(since_ns[sel]).tz_localize("UTC")
    out["growing_s"] = growing_s
    out["start_floor_bytes"] = start_floor[sel].astype(np.int64)
    out["end_floor_bytes"] = end_floor[sel].astype(np.int64)
    out["confidence"] = confidence
    out["score"] = score
    order_out = np.lexsort((-np.nan_to_num(rate, nan=-np.inf), -score))
    return ordered(out.iloc[order_out].reset_index(drop=True))


def ordered(scores: pd.DataFrame) -> pd.DataFrame:
    """Leak scores with columns in any order -> LEAK_COLUMNS first (those present), then the others."""
    return scores[
        [c for c in LEAK_COLUMNS if c in scores.columns] + [c for c in scores.columns if c not in LEAK_COLUMNS]
    ]


def _membership_pairs(
    procs: pd.DataFrame, rows: np.ndarray, last_rows: np.ndarray, min_duration_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Window rows -> (root proc_id, member proc_id) pairs, distinct: member was in root's subtree at a sampled moment.

    Sampled moments: snapshots on a time grid with a step of min_duration_s / 2 (so a member that stays in a subtree
    for min_duration_s is seen at least once), plus every long-lived process's last snapshot in the window. Roots are
    processes at level >= 1; every process is paired with itself.
    """
    snap_all = procs["snap"].to_numpy()
    snap_w = snap_all[rows]
    t_w = ns_of(procs["ts"])[rows]
    us, first = np.unique(snap_w, return_index=True)
    ut = t_w[first]
    step = max(1.0, min_duration_s / 2) * 1e9
    grid = np.arange(ut[0], ut[-1] + step, step)
    picked = us[np.clip(np.searchsorted(ut, grid), 0, len(us) - 1)]
    snaps = np.union1d(picked, snap_all[last_rows])
    positions = rows[np.isin(snap_w, snaps)]
    sub = procs.iloc[positions]
    sub = with_tree(sub.drop(columns=[c for c in schema.TREE_COLUMNS if c in sub.columns]).reset_index(drop=True))
    parent = sub["parent_row"].to_numpy(dtype=np.int64)
    level = sub["level"].to_numpy()
    ids = sub["proc_id"].to_numpy().astype(np.int64)
    anc_pairs, mem_pairs = [ids], [ids]  # a process is a member of its own subtree
    member = np.arange(len(sub))
    cur = parent.copy()
    while True:  # one pass per tree level, every row at once
        alive = cur >= 0
        if not alive.any():
            break
        member, cur = member[alive], cur[alive]
        hit = level[cur] >= 1
        anc_pairs.append(ids[cur[hit]])
        mem_pairs.append(ids[member[hit]])
        cur = parent[cur]
    anc, mem = np.concatenate(anc_pairs), np.concatenate(mem_pairs)
    width = np.int64(int(max(anc.max(initial=0), mem.max(initial=0))) + 1)
    key = np.unique(anc * width + mem)
    return key // width, key % width


def subtree_leak_scores(
    procs: pd.DataFrame,
    t_from: pd.Timestamp | str | None = None,
    t_to: pd.Timestamp | str | None = None,
    metric: str = "rss",
    min_samples: int = MIN_SAMPLES,
    min_duration_s: float | None = None,
    min_growth_bytes: int = MIB,
    process_scores: pd.DataFrame | None = None,
    long_lived: np.ndarray | None = None,
) -> pd.DataFrame:
    """PROCS frame and a window -> one row per subtree with a growing member, most suspicious first.

    Columns: SUBTREE_LEAK_COLUMNS (proc_id ... of the subtree's root, last_seen in the window; members = distinct
    processes seen in the subtree at the sampled moments, growing_members = members with a positive score,
    rate_bytes_per_hour = sum of the scored members' rates, growing_since, top_member_* = the member with the largest
    rate, score). `process_scores`: leak_scores of the same frame/window/parameters, to avoid recomputing.
    `long_lived`: the proc_ids seen for min_samples over min_duration_s in the window, when `procs` holds only the
    sampled moments (memlib.query passes the rows of the grid and of each long-lived process's last sample).
    min_duration_s None: min_duration_for(the seconds the window's samples with a known metric value cover).
    """
    empty = pd.DataFrame({c: pd.Series(dtype=_subtree_dtype(c)) for c in SUBTREE_LEAK_COLUMNS})
    window = _window_mask(procs["ts"], t_from, t_to)
    if min_duration_s is None:
        known = ns_of(procs["ts"])[window & procs[metric_column(metric)].notna().to_numpy()]
        min_duration_s = min_duration_for((int(known.max()) - int(known.min())) / 1e9 if known.size else 0.0)
    scores = process_scores
    if scores is None:
        scores = leak_scores(procs, t_from, t_to, metric, min_samples, min_duration_s, min_growth_bytes)
    if scores.empty:
        return empty
    rows = np.flatnonzero(window)
    pid_arr = procs["proc_id"].to_numpy()[rows]
    t_arr = ns_of(procs["ts"])[rows]
    o = np.lexsort((t_arr, pid_arr))
    ids, bounds = group_bounds(pid_arr[o])
    last_rows = rows[o[bounds[1:] - 1]]
    counts = np.diff(bounds)
    span = t_arr[o[bounds[1:] - 1]] - t_arr[o[bounds[:-1]]]
    if long_lived is None:
        long_lived = is_candidate(counts, span, min_samples, min_duration_s)
    else:
        long_lived = np.isin(ids, np.asarray(long_lived, np.int64))
    root_ids, member_ids = _membership_pairs(procs, rows, last_rows[long_lived], min_duration_s)
    is_long = np.zeros(int(max(ids.max(), root_ids.max())) + 1, bool)
    is_long[ids[long_lived]] = True
    ok = is_long[root_ids] & (root_ids != member_ids)
    roots_with_children = np.unique(root_ids[ok])
    keep = np.isin(root_ids, roots_with_children)
    root_ids, member_ids = root_ids[keep], member_ids[keep]
    if root_ids.size == 0:
        return empty
    sc = scores.set_index("proc_id")
    pos = sc.index.get_indexer(member_ids)
    scored = pos >= 0
    pairs = pd.DataFrame({"root": root_ids, "member": member_ids})
    members = pairs.groupby("root", sort=True).size()
    p = pairs[scored].copy()
    p["rate"] = sc["rate_bytes_per_hour"].to_numpy()[pos[scored]]
    p["score"] = sc["score"].to_numpy()[pos[scored]]
    # a member's steadiness: its score without the rate term (rising share x fit x late factor x duration factor)
    rate_term = np.log2(1 + np.clip(sc["rate_bytes_per_hour"].to_numpy(), 0, None) / MIB)
    with np.errstate(all="ignore"):
        steady = np.where(rate_term > 0, sc["score"].to_numpy() / rate_term, 0.0)
    p["steady"] = steady[pos[scored]]
    p["since"] = ns_of(sc["growing_since"])[pos[scored]]
    p["pid"] = sc["pid"].to_numpy()[pos[scored]]
    p["name"] = sc["name"].astype(object).to_numpy()[pos[scored]] if "name" in sc.columns else ""
    if p.empty:
        return empty
    pos_rate = np.clip(p["rate"].to_numpy(), 0, None)
    p["w"] = pos_rate
    p["ws"] = pos_rate * p["steady"].to_numpy()
    p["growing"] = (p["score"].to_numpy() > 0).astype(np.int64)
    p["since_g"] = np.where(p["score"].to_numpy() > 0, p["since"].to_numpy(), np.iinfo(np.int64).max)
    grp = p.groupby("root", sort=True)
    agg = pd.DataFrame(
        {
            "rate": grp["rate"].sum(),
            "w": grp["w"].sum(),
            "ws": grp["ws"].sum(),
            "growing": grp["growing"].sum(),
            "since": grp["since_g"].min(),
        }
    )
    top = p.sort_values(["root", "rate"], ascending=[True, False]).drop_duplicates("root").set_index("root")
    with np.errstate(all="ignore"):
        steadiness = np.where(agg["w"] > 0, agg["ws"] / agg["w"], 0.0)
    rate = agg["rate"].to_numpy()
    score = np.where(rate > 0, np.log2(1 + np.clip(rate, 0, None) / MIB) * steadiness, 0.0)
    roots = agg.index.to_numpy()
    root_last = pd.Series(last_rows, index=ids).reindex(roots).to_numpy()
    since = agg["since"].to_numpy()
    out = pd.DataFrame(
        {
            "proc_id": roots.astype(np.int64),
            "pid": procs["pid"].to_numpy()[root_last].astype(np.int32),
            "start_time": procs["start_time"].array.take(root_last),
        }
    )
    for c in ("name", "cmdline", "user"):
        if c in procs.columns:
            out[c] = procs[c].array.take(root_last)
    out["last_seen"] = procs["ts"].array.take(root_last)
    out["members"] = members.reindex(roots).to_numpy().astype(np.int32)
    out["growing_members"] = agg["growing"].to_numpy().astype(np.int32)
    out["rate_bytes_per_hour"] = rate
    nat = since == np.iinfo(np.int64).max
    out["growing_since"] = pd.DatetimeIndex(np.where(nat, np.datetime64("NaT"), since.astype("datetime64[ns]")))
    out["growing_since"] = out["growing_since"].dt.tz_localize("UTC")
    out["top_member_pid"] = top["pid"].reindex(roots).to_numpy().astype(np.int32)
    out["top_member_name"] = top["name"].reindex(roots).to_numpy()
    out["top_member_rate_bytes_per_hour"] = top["rate"].reindex(roots).to_numpy()
    out["score"] = score
    out = out.iloc[np.lexsort((-rate, -score))].reset_index(drop=True)
    return out[[c for c in SUBTREE_LEAK_COLUMNS if c in out.columns]]


def _subtree_dtype(c: str) -> str:
    if c in ("start_time", "last_seen", "growing_since"):
        return schema.UTC_NS
    if c in ("name", "cmdline", "user", "top_member_name"):
        return "object"
    if c == "proc_id":
        return "int64"
    if c in ("pid", "members", "growing_members", "top_member_pid"):
        return "int32"
    return "float64"
