"""Import the original tool's CSV dumps (``DIR/time/process_mem_*.csv`` + ``sys_mem_*.csv``, design.md §2).

Parsers take text; ``import_seed`` reads the files (regular files inside the folder only) and imports them once into
a store (docs/store.md, "Older stores and seed CSVs") that memlib.source then queries. Units: ``RSS_MB``/``VSZ_MB``
and ``<Key>_MB`` are whole MiB (kB // 1024, so a lower bound) and become bytes (* 2**20); ``HugePages_*`` stay
counts; ``<Key>_kB`` is accepted too.

Time: a file's stamp is the local time of the recording machine, without zone. ``localize_stamps`` turns stamps in
*file order* (modification time, then name) into UTC:
nonexistent local times (spring forward) are shifted forward to the first valid instant; an ambiguous one (fall back)
is read as the first pass (summer time) unless a file earlier in file order carries a later stamp, i.e. the clock has
already gone back — then it is the second pass (standard time).

Identity inference (seed dumps carry no start times; ``infer_start_times``):

* snapshots are ordered by time; a pid present in two *consecutive* snapshots is the same process, even when its
  command line changes (exec, setproctitle) or its parent changes (re-parenting to init after the parent exits);
* unless its command line and its parent (or its user) change at the same moment: that is PID reuse, a new process;
* a pid absent from the previous snapshot is a new process (so a pid that comes back after a gap is a new process);
* ``start_time`` = the time the inferred process was first seen. Lifetimes from seed dumps are observed spans
  (``SourceInfo.start_times_exact`` is False): a process seen once has lifetime 0, and one running before the first
  dump looks as if it started then.

Names: ``name`` is the basename of argv[0] of the scrubbed command line (``/usr/bin/python3 x.py`` -> ``python3``);
kernel threads shown as ``[kworker/0:1]`` keep the text inside the brackets (``kworker/0:1``), like comm.
Command lines are scrubbed with ``memlib.scrub.scrub_cmdline`` (once per distinct command line).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from memlib.schema import MEMINFO_COUNT_FIELDS, MIB, UTC_NS
from memlib.scrub import scrub_cmdline
from memlib.units import local_zone, resolve_zone  # noqa: F401  (seed stamps are local time; re-exported)

PROCESS_FILE_RE = re.compile(r"^process_mem_(\d{8}_\d{6})\.csv$")
SYSTEM_FILE_RE = re.compile(r"^sys_mem_(\d{8}_\d{6})\.csv$")
STAMP_FORMAT = "%Y%m%d_%H%M%S"
PROCESS_HEADER = ["PID", "PPID", "USER", "RSS_MB", "VSZ_MB", "CMD"]
_NUMERIC = ["PID", "PPID", "RSS_MB", "VSZ_MB"]
_BRACKET_RE = r"^\[([^\]]*)\]"


@dataclass
class ParsedProcesses:
    """One process_mem file: frame (pid int32, ppid int32, user, rss_bytes int64, vsz_bytes int64, cmd) + notices."""

    frame: pd.DataFrame
    notices: list[str] = field(default_factory=list)


@dataclass
class ParsedSystem:
    """One sys_mem file: meminfo key -> bytes (counts for HugePages_*), + notices."""

    values: dict[str, int]
    notices: list[str] = field(default_factory=list)


def is_seed_name(name: str) -> bool:
    """True for process_mem_<stamp>.csv / sys_mem_<stamp>.csv names (the stamp's shape only)."""
    return PROCESS_FILE_RE.match(name) is not None or SYSTEM_FILE_RE.match(name) is not None


def classify_name(name: str) -> tuple[str, pd.Timestamp] | None:
    """File name -> ("process" | "system", naive local stamp), or None for anything else (impossible stamps too)."""
    for kind, rx in (("process", PROCESS_FILE_RE), ("system", SYSTEM_FILE_RE)):
        m = rx.match(name)
        if m:
            try:
                return kind, pd.Timestamp(datetime.strptime(m.group(1), STAMP_FORMAT))
            except ValueError:
                return None
    return None


def _empty_processes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pid": pd.Series(dtype="int32"),
            "ppid": pd.Series(dtype="int32"),
            "user": pd.Series(dtype=object),
            "rss_bytes": pd.Series(dtype="int64"),
            "vsz_bytes": pd.Series(dtype="int64"),
            "cmd": pd.Series(dtype=object),
        }
    )


