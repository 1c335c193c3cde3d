"""AppTest: a recording of several hosts in one store — the sidebar offers the host, every answer is that host's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from store_samples import MEMINFO, MIB, T0, sample_procs, writer


def _two_hosts(root: Path) -> Path:
    """Host "alpha" (RAM used 2 GiB, processes 1 <- 10) and host "beta" (used 3 GiB, 1 <- 20 <- 21), 3 samples."""
    for host, rows, available in (
        ("alpha", [(1, 0, 10), (10, 1, 20)], 2048 * MIB),
        ("beta", [(1, 0, 10), (20, 1, 40), (21, 20, 50)], 1024 * MIB),
    ):
        w = writer(root, host=host)
        for k in range(3):
            w.append(T0 + pd.Timedelta(seconds=5 * k), sample_procs(rows), {**MEMINFO, "MemAvailable": available})
        w.close()
    return root


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_the_host_is_chosen_in_the_sidebar_and_every_answer_is_that_hosts(run_page, tmp_path: Path) -> None:
    root = _two_hosts(tmp_path / "fleet")
    at = run_page(root)
    assert not at.exception
    assert at.selectbox(key="w_host").value == "alpha" and at.selectbox(key="w_host").options == ["alpha", "beta"]
    assert _metrics(at)["RAM used"] == "2.0 GiB" and _metrics(at)["Processes"] == "2"
    at.selectbox(key="w_host").set_value("beta").run()
    assert not at.exception
    assert at.query_params.get("host") in ("beta", ["beta"])
    assert _metrics(at)["RAM used"] == "3.0 GiB" and _metrics(at)["Processes"] == "3"
    at = run_page(root, "pages/level.py", host="beta", level="1", metric="rss")
    assert not at.exception
    assert at.main.dataframe[0].value["pid"].tolist() == [20]
    assert at.main.dataframe[0].value["subtree"].tolist() == [90.0]  # beta's worker and its child only


def _data_box(at) -> str:
    return "\n".join(t.value for t in at.sidebar.text)


def test_a_hosts_pages_describe_and_watch_that_host_alone(run_page, tmp_path: Path) -> None:
    from ui import data
    from ui.render import fmt_ts

    root = _two_hosts(tmp_path / "fleet")
    late = T0 + pd.Timedelta(hours=1)
    w = writer(root, host="beta")  # beta goes on an hour longer than alpha
    w.append(late, sample_procs([(1, 0, 10)]), MEMINFO)
    w.close()
    at = run_page(root, host="alpha")
    assert not at.exception and at.selectbox(key="w_host").options == ["alpha", "beta"]
    assert f"to: {fmt_ts(T0 + pd.Timedelta(seconds=10))}" in _data_box(at)  # alpha's own end, not the store's
    at = run_page(root, host="beta")
    assert not at.exception and f"to: {fmt_ts(late)}" in _data_box(at)
    at = run_page(root, "pages/fleet.py")  # the Fleet page describes every host
    assert not at.exception and f"to: {fmt_ts(late)}" in _data_box(at)
    before = {h: data.fingerprint(root, h) for h in ("alpha", "beta", None)}
    w = writer(root, host="beta")
    w.append(late + pd.Timedelta(minutes=1), sample_procs([(1, 0, 10)]), MEMINFO)
    w.close()
    after = {h: data.fingerprint(root, h) for h in ("alpha", "beta", None)}
    assert after["alpha"] == before["alpha"]  # alpha's page is not rerun for beta's segments
    assert after["beta"] != before["beta"] and after[None] != before[None]
