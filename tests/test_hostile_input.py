"""Damaged and hostile input through the reader and the CLI: files of the previous store layout (converted once),
seed CSVs, command lines, folders that hold nothing.

What is valid is read; what is skipped is named (the recording's notices, and on the CLI's stderr); nothing raises.
Damaged files of the store layout itself are covered by test_store_faults.py (every kind) and test_store_hostile.py.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.procfs import format_cmdline, parse_cmdline
from collector.sampler import Sampler
from memlib import query, source
from memlib.cli import main as cli_main
from memlib.scrub import MASK, scrub_argv, scrub_cmdline
from store.current import read_current
from tests.fakeproc import FakeProcess, FakeProcFS
from tests.store_samples import FAKE_T0 as T0
from tests.store_samples import read_store, us, writer
from tests.test_store_faults import FAULTS, GOOD_TS, PART, _closed, _fault, _good_store, _rewrite

REPO = Path(__file__).resolve().parents[1]
OLD = REPO / "tests" / "data" / "old_layout_crafted"  # 3 samples, 10:00:00..10:00:20 on 2026-11-27, host vm
OLD_TS = {pd.Timestamp("2026-11-27T10:00:00Z") + pd.Timedelta(seconds=s) for s in (0, 10, 20)}
OLD_P = "seg-20261127T100000.000Z-vm.procs.parquet"
OLD_S = "seg-20261127T100000.000Z-vm.system.parquet"
SEED_HEADER = "PID,PPID,USER,RSS_MB,VSZ_MB,CMD\n"
SEED_SYS = "MemTotal_MB,MemFree_MB,MemAvailable_MB\n1000,400,600\n"


@pytest.fixture(autouse=True)
def _fresh_cache():
    source.clear_cache()
    yield
    source.clear_cache()


def _snapshots(got) -> set[pd.Timestamp]:
    return set(got.procs["ts"]) | set(got.system["ts"])


# ---------------------------------------------------------------------------------------------------- previous layout


def _old_pair(d: Path) -> tuple[Path, Path]:
    """The crafted closed pair of the previous layout, copied into `d` -> (procs, system) paths."""
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(OLD / OLD_P, d / OLD_P)
    shutil.copy(OLD / OLD_S, d / OLD_S)
    return d / OLD_P, d / OLD_S


def _rewrite_old(path: Path, change) -> None:
    pq.write_table(change(pq.read_table(path, partitioning=None)), path)


def _meta(**kv: bytes):
    return lambda t: t.replace_schema_metadata({**(t.schema.metadata or {}), **{k.encode(): v for k, v in kv.items()}})


def _old_fault(d: Path, kind: str) -> tuple[str | None, set[pd.Timestamp], set[pd.Timestamp]]:
    """Add one damaged or odd pair of the previous layout to `d` -> (text a notice must carry or None, samples of
    process rows expected from it, samples of system rows expected from it)."""
    p, s = _old_pair(d)
    if kind == "truncated procs parquet":
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        return f"{OLD_P}: unreadable", set(), OLD_TS
    if kind == "truncated system parquet":
        s.write_bytes(s.read_bytes()[:-20])
        return f"{OLD_S}: unreadable", OLD_TS, set()
    if kind == "empty procs parquet":
        p.write_bytes(b"")
        return f"{OLD_P}: unreadable", set(), OLD_TS
    if kind == "missing system parquet":
        s.unlink()
        return None, OLD_TS, set()
    if kind == "missing ts column":
        _rewrite_old(p, lambda t: t.drop_columns(["ts"]))
        return OLD_P, set(), OLD_TS
    if kind == "missing pid column":
        _rewrite_old(p, lambda t: t.drop_columns(["pid"]))
        return OLD_P, set(), OLD_TS
    if kind == "zero rows":
        _rewrite_old(p, lambda t: t.slice(0, 0))
        return None, set(), OLD_TS
    if kind == "wrong type":
        _rewrite_old(
            p, lambda t: t.set_column(t.column_names.index("rss_bytes"), "rss_bytes", pa.array(["x"] * len(t)))
        )
        return OLD_P, set(), OLD_TS
    if kind == "random bytes named like a segment":
        p.write_bytes(bytes(range(256)) * 8)
        return f"{OLD_P}: unreadable", set(), OLD_TS
    if kind == "newer schema version":
        _rewrite_old(p, _meta(pmi_schema_version=b"99"))
        return None, OLD_TS, OLD_TS
    if kind == "no schema version":
        _rewrite_old(p, lambda t: t.replace_schema_metadata(None))
        _rewrite_old(s, lambda t: t.replace_schema_metadata(None))
        return None, OLD_TS, OLD_TS  # host and boot_id are columns too
    if kind == "non-UTF-8 metadata":
        _rewrite_old(p, _meta(host=b"h\xff\xfe"))
        return None, OLD_TS, OLD_TS
    if kind == "missing optional columns":
        _rewrite_old(p, lambda t: t.drop_columns(["cmdline", "pss_bytes", "cgroup"]))
        return None, OLD_TS, OLD_TS
    if kind == "unknown extra column":
        _rewrite_old(p, lambda t: t.append_column("from_the_future", pa.array(["x"] * len(t))))
        return None, OLD_TS, OLD_TS
    raise AssertionError(kind)


OLD_FAULTS = [
    "truncated procs parquet", "truncated system parquet", "empty procs parquet", "missing system parquet",
    "missing ts column", "missing pid column", "zero rows", "wrong type", "random bytes named like a segment",
    "newer schema version", "no schema version", "non-UTF-8 metadata", "missing optional columns",
    "unknown extra column",
]  # fmt: skip


@pytest.mark.parametrize("kind", OLD_FAULTS)
def test_previous_layout_fault_the_rest_is_converted_damage_is_named(tmp_path: Path, kind: str, capsysbinary) -> None:
    """A store holding one damaged or odd pair of the previous layout beside good segments: opening it converts
    what is readable, reads every good sample, names the damaged file (kept aside, never deleted); the CLI prints
    the data and names it on stderr, without a traceback."""
    _good_store(tmp_path)
    named, want_procs, want_system = _old_fault(tmp_path, kind)
    got = read_store(tmp_path)
    text = "\n".join(got.notices)
    if named is not None:
        assert named in text, (kind, got.notices)
    assert str(tmp_path) not in text
    assert set(got.procs["ts"]) == {us(t) for t in GOOD_TS} | want_procs, kind
    assert set(got.system["ts"]) == {us(t) for t in GOOD_TS} | want_system, kind
    assert not got.procs.duplicated(["ts", "pid"]).any()
    left = sorted(f.name for f in tmp_path.glob("seg-*.parquet*"))
    assert all(n.endswith(".damaged") for n in left), left  # converted originals removed, damaged ones kept aside
    source.clear_cache()
    code = cli_main(["system", "--dumps", str(tmp_path), "--format", "csv"])
    out, err = capsysbinary.readouterr()
    assert code == 0 and b"Traceback" not in err, err
    assert len(pd.read_csv(io.BytesIO(out))) == len(GOOD_TS | want_system)


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("older schema version", _meta(pmi_schema_version=b"0")),
        ("non-UTF-8 metadata", _meta(host=b"h\xff\xfe")),
        ("unknown extra column", lambda t: t.append_column("from_the_future", pa.array(["x"] * len(t)))),
    ],
)
def test_odd_closed_file_from_another_tool_is_still_read(tmp_path: Path, kind: str, change) -> None:
    """What the reader does not rely on (an older schema version or a host that is not UTF-8 in the key-value
    metadata, an extra column), as another tool may write: the file is read, named only as unverified."""
    _good_store(tmp_path)
    _rewrite(_closed(tmp_path)["procs"], change)
    got = read_store(tmp_path)
    hour1 = {T0 + pd.Timedelta(hours=1, seconds=s) for s in (0, 5)}
    assert set(got.procs["ts"]) == GOOD_TS | hour1, (kind, got.notices)
    assert [n.split(":")[0] for n in got.notices] == [f"procs/{PART}"], got.notices
    assert "no data checksum" in got.notices[0]


def test_every_current_fault_at_once_is_named_on_the_cli(tmp_path: Path, capsysbinary) -> None:
    """All damaged active-segment kinds side by side (each under its own name): the good samples are read, every
    damaged file is named in the notices and on the CLI's stderr."""
    _good_store(tmp_path)
    named = []
    for i, kind in enumerate(k for k in FAULTS if "current" in k):
        sub = tmp_path / f"f{i}"
        sub.mkdir()
        name, _, _ = _fault(sub, kind)
        stamp = f"20260106T{i:02d}0000.000"
        for f in sub.iterdir():
            f.rename(tmp_path / f.name.replace("20260105T120000.000", stamp))
        if name is not None:
            named.append(name.split(":")[0].replace("20260105T120000.000", stamp))
        sub.rmdir()
    got = read_store(tmp_path)
    assert _snapshots(got) >= GOOD_TS
    text = "\n".join(got.notices)
    assert len(named) >= 4 and all(n in text for n in named), (named, got.notices)
    source.clear_cache()
    code = cli_main(["top", "--dumps", str(tmp_path), "--format", "json"])
    out, err = capsysbinary.readouterr()
    assert code == 0 and json.loads(out)
    assert all(n.encode() in err for n in named), err