def _int_column(values: tuple[str, ...]) -> np.ndarray:
    """Text cells -> float64 array, NaN where a cell is not an integer."""
    arr = np.asarray(values, dtype=object)
    try:
        return arr.astype(np.int64).astype(np.float64)
    except (ValueError, OverflowError):
        return pd.to_numeric(pd.Series(arr).str.strip(), errors="coerce").to_numpy(np.float64, na_value=np.nan)


_MAX_PID = 2**31 - 1  # pids and ppids are int32 (the kernel's pid_max is at most 2**22)
_MAX_MB = (2**63 - 1) // MIB  # the largest MiB figure whose byte count fits int64


def _in_range(nums: dict[str, np.ndarray]) -> np.ndarray:
    """Parsed numeric columns -> per row, True when PID/PPID fit int32 and RSS_MB/VSZ_MB fit int64 bytes."""
    with np.errstate(invalid="ignore"):
        ok = (nums["PID"] <= _MAX_PID) & (nums["PPID"] <= _MAX_PID)
        return ok & (nums["RSS_MB"] <= _MAX_MB) & (nums["VSZ_MB"] <= _MAX_MB)


def _csv_rows(text: str) -> list[list[str]]:
    """CSV text -> rows; ValueError naming the line (never its content) when the csv module cannot read it."""
    reader = csv.reader(io.StringIO(text))
    try:
        return list(reader)
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: unreadable CSV ({exc}); expected comma-separated values") from None


def _allow_fields_of(text: str) -> None:
    """Raise the csv module's field size limit (128 KiB by default, process-wide) to `text`'s length: a command line
    may be up to 2 MiB (the kernel's argument limit), and one long line must not make the whole file unreadable."""
    if len(text) >= csv.field_size_limit():
        csv.field_size_limit(len(text) + 1)


def parse_process_csv(text: str) -> ParsedProcesses:
    """process_mem CSV text -> ParsedProcesses(frame: pid, ppid, user, rss_bytes, vsz_bytes, cmd (raw, unscrubbed)).

    Raises ValueError (naming what is wrong) when the file is empty, a required column is missing or the CSV cannot be
    read at all. Damaged rows (truncated, non-numeric, duplicate PID) are dropped and counted in notices; a row with
    more fields than the header (an unquoted comma in CMD, the last column) gets its extra fields joined back.
    """
    notices: list[str] = []
    text = text.removeprefix("\ufeff")  # a byte order mark (CSV saved by a spreadsheet)
    if not text.strip():
        raise ValueError("empty file")
    _allow_fields_of(text)
    rows = _csv_rows(text)
    header = [h.strip() for h in rows[0]]
    missing = [c for c in PROCESS_HEADER if c not in header]
    if missing:
        raise ValueError(
            f"line 1: missing column(s) {', '.join(missing)}; expected the header {','.join(PROCESS_HEADER)}"
        )
    body = rows[1:]
    width = len(header)
    lens = np.fromiter(map(len, body), dtype=np.int64, count=len(body))
    if (lens != width).any():
        cmd_last = header[-1] == "CMD"
        long_rows = int((lens > width).sum()) if cmd_last else 0
        short_rows = int(((lens < width) & (lens > 0)).sum()) + (0 if cmd_last else int((lens > width).sum()))
        if long_rows:
            body = [r if len(r) <= width else [*r[: width - 1], ",".join(r[width - 1 :])] for r in body]
            notices.append(f"{long_rows} row(s) with unquoted commas in CMD joined back")
        if short_rows:
            notices.append(f"{short_rows} row(s) with a wrong number of fields skipped (truncated?)")
        body = [r for r in body if len(r) == width]
    if not body:
        raise ValueError("no process rows" + (f" ({'; '.join(notices)})" if notices else ""))
    cols = dict(zip(header, zip(*body, strict=True), strict=True))
    nums = {c: _int_column(cols[c]) for c in _NUMERIC}
    ok = np.logical_and.reduce([~np.isnan(nums[c]) for c in _NUMERIC])
    ok &= (np.nan_to_num(nums["PID"], nan=-1) > 0) & (np.nan_to_num(nums["PPID"], nan=-1) >= 0)
    ok &= (np.nan_to_num(nums["RSS_MB"], nan=-1) >= 0) & (np.nan_to_num(nums["VSZ_MB"], nan=-1) >= 0)
    bad = int((~ok).sum())
    if bad:
        notices.append(f"{bad} damaged row(s) skipped (missing, negative or non-numeric PID/PPID/RSS_MB/VSZ_MB)")
    huge = ok & ~_in_range(nums)
    if huge.any():
        notices.append(
            f"{int(huge.sum())} row(s) skipped: PID/PPID above {_MAX_PID} or RSS_MB/VSZ_MB above {_MAX_MB} "
            "(more than 8 EiB, not a real size)"
        )
        ok &= ~huge
    frame = pd.DataFrame(
        {
            "pid": nums["PID"][ok].astype(np.int32),
            "ppid": nums["PPID"][ok].astype(np.int32),
            "user": np.char.strip(np.asarray(cols["USER"], dtype=str)[ok]).astype(object),
            "rss_bytes": np.rint(nums["RSS_MB"][ok] * MIB).astype(np.int64),
            "vsz_bytes": np.rint(nums["VSZ_MB"][ok] * MIB).astype(np.int64),
            "cmd": np.asarray(cols["CMD"], dtype=object)[ok],
        }
    )
    dup = frame["pid"].duplicated()
    if dup.any():
        notices.append(f"{int(dup.sum())} duplicate PID row(s) skipped")
        frame = frame[~dup].reset_index(drop=True)
    return ParsedProcesses(frame, notices)


