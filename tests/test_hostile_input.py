"""Issue 8 item 2: damaged and hostile input to the loader (native segments, seed CSVs, command lines).

What is valid loads; what is skipped is named (Dataset.info.notices, and on the CLI's stderr); nothing raises.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.procfs import format_cmdline, parse_cmdline
from collector.sampler import Sampler
from memlib import store
from memlib.cli import main as cli_main
from memlib.load import clear_cache, load_dumps
from memlib.schema import SCHEMA_VERSION
from memlib.scrub import MASK, scrub_argv, scrub_cmdline
from memlib.store import HEADER, SegmentWriter, list_segments, read_segment
from tests.fakeproc import FakeProcess, FakeProcFS
from tests.test_store import T0, fake_procs, meminfo

SEED_HEADER = "PID,PPID,USER,RSS_MB,VSZ_MB,CMD\n"
SEED_SYS = "MemTotal_MB,MemFree_MB,MemAvailable_MB\n1000,400,600\n"


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


# ---------------------------------------------------------------------------------------------------- native faults


def _good_store(d: Path) -> None:
    """One closed segment (2 samples at T0, T0+5s) and one active segment (2 samples at T0+60s, T0+65s)."""
    w = SegmentWriter(d, "h", "b")
    for k in range(2):
        w.append(T0 + pd.Timedelta(seconds=5 * k), fake_procs(4, k), meminfo(k))
    w.close()
    w = SegmentWriter(d, "h", "b")
    for k in range(2):
        w.append(T0 + pd.Timedelta(seconds=60 + 5 * k), fake_procs(4, k), meminfo(k))
    assert w._fd is not None
    import os

    os.close(w._fd)  # stays a .current (the collector is "still running")


GOOD_TS = {T0 + pd.Timedelta(seconds=s) for s in (0, 5, 60, 65)}


def _closed_pair(d: Path, stamp: str, samples: int = 2, **meta: bytes) -> tuple[Path, Path]:
    """A closed pair at another time (T0 + 1 h), optionally with changed key-value metadata."""
    src = d / "src"
    w = SegmentWriter(src, "h", "b")
    for k in range(samples):
        w.append(T0 + pd.Timedelta(hours=1, seconds=5 * k), fake_procs(3, k), meminfo(k))
    w.close()
    procs, system = store._pair_paths(w.closed[0])
    out_p = d / f"seg-{stamp}Z-h.procs.parquet"
    out_s = d / f"seg-{stamp}Z-h.system.parquet"
    if meta:
        for src_path, dst in ((procs, out_p), (system, out_s)):
            table = pq.read_table(src_path)
            md = dict(table.schema.metadata or {})
            md.update({k.encode(): v for k, v in meta.items()})
            pq.write_table(table.replace_schema_metadata(md), dst)
    else:
        shutil.copy(procs, out_p)
        shutil.copy(system, out_s)
    shutil.rmtree(src)
    return out_p, out_s


def _current_bytes(samples: int = 2) -> bytes:
    data = HEADER.pack(store.MAGIC, SCHEMA_VERSION, 0)
    for k in range(samples):
        data += store.encode_sample(T0 + pd.Timedelta(hours=2, seconds=5 * k), fake_procs(3, k), meminfo(k), "h", "b")
    return data


def _bad_utf8_frame() -> bytes:
    """A correctly framed and CRC'd sample whose cmdline column holds bytes that are not UTF-8."""
    procs = fake_procs(2, 0)
    procs["cmdline"] = ["MARK1", "MARK2"]
    frame = store.encode_sample(T0 + pd.Timedelta(hours=3), procs, meminfo(0), "h", "b")
    _, kind, length, _ = store.FRAME.unpack_from(frame, 0)
    payload = frame[store.FRAME.size : store.FRAME.size + length]
    (raw_len,) = struct.unpack_from("<I", payload, 0)
    body = pa.Codec("zstd").decompress(payload[4:], decompressed_size=raw_len, asbytes=True)
    body = body.replace(b"MARK1", b"M\xff\xfeK1")
    new_payload = struct.pack("<I", len(body)) + pa.Codec("zstd").compress(body, asbytes=True)
    rest = frame[store.FRAME.size + length :]
    head = store.FRAME.pack(store.FRAME_MAGIC, kind, len(new_payload), zlib.crc32(new_payload))
    return head + new_payload + rest