def test_empty_missing_and_not_a_directory(tmp_path: Path, capsysbinary) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "only-junk").mkdir()
    (tmp_path / "only-junk" / "seg-20260101T000000.000Z-h.current").write_bytes(b"")
    (tmp_path / "only-junk" / "time").mkdir()
    for d in ("missing", "file", "empty", "only-junk", "only-junk/time"):
        source.clear_cache()
        rec = source.open_recording(tmp_path / d)
        assert rec.kind == "empty" and rec.notices and rec.span is None, d
        code = cli_main(["snapshot", "--dumps", str(tmp_path / d)])
        _, err = capsysbinary.readouterr()
        assert code == 2 and err.startswith(b"error: no snapshots in") and err.count(b"\n") == 1, (d, err)


# ---------------------------------------------------------------------------------------------------- seed faults


def _seed_round(d: Path, stamp: str, body: bytes, header: bytes = SEED_HEADER.encode()) -> None:
    (d / "time").mkdir(parents=True, exist_ok=True)
    (d / "time" / f"process_mem_{stamp}.csv").write_bytes(header + body)
    (d / "time" / f"sys_mem_{stamp}.csv").write_text(SEED_SYS)


def test_seed_one_megabyte_command_line(tmp_path: Path) -> None:
    """A 1 MB command line (with commas, quotes and a newline) in a seed CSV: the file loads, the line is kept."""
    big = "java " + ",".join(f'-Dp{i}="v{i}"' for i in range(80_000)) + "\nend"
    assert len(big) > 1_000_000
    quoted = '"' + big.replace('"', '""') + '"'
    _seed_round(tmp_path, "20260101_000000", f"1,0,root,1,1,/sbin/init\n7,1,bob,5,6,{quoted}\n".encode())
    got = read_store(tmp_path, tz="UTC")
    assert not got.notices, got.notices
    cmd = got.procs.set_index("pid").loc[7, "cmdline"]
    assert cmd == big


