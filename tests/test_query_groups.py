"""memlib.query.groups with top=K: the groups ruled out by their bounds before the per-moment totals are computed
never change the answer (the same frame as computing every group's per-moment totals), on a crafted recording where
bounding rules groups out and on random histories written through the real writer."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlib import query
from tests.strategies import MIB, histories, make_procs, write_store


def _both(monkeypatch, rec, **kw) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """(answer with bounding, answer computing every group, the candidates bounding kept)."""
    seen: list = []
    original = query._group_candidates

    def spy(*a, **k):
        out = original(*a, **k)
        seen.append(out)
        return out

    monkeypatch.setattr(query, "_group_candidates", spy)
    bounded = query.groups(rec, **kw)
    monkeypatch.setattr(query, "_group_candidates", lambda *a, **k: None)
    full = query.groups(rec, **kw)
    monkeypatch.setattr(query, "_group_candidates", original)
    return bounded, full, seen


def _crafted() -> pd.DataFrame:
    """`big` peaks at 100 MiB; `sh` runs one 30 MiB process at a time (40 of them: upper bound 1200 MiB, peak
    30 MiB); `mid` 40 MiB; `tie1`/`tie2` peak at 20 MiB together; many small groups of one process each."""
    recs = []
    for s in range(40):
        recs.append({"snap": s, "pid": 1, "ppid": 0, "rss": (60 + s) * MIB, "name": "big", "pss": 50 * MIB})
        recs.append({"snap": s, "pid": 1000 + s, "ppid": 1, "rss": 30 * MIB, "name": "sh"})
        recs.append({"snap": s, "pid": 2, "ppid": 1, "rss": 40 * MIB, "name": "mid", "pss": 41 * MIB})
        recs.append({"snap": s, "pid": 3, "ppid": 1, "rss": 20 * MIB, "name": "tie1"})
        recs.append({"snap": s, "pid": 4, "ppid": 1, "rss": 20 * MIB, "name": "tie2"})
        for k in range(12):
            recs.append({"snap": s, "pid": 10 + k, "ppid": 1, "rss": (k + 1) * MIB, "name": f"small{k}"})
    return make_procs(recs)


@pytest.mark.parametrize("metric", ["rss", "pss", "swap"])
@pytest.mark.parametrize("top", [0, 1, 2, 4, 5, 30])
def test_bounding_rules_groups_out_without_changing_the_answer(monkeypatch, tmp_path: Path, metric, top) -> None:
    rec = write_store(tmp_path / "store", _crafted(), closes={9, 25})
    for bins in (None, 7):
        bounded, full, seen = _both(monkeypatch, rec, by="name", top=top, metric=metric, bins=bins)
        pd.testing.assert_frame_equal(bounded, full)
    if metric == "rss" and top in (1, 2, 4):
        assert seen[0] is not None and "small0" not in seen[0] and "big" in seen[0]  # bounding did rule groups out
    if metric == "rss" and top == 4:  # big, sh, mid, then tie1 before tie2 (equal peaks: by name)
        kept = set(full["group"].astype(str)) - {"(other)"}
        assert kept == {"big", "sh", "mid", "tie1"}
    if metric == "swap":
        assert seen[0] is None  # no group has a known swap value: every group is computed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])  # fmt: skip
@given(procs=histories(max_snaps=6, max_ops=6, pid_pool=10), top=st.integers(1, 4),
       metric=st.sampled_from(["rss", "pss"]), closes=st.sets(st.integers(0, 5)))  # fmt: skip
def test_bounded_groups_equal_every_group_computed(monkeypatch, procs, top, metric, closes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rec = write_store(Path(tmp) / "store", procs, closes)
        bounded, full, _ = _both(monkeypatch, rec, by="name", top=top, metric=metric)
        pd.testing.assert_frame_equal(bounded, full)