def _fault(d: Path, kind: str) -> tuple[str | None, set[pd.Timestamp]]:
    """Add one damaged file of `kind` to d -> (the file name a notice must carry or None, extra samples expected)."""
    hour1 = {T0 + pd.Timedelta(hours=1, seconds=s) for s in (0, 5)}
    hour2 = {T0 + pd.Timedelta(hours=2, seconds=s) for s in (0, 5)}
    cur = d / "seg-20260105T120000.000Z-h.current"
    if kind == "truncated procs parquet":
        p, _ = _closed_pair(d, "20260105T110000.000")
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        return p.name, set()
    if kind == "truncated system parquet":
        p, s = _closed_pair(d, "20260105T110000.000")
        s.write_bytes(s.read_bytes()[:-20])
        return p.name, set()
    if kind == "empty procs parquet":
        p, _ = _closed_pair(d, "20260105T110000.000")
        p.write_bytes(b"")
        return p.name, set()
    if kind == "missing system parquet":
        p, s = _closed_pair(d, "20260105T110000.000")
        s.unlink()
        return p.name, set()  # the processes still load (named: no system rows for them)
    if kind == "newer schema version":
        p, _ = _closed_pair(d, "20260105T110000.000", pmi_schema_version=str(SCHEMA_VERSION + 1).encode())
        return p.name, set()
    if kind == "unknown schema version":
        p, _ = _closed_pair(d, "20260105T110000.000", pmi_schema_version=b"v2-beta")
        return p.name, set()
    if kind == "older schema version":
        _closed_pair(d, "20260105T110000.000", pmi_schema_version=b"0")
        return None, hour1
    if kind == "no schema version":
        p, s = _closed_pair(d, "20260105T110000.000")
        for path in (p, s):
            pq.write_table(pq.read_table(path).replace_schema_metadata(None), path)
        return None, hour1  # host and boot_id are columns too
    if kind == "non-UTF-8 metadata":
        _closed_pair(d, "20260105T110000.000", host=b"h\xff\xfe")
        return None, hour1
    if kind == "missing optional columns":
        p, _ = _closed_pair(d, "20260105T110000.000")
        table = pq.read_table(p)
        pq.write_table(table.drop_columns(["cmdline", "pss_bytes", "cgroup"]), p)
        return None, hour1
    if kind == "missing pid column":
        p, _ = _closed_pair(d, "20260105T110000.000")
        pq.write_table(pq.read_table(p).drop_columns(["pid"]), p)
        return p.name, set()
    if kind == "unknown extra column":
        p, _ = _closed_pair(d, "20260105T110000.000")
        table = pq.read_table(p)
        pq.write_table(table.append_column("from_the_future", pa.array(["x"] * table.num_rows)), p)
        return None, hour1
    if kind == "parquet with a wrong type":
        p, _ = _closed_pair(d, "20260105T110000.000")
        table = pq.read_table(p)
        i = table.column_names.index("rss_bytes")
        pq.write_table(table.set_column(i, "rss_bytes", pa.array(["lots"] * table.num_rows)), p)
        return p.name, set()
    if kind == "empty current":
        cur.write_bytes(b"")
        return None, set()
    if kind == "header-only current":
        cur.write_bytes(HEADER.pack(store.MAGIC, SCHEMA_VERSION, 0))
        return None, set()
    if kind == "bad header current":
        cur.write_bytes(b"GIF89a" + _current_bytes()[6:])
        return cur.name, set()
    if kind == "newer version current":
        cur.write_bytes(HEADER.pack(store.MAGIC, SCHEMA_VERSION + 7, 0) + _current_bytes()[HEADER.size :])
        return cur.name, set()
    if kind == "trailing garbage current":
        cur.write_bytes(_current_bytes() + b"\x00garbage after the last sample, not a frame at all\n" * 3)
        return cur.name, hour2
    if kind == "torn tail current":
        data = _current_bytes(3)
        cur.write_bytes(data[:-7])  # the third sample is being written: dropped silently, the two before load
        return None, hour2
    if kind == "crc damage current":
        data = bytearray(_current_bytes(3))
        data[-30] ^= 0x55  # inside the third sample's system frame
        cur.write_bytes(bytes(data))
        return cur.name, hour2
    if kind == "non-UTF-8 in a frame":  # replaced, like non-UTF-8 bytes in /proc (nothing skipped)
        cur.write_bytes(_current_bytes() + _bad_utf8_frame())
        return None, hour2 | {T0 + pd.Timedelta(hours=3)}
    if kind == "random bytes named like a segment":
        (d / "seg-20260105T110000.000Z-h.procs.parquet").write_bytes(bytes(range(256)) * 8)
        return "seg-20260105T110000.000Z-h.procs.parquet", set()
    raise AssertionError(kind)