def test_seed_nul_and_control_characters(tmp_path: Path, capsysbinary) -> None:
    body = b'1,0,root,1,1,/sbin/init\n7,1,bob,5,6,"app\x00--x\ttab\r\nnext ""q"", c"\n'
    _seed_round(tmp_path, "20260101_000000", body)
    got = read_store(tmp_path, tz="UTC")
    assert set(got.procs["pid"]) == {1, 7}
    cmd = got.procs.set_index("pid").loc[7, "cmdline"]
    assert cmd.startswith("app") and 'next "q", c' in cmd
    code = cli_main(["snapshot", "--dumps", str(tmp_path), "--tz", "UTC"])  # table: control characters blanked
    out, _ = capsysbinary.readouterr()
    assert code == 0 and b"\x00" not in out and b"\t" not in out
    line = next(x for x in out.decode().splitlines() if " 7 " in x)
    assert "next" in line  # the row stayed on one line
    code = cli_main(["snapshot", "--dumps", str(tmp_path), "--tz", "UTC", "--format", "csv"])
    out, _ = capsysbinary.readouterr()
    back = pd.read_csv(io.BytesIO(out), keep_default_na=False).set_index("pid")
    assert back.loc[7, "cmdline"] == cmd  # CSV output quotes it back exactly


def test_seed_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    """A CSV saved by a spreadsheet: UTF-8 BOM, CRLF line ends."""
    header = b"\xef\xbb\xbf" + SEED_HEADER.replace("\n", "\r\n").encode()
    _seed_round(tmp_path, "20260101_000000", b"1,0,root,1,1,/sbin/init\r\n7,1,bob,5,6,app --x\r\n", header)
    (tmp_path / "time" / "sys_mem_20260101_000000.csv").write_bytes(b"\xef\xbb\xbf" + SEED_SYS.encode())
    got = read_store(tmp_path, tz="UTC")
    assert not got.notices, got.notices
    assert set(got.procs["pid"]) == {1, 7} and got.procs.set_index("pid").loc[7, "cmdline"] == "app --x"
    assert got.system["mem_total_bytes"].iloc[0] == 1000 * 2**20