_SYS_EXPECTED = "<Key>_MB or <Key>_kB columns with whole non-negative numbers (MemTotal_MB, ...)"


def parse_sys_csv(text: str) -> ParsedSystem:
    """sys_mem CSV text (header + one row) -> ParsedSystem({meminfo key: bytes or count}).

    ``<Key>_MB`` -> key, * 2**20; ``<Key>_kB`` -> key, * 1024; HugePages_* counts as they are. Raises ValueError when
    there is no data row or no usable column; unknown or non-numeric columns are skipped and counted in notices
    (by column number: error messages and notices never quote file content).
    """
    text = text.removeprefix("\ufeff")
    _allow_fields_of(text)
    rows = _csv_rows(text)
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise ValueError("no data row")
    header, row = rows[0], rows[-1]
    notices: list[str] = []
    if len(rows) > 2:
        notices.append(f"{len(rows) - 1} data rows, the last one used")
    values: dict[str, int] = {}
    skipped: list[int] = []  # 1-based column numbers (names are file content and are not repeated)
    for i, col in enumerate(header):
        col = col.strip()
        cell = row[i].strip() if i < len(row) else ""
        if col.endswith("_MB"):
            key, scale = col[:-3], MIB
        elif col.endswith(("_kB", "_KB")):
            key, scale = col[:-3], 1024
        elif col in MEMINFO_COUNT_FIELDS:
            key, scale = col, 1
        else:
            skipped.append(i + 1)
            continue
        try:
            value = int(cell) * scale
        except ValueError:
            skipped.append(i + 1)
            continue
        if not 0 <= value < 2**63:
            skipped.append(i + 1)
            continue
        values[key] = value
    if not values:
        raise ValueError(f"line 1: no usable column; expected {_SYS_EXPECTED}")
    if skipped:
        listed = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        notices.append(f"{len(skipped)} column(s) skipped (column {listed}): expected {_SYS_EXPECTED}")
    return ParsedSystem(values, notices)


def localize_stamps(naive: pd.Series, tz: str | tzinfo) -> pd.Series:
    """Naive local stamps in file order -> UTC datetime64[ns, UTC] (DST rules in the module docstring), same index."""
    values = pd.DatetimeIndex(pd.to_datetime(naive.to_numpy()))
    if len(values) == 0:
        return pd.Series(values.tz_localize("UTC").astype(UTC_NS), index=naive.index)
    asi8 = values.asi8
    prev_max = np.maximum.accumulate(np.concatenate(([np.iinfo(np.int64).min], asi8[:-1])))
    first_pass = prev_max <= asi8  # no earlier file (in file order) has a later stamp: clock not yet turned back
    local = values.tz_localize(tz, ambiguous=first_pass, nonexistent="shift_forward")
    return pd.Series(local.tz_convert("UTC").astype(UTC_NS), index=naive.index)