FAULTS = [
    "truncated procs parquet",
    "truncated system parquet",
    "empty procs parquet",
    "missing system parquet",
    "newer schema version",
    "unknown schema version",
    "older schema version",
    "no schema version",
    "non-UTF-8 metadata",
    "missing optional columns",
    "missing pid column",
    "unknown extra column",
    "parquet with a wrong type",
    "empty current",
    "header-only current",
    "bad header current",
    "newer version current",
    "trailing garbage current",
    "torn tail current",
    "crc damage current",
    "non-UTF-8 in a frame",
    "random bytes named like a segment",
]


def test_non_utf8_frame_is_read_with_replacement(tmp_path: Path) -> None:
    """A frame whose strings are not UTF-8 (damaged or foreign): its rows load with U+FFFD instead of the bad bytes,
    the samples before it and the segment's compaction are unaffected."""
    cur = tmp_path / "seg-20260105T120000.000Z-h.current"
    cur.write_bytes(_current_bytes() + _bad_utf8_frame())
    got = read_segment(cur)
    assert not got.notices and got.procs["ts"].nunique() == 3
    assert set(got.procs["cmdline"].astype(str)) >= {"M\ufffd\ufffdK1", "MARK2"}
    assert store.compact_current(cur) is not None
    (seg,) = list_segments(tmp_path)
    assert read_segment(seg.path).procs["ts"].nunique() == 3


@pytest.mark.parametrize("kind", FAULTS)
def test_native_fault_valid_data_loads_damage_is_named(tmp_path: Path, kind: str, capsysbinary) -> None:
    _good_store(tmp_path)
    named, extra = _fault(tmp_path, kind)
    ds = load_dumps(tmp_path)
    text = "\n".join(ds.info.notices)
    if named is None:
        assert not ds.info.notices, ds.info.notices
    else:
        assert named in text, (kind, ds.info.notices)
    want = GOOD_TS | extra
    missing_system: set[pd.Timestamp] = set()
    if kind == "missing system parquet":  # its processes load (moments without a system row, named)
        missing_system = {T0 + pd.Timedelta(hours=1, seconds=s) for s in (0, 5)}
        want |= missing_system
    assert set(ds.snapshots["ts"]) == want, kind
    assert ds.info.kind == "native" and not ds.procs.duplicated(["snap", "pid"]).any()
    # the CLI loads the same, prints the data and names the skipped file on stderr
    code = cli_main(["system", "--dumps", str(tmp_path), "--format", "csv"])
    out, err = capsysbinary.readouterr()
    assert code == 0, err
    assert len(pd.read_csv(io.BytesIO(out))) == len(ds.system) == len(want - missing_system)
    if named is not None:
        assert named.encode() in err and b"Traceback" not in err
    else:
        assert err == b""


def test_every_fault_at_once(tmp_path: Path, capsysbinary) -> None:
    """All damaged kinds side by side (each under its own name): the good samples load, the damage is named."""
    _good_store(tmp_path)
    named = []
    for i, kind in enumerate(k for k in FAULTS if "current" in k):
        sub = tmp_path / f"f{i}"
        sub.mkdir()
        name, _ = _fault(sub, kind)
        stamp = f"20260106T{i:02d}0000.000"
        for f in sub.iterdir():
            f.rename(tmp_path / f.name.replace("20260105T120000.000", stamp))
        if name is not None:
            named.append(name.replace("20260105T120000.000", stamp))
        sub.rmdir()
    ds = load_dumps(tmp_path)
    assert set(ds.snapshots["ts"]) >= GOOD_TS
    text = "\n".join(ds.info.notices)
    assert len(named) >= 4 and all(n in text for n in named), (named, ds.info.notices)
    code = cli_main(["top", "--dumps", str(tmp_path), "--format", "json"])
    out, err = capsysbinary.readouterr()
    assert code == 0 and json.loads(out)
    assert all(n.encode() in err for n in named), err  # every damaged file named on stderr


