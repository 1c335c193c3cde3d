"""memlib CLI on the seed example dumps (imported into a store once, then queried): numbers checked against the
CSVs, formats, errors (exit 2), and every printed time given back selects that very snapshot."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from memlib import source
from memlib.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = Path(__file__).parent / "data" / "seed"
MIB = 2**20
AT = "2026-11-27T17:03:00Z"  # the nearest round within half an interval: 17:02:59
AT_FILE = "20261127_170259"


def run(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    code = main([*argv, "--dumps", str(SEED), "--tz", "UTC"] if "--dumps" not in argv else list(argv))
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def csv_of(out: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(out), keep_default_na=False, na_values=[""])


def seed_csv(kind: str, stamp: str) -> pd.DataFrame:
    return pd.read_csv(SEED / "time" / f"{kind}_{stamp}.csv")


@pytest.fixture(autouse=True, scope="module")
def _seed_copy(tmp_path_factory: pytest.TempPathFactory):
    """The seed CSVs copied to a writable folder, so their store is imported beside them once for the module."""
    import shutil

    global SEED
    original = SEED
    SEED = tmp_path_factory.mktemp("seed") / "seed"
    shutil.copytree(original, SEED)
    source.clear_cache()
    yield
    source.clear_cache()
    SEED = original


def test_system_columns_and_numbers(capsysbinary) -> None:
    code, out, err = run(capsysbinary, "system", "--format", "csv")
    assert code == 0, err
    df = csv_of(out)
    for col in ["ts", "mem_total_bytes", "mem_used_bytes", "mem_available_bytes", "cached_bytes",
                "swap_total_bytes", "swap_used_bytes"]:  # fmt: skip
        assert col in df.columns
    assert len(df) == 75
    row = df[df["ts"] == "2026-11-27T17:02:59Z"].iloc[0]
    sysrow = seed_csv("sys_mem", AT_FILE).iloc[0]
    assert row["mem_total_bytes"] == sysrow["MemTotal_MB"] * MIB
    assert row["mem_used_bytes"] == (sysrow["MemTotal_MB"] - sysrow["MemAvailable_MB"]) * MIB
    assert row["mem_available_bytes"] == sysrow["MemAvailable_MB"] * MIB
    assert row["cached_bytes"] == (sysrow["Buffers_MB"] + sysrow["Cached_MB"] + sysrow["SReclaimable_MB"]) * MIB
    assert row["swap_used_bytes"] == 0 and row["swap_total_bytes"] == 0


def test_snapshot_matches_csv(capsysbinary) -> None:
    code, out, err = run(capsysbinary, "snapshot", "--at", AT, "--format", "json")
    assert code == 0, err
    rows = pd.DataFrame(json.loads(out))
    expected = seed_csv("process_mem", AT_FILE)
    assert len(rows) == len(expected)
    assert set(rows["ts"]) == {"2026-11-27T17:02:59Z"}
    merged = rows.merge(expected, left_on="pid", right_on="PID")
    assert (merged["rss_bytes"] == merged["RSS_MB"] * MIB).all()
    assert (merged["ppid"] == merged["PPID"]).all()
    assert list(rows.columns)[:12] == ["ts", "pid", "ppid", "start_time", "name", "cmdline", "user", "level",
                                       "rss_bytes", "subtree_rss_bytes", "descendants", "lifetime_s"]  # fmt: skip
    root = rows[rows["pid"] == 22941].iloc[0]
    kids = rows[rows["ppid"] == 22941]
    grandkids = rows[rows["ppid"].isin(kids["pid"])]
    assert root["subtree_rss_bytes"] == root["rss_bytes"] + kids["rss_bytes"].sum() + grandkids["rss_bytes"].sum()
    assert root["descendants"] == len(kids) + len(grandkids)
    assert root["lifetime_s"] == 42.0  # first seen 17:02:17, observed span
    assert not rows["cmdline"].str.contains("s3cr3t|tok_live_SECRET123").any()


def test_snapshot_filters(capsysbinary) -> None:
    code, out, _ = run(capsysbinary, "snapshot", "--at", AT, "--match", "ROLE SPIKER", "--format", "csv")
    assert code == 0
    df = csv_of(out)
    assert df["pid"].tolist() == [22963]
    code, out, _ = run(capsysbinary, "snapshot", "--at", AT, "--min-rss", "20", "--format", "csv")
    expected = seed_csv("process_mem", AT_FILE)
    assert sorted(csv_of(out)["pid"]) == sorted(expected[expected["RSS_MB"] >= 20]["PID"])
    code, out, _ = run(capsysbinary, "snapshot", "--at", AT, "--level", "2", "--limit", "2", "--format", "csv")
    df = csv_of(out)
    assert len(df) == 2 and set(df["level"]) == {2}
    code, out, _ = run(capsysbinary, "snapshot", "--at", AT, "--min-subtree", "150", "--format", "csv")
    df = csv_of(out)
    assert 22941 in set(df["pid"]) and (df["subtree_rss_bytes"] >= 150 * MIB).all()
    code, out, _ = run(capsysbinary, "snapshot", "--at", AT, "--min-lifetime", "30", "--format", "csv")
    df = csv_of(out)
    assert (df["lifetime_s"] >= 30).all() and 23134 not in set(df["pid"])


def test_timeline_of_the_leaker(capsysbinary) -> None:
    code, out, err = run(capsysbinary, "timeline", "--pid", "22958", "--format", "csv")
    assert code == 0, err
    df = csv_of(out)
    files = sorted((SEED / "time").glob("process_mem_*.csv"))
    expected = []
    for f in files:
        t = pd.read_csv(f)
        hit = t[t["PID"] == 22958]
        if len(hit):
            stamp = pd.to_datetime(f.name[12:27], format="%Y%m%d_%H%M%S").strftime("%Y-%m-%dT%H:%M:%SZ")
            expected.append((stamp, int(hit["RSS_MB"].iloc[0]) * MIB))
    assert list(zip(df["ts"], df["rss_bytes"], strict=True)) == expected
    assert (df["subtree_rss_bytes"] == df["rss_bytes"]).all() and (df["descendants"] == 0).all()
    assert df["rss_bytes"].iloc[-1] > df["rss_bytes"].iloc[0] + 50 * MIB  # it leaks


def test_children(capsysbinary) -> None:
    code, out, err = run(capsysbinary, "children", "--pid", "22941", "--format", "csv")
    assert code == 0, err
    df = csv_of(out)
    assert list(df.columns) == ["ts", "pid", "child_pid", "child_name", "subtree_rss_bytes"]
    at = df[df["ts"] == "2026-11-27T17:02:59Z"]
    expected = seed_csv("process_mem", AT_FILE)
    kids = expected[expected["PPID"] == 22941]
    assert sorted(at["child_pid"]) == sorted(kids["PID"])
    steady = at[at["child_pid"] == 22959].iloc[0]
    spiker = expected[expected["PID"] == 22963].iloc[0]
    assert steady["subtree_rss_bytes"] == (kids[kids["PID"] == 22959]["RSS_MB"].iloc[0] + spiker["RSS_MB"]) * MIB


def test_top(capsysbinary) -> None:
    code, out, _ = run(capsysbinary, "top", "--at", AT, "--limit", "3", "--format", "csv")
    assert code == 0
    df = csv_of(out)
    expected = seed_csv("process_mem", AT_FILE).sort_values("RSS_MB", ascending=False, kind="stable")
    assert df["rss_bytes"].tolist() == (expected["RSS_MB"].head(3) * MIB).tolist()
    assert df["rank"].tolist() == [1, 2, 3]
    code, out, _ = run(capsysbinary, "top", "--at", AT, "--by", "subtree", "--limit", "1", "--format", "csv")
    df = csv_of(out)
    assert df["pid"].tolist() == [22941]  # the workload root holds the biggest subtree below init
    code, out, _ = run(capsysbinary, "top", "--at", AT, "--by", "growth", "--limit", "1", "--format", "csv")
    df = csv_of(out)
    assert df["pid"].tolist() == [22958]  # the leaker grew most since the first snapshot (it is new there)


def test_processes_and_start_time(capsysbinary) -> None:
    code, out, _ = run(capsysbinary, "processes", "--pid", "22960", "--format", "json")
    assert code == 0
    found = json.loads(out)
    assert len(found) == 1 and found[0]["start_time"] == "2026-11-27T17:02:17Z"
    code, out, _ = run(capsysbinary, "timeline", "--pid", "22960", "--start-time", "2026-11-27T17:02:17Z")
    assert code == 0 and b"22960" in out


def test_export_formats(capsysbinary, tmp_path: Path) -> None:
    target = tmp_path / "x.parquet"
    code, out, err = run(capsysbinary, "export", "--at", AT, "--format", "parquet", "--out", str(target))
    assert code == 0 and out == b"", err
    df = pd.read_parquet(target)
    assert len(df) == len(seed_csv("process_mem", AT_FILE))
    assert {"proc_id", "subtree_rss_bytes", "lifetime_s", "cmdline"} <= set(df.columns)
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    code, out, _ = run(capsysbinary, "export", "--all")
    total = sum(len(pd.read_csv(f)) for f in (SEED / "time").glob("process_mem_*.csv"))
    assert len(csv_of(out)) == total
    code, out, _ = run(capsysbinary, "export", "--all", "--match", "leaker", "--format", "json")
    rows = json.loads(out)
    assert len(rows) == 60 and {r["pid"] for r in rows} == {22958}
    assert all("tok_live" not in r["cmdline"] for r in rows)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["timeline", "--pid", "424242"], "no process with pid 424242"),
        (["children", "--pid", "22960", "--start-time", "2020-01-01T00:00:00Z"], "no process with pid 22960"),
        (["snapshot", "--at", "not-a-time"], "is not a time"),
        (["snapshot", "--at", "2026-11-27T16:00:00Z"], "before the first sample"),
        (["snapshot", "--at", "2026-11-27T19:00:00Z"], "after the last sample"),
        (["system", "--tz", "Nowhere/Land"], "unknown time zone"),
        (["top", "--at", "2026-11-27T17:02:20Z", "--by", "growth", "--since", "latest"], "--since is after --at"),
    ],
)
def test_errors_exit_2_with_one_line(capsysbinary, argv: list[str], message: str) -> None:
    code = main([*argv, "--dumps", str(SEED)] + ([] if "--tz" in argv else ["--tz", "UTC"]))
    _, err = capsysbinary.readouterr()
    assert code == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error: ")


def test_missing_and_empty_dumps_dir(capsysbinary, tmp_path: Path) -> None:
    for folder in (tmp_path / "missing", tmp_path):
        code = main(["system", "--dumps", str(folder)])
        _, err = capsysbinary.readouterr()
        assert code == 2
        assert err.decode().count("\n") == 1 and "no snapshots in" in err.decode()


def test_python_dash_m(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "memlib", "top", "--dumps", str(SEED), "--tz", "UTC", "--limit", "2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["rank", "ts", "pid"] and len(lines) == 3
    proc = subprocess.run(
        [sys.executable, "-m", "memlib", "system", "--dumps", str(tmp_path / "nope")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")


# ---------------------------------------------------------------------------------------- groups, compare (issue 5)

FROM_FILE, FROM_TS = "20261127_170213", "2026-11-27T17:02:13Z"


def test_groups_by_user_match_the_csv(capsysbinary) -> None:
    code, out, err = run(capsysbinary, "groups", "--by", "user", "--format", "csv")
    assert code == 0, err
    df = csv_of(out)
    assert list(df.columns) == ["ts", "group", "processes", "rss_bytes"]  # seed dumps: no PSS/USS/swap
    at = df[df["ts"] == "2026-11-27T17:02:59Z"].set_index("group")
    csv = seed_csv("process_mem", AT_FILE)
    expect = csv.groupby("USER").agg(processes=("PID", "size"), rss=("RSS_MB", "sum"))
    assert sorted(at.index) == sorted(expect.index)
    for user, row in expect.iterrows():
        assert at.loc[user, "processes"] == row["processes"]
        assert at.loc[user, "rss_bytes"] == row["rss"] * MIB
    code, out, _ = run(capsysbinary, "groups", "--by", "command", "--top", "2", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len({r["group"] for r in rows}) == 3 and "(other)" in {r["group"] for r in rows}


def test_groups_native_include_pss_and_bad_by_is_an_error(capsysbinary, tmp_path: Path) -> None:
    from tests.store_samples import MEMINFO, T0, sample_procs, writer

    w = writer(tmp_path, host="h1")
    for k in range(2):
        rows = [(1, 0, 10)] + [(100 + i, 1, 5 + i + k) for i in range(11)]
        w.append(T0 + pd.Timedelta(seconds=5 * k), sample_procs(rows), MEMINFO)
    w.close()
    code, out, err = run(capsysbinary, "groups", "--by", "cgroup", "--format", "csv", "--dumps", str(tmp_path))
    assert code == 0, err
    df = csv_of(out)
    assert list(df.columns) == ["ts", "group", "processes", "rss_bytes", "pss_bytes", "swap_bytes"]  # no USS known
    assert df.groupby("ts")["processes"].sum().tolist() == [12, 12]
    with pytest.raises(SystemExit):
        main(["groups", "--by", "pid", "--dumps", str(tmp_path)])
    capsysbinary.readouterr()


def test_compare_two_rounds_match_the_csvs(capsysbinary) -> None:
    code, out, err = run(capsysbinary, "compare", "--from", FROM_TS, "--to", AT, "--format", "csv")
    assert code == 0, err
    df = csv_of(out)
    assert list(df.columns) == [
        "pid", "start_time", "name", "change", "rss_before_bytes", "rss_after_bytes", "delta_bytes",
    ]  # fmt: skip
    a, b = seed_csv("process_mem", FROM_FILE), seed_csv("process_mem", AT_FILE)
    both = a.merge(b, on=["PID", "CMD"], suffixes=("_a", "_b"))
    alive = df[df["change"].isin(["grown", "shrunk", "unchanged"])].set_index("pid")
    for r in both.itertuples():
        if r.PID in alive.index:
            assert alive.loc[r.PID, "delta_bytes"] == (r.RSS_MB_b - r.RSS_MB_a) * MIB
    gone = set(a["PID"]) - set(b["PID"])
    assert gone <= set(df[df["change"] == "exited"]["pid"])
    born = set(b["PID"]) - set(a["PID"])
    assert born <= set(df[df["change"] == "new"]["pid"])
    deltas = df["delta_bytes"].abs().tolist()
    assert deltas == sorted(deltas, reverse=True)
    code, out, _ = run(capsysbinary, "compare", "--from", FROM_TS, "--to", AT, "--limit", "3", "--format", "csv")
    assert code == 0 and len(csv_of(out)) == 3


def test_compare_bad_time_is_one_line_error(capsysbinary) -> None:
    code, _, err = run(capsysbinary, "compare", "--from", "yesterday-ish", "--to", "latest")
    assert code == 2 and err.startswith("error: --from/--to") and err.count("\n") == 1


# -------------------------------------------------------------------------------------------- leaks, alerts (issue 6)


def _leak_dumps(tmp_path: Path) -> Path:
    """A native recording: 40 samples 30 s apart; pid 20 grows 1 MiB per sample (120 MiB/h), the others are flat."""
    from tests.store_samples import writer as store_writer
    from tests.test_alerts import meminfo, sample_columns

    dumps = tmp_path / "dumps"
    writer = store_writer(dumps, "h", "b")
    t0 = pd.Timestamp("2026-11-27T10:00:00Z")
    for i in range(40):
        procs = [(1, 0, "init", 10 * MIB), (10, 1, "shell", 5 * MIB), (20, 10, "leaky", 50 * MIB + i * MIB),
                 (30, 1, "flat", 80 * MIB)]  # fmt: skip
        writer.append(t0 + pd.Timedelta(seconds=30 * i), sample_columns(procs), meminfo())
    writer.close()
    return dumps


def test_leaks_command(capsysbinary, tmp_path: Path) -> None:
    dumps = str(_leak_dumps(tmp_path))
    code, out, err = run(capsysbinary, "leaks", "--dumps", dumps, "--format", "csv")
    assert code == 0, err
    df = csv_of(out)
    assert list(df.columns) == [
        "pid", "start_time", "name", "cmdline", "rate_bytes_per_hour", "growing_since", "confidence", "score",
    ]  # fmt: skip
    assert list(df["pid"]) == [20] and abs(df["rate_bytes_per_hour"].iloc[0] - 120 * MIB) < MIB
    assert 0.6 < df["confidence"].iloc[0] < 0.7 and "note:" not in err  # 40 samples over 19.5 minutes: sqrt(.65 x .67)
    assert df["growing_since"].iloc[0].startswith("2026-11-27T10:0")
    code, out, err = run(capsysbinary, "leaks", "--dumps", dumps, "--subtrees", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["pid"] for r in rows] == [10]
    assert rows[0]["top_member_pid"] == 20 and rows[0]["top_member_name"] == "leaky"
    # a 10-minute window: the minimum duration follows the window (a quarter of it), so the leak is still found
    args = ["leaks", "--dumps", dumps, "--from", "2026-11-27T10:10:00Z", "--format", "csv"]
    code, out, _ = run(capsysbinary, *args)
    assert code == 0 and list(csv_of(out)["pid"]) == [20]
    # a minimum longer than the window: nobody is a suspect, and stderr says why and what to try
    code, out, err = run(capsysbinary, *args, "--min-duration", "900")
    assert code == 0 and csv_of(out).empty
    assert err.startswith("note: No steady growth of RSS: 4 processes considered; 4 seen for less than") and (
        "--min-duration" in err and err.count("\n") == 1
    ), err
    code, out, err = run(capsysbinary, "leaks", "--dumps", dumps, "--to", "2026-11-27T10:02:00Z")
    assert code == 0 and out == b"(no rows)\n" and "The window is too short" in err, err
    code, _, err = run(capsysbinary, "leaks", "--dumps", dumps, "--from", "2026-11-27T11:00Z", "--to", "2026-11-27")
    assert code == 2 and err.startswith("error: --from is after --to") and err.count("\n") == 1
    code, _, err = run(capsysbinary, "leaks", "--dumps", dumps, "--from", "noon")
    assert code == 2 and err.startswith("error: --from:") and err.count("\n") == 1


def test_leaks_and_growers_on_a_short_seed_recording(capsysbinary) -> None:
    """Three minutes at 2 s: the leaker (+142 MiB, exits before the end) is the top suspect, with low confidence,
    and the biggest grower over the whole recording (not `ps`, which is alive at the end)."""
    code, out, err = run(capsysbinary, "leaks", "--format", "csv")
    assert code == 0, err
    df = csv_of(out)
    assert df["pid"].iloc[0] == 22958 and "--role leaker" in df["cmdline"].iloc[0]
    assert 3000 * MIB < df["rate_bytes_per_hour"].iloc[0] < 5000 * MIB  # ~1.2 MiB/s
    assert 0 < df["confidence"].iloc[0] < 0.5 and df["score"].iloc[0] > 1
    assert err.startswith("note: Low confidence: the top suspect was seen for 1 min 58 s (60 samples)"), err
    code, out, err = run(capsysbinary, "top", "--by", "growth", "--limit", "3", "--format", "csv")
    assert code == 0, err
    grown = csv_of(out)
    first = grown.iloc[0]
    assert first["pid"] == 22958 and first["status"] == "new, exited" and first["delta_bytes"] == 142 * MIB
    assert (first["before_bytes"], first["after_bytes"]) == (18 * MIB, 160 * MIB)
    assert first["last_seen"] == "2026-11-27T17:04:15Z"  # its own last sample, before the window's end


def test_alerts_command_exit_codes(capsysbinary, tmp_path: Path) -> None:
    dumps = str(_leak_dumps(tmp_path))
    firing = tmp_path / "firing.toml"
    grows = "[[rule]]\nname = 'grows'\nkind = 'growth'\nrate = '50 MiB/h'\nfor = '10m'\n"
    firing.write_text(grows + "[[rule]]\nname = 'big'\nkind = 'size'\nabove = '70 MiB'\n[rule.select]\nname = 'fl*'\n")
    code, out, err = run(capsysbinary, "alerts", "--dumps", dumps, "--rules", str(firing), "--format", "json")
    assert code == 1, err
    rows = json.loads(out)
    assert [(r["rule"], r["pid"]) for r in rows] == [("grows", 20), ("big", 30)]
    assert rows[0]["unit"] == "bytes/h" and rows[1]["value"] == 80 * MIB and rows[1]["ts"] == "2026-11-27T10:19:30Z"
    code, out, _ = run(capsysbinary, "alerts", "--dumps", dumps, "--rules", str(firing))
    assert code == 1 and b"grows" in out and b"leaky" in out
    # before the leak had lasted 10 minutes only the size rule fires
    code, out, _ = run(capsysbinary, "alerts", "--dumps", dumps, "--rules", str(firing), "--at", "2026-11-27T10:05:00Z",
                       "--format", "json")  # fmt: skip
    assert code == 1 and [r["rule"] for r in json.loads(out)] == ["big"]
    quiet = tmp_path / "quiet.toml"
    quiet.write_text("[[rule]]\nname = 'low'\nkind = 'system_available'\nbelow_percent = 5\n")
    code, out, err = run(capsysbinary, "alerts", "--dumps", dumps, "--rules", str(quiet))
    assert code == 0 and out == b"(no rows)\n", err
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rule]]\nname = 'x'\nkind = 'size'\n")
    code, out, err = run(capsysbinary, "alerts", "--dumps", dumps, "--rules", str(bad))
    assert code == 2 and out == b"" and err.count("\n") == 1
    assert err.startswith(f"error: bad rules file {bad}: rule 1 ('x'): missing 'above'")
    code, _, err = run(capsysbinary, "alerts", "--dumps", dumps, "--rules", str(tmp_path / "none.toml"))
    assert code == 2 and "cannot read rules file" in err and err.count("\n") == 1


def test_every_skipped_file_is_named_on_stderr(tmp_path, capsys) -> None:
    """Two damaged seed files: both are named, not only the first."""
    import shutil

    src = Path(__file__).resolve().parent / "data" / "seed" / "time"
    dst = tmp_path / "time"
    dst.mkdir()
    for f in sorted(src.iterdir())[:6]:
        shutil.copy(f, dst / f.name)
    (dst / "process_mem_20261127_180000.csv").write_bytes(b"\xff\xfe garbage")
    (dst / "process_mem_20261127_180002.csv").write_text("")
    assert main(["system", "--dumps", str(tmp_path), "--tz", "UTC"]) == 0
    err = capsys.readouterr().err
    assert "process_mem_20261127_180000.csv" in err
    assert "process_mem_20261127_180002.csv" in err


# ------------------------------------------------------------------------------------- times round-trip exactly


def _odd_times_store(root: Path) -> tuple[Path, list[pd.Timestamp]]:
    """A native store whose sample times carry microseconds (5 s apart + jitter), 3 processes, a growing child."""
    from tests.store_samples import MEMINFO, sample_procs, writer

    t0 = pd.Timestamp("2026-11-27T10:00:00.123456Z")
    times = [t0 + pd.Timedelta(microseconds=5_000_000 * k + 7 * k * k) for k in range(12)]
    w = writer(root, host="h", boot_id="b")
    for k, ts in enumerate(times):
        w.append(ts, sample_procs([(1, 0, 10), (10, 1, 20 + k), (11, 10, 30)]), MEMINFO)
    w.close()
    return root, times


def _printed_times(capsysbinary, dumps: str, *argv: str, column: str = "ts", fmt: str = "csv") -> list[str]:
    code, out, err = run(capsysbinary, *argv, "--dumps", dumps, "--format", fmt)
    assert code in (0, 1), err
    rows = pd.DataFrame(json.loads(out)) if fmt == "json" else csv_of(out)
    return sorted(set(rows[column].dropna()))


def _snapshot_ts(capsysbinary, dumps: str, option_value: str) -> str:
    code, out, err = run(capsysbinary, "snapshot", "--at", option_value, "--dumps", dumps, "--format", "csv")
    assert code == 0, err
    return str(csv_of(out)["ts"].iloc[0])


def test_every_printed_time_selects_that_snapshot(capsysbinary, tmp_path: Path) -> None:
    dumps, times = _odd_times_store(tmp_path / "store")
    dumps = str(dumps)
    rules = tmp_path / "r.toml"
    rules.write_text("[[rule]]\nname = 'big'\nkind = 'size'\nabove = '1 MiB'\n")
    printed: dict[str, list[str]] = {
        "system": _printed_times(capsysbinary, dumps, "system"),
        "timeline": _printed_times(capsysbinary, dumps, "timeline", "--pid", "10"),
        "children": _printed_times(capsysbinary, dumps, "children", "--pid", "1"),
        "groups": _printed_times(capsysbinary, dumps, "groups", "--by", "name"),
        "export": _printed_times(capsysbinary, dumps, "export", "--all"),
        "top": _printed_times(capsysbinary, dumps, "top", "--at", "2026-11-27T10:00:20Z"),
        "alerts": _printed_times(capsysbinary, dumps, "alerts", "--rules", str(rules), fmt="json"),
    }
    stored = [t.isoformat().replace("+00:00", "Z") for t in times]
    assert printed["system"] == printed["timeline"] == printed["children"] == printed["groups"] == stored
    assert printed["export"] == stored
    for text in [*stored, *printed["top"], *printed["alerts"]]:
        assert _snapshot_ts(capsysbinary, dumps, text) == text  # exact, not the snapshot before it
    # --from/--to (compare) and --since (top --by growth) resolve the same way
    code, out, _ = run(capsysbinary, "compare", "--from", stored[3], "--to", stored[4], "--metric", "rss",
                       "--dumps", dumps, "--format", "csv")  # fmt: skip
    grown = csv_of(out).set_index("pid")
    assert code == 0 and grown.loc[10, "delta_bytes"] == MIB  # exactly one sample apart
    code, out, _ = run(capsysbinary, "top", "--by", "growth", "--since", stored[5], "--at", stored[7],
                       "--metric", "rss", "--dumps", dumps, "--format", "csv")  # fmt: skip
    assert code == 0 and csv_of(out).set_index("pid").loc[10, "delta_bytes"] == 2 * MIB
    # start times printed by `processes` pick that process back
    starts = _printed_times(capsysbinary, dumps, "processes", "--pid", "10", column="start_time")
    code, out, err = run(capsysbinary, "timeline", "--pid", "10", "--start-time", starts[0], "--dumps", dumps)
    assert code == 0 and b"p10" in out, err


def test_times_between_samples_and_outside_the_recording(capsysbinary, tmp_path: Path) -> None:
    dumps, times = _odd_times_store(tmp_path / "store")
    dumps = str(dumps)
    iso = [t.isoformat().replace("+00:00", "Z") for t in times]
    # within half an interval: the nearest sample, on either side (a rounded or typed time)
    assert _snapshot_ts(capsysbinary, dumps, (times[4] + pd.Timedelta(seconds=2)).isoformat()) == iso[4]
    assert _snapshot_ts(capsysbinary, dumps, (times[4] - pd.Timedelta(seconds=2)).isoformat()) == iso[4]
    assert _snapshot_ts(capsysbinary, dumps, "2026-11-27T10:00:20Z") == iso[4]  # printed rounded to the second
    for when, message in (("2026-11-27T09:59:00Z", "before the first sample"),
                          ("2026-11-27T10:05:00Z", "after the last sample")):  # fmt: skip
        code, _, err = run(capsysbinary, "snapshot", "--at", when, "--dumps", dumps)
        assert code == 2 and message in err and err.count("\n") == 1


def test_a_store_that_cannot_be_opened_is_one_line(capsysbinary, monkeypatch, tmp_path: Path) -> None:
    def broken(*args, **kwargs):
        raise KeyError("missing required column 'ts'")  # e.g. a damaged file of an old layout being converted

    monkeypatch.setattr(source, "open_recording", broken)
    code = main(["system", "--dumps", str(tmp_path)])
    _, err = capsysbinary.readouterr()
    assert code == 2 and err.decode().startswith(f"error: cannot open {tmp_path}: KeyError") and err.count(b"\n") == 1


def test_snapshot_rows_biggest_first_kernel_threads_last(capsysbinary) -> None:
    code, out, err = run(capsysbinary, "snapshot", "--at", AT, "--format", "csv")
    assert code == 0, err
    df = csv_of(out)
    assert df["pid"].iloc[0] == 22958  # the leaker, 69 MiB own RSS, not pid 1 or a kernel thread
    assert df["rss_bytes"].is_monotonic_decreasing
    kthreads = df["cmdline"].str.startswith("[")
    assert kthreads.iloc[-kthreads.sum() :].all()  # every kernel thread (0 MiB) after every process with memory
    code, out, _ = run(capsysbinary, "snapshot", "--at", AT, "--sort", "subtree", "--format", "csv")
    df = csv_of(out)
    assert df["pid"].iloc[0] == 1 and df["subtree_rss_bytes"].is_monotonic_decreasing
    code, out, _ = run(capsysbinary, "snapshot", "--at", AT, "--sort", "pid", "--format", "csv")
    assert csv_of(out)["pid"].is_monotonic_increasing


def test_snapshot_table_lines_fit_the_width_csv_and_json_stay_whole(capsysbinary, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")  # the terminal's width
    code, out, err = run(capsysbinary, "snapshot", "--at", AT)
    assert code == 0, err
    lines = out.decode().splitlines()
    assert lines[0].split()[:3] == ["pid", "ppid", "name"] and lines[0].split()[-1] == "cmdline"
    assert max(map(len, lines)) <= 120
    assert "…" in out.decode()  # long command lines were cut, marked
    assert "note: snapshot at 2026-11-27T17:02:59Z: 73 of 73 processes" in err
    code, out, _ = run(capsysbinary, "snapshot", "--at", AT, "--width", "0")
    assert "--token=********" in out.decode() and "…" not in out.decode()  # full width on request
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = run(capsysbinary, "snapshot", "--at", AT, "--format", "csv")
    df = csv_of(out)
    assert df["cmdline"].str.len().max() > 100 and "ts" in df.columns and "start_time" in df.columns


def test_an_empty_snapshot_says_why_and_when_the_match_was_seen(capsysbinary) -> None:
    code, out, err = run(capsysbinary, "snapshot", "--match", "role leaker")  # latest: the leaker exited
    assert code == 0 and out == b"(no rows)\n"
    assert "no process at 2026-11-27T17:04:41Z has 'role leaker' in its name, command line or user" in err
    assert "last seen at 2026-11-27T17:04:15Z (pid 22958, python3): --at 2026-11-27T17:04:15Z shows it" in err
    code, out, err = run(capsysbinary, "snapshot", "--match", "role leaker", "--at", "2026-11-27T17:02:13Z")
    assert "first seen after this moment at 2026-11-27T17:02:17Z (pid 22958, python3)" in err
    code, out, err = run(capsysbinary, "snapshot", "--match", "no-such-process", "--format", "csv")
    assert code == 0 and "no process in this recording ever matched it" in err
    assert out.decode().startswith("ts,pid,")  # csv keeps its header: still machine-readable
    code, out, err = run(capsysbinary, "snapshot", "--at", AT, "--match", "role leaker", "--min-rss", "500")
    assert "1 process(es) at 2026-11-27T17:02:59Z match 'role leaker', but --min-rss 500 leave(s) none" in err
    code, out, err = run(capsysbinary, "snapshot", "--level", "9")
    assert "level 9 is empty at 2026-11-27T17:04:41Z: the deepest level is 5" in err


def test_timeline_of_an_exited_process_says_when_it_was_last_seen(capsysbinary) -> None:
    code, out, err = run(capsysbinary, "timeline", "--pid", "22958", "--format", "csv")
    assert code == 0
    assert csv_of(out)["ts"].iloc[-1] == "2026-11-27T17:04:15Z"
    assert "pid 22958 (python3) is gone at the end of the recording (2026-11-27T17:04:41Z)" in err
    assert "seen 2026-11-27T17:02:17Z – 2026-11-27T17:04:15Z; snapshot --at 2026-11-27T17:04:15Z shows it" in err
    code, out, err = run(capsysbinary, "timeline", "--pid", "1", "--format", "csv")
    assert code == 0 and "gone" not in err  # alive at the end: nothing to say