def name_and_cmdline(cmd: pd.Series) -> pd.DataFrame:
    """Raw CMD strings -> DataFrame(name, cmdline scrubbed), same index; work done once per distinct CMD."""
    cat = pd.Categorical(cmd.fillna("").astype(str))
    uniq = pd.Series(cat.categories, dtype=object)
    scrubbed = uniq.map(scrub_cmdline)
    stripped = scrubbed.str.strip()
    bracket = stripped.str.extract(_BRACKET_RE, expand=False)
    argv0 = stripped.str.split(n=1).str[0].fillna("")
    base = argv0.str.rsplit("/", n=1).str[-1]
    names = bracket.where(bracket.notna(), base).fillna("")
    codes = cat.codes
    return pd.DataFrame(
        {
            "name": names.to_numpy()[codes],
            "cmdline": scrubbed.to_numpy()[codes],
        },
        index=cmd.index,
    )


def infer_start_times(
    snap: np.ndarray, ts: np.ndarray, pid: np.ndarray, ppid: np.ndarray, user: np.ndarray, cmd: np.ndarray
) -> np.ndarray:
    """Per row (snap dense by time, ts int64 ns, pid, ppid, user/cmd codes) -> inferred start time (int64 ns).

    Rules in the module docstring: same pid in consecutive snapshots = same process unless cmd changes together with
    ppid or user; otherwise a new process whose start time is its first sighting.
    """
    n = len(pid)
    if n == 0:
        return np.empty(0, np.int64)
    order = np.lexsort((snap, pid))
    s_snap, s_pid = snap[order], pid[order]
    s_ppid, s_user, s_cmd = ppid[order], user[order], cmd[order]
    new = np.ones(n, bool)
    same_pid = s_pid[1:] == s_pid[:-1]
    consecutive = same_pid & (s_snap[1:] == s_snap[:-1] + 1)
    cmd_changed = s_cmd[1:] != s_cmd[:-1]
    other_changed = (s_ppid[1:] != s_ppid[:-1]) | (s_user[1:] != s_user[:-1])
    new[1:] = ~consecutive | (cmd_changed & other_changed)
    group = np.cumsum(new) - 1
    first_ts = ts[order][new]
    out = np.empty(n, np.int64)
    out[order] = first_ts[group]
    return out


