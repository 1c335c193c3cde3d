"""Issue 8 item 3, end to end: secrets in command lines never reach the dumps, CLI output or exported files.

The scrubber's own table (>= 40 cases, negatives included) is tests/test_scrub.py; here the real collector records a
live child holding secrets in its argv, and the CLI is run on seed-format dumps that contain secrets.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memlib.cli import main as cli_main
from memlib.seed import IMPORT_DIR
from memlib.source import clear_cache
from store import frames as store
from store.files import CURRENT_RE, PARQUET_RE
from tests.store_samples import read_store
from tests.test_scrub import ARGV_CASES, CMDLINE_CASES

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
SEED = REPO / "tests" / "data" / "seed"

LIVE_SECRETS = ["SECRETVALUE123", "hunter2xyz", "Zm9vYmFyYmF6", "p4ssInUrl"]


def test_scrubber_table_has_40_cases_with_negatives() -> None:
    """design.md §7's scrubber is covered by >= 40 table cases, of which some are negatives (kept as they are)."""
    cases = len(CMDLINE_CASES) + len(ARGV_CASES)
    negatives = [c for c in CMDLINE_CASES if c[0] == c[1]] + [c for c in ARGV_CASES if c[0] == c[1]]
    assert cases >= 40 and len(negatives) >= 10
    kept = {c[0] for c in negatives if isinstance(c[0], str)}
    assert {"ftp --passive host", "app --tokens-file /etc/tokens"} <= kept  # the documented decisions


# ---------------------------------------------------------------------------------------------------- helpers


def _current_plaintext(path: Path) -> bytes:
    """Every frame payload of a .current, decompressed (the bytes a reader decodes)."""
    data = path.read_bytes()
    out = [data[: store.HEADER.size]]
    pos = store.HEADER.size
    while pos + store.FRAME.size <= len(data):
        magic, _kind, length, _crc = store.FRAME.unpack_from(data, pos)
        if magic != store.FRAME_MAGIC:
            break
        payload = data[pos + store.FRAME.size : pos + store.FRAME.size + length]
        if len(payload) < length:
            out.append(payload)  # torn tail: scan what is there
            break
        (raw_len,) = store._RAW_LEN.unpack_from(payload, 0)
        out.append(pa.Codec("zstd").decompress(payload[4:], decompressed_size=raw_len, asbytes=True))
        pos += store.FRAME.size + length
    return b"".join(out)


def _parquet_plaintext(path: Path) -> bytes:
    """A Parquet file's values and metadata as bytes: re-encoded without compression or dictionary, plus every value
    as text."""
    table = pq.read_table(path)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="none", use_dictionary=False)
    values = "\n".join(str(v) for col in table.columns for v in col.to_pylist())
    meta = b"".join(k + v for k, v in (table.schema.metadata or {}).items())
    return buf.getvalue() + values.encode() + meta


def _assert_no_secret_under(dumps: Path, secrets: list[str]) -> int:
    """Scan every file under `dumps` (raw, decoded with the store reader, and decompressed); returns files seen."""
    files = [p for p in dumps.rglob("*") if p.is_file()]
    for path in files:
        blobs = [path.read_bytes()]
        name = path.name
        if name.endswith(".current"):
            blobs.append(_current_plaintext(path))
        if name.endswith(".parquet"):
            blobs.append(_parquet_plaintext(path))
        if CURRENT_RE.match(name) or PARQUET_RE.match(name):
            got = read_store(dumps)
            blobs.append(got.procs.to_csv().encode() + got.system.to_csv().encode())
        for blob in blobs:
            for secret in secrets:
                assert secret.encode() not in blob, f"{secret} found in {name}"
    return len(files)


def _recorded_cmdlines(dumps: Path, pid: int) -> set[str]:
    procs = read_store(dumps).procs
    return set(procs.loc[procs["pid"] == pid, "cmdline"].astype(str))


# ---------------------------------------------------------------------------------------------------- live child


