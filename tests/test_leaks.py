"""Leak scores on generated series: each "not fooled by" property of issue 6, subtrees, windows, the shipped sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from memlib import alerts, leaks, query, spikes
from memlib.tree import with_tree
from tests.strategies import INTERVAL_S, MIB, histories, make_procs, ts_of

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample" / "dumps"
N = 720  # one hour at 5 s
LEAK_PER_H = 60 * MIB


def _series(pid: int, ppid: int, values, first: int = 0, name: str | None = None, start=None) -> list[dict]:
    start = start if start is not None else ts_of(first) - pd.Timedelta(seconds=1)
    return [
        {"snap": first + i, "pid": pid, "ppid": ppid, "rss": int(v), "name": name or f"p{pid}", "start": start}
        for i, v in enumerate(values)
    ]


def _history() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    t = np.arange(N)
    noise = rng.normal(0, 200 * 1024, N)
    hours = t * INTERVAL_S / 3600
    recs = _series(1, 0, np.full(N, 12 * MIB), name="init")
    recs += _series(10, 1, 100 * MIB + LEAK_PER_H * hours + noise, name="leaker")
    spike = np.full(N, 200 * MIB) + noise
    spike[400:412] += 500 * MIB  # one minute, 500 MiB
    recs += _series(11, 1, spike, name="spiker")
    step = np.where(t < N // 2, 100 * MIB, 400 * MIB) + noise
    recs += _series(12, 1, step, name="step-mid")
    warm = np.minimum(50 * MIB + t * 2 * MIB, 300 * MIB) + noise  # grows for 2 min then plateaus
    recs += _series(13, 1, warm, name="warm-up")
    recs += _series(14, 1, 10 * MIB + np.arange(36) * 5 * MIB, first=100, name="short")  # 3 min, fast growth
    # a flat parent whose short-lived children come more and more often: its subtree total rises, nobody leaks
    recs += _series(15, 1, np.full(N, 30 * MIB), name="spawner")
    pid = 1000
    for s in range(0, N, 12):
        kids = 1 + s // 120  # 1 child at the start, 6 at the end, each 30 s, 50 MiB
        for j in range(kids):
            recs += _series(pid, 15, np.full(6, 50 * MIB), first=min(s + j, N - 6), name="job")
            pid += 1
    # a flat parent with one long-lived leaking child
    recs += _series(16, 1, np.full(N, 20 * MIB), name="supervisor")
    recs += _series(17, 16, 40 * MIB + 0.5 * LEAK_PER_H * hours + noise, name="child-leak")
    # flat for half an hour, then leaking
    late = np.where(t < N // 2, 80 * MIB, 80 * MIB + LEAK_PER_H * (hours - hours[N // 2])) + noise
    recs += _series(18, 1, late, name="late-leak")
    return make_procs(recs)


@pytest.fixture(scope="module")
def procs() -> pd.DataFrame:
    return with_tree(_history())


@pytest.fixture(scope="module")
def scores(procs: pd.DataFrame) -> pd.DataFrame:
    return leaks.leak_scores(procs)


def _row(df: pd.DataFrame, name: str) -> pd.Series | None:
    hit = df[df["name"].astype(str) == name]
    return None if hit.empty else hit.iloc[0]


def test_theil_sen_matches_brute_force_with_gaps() -> None:
    rng = np.random.default_rng(0)
    x = np.tile(np.arange(9, dtype=float), (3, 1))
    y = rng.normal(0, 1, (3, 9)) + 2 * x
    y[1, [2, 5]] = np.nan
    y[2, :8] = np.nan  # one point: no slope
    got = leaks.theil_sen(x, y)
    for r in range(2):
        ok = ~np.isnan(y[r])
        xs, ys = x[r][ok], y[r][ok]
        i, j = np.triu_indices(len(xs), 1)
        assert got[r] == pytest.approx(np.median((ys[j] - ys[i]) / (xs[j] - xs[i])))
    assert np.isnan(got[2])
    late = leaks.theil_sen(x[:1], y[:1], from_col=5)
    i, j = np.triu_indices(4, 1)
    ys = y[0, 5:]
    assert late[0] == pytest.approx(np.median((ys[j] - ys[i]) / (j - i)))


def test_theil_sen_is_the_median_of_the_finite_pair_slopes_on_random_rows() -> None:
    rng = np.random.default_rng(1)
    for trial in range(200):
        n, rows = int(rng.integers(2, 12)), int(rng.integers(1, 5))
        x = np.sort(rng.normal(size=(rows, n)), axis=1)
        y = rng.normal(size=(rows, n))
        y[rng.random((rows, n)) < 0.3] = np.nan
        if trial % 7 == 0:
            x[:, 1] = x[:, 0]  # equal times: no slope for that pair
        for from_col in (0, n // 2):
            got = leaks.theil_sen(x, y, from_col=from_col)
            i, j = np.triu_indices(n, 1)
            i, j = i[i >= from_col], j[i >= from_col]
            for r in range(rows):
                with np.errstate(all="ignore"):
                    s = (y[r, j] - y[r, i]) / (x[r, j] - x[r, i])
                s = s[np.isfinite(s)]
                if len(s):
                    assert got[r] == pytest.approx(np.median(s), abs=1e-12)
                else:
                    assert np.isnan(got[r])


def test_the_steady_leaker_ranks_first_with_its_rate_and_start(scores: pd.DataFrame) -> None:
    top = scores.iloc[0]
    assert top["name"] == "leaker"
    assert top["rate_bytes_per_hour"] == pytest.approx(LEAK_PER_H, rel=0.03)
    assert top["rising_share"] > 0.6 and top["fit_r2"] > 0.95 and top["score"] > 3
    assert top["growing_since"] - ts_of(0) < pd.Timedelta(minutes=3)
    assert top["growth_bytes"] == pytest.approx(LEAK_PER_H * (N - 1) * INTERVAL_S / 3600, rel=0.05)
    assert list(scores.columns) == leaks.LEAK_COLUMNS
    assert scores["score"].is_monotonic_decreasing


def test_not_fooled_by_one_spike(scores: pd.DataFrame) -> None:
    row = _row(scores, "spiker")
    assert row is None or (row["score"] < 0.05 and abs(row["rate_bytes_per_hour"]) < 2 * MIB)


def test_not_fooled_by_grow_once_then_plateau(scores: pd.DataFrame) -> None:
    leaker = _row(scores, "leaker")["score"]
    for name in ("step-mid", "warm-up"):
        row = _row(scores, name)
        assert row is None or row["score"] < 0.05 * leaker, (name, row)


@pytest.mark.parametrize("at", [0.1, 0.3, 0.45, 0.5, 0.55, 0.7, 0.9])
def test_one_step_anywhere_in_the_window_is_not_a_leak(at: float) -> None:
    rng = np.random.default_rng(int(at * 100))
    t = np.arange(N)
    values = np.where(t < int(at * N), 100 * MIB, 400 * MIB) + rng.normal(0, 200 * 1024, N)
    got = leaks.leak_scores(make_procs(_series(1, 0, np.full(N, MIB), name="init") + _series(5, 1, values)))
    assert got.empty or got["score"].max() < 0.2, got[["rate_bytes_per_hour", "late_rate_bytes_per_hour", "score"]]


def test_short_lived_processes_are_not_candidates(procs: pd.DataFrame, scores: pd.DataFrame) -> None:
    assert _row(scores, "short") is None and _row(scores, "job") is None
    relaxed = leaks.leak_scores(procs, min_samples=5, min_duration_s=60)
    assert _row(relaxed, "short")["rate_bytes_per_hour"] > 1000 * MIB  # it does grow, it is just too short


def test_a_leak_that_started_late_says_since_when(scores: pd.DataFrame) -> None:
    row = _row(scores, "late-leak")
    assert row is not None and row["score"] > 0.5
    assert abs(row["growing_since"] - ts_of(N // 2)) < pd.Timedelta(minutes=3)
    assert row["late_rate_bytes_per_hour"] == pytest.approx(LEAK_PER_H, rel=0.1)


def test_subtrees_sum_member_growth_and_ignore_churn(procs: pd.DataFrame, scores: pd.DataFrame) -> None:
    sub = leaks.subtree_leak_scores(procs, process_scores=scores)
    assert list(sub.columns) == leaks.SUBTREE_LEAK_COLUMNS
    sup = _row(sub, "supervisor")
    assert sup is not None and sup["top_member_name"] == "child-leak" and sup["top_member_pid"] == 17
    assert sup["rate_bytes_per_hour"] == pytest.approx(0.5 * LEAK_PER_H, rel=0.05)
    assert sup["growing_members"] == 1 and sup["members"] == 2 and sup["score"] > 2
    # the spawner's subtree total rises (1 child at a time at first, 6 at the end) but no member grows
    total = procs[procs["pid"] == 15]["subtree_rss_bytes"].to_numpy()
    assert total[-60:].mean() > total[:60].mean() + 100 * MIB
    sp = _row(sub, "spawner")
    assert sp is None or sp["score"] == 0
    # init (level 0) is never a subtree root; the same answer without TREE columns or with an index
    assert _row(sub, "init") is None
    bare = _history()
    again = leaks.subtree_leak_scores(bare)
    pd.testing.assert_frame_equal(again, sub)


def test_window_limits_the_rows_used(procs: pd.DataFrame) -> None:
    first_half = leaks.leak_scores(procs, t_to=ts_of(N // 2 - 1))
    assert _row(first_half, "late-leak") is None or _row(first_half, "late-leak")["score"] < 0.05
    second_half = leaks.leak_scores(procs, t_from=ts_of(N // 2))
    assert _row(second_half, "late-leak")["score"] > 2
    tiny = leaks.leak_scores(procs, t_from=ts_of(0), t_to=ts_of(10))
    assert tiny.empty and list(tiny.columns) == leaks.LEAK_COLUMNS
    assert leaks.subtree_leak_scores(procs, t_from=ts_of(0), t_to=ts_of(10)).empty


def test_bad_input_gives_clear_errors(procs: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown memory metric"):
        leaks.leak_scores(procs, metric="heap")
    with pytest.raises(KeyError, match="rss_bytes"):
        leaks.leak_scores(procs.drop(columns=["rss_bytes"]))
    # PSS never read: no candidates, no crash
    assert leaks.leak_scores(procs, metric="pss").empty


def test_shipped_sample_ranks_the_leaker_first_and_the_spiker_is_a_spike(sample_rec) -> None:
    rec = sample_rec
    sc = query.leak_scores(rec)
    assert str(sc.iloc[0]["name"]) == "demo-leaker"
    assert sc.iloc[0]["rate_bytes_per_hour"] == pytest.approx(180 * MIB, rel=0.15)  # 3 MiB/min
    spiker = _row(sc.assign(name=sc["name"].astype(str)), "demo-spiker")
    assert spiker is None or spiker["score"] < 0.05 * sc.iloc[0]["score"]
    sp = query.process_spikes(rec)
    hit = sp[sp["name"].astype(str) == "demo-spiker"]
    assert len(hit) == 1 and hit.iloc[0]["size_bytes"] > 120 * MIB
    assert pd.Timedelta(seconds=30) <= hit.iloc[0]["end"] - hit.iloc[0]["start"] <= pd.Timedelta(seconds=70)
    assert (sp["name"].astype(str) != "demo-leaker").all()
    sub = query.subtree_leak_scores(rec, process_scores=sc)
    root = sub[sub["name"].astype(str) == "demo-root"]
    assert len(root) == 1 and root.iloc[0]["top_member_name"] == "demo-leaker"
    assert root.iloc[0]["rate_bytes_per_hour"] == pytest.approx(180 * MIB, rel=0.15)
    # the example rules, a minute before the end (the last sample has no demo process): the leaker grows > 50 MiB/h
    rules = alerts.parse_rules((ROOT / "docs" / "alerts.example.toml").read_text())
    fired = query.alerts(rec, rules, at=rec.span[1] - pd.Timedelta(minutes=1))
    growing = fired[fired["rule"] == "fast grower"]
    assert "demo-leaker" in set(growing["name"]) and "demo-spiker" not in set(growing["name"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_snaps=20, max_ops=5))
def test_random_histories_never_crash_and_scores_are_sane(procs: pd.DataFrame) -> None:
    sc = leaks.leak_scores(procs, min_samples=3, min_duration_s=5)
    assert list(sc.columns) == leaks.LEAK_COLUMNS
    assert np.isfinite(sc["score"]).all() and (sc["score"] >= 0).all()
    assert sc["proc_id"].is_unique and set(sc["proc_id"]) <= set(procs["proc_id"])
    assert ((sc["rising_share"] >= 0) & (sc["rising_share"] <= 1)).all()
    assert (sc["growing_since"] >= sc["first_seen"]).all() and (sc["growing_since"] <= sc["last_seen"]).all()
    sub = leaks.subtree_leak_scores(procs, min_samples=3, min_duration_s=5, process_scores=sc)
    assert np.isfinite(sub["score"]).all() and set(sub["proc_id"]) <= set(procs["proc_id"])
    sp = spikes.process_spikes(procs, min_size_bytes=MIB, baseline_s=30)
    assert (sp["size_bytes"] > 0).all() and (sp["end"] >= sp["start"]).all()


def test_trends_for_sparklines(procs: pd.DataFrame) -> None:
    report = leaks.leak_report(procs)
    suspects = report.scores[report.scores["score"] > 0]
    assert list(report.trends["proc_id"].drop_duplicates()) == list(suspects["proc_id"])
    assert report.trends.groupby("proc_id").size().max() == leaks.TREND_POINTS
    leaker = report.trends[report.trends["proc_id"] == suspects["proc_id"].iloc[0]]
    assert leaker["ts"].is_monotonic_increasing and leaker["floor_bytes"].is_monotonic_increasing
    assert leaker["floor_bytes"].iloc[0] == pytest.approx(100 * MIB, abs=2 * MIB)
    rows = procs[procs["proc_id"] == suspects["proc_id"].iloc[0]]
    assert leaker["floor_bytes"].min() == rows["rss_bytes"].min()  # a floor is a sample's value


def test_query_floors_give_the_frame_scores_exactly(sample_rec) -> None:
    """Per-bin floors computed in the query, scored by leaks.score_floors == leak_scores on the same rows in memory."""
    for kw in ({}, {"min_duration_s": 120.0}, {"metric": "pss", "min_samples": 3}):
        got = query.leak_scores(sample_rec, **kw)
        want = leaks.leak_scores(query.window_rows(sample_rec), **kw)
        assert len(got) == len(want)
        m = got.merge(want, on=["pid", "start_time"], suffixes=("_q", "_f"))
        assert len(m) == len(want)
        for c in ("rate_bytes_per_hour", "late_rate_bytes_per_hour", "rising_share", "fit_r2", "score"):
            assert np.allclose(m[f"{c}_q"], m[f"{c}_f"], rtol=1e-9, atol=1e-9), c
        assert (m["growth_bytes_q"] == m["growth_bytes_f"]).all() and (m["samples_q"] == m["samples_f"]).all()