@pytest.mark.parametrize(
    ("body", "notice"),
    [
        (b"", "skipped (empty file)"),
        (b"\n\n", "skipped (empty file)"),
        (SEED_HEADER.encode(), "skipped (no process rows)"),
        (b"PID,PPID\n1,0\n", "missing column(s) USER, RSS_MB, VSZ_MB, CMD"),
        (SEED_HEADER.encode() + b"1,0,root,1,1,/sbin/init\n7,1,ro", "wrong number of fields"),
        (SEED_HEADER.encode() + b"1,0,root,1,1,/sbin/init \xff\xfe\n", "non-UTF-8 bytes replaced"),
        (SEED_HEADER.encode() + b"1,0,root,1,1,/sbin/init\n1,0,root,1,1,/sbin/init\n", "duplicate PID"),
        (SEED_HEADER.encode() + b"1,0,root,1,1,/sbin/init\nx,1,root,1,1,bad\n", "damaged row"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "skipped"),
    ],
)
def test_seed_damaged_file_is_named(tmp_path: Path, body: bytes, notice: str, capsysbinary) -> None:
    _seed_round(tmp_path, "20260101_000000", b"1,0,root,1,1,/sbin/init\n")
    (tmp_path / "time" / "process_mem_20260101_000010.csv").write_bytes(body)
    (tmp_path / "time" / "sys_mem_20260101_000010.csv").write_text(SEED_SYS)
    got = read_store(tmp_path, tz="UTC")
    hit = [n for n in got.notices if "process_mem_20260101_000010.csv" in n]
    assert any(notice in h for h in hit), got.notices
    assert pd.Timestamp("2026-01-01 00:00:00", tz="UTC") in _snapshots(got)
    code = cli_main(["system", "--dumps", str(tmp_path), "--tz", "UTC"])
    _, err = capsysbinary.readouterr()
    assert code == 0 and b"process_mem_20260101_000010.csv" in err


# ---------------------------------------------------------------------------------------------------- command lines


NASTY_ARGV: list[list[str]] = [
    ["/bin/sh", "-c", 'echo "a,b" \'c\' && printf "%s\\n" x'],
    ["app", "line1\nline2", "cr\rlf", "tab\there"],
    ["app", "--opt=a,b,c", '--json={"k": "v, w"}', "'single'", '"double"'],
    ["app", "ünïcödé", "日本語", "emoji \U0001f600", "rtl \u202e txt"],
    ["app", "", "", "empty args"],
    ["app", "\x01\x02\x1b[31mred\x1b[0m", "\x7f"],
    ["app", "<b>bold</b>", "![x](http://example.invalid/p)", "$x$"],
    ["app", "x" * 1_048_576],  # a 1 MB argument
]


def _expected(argv_bytes: bytes, comm: str) -> str:
    return format_cmdline(scrub_argv(parse_cmdline(argv_bytes)), comm)


def test_nasty_command_lines_survive_the_collector_write_path(tmp_path: Path, capsysbinary) -> None:
    """Command lines with commas, quotes, newlines, control characters, non-UTF-8 bytes, empty arguments and a
    1 MB argument: sampled from a fake /proc, written by the collector's writer, read back by the store reader
    (active and closed) and a moment's query, and exported by the CLI as CSV/JSON: exactly the scrubbed text."""
    fs = FakeProcFS(tmp_path / "proc")
    fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0))
    raw: dict[int, bytes] = {}
    for i, argv in enumerate(NASTY_ARGV):
        pid = 100 + i
        fs.add(FakeProcess(pid, "nasty", argv))
        raw[pid] = b"\0".join(a.encode() for a in argv) + b"\0"
    bad = b"app\0caf\xe9\0\xff\xfe\0--x\0"  # Latin-1 and garbage bytes
    fs.add(FakeProcess(200, "bytes", ["placeholder"]))
    (fs.root / "200" / "cmdline").write_bytes(bad)
    raw[200] = bad
    want = {pid: _expected(b, "nasty" if pid < 200 else "bytes") for pid, b in raw.items()}
    assert "\ufffd" in want[200] and "caf" in want[200]

    sampler = Sampler(proc_root=str(fs.root), smaps="off", clk_tck=100, host="h")
    dumps = tmp_path / "dumps"
    w = writer(dumps, sampler.host, sampler.boot_id)
    for _ in range(2):
        s = sampler.sample()
        w.append(s.ts, s.procs, s.meminfo)
    active = read_store(dumps)
    assert not active.notices
    for pid, text in want.items():
        assert set(active.procs.loc[active.procs["pid"] == pid, "cmdline"]) == {text}, pid
    w.close()
    closed = read_store(dumps)
    assert not closed.notices
    for pid, text in want.items():
        assert set(closed.procs.loc[closed.procs["pid"] == pid, "cmdline"]) == {text}, pid
    source.clear_cache()
    rec = source.open_recording(dumps)
    last = query.moment(rec, query.resolve(rec)).set_index("pid")
    for pid, text in want.items():
        assert last.loc[pid, "cmdline"] == scrub_cmdline(text), pid
    for fmt in ("csv", "json"):
        code = cli_main(["export", "--dumps", str(dumps), "--format", fmt])
        out, err = capsysbinary.readouterr()
        assert code == 0, err
        back = (
            pd.read_csv(io.BytesIO(out), keep_default_na=False, na_values=[])
            if fmt == "csv"
            else pd.DataFrame(json.loads(out))
        ).set_index("pid")
        for pid, text in want.items():
            assert back.loc[pid, "cmdline"] == scrub_cmdline(text), (fmt, pid)
    code = cli_main(["snapshot", "--dumps", str(dumps)])
    out, _ = capsysbinary.readouterr()
    assert code == 0 and len(out.splitlines()) == 1 + len(want) + 1  # one line per row in the table, nothing split