def build_seed_frames(
    processes: list[tuple[pd.Timestamp, pd.DataFrame]],
    systems: list[tuple[pd.Timestamp, dict[str, int]]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parsed rounds with their UTC times (see localize_stamps) -> (procs, system) frames; host and boot_id are "".

    processes: (ts, ParsedProcesses.frame); systems: (ts, ParsedSystem.values); any order.
    procs columns: ts, host, boot_id, pid, ppid, start_time (inferred), user, name, cmdline (scrubbed), rss_bytes,
    vsz_bytes, sorted by ts, pid. system columns: ts, host, boot_id, one Int64 column per meminfo key, sorted by ts.
    """
    sizes = np.array([len(f) for _, f in processes], dtype=np.int64)
    ts_per_file = pd.DatetimeIndex([t for t, _ in processes], tz="UTC").as_unit("ns").asi8
    body = pd.concat([f for _, f in processes], ignore_index=True) if processes else _empty_processes()
    ts = np.repeat(ts_per_file, sizes)
    snap = np.unique(ts, return_inverse=True)[1].reshape(-1)  # dense snapshot order by time
    names = name_and_cmdline(body["cmd"])
    user = body["user"].astype(str)
    start = infer_start_times(
        snap.astype(np.int64),
        ts,
        body["pid"].to_numpy(np.int64),
        body["ppid"].to_numpy(np.int64),
        pd.factorize(user)[0],
        pd.factorize(names["cmdline"])[0],
    )
    procs = pd.DataFrame(
        {
            "ts": pd.to_datetime(ts, utc=True).as_unit("ns"),
            "host": "",
            "boot_id": "",
            "pid": body["pid"].to_numpy(np.int32),
            "ppid": body["ppid"].to_numpy(np.int32),
            "start_time": pd.to_datetime(start, utc=True).as_unit("ns"),
            "user": user.to_numpy(),
            "name": names["name"].to_numpy(),
            "cmdline": names["cmdline"].to_numpy(),
            "rss_bytes": body["rss_bytes"].to_numpy(np.int64),
            "vsz_bytes": body["vsz_bytes"].to_numpy(np.int64),
        }
    )
    order = np.lexsort((procs["pid"].to_numpy(), ts))
    procs = procs.take(order).reset_index(drop=True)
    system = pd.DataFrame([v for _, v in systems], dtype="Int64")
    system.insert(0, "ts", pd.DatetimeIndex([t for t, _ in systems], tz="UTC").as_unit("ns"))
    system.insert(1, "host", "")
    system.insert(2, "boot_id", "")
    system = system.sort_values("ts", kind="stable").reset_index(drop=True)
    return procs, system


# ------------------------------------------------------------------------------------------------ import into a store

SEED_DIR = "time"
IMPORT_DIR = ".pmi-store"  # the store a seed folder is imported into, when the folder is writable
_MANIFEST = "import.json"
_MANIFEST_VERSION = 1
SEED_HOST = ""  # seed dumps carry no host name (the store's partition is host=unknown)


def cache_dir(folder: Path, purpose: str) -> Path:
    """Where a conversion of `folder` goes when it cannot live beside it: $XDG_CACHE_HOME (or ~/.cache)/pmi/<hash>."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pmi"
    digest = hashlib.sha256(f"{purpose}:{Path(folder).resolve()}".encode()).hexdigest()[:16]
    return base / f"{purpose}-{digest}"


def scan_seed_files(folder: Path) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Seed CSVs in folder/time/ and folder/ -> ({path relative to folder: (size, mtime_ns)}, notices naming unknown
    files, links leaving the folder, loops and special files). Only regular files inside the folder are listed."""
    from store import files

    lister = files.SafeLister(folder)
    found: dict[str, tuple[int, int]] = {}
    unknown: list[str] = []
    for sub, prefix in ((Path(folder), ""), (Path(folder) / SEED_DIR, f"{SEED_DIR}/")):
        if prefix and lister.check(sub, want_dir=True) is None:
            continue
        for entry in lister.scandir(sub):
            name = entry.name
            if files.is_skipped_name(name) or (not prefix and name == SEED_DIR):
                continue
            if not is_seed_name(name):
                if prefix and not entry.is_dir(follow_symlinks=False):
                    unknown.append(f"{prefix}{name}: unknown file, skipped")
                continue
            st = lister.check(entry, want_dir=False)
            if st is not None:
                found[prefix + name] = (st.st_size, st.st_mtime_ns)
    return found, sorted(set(lister.notices + unknown))


def has_seed_files(folder: Path) -> bool:
    """True when `folder` (or its time/ subfolder) holds seed-format CSV names."""
    for sub in (Path(folder), Path(folder) / SEED_DIR):
        try:
            with os.scandir(sub) as it:
                if any(is_seed_name(e.name) for e in it):
                    return True
        except OSError:
            continue
    return False


@dataclass
class SeedImport:
    """import_seed's result: the store holding the imported rows (None when nothing was usable) and notices."""

    root: Path | None
    notices: list[str] = field(default_factory=list)


def _decode(data: bytes, rel: str, notices: list[str]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        notices.append(f"{rel}: non-UTF-8 bytes replaced")
        return data.decode("utf-8", errors="replace")


def _parse_file(folder: Path, rel: str) -> tuple[str, pd.Timestamp, object, list[str]] | None:
    """One seed CSV -> (kind, naive stamp, frame | values | None, notices); None for an impossible stamp."""
    classified = classify_name(rel.rsplit("/", 1)[-1])
    if classified is None:
        return None
    kind, stamp = classified
    notices: list[str] = []
    result: object = None
    try:
        text = _decode((Path(folder) / rel).read_bytes(), rel, notices)
        parsed = parse_process_csv(text) if kind == "process" else parse_sys_csv(text)
        result = parsed.frame if isinstance(parsed, ParsedProcesses) else parsed.values
        notices.extend(f"{rel}: {n}" for n in parsed.notices)
    except (OSError, ValueError) as exc:
        notices.append(f"{rel}: skipped ({exc})")
    return kind, stamp, result, notices


def _read_manifest(cache: Path) -> dict | None:
    try:
        data = json.loads((cache / _MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == _MANIFEST_VERSION else None


def _write_manifest(cache: Path, data: dict) -> None:
    tmp = cache / (_MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data), "utf-8")
    os.replace(tmp, cache / _MANIFEST)


def _import_root(folder: Path) -> Path:
    beside = Path(folder) / IMPORT_DIR
    try:
        beside.mkdir(exist_ok=True)
        if os.access(beside, os.W_OK | os.X_OK):
            return beside
    except OSError:
        pass
    return cache_dir(folder, "seed")


def import_seed(
    folder: Path, zone: tzinfo, progress: Callable[[str], None], derive: Callable[[pa.Table], pa.Table]
) -> SeedImport:
    """Seed CSVs of `folder` -> a store holding them (see the module docstring for identity and time rules).

    The store lives beside them (``folder/.pmi-store``) when writable, else in the user's cache. It is reused as is
    while the CSVs are unchanged, extended when only later CSVs were added (identities continue across the two),
    rebuilt otherwise. `progress` gets a line every few hundred files."""

    folder = Path(folder)
    listing, notices = scan_seed_files(folder)
    if not listing:
        return SeedImport(None, [*notices, f"no seed-format CSV in {folder.name}/ or {folder.name}/{SEED_DIR}/"])
    cache = _import_root(folder)
    cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one import of a folder at a time (two viewers opening it at once)
        return _import_locked(folder, cache, listing, notices, zone, progress, derive)
    finally:
        os.close(fd)


def _import_locked(
    folder: Path,
    cache: Path,
    listing: dict[str, tuple[int, int]],
    notices: list[str],
    zone: tzinfo,
    progress: Callable[[str], None],
    derive: Callable[[pa.Table], pa.Table],
) -> SeedImport:
    from store import files, segment

    manifest = _read_manifest(cache)
    old = {} if manifest is None or manifest.get("zone") != str(zone) else manifest.get("files", {})
    listing_l = {k: list(v) for k, v in listing.items()}
    if manifest is not None and old == listing_l:
        return SeedImport(cache, notices + manifest.get("notices", []))
    new_names = [k for k in listing if k not in old]
    extend = bool(old) and all(listing_l.get(k) == v for k, v in old.items())
    if extend:
        last_old = max((classify_name(k.rsplit("/", 1)[-1]) or ("", pd.Timestamp.min))[1] for k in old)
        extend = all((classify_name(k.rsplit("/", 1)[-1]) or ("", pd.Timestamp.min))[1] > last_old for k in new_names)
    if not extend:
        for table in ("procs", "system", "cgroups"):
            shutil.rmtree(cache / table, ignore_errors=True)
        new_names = list(listing)
        prior_notices: list[str] = []
    else:
        prior_notices = list(manifest.get("notices", [])) if manifest else []
    verb = "extending" if extend else "importing"
    progress(f"{folder}: {verb} {len(new_names)} seed CSV file(s) into {cache}")
    parsed = []
    for i, rel in enumerate(sorted(new_names, key=lambda k: (listing[k][1], k)), 1):
        item = _parse_file(folder, rel)
        if item is None:
            prior_notices.append(f"{rel}: impossible date, skipped")
        else:
            parsed.append(item)
            prior_notices.extend(item[3])
        if i % 500 == 0 or i == len(new_names):
            progress(f"  read {i}/{len(new_names)} seed file(s)")
    usable = [p for p in parsed if p[2] is not None]
    context = _context(cache) if extend else None
    procs, system, more = _seed_rows(usable, zone, context)
    prior_notices += more
    if len(procs) or len(system):
        seg = segment.build_tables(SEED_HOST, "", _procs_table(procs), _system_table(system), derive)
        segment.publish(cache, seg)
        progress(f"  wrote {len(procs):,} process rows, {len(system):,} snapshots")
    _write_manifest(
        cache,
        {"version": _MANIFEST_VERSION, "zone": str(zone), "files": listing_l, "notices": prior_notices[-500:]},
    )
    closed, _ = files.list_closed(cache)
    if not closed:
        return SeedImport(None, notices + prior_notices + ["no usable seed rows"])
    return SeedImport(cache, notices + prior_notices)


def _context(cache: Path) -> pd.DataFrame | None:
    """The last imported snapshot's processes (ts, pid, ppid, user, cmdline, start_time) or None."""
    from store import files

    closed, _ = files.list_closed(cache, ["procs"])
    if not closed:
        return None
    last = max(closed, key=lambda f: (f.date, f.path.name))
    cols = ["ts", "pid", "ppid", "user", "cmdline", "start_time", "rss_bytes", "vsz_bytes"]
    table = pq.read_table(last.path, columns=cols, partitioning=None)
    ts = table.column("ts")
    table = table.filter(pc.equal(ts, pc.max(ts)))
    return table.to_pandas()


def _seed_rows(
    usable: list[tuple[str, pd.Timestamp, object, list[str]]], zone: tzinfo, context: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Parsed files (file order) -> (procs, system) with UTC times; `context` = the previously imported last
    snapshot, whose processes keep their start times when they continue into the new files."""
    if not usable:
        return pd.DataFrame(), pd.DataFrame(), []
    naive = pd.Series([p[1] for p in usable], dtype="datetime64[ns]")
    first = ~naive.duplicated().to_numpy()
    utc_unique = localize_stamps(naive[first], zone)
    to_utc = dict(zip(naive[first].to_numpy(), utc_unique.to_numpy(), strict=True))
    proc_stamps = {p[1] for p in usable if p[0] == "process"}
    notices = [
        f"{p[1].strftime(STAMP_FORMAT)}: sys_mem file without a process_mem file of the same stamp, skipped"
        for p in usable
        if p[0] == "system" and p[1] not in proc_stamps
    ]
    processes = [(pd.Timestamp(to_utc[p[1].to_datetime64()]), p[2]) for p in usable if p[0] == "process"]
    systems = [
        (pd.Timestamp(to_utc[p[1].to_datetime64()]), p[2]) for p in usable if p[0] == "system" and p[1] in proc_stamps
    ]
    ctx_ts = None
    if context is not None and len(context):
        ctx_ts = pd.Timestamp(context["ts"].iloc[0]).tz_convert("UTC")
        frame = pd.DataFrame(
            {
                "pid": context["pid"].astype("int32"),
                "ppid": context["ppid"].astype("int32"),
                "user": context["user"].astype(object),
                "rss_bytes": context["rss_bytes"].astype("int64"),
                "vsz_bytes": context["vsz_bytes"].astype("int64"),
                "cmd": context["cmdline"].astype(object),
            }
        )
        processes = [(ctx_ts, frame), *processes]
    procs, system = build_seed_frames(processes, systems)  # type: ignore[arg-type]
    if ctx_ts is not None:
        assert context is not None
        at_ctx = procs["ts"] == ctx_ts
        known = dict(zip(context["pid"].astype(int), pd.to_datetime(context["start_time"], utc=True), strict=False))
        from_ctx = (procs["start_time"] == ctx_ts) & ~at_ctx
        procs.loc[from_ctx, "start_time"] = procs.loc[from_ctx, "pid"].map(known).to_numpy()
        procs = procs[~at_ctx].reset_index(drop=True)
        system = system[system["ts"] != ctx_ts].reset_index(drop=True)
    return procs, system, notices


def _procs_table(procs: pd.DataFrame) -> pa.Table | None:
    if procs.empty:
        return None
    cols = ["ts", "pid", "ppid", "start_time", "user", "name", "cmdline", "rss_bytes", "vsz_bytes"]
    return pa.Table.from_pandas(procs[cols], preserve_index=False)


def _system_table(system: pd.DataFrame) -> pa.Table | None:
    if system.empty:
        return None
    return pa.Table.from_pandas(system.drop(columns=["host", "boot_id"]), preserve_index=False)