def test_empty_missing_and_not_a_directory(tmp_path: Path, capsysbinary) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "only-junk").mkdir()
    (tmp_path / "only-junk" / "seg-20260101T000000.000Z-h.current").write_bytes(b"")
    (tmp_path / "only-junk" / "time").mkdir()
    for d in ("missing", "file", "empty", "only-junk", "only-junk/time"):
        ds = load_dumps(tmp_path / d)
        assert ds.info.kind == "empty" and ds.info.notices and ds.procs.empty, d
        code = cli_main(["snapshot", "--dumps", str(tmp_path / d)])
        _, err = capsysbinary.readouterr()
        assert code == 2 and err.startswith(b"error: no snapshots in") and err.count(b"\n") == 1, d


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
    ds = load_dumps(tmp_path, tz="UTC")
    assert not ds.info.notices, ds.info.notices
    cmd = ds.procs.set_index("pid").loc[7, "cmdline"]
    assert cmd == big


def test_seed_nul_and_control_characters(tmp_path: Path, capsysbinary) -> None:
    body = b'1,0,root,1,1,/sbin/init\n7,1,bob,5,6,"app\x00--x\ttab\r\nnext ""q"", c"\n'
    _seed_round(tmp_path, "20260101_000000", body)
    ds = load_dumps(tmp_path, tz="UTC")
    assert set(ds.procs["pid"]) == {1, 7}
    cmd = ds.procs.set_index("pid").loc[7, "cmdline"]
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
    ds = load_dumps(tmp_path, tz="UTC")
    assert not ds.info.notices, ds.info.notices
    assert set(ds.procs["pid"]) == {1, 7} and ds.procs.set_index("pid").loc[7, "cmdline"] == "app --x"
    assert ds.system["MemTotal"].iloc[0] == 1000 * 2**20


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
    ds = load_dumps(tmp_path, tz="UTC")
    hit = [n for n in ds.info.notices if "process_mem_20260101_000010.csv" in n]
    assert any(notice in h for h in hit), ds.info.notices
    assert pd.Timestamp("2026-01-01 00:00:00", tz="UTC") in set(ds.snapshots["ts"])
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
    (active and compacted) and the loader, and exported by the CLI as CSV/JSON: exactly the scrubbed text."""
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
    w = SegmentWriter(dumps, sampler.host, sampler.boot_id)
    for _ in range(2):
        s = sampler.sample()
        w.append(s.ts, s.procs, s.meminfo)
    active = read_segment(w.current)
    assert not active.notices
    for pid, text in want.items():
        assert set(active.procs.loc[active.procs["pid"] == pid, "cmdline"]) == {text}, pid
    w.close()
    (seg,) = list_segments(dumps)
    closed = read_segment(seg.path)
    for pid, text in want.items():
        assert set(closed.procs.loc[closed.procs["pid"] == pid, "cmdline"]) == {text}, pid
    ds = load_dumps(dumps)
    assert not ds.info.notices
    last = ds.procs[ds.procs["snap"] == ds.procs["snap"].max()].set_index("pid")
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
        self.writer = SegmentWriter(self.dir / "dumps", "h", self.sampler.boot_id)
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
    got = read_segment(rt.writer.current, rt.offset)
    rt.offset = got.next_offset
    assert not got.notices
    return got.procs.loc[got.procs["pid"] == 500, "cmdline"].tolist()


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


def test_round_trip_survives_compaction_and_loading(round_trip: _RoundTrip) -> None:
    """After the hypothesis examples (and three fixed ones): the compacted store and the loader give the same
    command lines as the active segment."""
    rt = round_trip
    for raw in (b'a,b\0"q"\0x\ny\0', b"--token\0abc\0", "ü\0".encode() * 3):
        _feed(rt, raw)
    active = read_segment(rt.writer.current).procs
    rt.writer.close()
    (seg,) = list_segments(rt.dir / "dumps")
    closed = read_segment(seg.path).procs
    key = ["ts", "pid"]
    a = active.sort_values(key).reset_index(drop=True)["cmdline"].astype(str)
    c = closed.sort_values(key).reset_index(drop=True)["cmdline"].astype(str)
    assert a.tolist() == c.tolist() and len(a) >= 6
    assert "--token ********" in set(a)
    ds = load_dumps(rt.dir / "dumps")
    assert not ds.info.notices
    loaded = ds.procs.sort_values(key).reset_index(drop=True)["cmdline"].astype(str).tolist()
    assert loaded == [scrub_cmdline(t) for t in a]
