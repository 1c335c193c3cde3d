"""Parsers of /proc files (bytes in, values out)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.procfs import (
    PF_KTHREAD,
    SmapsRollup,
    format_cmdline,
    parse_btime,
    parse_cgroup,
    parse_cmdline,
    parse_meminfo,
    parse_smaps_rollup,
    parse_stat,
    parse_statm_resident,
    parse_status_uid,
    start_time_ns,
)
from tests.fakeproc import stat_line


@pytest.mark.parametrize("comm", ["bash", "(a) b)", "a b c", ")", "((", "x) S 1 2 (", "", "tmux: server", "ñé"])
def test_parse_stat_odd_comm_names(comm: str) -> None:
    line = stat_line(4242, comm, "R", 17, PF_KTHREAD, 7, 123456, 999_000, 321)
    st_ = parse_stat(line)
    assert st_.pid == 4242
    assert st_.comm == comm
    assert st_.state == "R"
    assert st_.ppid == 17
    assert st_.flags == PF_KTHREAD
    assert st_.threads == 7
    assert st_.start_ticks == 123456
    assert st_.vsize == 999_000
    assert st_.rss_pages == 321


@settings(max_examples=60, deadline=None)
@given(
    comm=st.text(alphabet=st.characters(blacklist_characters="\0\n", blacklist_categories=("Cs",)), max_size=15),
    ppid=st.integers(0, 4_194_304),
    ticks=st.integers(0, 2**40),
)
def test_parse_stat_any_comm(comm: str, ppid: int, ticks: int) -> None:
    st_ = parse_stat(stat_line(99, comm, "S", ppid, 0, 1, ticks, 1, 2))
    assert (st_.comm, st_.ppid, st_.start_ticks, st_.rss_pages) == (comm, ppid, ticks, 2)


def test_parse_stat_real_self() -> None:
    with open("/proc/self/stat", "rb") as fh:
        st_ = parse_stat(fh.read())
    assert (st_.pid, st_.ppid, st_.state) == (os.getpid(), os.getppid(), "R")
    assert st_.rss_pages > 0 and st_.vsize > 0 and st_.threads >= 1


@pytest.mark.parametrize("bad", [b"", b"12 noparens S 1", b"12 (x) S 1 2 3", b"abc (x) " + b"1 " * 30])
def test_parse_stat_malformed_raises_valueerror(bad: bytes) -> None:
    with pytest.raises(ValueError):
        parse_stat(bad)


def test_parse_cmdline_and_format() -> None:
    assert parse_cmdline(b"/bin/sh\0-c\0echo a b\0") == ["/bin/sh", "-c", "echo a b"]
    assert parse_cmdline(b"") == []
    # setproctitle-style: no trailing NUL, spaces inside one argument
    assert parse_cmdline(b"postgres: writer process") == ["postgres: writer process"]
    assert parse_cmdline(b"a\0\0b\0") == ["a", "", "b"]
    assert parse_cmdline(b"\xff\xfe\0") == ["\ufffd\ufffd"]
    assert format_cmdline([], "kworker/0:1") == "[kworker/0:1]"
    assert format_cmdline([""], "zombie") == "[zombie]"
    assert format_cmdline(["/bin/sh", "-c", "echo a b"], "sh") == "/bin/sh -c echo a b"


def test_parse_status_uid() -> None:
    text = b"Name:\tx\nUmask:\t0022\nState:\tS\nUid:\t1000\t0\t0\t0\nGid:\t5\t5\t5\t5\n"
    assert parse_status_uid(text) == 1000
    assert parse_status_uid(b"Uid:\t7\t7\t7\t7\n") == 7
    assert parse_status_uid(b"Name:\tx\n") is None
    assert parse_status_uid(b"") is None


def test_parse_cgroup_v2_v1_and_empty() -> None:
    assert parse_cgroup(b"0::/system.slice/ssh.service\n") == "/system.slice/ssh.service"
    v1 = b"12:pids:/user.slice\n4:memory:/user.slice/user-1000.slice\n1:name=systemd:/x\n"
    assert parse_cgroup(v1) == "/user.slice/user-1000.slice"
    hybrid = b"4:memory,cpu:/docker/abc\n0::/\n"
    assert parse_cgroup(hybrid) == "/"
    assert parse_cgroup(b"") is None
    assert parse_cgroup(b"1:cpu:/x\n") is None


def test_parse_smaps_rollup_bytes_and_empty() -> None:
    text = (
        b"55d0-7ffc ---p 00000000 00:00 0   [rollup]\nRss:  1608 kB\nPss:   371 kB\nPss_Dirty:  108 kB\n"
        b"Shared_Clean:  1432 kB\nPrivate_Clean:    68 kB\nPrivate_Dirty:   108 kB\nSwap:  12 kB\nSwapPss: 3 kB\n"
    )
    assert parse_smaps_rollup(text) == SmapsRollup(371 * 1024, (68 + 108) * 1024, 12 * 1024)
    assert parse_smaps_rollup(b"") is None


def test_parse_meminfo_converts_kb_keeps_counts() -> None:
    text = b"MemTotal:  16 kB\nActive(anon):   2 kB\nHugePages_Total:   4\nHugePages_Free: 2\nHugepagesize: 2048 kB\n"
    got = parse_meminfo(text)
    assert got == {
        "MemTotal": 16 * 1024,
        "Active(anon)": 2048,
        "HugePages_Total": 4,
        "HugePages_Free": 2,
        "Hugepagesize": 2048 * 1024,
    }


def test_parse_meminfo_real() -> None:
    with open("/proc/meminfo", "rb") as fh:
        got = parse_meminfo(fh.read())
    assert got["MemTotal"] > 0 and got["MemTotal"] % 1024 == 0
    assert "MemAvailable" in got


def test_btime_and_start_time_exact() -> None:
    assert parse_btime(b"cpu 1 2\nbtime 1700000000\nprocesses 5\n") == 1_700_000_000
    with pytest.raises(ValueError):
        parse_btime(b"cpu 1 2\n")
    # 100 Hz: 12345 ticks = 123.45 s, exactly
    assert start_time_ns(1_700_000_000, 12345, 100) == 1_700_000_123_450_000_000
    # non-divisor clock: integer math, identical on every call
    assert start_time_ns(1_700_000_000, 1, 300) == start_time_ns(1_700_000_000, 1, 300) == 1_700_000_000_003_333_333


def test_parse_statm_resident() -> None:
    assert parse_statm_resident(b"2189 455 401 5 0 102 0\n") == 455
    with open("/proc/self/statm", "rb") as fh:
        assert parse_statm_resident(fh.read()) > 0
    for bad in (b"", b"12\n", b"a b c"):
        with pytest.raises(ValueError):
            parse_statm_resident(bad)
