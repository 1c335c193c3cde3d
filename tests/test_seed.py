"""memlib.seed: parsers (text in), stamps and DST, identity inference, names, scrubbing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memlib.schema import MIB
from memlib.scrub import MASK
from memlib.seed import (
    build_seed_frames,
    classify_name,
    infer_start_times,
    is_seed_name,
    localize_stamps,
    name_and_cmdline,
    parse_process_csv,
    parse_sys_csv,
)

HEADER = "PID,PPID,USER,RSS_MB,VSZ_MB,CMD\n"


def test_parse_process_csv_units_and_quoting() -> None:
    text = HEADER + '1,0,root,9,34,/sbin/init\n22938,22935,root,4,8,"ps -eo pid,ppid,user,rss,vsz,cmd --sort=-rss"\n'
    parsed = parse_process_csv(text)
    df = parsed.frame
    assert parsed.notices == []
    assert df["pid"].tolist() == [1, 22938] and str(df["pid"].dtype) == "int32"
    assert df["rss_bytes"].tolist() == [9 * MIB, 4 * MIB] and str(df["rss_bytes"].dtype) == "int64"
    assert df["vsz_bytes"].tolist() == [34 * MIB, 8 * MIB]
    assert df["cmd"].tolist()[1] == "ps -eo pid,ppid,user,rss,vsz,cmd --sort=-rss"


def test_parse_process_csv_damage() -> None:
    text = (
        HEADER + '1,0,root,1,1,/sbin/init\n2,x,root,1,1,bad ppid\n3,1,root,1\n4,1,root,1,1,a,b,"c"\n1,0,root,1,1,dup\n'
    )
    parsed = parse_process_csv(text)
    assert parsed.frame["pid"].tolist() == [1, 4]
    assert parsed.frame["cmd"].tolist()[1] == "a,b,c"
    joined = "; ".join(parsed.notices)
    assert "1 row(s) with unquoted commas" in joined
    assert "1 row(s) with a wrong number of fields" in joined
    assert "1 damaged row(s)" in joined
    assert "1 duplicate PID" in joined


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("PID,USER\n1,root\n", "missing column(s) PPID, RSS_MB, VSZ_MB, CMD"),
        (HEADER, "no process rows"),
        (HEADER + "1,0,ro", "no process rows"),
    ],
)
def test_parse_process_csv_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_process_csv(text)


SHADOW = "root:$6$Zs9aX$Qm1nJkLp0H4sUperSecretHashValue:19000:0:99999:7:::\nalice:$y$j9T$abcdef:19001:0:99999:7:::\n"


@pytest.mark.parametrize("parse", [parse_process_csv, parse_sys_csv])
@pytest.mark.parametrize(
    "text",
    [SHADOW, "SECRET_HEADER_WORD,other\n1,2\n", 'a,"b\x00c"\n', "Key_MB,Other\nsecretvalue,x\n"],
)
def test_errors_and_notices_never_quote_file_content(parse, text: str) -> None:
    """A file that is not a seed CSV (a symlink to /etc/shadow, say) -> a message naming the line and what was
    expected, with none of the file's text in it."""
    try:
        notices = parse(text).notices
    except ValueError as exc:
        notices = [str(exc)]
        assert str(exc).startswith(("line ", "no ", "empty")), str(exc)
    for word in ("root", "Zs9aX", "SuperSecret", "SECRET_HEADER_WORD", "other", "secretvalue", "b\x00c", "alice"):
        assert all(word not in n for n in notices), (word, notices)


def test_missing_header_names_line_and_expectation() -> None:
    with pytest.raises(ValueError, match=r"^line 1: missing column\(s\) .*; expected the header PID,PPID,USER"):
        parse_process_csv(SHADOW)


@pytest.mark.parametrize("bad", ["99999999999999999999", "-5", "nan", "inf", "1e30", "9223372036854775807"])
def test_impossible_sizes_are_named_not_wrapped(bad: str) -> None:
    """RSS_MB/VSZ_MB that cannot be a size become a named bad row, never a negative or wrapped byte count."""
    parsed = parse_process_csv(HEADER + f"1,0,root,5,5,/sbin/init\n2,1,root,{bad},5,x\n3,1,root,5,{bad},y\n")
    assert parsed.frame["pid"].tolist() == [1]
    assert (parsed.frame["rss_bytes"] >= 0).all()
    assert any("RSS_MB" in n for n in parsed.notices), parsed.notices


def test_huge_pid_is_named() -> None:
    parsed = parse_process_csv(HEADER + "1,0,root,5,5,/sbin/init\n4294967297,1,root,1,1,x\n")
    assert parsed.frame["pid"].tolist() == [1]
    assert any("PID/PPID above" in n for n in parsed.notices), parsed.notices


def test_impossible_system_value_is_skipped() -> None:
    parsed = parse_sys_csv("MemTotal_MB,SwapTotal_MB\n100,99999999999999999999\n")
    assert parsed.values == {"MemTotal": 100 * MIB}
    assert parsed.notices and "column 2" in parsed.notices[0]


def test_parse_sys_csv() -> None:
    text = "MemTotal_MB,MemFree_MB,Active(anon)_MB,Hugepagesize_kB,HugePages_Total,Weird,SwapFree_MB\n" \
           "100,50,3,2048,7,9,x\n"  # fmt: skip
    parsed = parse_sys_csv(text)
    assert parsed.values == {
        "MemTotal": 100 * MIB,
        "MemFree": 50 * MIB,
        "Active(anon)": 3 * MIB,
        "Hugepagesize": 2048 * 1024,
        "HugePages_Total": 7,
    }
    assert parsed.notices == [
        "2 column(s) skipped (column 6, 7): expected <Key>_MB or <Key>_kB columns with whole non-negative numbers "
        "(MemTotal_MB, ...)"
    ]
    with pytest.raises(ValueError, match="no data row"):
        parse_sys_csv("MemTotal_MB\n")
    with pytest.raises(ValueError, match="no usable column"):
        parse_sys_csv("A,B\n1,2\n")


