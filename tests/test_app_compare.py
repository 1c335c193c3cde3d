"""AppTest: Compare two moments — counts, deltas and subtrees match memlib.compare, URL moments `a` and `b`."""

from __future__ import annotations

from pathlib import Path

import pytest
from native_crafted import write_native_crafted

from memlib import compare, source
from memlib import query as q

SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "dumps"
A, B = "2026-11-27T10:00:00Z", "2026-11-27T10:00:20Z"


@pytest.fixture
def native_dumps(tmp_path: Path) -> Path:
    """The crafted native recording with PSS and cgroups (see native_crafted.py)."""
    return write_native_crafted(tmp_path / "dumps")


def _metrics(at: object) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_counts_and_deltas_on_a_crafted_recording(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/compare.py", a=A, b=B)
    assert not at.exception
    m = _metrics(at)
    assert (m["New"], m["Exited"], m["Grown"], m["Shrunk"], m["Unchanged"]) == ("1", "1", "1", "0", "3")
    procs = next(d.value for d in at.main.dataframe if {"change", "pid"} <= set(d.value.columns))
    assert procs["pid"].iloc[0] == 11 and procs["growth"].iloc[0] == 20.0  # worker 30 -> 50 MiB
    got = dict(zip(procs["pid"], procs["change"], strict=True))
    assert got == {11: "grown", 30: "exited", 31: "new", 1: "unchanged", 10: "unchanged", 20: "unchanged"}
    subs = next(d.value for d in at.main.dataframe if "subtree change" in d.value.columns)
    sub = subs.set_index("pid")
    assert sub.loc[10, "subtree growth"] == 20.0 and sub.loc[1, "subtree growth"] == 20.0 - 5 + 1
    assert set(sub.index) == {1, 10}  # bash (30) got its child only between the two moments


def test_pss_marks_unknown_and_defaults_follow_the_window(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/compare.py", metric="pss")
    assert not at.exception
    m = _metrics(at)
    assert m["Unknown"] == "1" and m["Grown"] == "1"  # postgres has no PSS; defaults: first and latest snapshot
    assert any("10:00:00 UTC · b = 2026-11-27 10:00:20 UTC" in c.value for c in at.caption)


def test_sample_counts_match_memlib(run_page) -> None:
    a, b = "2026-11-27T21:28:40Z", "2026-11-27T21:33:40Z"  # a demo-job is alive at each (a new one each minute)
    at = run_page(SAMPLE, "pages/compare.py", a=a, b=b)
    assert not at.exception
    rec = source.open_recording(SAMPLE)
    metric = q.default_metric(rec, q.resolve(rec)).metric  # what the page shows without `metric`
    want = compare.change_counts(q.compare(rec, q.resolve(rec, a), q.resolve(rec, b), metric))
    m = _metrics(at)
    assert {k: int(m[k.capitalize()]) for k in want} == want
    assert want["new"] > 0 and want["exited"] > 0


def test_same_moment_says_so(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/compare.py", a=B, b=B)
    assert not at.exception
    assert any("same snapshot" in i.value for i in at.info)
    assert _metrics(at)["Unchanged"] == "5"


def test_a_process_absent_at_a_moment_has_no_value_there_not_zero(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/compare.py", a=A, b=B)
    procs = next(d.value for d in at.main.dataframe if {"change", "pid"} <= set(d.value.columns)).set_index("pid")
    assert procs.loc[31, "change"] == "new" and procs.loc[31, "before"] != procs.loc[31, "before"]  # NaN: "–"
    assert procs.loc[30, "change"] == "exited" and procs.loc[30, "after"] != procs.loc[30, "after"]
    assert procs.loc[31, "growth"] == procs.loc[31, "after"]  # the growth of a new process still counts 0 at a