@pytest.mark.slow
def test_live_child_secrets_never_reach_the_dumps(tmp_path: Path) -> None:
    """A child started with secrets in its argv is recorded by the real collector on the real /proc (once killed
    with -9, leaving an active segment; once run to the end, compacting everything): its command line is there,
    masked, and no secret is in any file under the dumps directory, decoded or decompressed."""
    argv = [
        PY,
        "-c",
        "import time; time.sleep(60)",
        f"--api-key={LIVE_SECRETS[0]}",
        "--password",
        LIVE_SECRETS[1],
        "--header",
        f"Authorization: Bearer {LIVE_SECRETS[2]}",
        f"--db=postgresql://app:{LIVE_SECRETS[3]}@db:5432/x",
    ]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dumps = tmp_path / "dumps"
    try:
        deadline = time.monotonic() + 30
        while LIVE_SECRETS[0].encode() not in Path(f"/proc/{child.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the child never exec'd"  # the secret really is in its argv
            time.sleep(0.01)
        collector = subprocess.Popen(
            [PY, "-m", "collector", "--dumps", str(dumps), "--interval", "0.1", "--smaps", "on"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while not _recorded_cmdlines(dumps, child.pid):
                assert time.monotonic() < deadline, "the child was never recorded"
                assert collector.poll() is None, collector.stderr.read() if collector.stderr else ""
                time.sleep(0.1)
        finally:
            collector.send_signal(signal.SIGKILL)
            collector.communicate(timeout=30)
        assert list(dumps.glob("*.current"))
        (cmd,) = _recorded_cmdlines(dumps, child.pid)
        assert "--api-key=********" in cmd and "--password ********" in cmd and "Bearer ********" in cmd
        assert "postgresql://app:********@db:5432/x" in cmd
        assert _assert_no_secret_under(dumps, LIVE_SECRETS) >= 2
        # a second run compacts the leftover and records the child again, then compacts its own segment
        done = subprocess.run(
            [PY, "-m", "collector", "--dumps", str(dumps), "--interval", "0.1", "--duration", "0.5"],
            cwd=REPO,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    finally:
        child.kill()
        child.wait(timeout=30)
    assert len(list((dumps / "procs").rglob("*.parquet"))) >= 2 and not list(dumps.glob("*.current"))
    assert len(_recorded_cmdlines(dumps, child.pid)) == 1
    assert _assert_no_secret_under(dumps, LIVE_SECRETS) >= 4
    assert not any(s.encode() in done.stderr for s in LIVE_SECRETS)


# ---------------------------------------------------------------------------------------------------- seed + CLI

SEED_SECRETS = [
    "s3cr3t",  # in the shipped seed example: --db-password s3cr3t
    "tok_live_SECRET123",  # --token=tok_live_SECRET123
    "UrlPw9876",
    "BearerTok5555",
    "MysqlPw4444",
    "PemBody3333",
    "ApiKey2222",
    "JsonTok1111",
]
EXTRA_ROWS = [
    "/usr/bin/git clone https://bob:UrlPw9876@git.example.com/r.git",
    "curl -H 'Authorization: Bearer BearerTok5555' https://api.example.com",
    "mysql -uroot -pMysqlPw4444 shop",
    "app --key -----BEGIN PRIVATE KEY----- PemBody3333 -----END PRIVATE KEY-----",
    'app --API_KEY ApiKey2222 --env {"AUTH_TOKEN": "JsonTok1111"}',
]


@pytest.fixture(scope="module")
def secret_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed example plus processes with more kinds of secrets in every round's last rows."""
    d = tmp_path_factory.mktemp("secret-seed")
    shutil.copytree(SEED, d, dirs_exist_ok=True)
    for f in sorted((d / "time").glob("process_mem_*.csv")):
        text = f.read_text()
        rows = [
            f'{30000 + i},1,root,{5 + i},{10 + i},"{c.replace(chr(34), chr(34) * 2)}"' for i, c in enumerate(EXTRA_ROWS)
        ]
        f.write_text(text.rstrip("\n") + "\n" + "\n".join(rows) + "\n")
    raw = "".join(p.read_text() for p in (d / "time").glob("process_mem_*.csv"))
    assert all(s in raw for s in SEED_SECRETS)  # the secrets are really in the input
    rules = d / "rules.toml"
    rules.write_text("[[rule]]\nname = 'any'\nkind = 'size'\nabove = '1 MiB'\n")
    return d


def _commands(d: Path) -> list[list[str]]:
    rules = str(d / "rules.toml")
    base = [
        ["system"],
        ["snapshot"],
        ["snapshot", "--at", "2026-11-27T17:03:00Z", "--level", "1"],
        ["timeline", "--pid", "22958"],
        ["timeline", "--pid", "30004"],
        ["children", "--pid", "22941"],
        ["children", "--pid", "1"],
        ["top"],
        ["top", "--by", "subtree"],
        ["top", "--by", "growth"],
        ["processes", "--pid", "22958"],
        ["processes", "--pid", "30001"],
        ["groups", "--by", "command"],
        ["groups", "--by", "name"],
        ["compare", "--from", "2026-11-27T17:02:13Z", "--to", "latest"],
        ["leaks", "--min-duration", "10"],
        ["leaks", "--subtrees", "--min-duration", "10"],
    ]
    out = [[*c, "--format", f] for c, f in itertools.product(base, ["table", "csv", "json"])]
    out += [["alerts", "--rules", rules, "--format", f] for f in ("table", "json")]
    out += [["export", "--all", "--format", f] for f in ("csv", "json")]
    out += [["export", "--format", "csv"], ["export", "--at", "2026-11-27T17:03:00Z", "--format", "json"]]
    return out


def test_seed_secrets_never_in_cli_output(secret_seed: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """Every command, every format, on seed dumps holding secrets: no secret on stdout or stderr; the masked
    command lines are there (so the check is not vacuous)."""
    clear_cache()
    masked_seen = 0
    commands = _commands(secret_seed)
    assert len(commands) >= 50
    for argv in commands:
        code = cli_main([*argv, "--dumps", str(secret_seed), "--tz", "UTC"])
        out, err = capsysbinary.readouterr()
        assert code in (0, 1), (argv, err)  # alerts exits 1 when an alert fires
        for secret in SEED_SECRETS:
            assert secret.encode() not in out and secret.encode() not in err, (secret, argv)
        masked_seen += b"********" in out
    assert masked_seen >= 20


def test_seed_secrets_never_in_exported_files(secret_seed: Path, tmp_path: Path, capsysbinary) -> None:
    """export --out in every format (parquet decoded, not grepped): masked command lines, no secret."""
    clear_cache()
    for fmt in ("csv", "json", "parquet"):
        target = tmp_path / f"all.{fmt}"
        code = cli_main(
            ["export", "--all", "--format", fmt, "--out", str(target), "--dumps", str(secret_seed), "--tz", "UTC"]
        )
        _, err = capsysbinary.readouterr()
        assert code == 0, err
        blobs = [target.read_bytes()]
        if fmt == "parquet":
            blobs.append(_parquet_plaintext(target))
        for blob in blobs:
            for secret in SEED_SECRETS:
                assert secret.encode() not in blob, (fmt, secret)
        assert any(b"********" in b for b in blobs), fmt
    # beside the dumps only the import cache of the seed CSVs was created (by design), and it holds no secret either
    assert {p.name for p in secret_seed.iterdir()} == {"time", "rules.toml", IMPORT_DIR}
    assert _assert_no_secret_under(secret_seed / IMPORT_DIR, SEED_SECRETS) >= 2


@pytest.mark.parametrize("secret", ["s3cr3t", "tok_live_SECRET123", "UrlPw9876", "MysqlPw4444", "PemBody3333"])
def test_searching_for_a_secret_finds_nothing(secret_seed: Path, secret: str, capsysbinary) -> None:
    """--match filters the scrubbed text: a secret cannot be confirmed by searching for it."""
    clear_cache()
    code = cli_main(["snapshot", "--match", secret, "--format", "csv", "--dumps", str(secret_seed), "--tz", "UTC"])
    out, _ = capsysbinary.readouterr()
    assert code == 0 and out.decode().strip().count("\n") == 0  # header only


def test_the_python_dash_m_cli_too(secret_seed: Path) -> None:
    """`python -m memlib` as a user runs it: the table of the latest snapshot shows masks, no secret."""
    proc = subprocess.run(
        [PY, "-m", "memlib", "snapshot", "--dumps", str(secret_seed), "--tz", "UTC"],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert proc.returncode == 0, proc.stderr
    assert b"********" in proc.stdout
    assert not any(s.encode() in proc.stdout + proc.stderr for s in SEED_SECRETS)