_arg = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
_argv = st.lists(st.one_of(_arg, st.sampled_from(["a,b", '"q"', "x\ny", "--password", "s3cret", "", " "])), max_size=8)


class _RoundTrip:
    """One fake /proc, sampler and writer shared by the hypothesis examples (each example is a new process)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pmi-hyp-"))
        self.fs = FakeProcFS(self.dir / "proc")
        self.fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0))
        self.sampler = Sampler(proc_root=str(self.fs.root), smaps="off", clk_tck=100, host="h")
        self.writer = writer(self.dir / "dumps", "h", self.sampler.boot_id)
        self.offset = 0
        self.ticks = itertools.count(2000)
        self.expected: dict[int, str] = {}


@pytest.fixture(scope="module")
def round_trip():
    rt = _RoundTrip()
    yield rt
    with contextlib.suppress(OSError):
        rt.writer.close()
    shutil.rmtree(rt.dir, ignore_errors=True)


def _feed(rt: _RoundTrip, raw: bytes) -> list[str]:
    """A new process on pid 500 with cmdline bytes `raw`; sample it, write the sample, read it back incrementally
    -> the recorded command line(s) of pid 500."""
    rt.fs.add(FakeProcess(500, "hyp", ["x"], start_ticks=next(rt.ticks)))
    (rt.fs.root / "500" / "cmdline").write_bytes(raw)
    s = rt.sampler.sample()
    rt.writer.append(s.ts, s.procs, s.meminfo)
    got = read_current(rt.writer.current, rt.offset)
    rt.offset = got.next_offset
    assert not got.problems and not got.lost_samples
    procs = got.procs.to_pandas()
    return procs.loc[procs["pid"] == 500, "cmdline"].tolist()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=_argv, junk=st.binary(max_size=6))
def test_any_command_line_round_trips(round_trip: _RoundTrip, argv: list[str], junk: bytes) -> None:
    """Arbitrary argv (any code point but NUL and surrogates, plus raw bytes) -> /proc/<pid>/cmdline -> sampler ->
    writer -> reader: the recorded command line is exactly the scrubbed argv joined by spaces."""
    raw = b"".join(a.encode() + b"\0" for a in argv) + junk.replace(b"\0", b"")
    want = _expected(raw, "hyp")
    assert _feed(round_trip, raw) == [want]
    assert "\0" not in want
    if "--password" in argv[:-1]:  # the argument after it is masked whole, argv boundaries kept
        i = argv.index("--password")
        if argv[i + 1] and not argv[i + 1].startswith("--"):
            assert scrub_argv(parse_cmdline(raw))[i + 1] == MASK


def test_round_trip_survives_closing_and_querying(round_trip: _RoundTrip) -> None:
    """After the hypothesis examples (and three fixed ones): the closed segment gives the same command lines as the
    active one, and a moment's query shows the last one."""
    rt = round_trip
    for raw in (b'a,b\0"q"\0x\ny\0', b"--token\0abc\0", "ü\0".encode() * 3):
        _feed(rt, raw)
    active = read_current(rt.writer.current).procs.to_pandas()
    rt.writer.close()
    closed = read_store(rt.dir / "dumps").procs
    key = ["ts", "pid"]
    a = active.sort_values(key).reset_index(drop=True)["cmdline"].astype(str)
    c = closed.sort_values(key).reset_index(drop=True)["cmdline"].astype(str)
    assert a.tolist() == c.tolist() and len(a) >= 6
    assert "--token ********" in set(a)
    source.clear_cache()
    rec = source.open_recording(rt.dir / "dumps")
    shown = query.moment(rec, query.resolve(rec)).set_index("pid")
    assert shown.loc[500, "cmdline"] == scrub_cmdline(a.iloc[-1])
