"""AppTest: the Leaks & spikes page on the shipped sample and on generated recordings; spike bands on the charts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from conftest import HOSTILE_CMD, ROOT, markdown_texts

from memlib import query as q
from memlib import source
from ui import charts

SAMPLE = ROOT / "sample" / "dumps"
LEAKER_CMD = "/usr/bin/leaky --serve"
GROWTH_RULES = """
[[rule]]
name = "grows fast"
kind = "growth"
rate = "60 MiB/h"
for = "15m"

[[rule]]
name = "never fires"
kind = "size"
above = "1 TiB"
"""


def _frames(at) -> list[pd.DataFrame]:
    return [d.value for d in at.main.dataframe]


def _frame_with(at, column: str, first: str | None = None) -> pd.DataFrame:
    """The first main-area dataframe having `column` (and, when given, `first` as its first column)."""
    for f in _frames(at):
        if column in f.columns and (first is None or f.columns[0] == first):
            return f
    raise AssertionError(f"no table with a {column!r} column among {[list(f.columns) for f in _frames(at)]}")


def _spec(chart) -> dict:
    return json.loads(chart.proto.spec)


def write_leak_dumps(folder: Path, minutes: int = 40, hostile: bool = False) -> Path:
    """Seed-format recording, one snapshot a minute from 10:00 UTC: init, a leaker (pid 100) that grows 3 MiB a
    minute from minute 20 on, a steady process (pid 200) with a 300 MiB spike at minutes 30-31, and a flat child."""
    time_dir = folder / "time"
    time_dir.mkdir(parents=True, exist_ok=True)
    t0 = pd.Timestamp("2026-11-27 10:00:00")
    for i in range(minutes):
        leak = 50 + 3 * max(0, i - 20)
        spike = 80 + (300 if i in (30, 31) else 0)
        rows = [
            (1, 0, "root", 10, "/sbin/init"),
            (100, 1, "app", leak, HOSTILE_CMD if hostile else LEAKER_CMD),
            (101, 100, "app", 20, "/usr/bin/helper"),
            (200, 1, "app", spike, "/usr/bin/spiky"),
        ]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["PID", "PPID", "USER", "RSS_MB", "VSZ_MB", "CMD"])
        for pid, ppid, user, rss, cmd in rows:
            writer.writerow([pid, ppid, user, rss, rss * 3, cmd])
        stamp = (t0 + pd.Timedelta(minutes=i)).strftime("%Y%m%d_%H%M%S")
        (time_dir / f"process_mem_{stamp}.csv").write_text(out.getvalue())
        used = 1000 + leak + spike
        (time_dir / f"sys_mem_{stamp}.csv").write_text(
            "MemTotal_MB,MemFree_MB,MemAvailable_MB,Buffers_MB,Cached_MB,SwapTotal_MB,SwapFree_MB,SReclaimable_MB\n"
            f"8000,{8000 - used - 500},{8000 - used},10,400,0,0,90\n"
        )
    return folder


def test_sample_leaker_first_spiker_a_spike_alerts_and_ram_bands(run_page, monkeypatch, tmp_path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(GROWTH_RULES)
    monkeypatch.setenv("PMI_ALERT_RULES", str(rules))
    at = run_page(SAMPLE)  # the overview first: system spikes are drawn on the RAM chart
    assert not at.exception
    ram = _spec(at.get("plotly_chart")[0])
    assert any(t.get("name") == "RAM spike (shaded)" for t in ram["data"])
    rec = source.open_recording(SAMPLE, "UTC")
    rects = [s for s in ram["layout"].get("shapes", []) if s.get("type") == "rect"]
    assert len(rects) >= 1

    at.switch_page("pages/leaks.py")
    at.run()
    assert not at.exception
    suspects = _frame_with(at, "rate", first="trend")
    assert suspects["name"].iloc[0] == "demo-leaker"
    assert "demo-spiker" not in set(suspects["name"])
    assert suspects["rate"].iloc[0] > 60  # MiB/h: the leaker grows ~3 MiB/min
    assert len(suspects["trend"].iloc[0]) > 10 and suspects["trend"].iloc[0][-1] > suspects["trend"].iloc[0][0]
    expected = q.leak_scores(rec, metric=q.default_metric(rec, q.resolve(rec)).metric)
    assert suspects["pid"].tolist() == expected.loc[expected["score"] > 0, "pid"].tolist()

    window = "2026-11-27T21-20-09Z_2026-11-27T21-51-04Z"
    rows = f"{len(suspects)} row" + ("" if len(suspects) == 1 else "s")
    helps = [b.help for b in at.get("download_button")]
    assert f"{rows} as leaks_{window}.csv" in helps and f"{rows} as leaks_{window}.json" in helps
    assert not any("top member" in d.value.columns for d in at.main.dataframe)  # scored only when opened
    at.session_state["leak_tabs"] = "Subtrees"
    at.run()
    assert not at.exception
    subtrees = _frame_with(at, "top member")
    assert "demo-root" in set(subtrees["name"])
    assert subtrees["top member"].iloc[0].startswith("demo-leaker (")

    spikes = _frame_with(at, "baseline", first="pid")
    assert "demo-spiker" in set(spikes["name"])
    spiker = spikes[spikes["name"] == "demo-spiker"].iloc[0]
    assert 120 < spiker["size"] < 200  # MiB: +150 MiB for a minute
    assert pd.Timestamp("2026-11-27 21:31:00Z") <= spiker["start"] <= pd.Timestamp("2026-11-27 21:32:30Z")  # +12 min

    firing = _frame_with(at, "threshold")
    assert firing["rule"].tolist() == ["grows fast"]
    assert firing["name"].iloc[0] == "demo-leaker"
    status = _frame_with(at, "firing")
    assert dict(zip(status["rule"], status["firing"], strict=True)) == {"grows fast": 1, "never fires": 0}

    helps = [b.help for b in at.get("download_button")]
    assert any(h.endswith(f"as leaks_subtrees_{window}.csv") for h in helps)
    assert any(h.endswith(f"as spikes_{window}.json") for h in helps)
    assert any(h.endswith("as alerts_latest.csv") for h in helps)


def test_pid_chart_shades_that_process_spikes(run_page, tmp_path) -> None:
    dumps = write_leak_dumps(tmp_path / "dumps")
    at = run_page(dumps, "pages/pid.py", pid="200")
    assert not at.exception
    spec = _spec(at.get("plotly_chart")[0])
    marks = [t for t in spec["data"] if t.get("name") == "spike (shaded)"]
    assert len(marks) == 1 and marks[0]["customdata"] == ["2026-11-27T10:30:00Z"]  # the first of the two peak samples
    assert [s for s in spec["layout"]["shapes"] if s.get("type") == "rect"]
    at = run_page(dumps, "pages/pid.py", pid="100")  # the leaker rises steadily: no spike, no band
    assert not any(t.get("name") == "spike (shaded)" for t in _spec(at.get("plotly_chart")[0])["data"])


def test_window_follows_the_sidebar_and_names_stay_text(run_page, tmp_path) -> None:
    dumps = write_leak_dumps(tmp_path / "dumps", hostile=True)
    at = run_page(dumps, "pages/leaks.py")
    assert not at.exception
    suspects = _frame_with(at, "rate", first="trend")
    assert suspects["pid"].tolist() == [100]
    assert suspects["cmdline"].str.contains("example.invalid", regex=False).all()
    assert not any("example.invalid" in t or "pwn" in t for t in markdown_texts(at))
    assert suspects["since"].iloc[0] == pd.Timestamp("2026-11-27 10:20:00Z")
    # before the leak started (minutes 0-19) nothing grows, and the spike of pid 200 is outside the window
    at = run_page(dumps, "pages/leaks.py", to="2026-11-27T10:19:00Z")
    assert not at.exception
    assert any("grew steadily" in s.value for s in at.info) and not at.success  # no green all-clear
    why = [c.value for c in at.caption if "processes considered" in c.value]
    assert why and "4 processes considered" in why[0] and "4 not growing" in why[0], why
    assert not any("rate" in f.columns for f in _frames(at))
    assert any("No process spiked" in c.value for c in at.caption)
    helps = [b.help for b in at.get("download_button")]
    assert not any("leaks_" in h for h in helps)


def test_short_seed_recording_lists_its_leaker_with_low_confidence(run_page, seed_dumps) -> None:
    """Three minutes at 2 s: the leaker, seen for 2 minutes while it grew by 142 MiB, is the first suspect (no green
    all-clear), with its confidence in the table and a caution; a window of a few samples says it is too short."""
    at = run_page(seed_dumps, "pages/leaks.py")
    assert not at.exception
    assert not at.success
    suspects = _frame_with(at, "rate", first="trend")
    assert suspects["pid"].iloc[0] == 22958 and suspects["name"].iloc[0] == "python3"
    assert 0 < suspects["confidence"].iloc[0] < 0.5 and suspects["score"].iloc[0] > 1
    assert suspects["growth"].iloc[0] == pytest.approx(142, abs=2)  # MiB
    assert any("Low confidence" in w.value and "1 min 58 s" in w.value for w in at.warning)
    at = run_page(seed_dumps, "pages/leaks.py", **{"from": "2026-11-27T17:02:13Z", "to": "2026-11-27T17:02:31Z"})
    assert not at.exception and not at.success
    assert any("No leak suspect" in i.value for i in at.info)
    why = " ".join(c.value for c in at.caption)
    assert "The window is too short" in why and "a suspect needs 12" in why and "widen the window" in why


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (None, "PMI_ALERT_RULES"),
        ("[[rule]]\nname = 'x'\nkind = 'nope'\n", "cannot be used"),
        ("missing", "could not be read"),
    ],
)
def test_alert_rules_absent_bad_or_unreadable_give_a_message(run_page, monkeypatch, tmp_path, rules, expected) -> None:
    dumps = write_leak_dumps(tmp_path / "dumps", minutes=14)
    if rules is None:
        monkeypatch.delenv("PMI_ALERT_RULES", raising=False)
    else:
        path = tmp_path / "rules.toml"
        if rules != "missing":
            path.write_text(rules)
        monkeypatch.setenv("PMI_ALERT_RULES", str(path))
    at = run_page(dumps, "pages/leaks.py")
    assert not at.exception
    shown = [e.value for e in at.error] + [c.value for c in at.caption]
    assert any(expected in s for s in shown), shown
    if rules is not None:
        assert at.text and "rules.toml" in at.text[0].value and str(tmp_path) not in at.text[0].value


def test_spike_bands_pad_one_sample_spikes_and_leave_figures_without_spikes_alone() -> None:
    t = pd.Timestamp("2026-11-27 10:00:00Z")
    spikes = pd.DataFrame(
        {
            "start": [t],
            "end": [t],
            "peak_ts": [t],
            "peak_bytes": [300 << 20],
            "size_bytes": [200 << 20],
        }
    )
    fig = charts.add_spike_bands(go.Figure(), spikes, "MiB", pad_s=5)
    (band,) = fig.layout.shapes
    assert pd.Timestamp(band.x1) - pd.Timestamp(band.x0) == pd.Timedelta(seconds=10)
    marker = fig.data[-1]
    assert marker.y[0] == 300 and marker.customdata[0] == "2026-11-27T10:00:00Z"
    assert "+200 MiB" in marker.hovertext[0]
    empty = go.Figure()
    assert charts.add_spike_bands(empty, spikes.iloc[0:0], "MiB") is empty and not empty.data