def test_names() -> None:
    assert classify_name("process_mem_20261127_170213.csv") == ("process", pd.Timestamp("2026-11-27 17:02:13"))
    assert classify_name("sys_mem_20261127_170213.csv") == ("system", pd.Timestamp("2026-11-27 17:02:13"))
    assert classify_name("sys_mem_20261327_170213.csv") is None
    assert is_seed_name("sys_mem_20261327_170213.csv")
    assert classify_name("process_mem_latest.csv") is None
    assert not is_seed_name("notes.txt")


def test_localize_stamps_dst() -> None:
    naive = pd.Series(pd.to_datetime(["2026-03-29 01:30", "2026-03-29 02:30", "2026-03-29 03:30"]))
    utc = localize_stamps(naive, "Europe/Berlin")
    assert [t.strftime("%H:%M") for t in utc] == ["00:30", "01:00", "01:30"]  # 02:30 does not exist: shifted
    # fall back, in file order: 02:20 (summer) 02:50 (summer) 02:10 (the clock went back: winter) 02:40 (winter)
    naive = pd.Series(pd.to_datetime(["2026-10-25 02:20", "2026-10-25 02:50", "2026-10-25 02:10", "2026-10-25 02:40"]))
    utc = localize_stamps(naive, "Europe/Berlin")
    assert [t.strftime("%H:%M") for t in utc] == ["00:20", "00:50", "01:10", "01:40"]
    assert str(utc.dtype) == "datetime64[ns, UTC]"
    assert len(localize_stamps(pd.Series([], dtype="datetime64[ns]"), "UTC")) == 0


def test_infer_start_times_rules() -> None:
    # pid 10: exec at snap 1 (cmd changes alone) -> same; snap 2: cmd + ppid change -> new; snap 4 after gap -> new
    # pid 20: re-parented at snap 1 (ppid changes alone) -> same; snap 2: cmd + user change -> new
    snap = np.array([0, 0, 1, 1, 2, 2, 4])
    ts = snap * 10
    pid = np.array([10, 20, 10, 20, 10, 20, 10])
    ppid = np.array([1, 5, 1, 1, 7, 1, 7])
    user = np.array([0, 0, 0, 0, 0, 1, 0])
    cmd = np.array([0, 1, 2, 1, 3, 4, 3])
    start = infer_start_times(snap, ts, pid, ppid, user, cmd)
    assert start.tolist() == [0, 0, 0, 0, 20, 20, 40]
    assert infer_start_times(*(np.empty(0, np.int64),) * 6).size == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 4), st.integers(0, 2)), min_size=1, max_size=40))
def test_infer_start_times_properties(rows: list[tuple[int, int, int]]) -> None:
    df = pd.DataFrame(rows, columns=["snap", "pid", "cmd"]).drop_duplicates(["snap", "pid"])
    snap, pid, cmd = (df[c].to_numpy(np.int64) for c in ("snap", "pid", "cmd"))
    ts = snap * 1000
    start = infer_start_times(snap, ts, pid, np.ones_like(pid), np.zeros_like(pid), cmd)
    assert (start <= ts).all()
    # the first sighting of a pid always starts a process; a pid seen in consecutive snaps with one ppid keeps it
    first = df.assign(start=start).sort_values("snap").groupby("pid").first()
    assert (first["start"] == first["snap"] * 1000).all()
    d = df.assign(start=start).sort_values(["pid", "snap"])
    same = (d["pid"].diff() == 0) & (d["snap"].diff() == 1)
    assert (d["start"].diff()[same] == 0).all()


def test_name_and_cmdline() -> None:
    cmd = pd.Series(["/usr/bin/python3 app.py --token=abc", "[kworker/0:1-events]", "bash", "", "[python3] <defunct>"])
    out = name_and_cmdline(cmd)
    assert out["name"].tolist() == ["python3", "kworker/0:1-events", "bash", "", "python3"]
    assert out["cmdline"].tolist()[0] == f"/usr/bin/python3 app.py --token={MASK}"


def test_build_seed_frames() -> None:
    t0, t1 = pd.Timestamp("2026-01-01 00:00", tz="UTC"), pd.Timestamp("2026-01-01 00:00:10", tz="UTC")
    p0 = parse_process_csv(HEADER + "1,0,root,1,1,/sbin/init\n9,1,bob,2,3,app --password hunter2\n").frame
    p1 = parse_process_csv(HEADER + "9,1,bob,4,5,app --password hunter2\n1,0,root,1,1,/sbin/init\n").frame
    procs, system = build_seed_frames([(t1, p1), (t0, p0)], [(t1, {"MemTotal": 5}), (t0, {"MemTotal": 4})])
    assert procs["ts"].tolist() == [t0, t0, t1, t1]
    assert procs["pid"].tolist() == [1, 9, 1, 9]
    assert (procs["start_time"] == t0).all()
    assert procs["cmdline"].tolist()[1] == f"app --password {MASK}"
    assert procs["rss_bytes"].tolist() == [MIB, 2 * MIB, MIB, 4 * MIB]
    assert set(procs["host"]) == {""} and set(procs["boot_id"]) == {""}
    assert system["MemTotal"].tolist() == [4, 5] and system["ts"].tolist() == [t0, t1]
    empty_procs, empty_system = build_seed_frames([], [])
    assert empty_procs.empty and empty_system.empty
