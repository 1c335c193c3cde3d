"""Alert rules: a TOML rules file, evaluated over process and system frames, and the state of what fires.

Rules file (see docs/alerts.example.toml), one ``[[rule]]`` table per rule::

    [[rule]]
    name = "fast grower"      # required, unique: names the alert
    kind = "growth"           # growth | size | system_available | swap_used
    scope = "process"         # growth, size: "process" (own memory, default) or "subtree" (process + descendants)
    metric = "rss"            # growth, size: rss (default) | pss | uss | swap
    rate = "50 MiB/h"         # growth: bytes per hour, a number or "<n> <unit>/h" (B, KiB, MiB, GiB, TiB, kB, MB, GB)
    for = "30m"               # growth: the window the rate is measured over (required);
                              # size, system_available, swap_used: the condition must hold at every sample of
                              # the last `for` (default 0: the latest sample only). Seconds, or "90s", "30m", "2h", "1d"
    above = "4 GiB"           # size, swap_used: bytes, a number or "<n> <unit>"
    below_percent = 10        # system_available: MemAvailable / MemTotal x 100 below this
    [rule.select]             # growth, size: which processes (every key given must match; none = every process)
    name = "postgres*"        # keys: name, cmdline, user, cgroup. A glob (fnmatch, case-sensitive, whole value),
    cmdline = "re:^python3? " # or, with the "re:" prefix, a Python regular expression searched in the value

Semantics, evaluated at the last snapshot at or before ``at`` (default the latest), called *now*:
- growth: leaks.leak_scores (or subtree_leak_scores for scope "subtree") over [now - for, now] with a minimum
  observed span of 80 % of ``for`` and >= 3 samples; fires for every selected process alive now whose Theil-Sen rate
  is >= rate. A subtree rule selects on the subtree's root.
- size: fires for every selected process alive now whose own (or subtree) metric is above ``above`` at every one of
  its samples in [now - for, now], and that was already seen at (or within 1.5 intervals after) now - for.
- system_available: fires when MemAvailable / MemTotal x 100 < below_percent at every sample in [now - for, now].
- swap_used: fires when SwapTotal - SwapFree > above at every sample in [now - for, now].
Each alert has a ``key`` (rule + process identity, or rule + "system"). ``AlertState.update`` returns the alerts
whose key was not firing at the previous evaluation: an alert is reported once when it starts firing, and again only
after it stopped and started again.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from memlib import leaks, schema
from memlib.timeline import metric_column
from memlib.tree import group_bounds, with_tree
from memlib.units import fmt_bytes, ns_of, to_utc

KINDS = ("growth", "size", "system_available", "swap_used")
SELECT_KEYS = ("name", "cmdline", "user", "cgroup")
ALERT_COLUMNS = [
    "rule", "kind", "key", "ts", "pid", "start_time", "name", "cmdline", "value", "threshold", "unit", "message",
]  # fmt: skip
_UNITS = {
    "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
}  # fmt: skip
_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_KNOWN_FIELDS = {"name", "kind", "scope", "metric", "rate", "for", "above", "below_percent", "select"}


class RulesError(ValueError):
    """A rules file that cannot be used; the message is one line naming the rule and the field."""


@dataclass(frozen=True)
class Rule:
    """One parsed rule: thresholds in bytes, bytes/hour, percent and seconds; selectors as (key, kind, pattern)."""

    name: str
    kind: str
    scope: str = "process"
    metric: str = "rss"
    rate_bytes_per_hour: float | None = None
    for_s: float = 0.0
    above_bytes: float | None = None
    below_percent: float | None = None
    select: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)


def parse_bytes(value: object, what: str = "size") -> float:
    """A number (bytes) or text "<n> <unit>" (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB) -> bytes; RulesError otherwise."""
    if isinstance(value, bool):
        raise RulesError(f"{what}: expected a number or text like '4 GiB', got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*", str(value))
        unit = m.group(2).lower() if m else ""
        if not m or (unit and unit not in _UNITS):
            raise RulesError(f"{what}: expected a number or text like '4 GiB', got {value!r}")
        number = float(m.group(1)) * _UNITS.get(unit, 1)
    if not np.isfinite(number) or number < 0:
        raise RulesError(f"{what}: must be a finite number >= 0, got {value!r}")
    return number


def parse_rate(value: object) -> float:
    """A number (bytes per hour) or text "<n> <unit>/h" (also /min, /s) -> bytes per hour."""
    if isinstance(value, str) and "/" in value:
        amount, per = value.rsplit("/", 1)
        per = per.strip().lower()
        scale = {"h": 1.0, "hour": 1.0, "min": 60.0, "m": 60.0, "s": 3600.0, "d": 1 / 24}.get(per)
        if scale is None:
            raise RulesError(f"rate: unknown time unit '/{per}' in {value!r}; use /h, /min, /s or /d")
        return parse_bytes(amount, "rate") * scale
    return parse_bytes(value, "rate")


def parse_duration(value: object, what: str = "for") -> float:
    """A number of seconds or text "90s", "30m", "2h", "1d" -> seconds; RulesError otherwise."""
    if isinstance(value, bool):
        raise RulesError(f"{what}: expected seconds or text like '30m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*", str(value).lower())
        if not m:
            raise RulesError(f"{what}: expected seconds or text like '30m', got {value!r}")
        seconds = float(m.group(1)) * _DURATIONS.get(m.group(2) or "s", 1)
    if not np.isfinite(seconds) or seconds < 0:
        raise RulesError(f"{what}: must be >= 0 seconds, got {value!r}")
    return seconds


def _selectors(raw: object, where: str) -> tuple[tuple[str, str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise RulesError(f'{where}: select must be a table like {{ name = "postgres*" }}')
    out = []
    for key, pattern in raw.items():
        if key not in SELECT_KEYS:
            raise RulesError(f"{where}: unknown select key {key!r}; expected one of {', '.join(SELECT_KEYS)}")
        if not isinstance(pattern, str) or not pattern:
            raise RulesError(f"{where}: select.{key} must be a non-empty text (glob, or 're:' + regex)")
        if pattern.startswith("re:"):
            try:
                re.compile(pattern[3:])
            except re.error as exc:
                raise RulesError(f"{where}: select.{key} is not a valid regular expression: {exc}") from None
            out.append((key, "re", pattern[3:]))
        else:
            out.append((key, "glob", pattern))
    return tuple(out)


def parse_rules(text: str) -> list[Rule]:
    """TOML text -> rules (format in the module docstring); RulesError with one clear line on any problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"not valid TOML: {exc}") from None
    unknown_top = set(doc) - {"rule"}
    if unknown_top:
        raise RulesError(f"unknown top-level key(s) {sorted(unknown_top)}; rules go in [[rule]] tables")
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RulesError("no rules: add at least one [[rule]] table")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules, 1):
        name = raw.get("name")
        where = f"rule {i}" + (f" ({name!r})" if isinstance(name, str) else "")
        if not isinstance(name, str) or not name.strip():
            raise RulesError(f"{where}: missing 'name' (a non-empty text)")
        if name in seen:
            raise RulesError(f"{where}: duplicate rule name")
        seen.add(name)
        extra = set(raw) - _KNOWN_FIELDS
        if extra:
            raise RulesError(f"{where}: unknown field(s) {sorted(extra)}")
        kind = raw.get("kind")
        if kind not in KINDS:
            raise RulesError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        scope = raw.get("scope", "process")
        if scope not in ("process", "subtree"):
            raise RulesError(f"{where}: scope must be 'process' or 'subtree', got {scope!r}")
        metric = raw.get("metric", "rss")
        if metric not in schema.MEMORY_METRICS:
            raise RulesError(f"{where}: metric must be one of {', '.join(schema.MEMORY_METRICS)}, got {metric!r}")
        try:
            for_s = parse_duration(raw.get("for", 0))
            rule = Rule(name=name, kind=kind, scope=scope, metric=metric, for_s=for_s)
            need = {"growth": ("rate", "for"), "size": ("above",), "system_available": ("below_percent",),
                    "swap_used": ("above",)}[kind]  # fmt: skip
            missing = [f for f in need if f not in raw]
            if missing:
                raise RulesError(f"missing {' and '.join(repr(m) for m in missing)} for kind {kind!r}")
            if kind == "growth":
                if for_s <= 0:
                    raise RulesError("for: a growth rule needs a window > 0 (e.g. '30m')")
                rule = replace(rule, rate_bytes_per_hour=parse_rate(raw["rate"]))
            if kind in ("size", "swap_used"):
                rule = replace(rule, above_bytes=parse_bytes(raw["above"], "above"))
            if kind == "system_available":
                pct = raw["below_percent"]
                if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 < pct <= 100:
                    raise RulesError(f"below_percent: a number in (0, 100], got {pct!r}")
                rule = replace(rule, below_percent=float(pct))
            if kind in ("growth", "size"):
                rule = replace(rule, select=_selectors(raw.get("select"), where))
            elif "select" in raw or "scope" in raw or "metric" in raw:
                raise RulesError(f"select/scope/metric do not apply to kind {kind!r}")
        except RulesError as exc:
            msg = str(exc)
            raise RulesError(msg if msg.startswith(where) else f"{where}: {msg}") from None
        rules.append(rule)
    return rules


def select_mask(frame: pd.DataFrame, selectors: Sequence[tuple[str, str, str]]) -> np.ndarray:
    """Rows x selectors (key, "glob"|"re", pattern) -> bool per row: every selector matches (tested once per value)."""
    mask = np.ones(len(frame), bool)
    for key, how, pattern in selectors:
        if key not in frame.columns:
            mask &= False
            continue
        col = frame[key].astype("category")
        cats = col.cat.categories.astype(str)
        if how == "re":
            rx = re.compile(pattern)
            hit = np.array([rx.search(c) is not None for c in cats], bool)  # per distinct value, not per row
        else:
            hit = np.array([fnmatch.fnmatchcase(c, pattern) for c in cats], bool)
        codes = col.cat.codes.to_numpy()
        mask &= np.where(codes >= 0, np.append(hit, False)[codes], False)
    return mask


def _empty_alerts() -> pd.DataFrame:
    dtypes = {"ts": schema.UTC_NS, "start_time": schema.UTC_NS, "pid": "Int64", "value": "float64",
              "threshold": "float64"}  # fmt: skip
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "object")) for c in ALERT_COLUMNS})


def _process_alerts(rule: Rule, rows: pd.DataFrame, now: pd.Timestamp, value: np.ndarray, unit: str) -> pd.DataFrame:
    n = len(rows)
    if n == 0:
        return _empty_alerts()
    start_ns = ns_of(rows["start_time"])
    host = rows["host"].astype(str).to_numpy() if "host" in rows.columns else np.full(n, "")
    pid = rows["pid"].to_numpy()
    keys = [f"{rule.name}|{h}|{p}|{s}" for h, p, s in zip(host, pid, start_ns, strict=True)]
    thr = rule.rate_bytes_per_hour if rule.kind == "growth" else rule.above_bytes
    what = f"{'subtree ' if rule.scope == 'subtree' else ''}{rule.metric}"
    names = rows["name"].astype(str).to_numpy()
    if rule.kind == "growth":
        msgs = [f"{nm} (pid {p}) {what} grows {fmt_bytes(v)}/h >= {fmt_bytes(thr)}/h" for nm, p, v in
                zip(names, pid, value, strict=True)]  # fmt: skip
    else:
        msgs = [f"{nm} (pid {p}) {what} {fmt_bytes(v)} > {fmt_bytes(thr)}" for nm, p, v in
                zip(names, pid, value, strict=True)]  # fmt: skip
    return pd.DataFrame(
        {
            "rule": rule.name,
            "kind": rule.kind,
            "key": keys,
            "ts": pd.Series([now] * n, dtype=schema.UTC_NS),
            "pid": pd.array(pid, dtype="Int64"),
            "start_time": rows["start_time"].array,
            "name": names.astype(object),
            "cmdline": rows["cmdline"].astype(str).to_numpy().astype(object),
            "value": np.asarray(value, float),
            "threshold": float(thr),
            "unit": unit,
            "message": msgs,
        }
    )


def _eval_growth(rule: Rule, procs: pd.DataFrame, now: pd.Timestamp, last_rows: pd.DataFrame) -> pd.DataFrame:
    t_from = now - pd.Timedelta(seconds=rule.for_s)
    kw = {"t_from": t_from, "t_to": now, "metric": rule.metric, "min_samples": 3, "min_duration_s": 0.8 * rule.for_s}
    sc = leaks.leak_scores(procs, **kw)
    if rule.scope == "subtree":
        sc = leaks.subtree_leak_scores(procs, process_scores=sc, **kw)
    alive = set(last_rows["proc_id"].tolist())
    sc = sc[sc["proc_id"].isin(alive) & (sc["rate_bytes_per_hour"] >= rule.rate_bytes_per_hour)]
    rows = last_rows.set_index("proc_id").loc[sc["proc_id"].to_numpy()].reset_index()
    hit = select_mask(rows, rule.select)
    return _process_alerts(rule, rows[hit], now, sc["rate_bytes_per_hour"].to_numpy()[hit], "bytes/h")


def _eval_size(rule: Rule, now: pd.Timestamp, procs: pd.DataFrame, interval: float) -> pd.DataFrame:
    col = metric_column(rule.metric)
    col = schema.subtree_column(col) if rule.scope == "subtree" else col
    t_all = ns_of(procs["ts"])
    now_ns, from_ns = now.value, now.value - int(rule.for_s * 1e9)
    rows = np.flatnonzero((t_all >= from_ns) & (t_all <= now_ns))
    v = procs[col].astype("Float64").to_numpy(dtype=float, na_value=np.nan)[rows]
    t = t_all[rows]
    pid = procs["proc_id"].to_numpy()[rows]
    o = np.lexsort((t, pid))
    ids, bounds = group_bounds(pid[o])
    starts = bounds[:-1]
    if len(ids) == 0:
        return _empty_alerts()
    v_o = v[o]
    vmin = np.minimum.reduceat(np.where(np.isnan(v_o), -np.inf, v_o), starts)  # a null sample never holds
    first, last_t = t[o][starts], t[o][bounds[1:] - 1]
    ok = (vmin > rule.above_bytes) & (last_t == now_ns)
    if rule.for_s > 0:
        ok &= first <= from_ns + int(1.5 * interval * 1e9)
    win = procs.iloc[rows]
    last = win[(t == now_ns) & np.isin(pid, ids[ok])]
    hit = select_mask(last, rule.select)
    last = last[hit]
    return _process_alerts(rule, last, now, last[col].astype(float).to_numpy(), "bytes")


def _eval_system(rule: Rule, sysf: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    t = ns_of(sysf["ts"])
    win = sysf[(t >= now.value - int(rule.for_s * 1e9)) & (t <= now.value)]

    def key(name: str) -> np.ndarray:
        if name not in win.columns:
            return np.full(len(win), np.nan)
        return win[name].astype("Float64").to_numpy(dtype=float, na_value=np.nan)

    if rule.kind == "system_available":
        with np.errstate(all="ignore"):
            values = key("mem_available_bytes") / key("mem_total_bytes") * 100
        fires = len(values) > 0 and bool(np.all(values < rule.below_percent))
        thr, unit = rule.below_percent, "percent"
        msg = f"system available memory {values[-1]:.1f} % < {thr:g} %" if len(values) else ""
    else:
        values = key("swap_used_bytes")
        fires = len(values) > 0 and bool(np.all(values > rule.above_bytes))
        thr, unit = rule.above_bytes, "bytes"
        msg = f"swap used {fmt_bytes(values[-1])} > {fmt_bytes(thr)}" if len(values) else ""
    if not fires:
        return _empty_alerts()
    out = _empty_alerts()
    out.loc[0] = {
        "rule": rule.name, "kind": rule.kind, "key": f"{rule.name}|system", "ts": now, "pid": pd.NA,
        "start_time": pd.NaT, "name": None, "cmdline": None, "value": float(values[-1]), "threshold": float(thr),
        "unit": unit, "message": msg,
    }  # fmt: skip
    return out


def evaluate(
    rules: Sequence[Rule],
    procs: pd.DataFrame,
    system: pd.DataFrame,
    at: pd.Timestamp | str | None = None,
    interval_s: float | None = None,
) -> pd.DataFrame:
    """Rules, the process rows (PROCS; TREE columns used when present) and system rows (ts, mem_total_bytes,
    mem_available_bytes, swap_used_bytes) of the window the rules need -> the alerts firing at the last sample at or
    before `at` (default the latest): ALERT_COLUMNS.

    rule, kind, key, ts (that sample), pid, start_time, name, cmdline (null for system rules), value (bytes/h for
    growth, bytes for size/swap, percent for available), threshold (same unit), unit, message. In rule order.
    interval_s: the sampling interval (a size rule's process must be seen within 1.5 intervals of its window start).
    """
    times = np.unique(np.concatenate([ns_of(procs["ts"]), ns_of(system["ts"])]))
    if times.size == 0:
        return _empty_alerts()
    if at is None:
        pos = len(times) - 1
    else:
        pos = int(np.searchsorted(times, to_utc(at).as_unit("ns").value, side="right")) - 1
        if pos < 0:
            return _empty_alerts()
    now = pd.Timestamp(int(times[pos]), tz="UTC")
    interval = interval_s or 0.0
    if any(r.kind == "size" and r.scope == "subtree" for r in rules):
        procs = with_tree(procs)
    last_rows = procs[ns_of(procs["ts"]) == now.value]
    parts = []
    for rule in rules:  # a handful of rules: each is vectorised over every process
        if rule.kind == "growth":
            parts.append(_eval_growth(rule, procs, now, last_rows))
        elif rule.kind == "size":
            parts.append(_eval_size(rule, now, procs, interval))
        else:
            parts.append(_eval_system(rule, system, now))
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty_alerts()
    return pd.concat(parts, ignore_index=True)[ALERT_COLUMNS]


def window_s(rules: Sequence[Rule]) -> float:
    """Seconds of history the rules look back over (the longest ``for``)."""
    return max((r.for_s for r in rules), default=0.0)


class AlertState:
    """Which alert keys fired at the previous evaluation; ``update`` returns the ones that just started firing."""

    def __init__(self) -> None:
        """Nothing firing yet."""
        self.active: set[str] = set()

    def update(self, firing: pd.DataFrame) -> pd.DataFrame:
        """Alerts firing now (ALERT_COLUMNS) -> the rows whose key was not firing last time; remembers the new set."""
        keys = firing["key"].astype(str)
        started = firing[~keys.isin(self.active).to_numpy()]
        self.active = set(keys)
        return started


def alert_json(row: pd.Series) -> str:
    """One alert row -> a JSON object (times ISO 8601 UTC, nulls as null), for --on-alert commands."""
    out = {}
    for c in ALERT_COLUMNS:
        v = row[c]
        if isinstance(v, pd.Timestamp):
            out[c] = v.tz_convert("UTC").isoformat().replace("+00:00", "Z")
        elif v is None or v is pd.NaT or (not isinstance(v, str) and pd.isna(v)):
            out[c] = None
        elif isinstance(v, np.integer):
            out[c] = int(v)
        elif isinstance(v, np.floating | float):
            out[c] = float(v)
        else:
            out[c] = v if isinstance(v, str | int) else str(v)
    return json.dumps(out, ensure_ascii=False)


def sample_frames(samples: Sequence[tuple[pd.Timestamp, dict[str, Sequence], dict[str, int]]], host: str = "",
                  boot_id: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Collector samples (ts, procs columns as the sampler gives them, meminfo) -> (PROCS + TREE frame, system frame
    with ts, mem_total_bytes, mem_available_bytes, swap_used_bytes) for ``evaluate``.

    Only what rules need is built: pid, ppid, start_time, name, cmdline, user, cgroup and the memory metrics.
    proc_id numbers (pid, start_time) within these samples.
    """
    if not samples:
        return schema.empty_procs(), pd.DataFrame({"ts": pd.Series(dtype=schema.UTC_NS)})
    lens = np.array([len(p["pid"]) for _, p, _ in samples])
    ts_ns = np.array([pd.Timestamp(t).as_unit("ns").value for t, _, _ in samples], dtype=np.int64)
    snap = np.repeat(np.arange(len(samples), dtype=np.int32), lens)

    def cat(c: str) -> list:
        out: list = []
        for _, p, _ in samples:
            out.extend(p[c])
        return out

    start = pd.array(cat("start_time"), dtype="Int64").to_numpy(dtype=np.int64, na_value=0)
    pid = np.asarray(cat("pid"), dtype=np.int32)
    o = np.lexsort((start, pid))
    new = np.ones(len(o), bool)
    new[1:] = (pid[o][1:] != pid[o][:-1]) | (start[o][1:] != start[o][:-1])
    proc_id = np.empty(len(o), np.int64)
    proc_id[o] = np.cumsum(new) - 1
    procs = pd.DataFrame(
        {
            "snap": snap,
            "ts": pd.DatetimeIndex(np.repeat(ts_ns, lens)).tz_localize("UTC"),
            "host": pd.Categorical([host] * len(snap)),
            "boot_id": pd.Categorical([boot_id] * len(snap)),
            "pid": pid,
            "ppid": np.asarray(cat("ppid"), dtype=np.int32),
            "start_time": pd.DatetimeIndex(start).tz_localize("UTC"),
            "proc_id": proc_id,
            "user": pd.Categorical(cat("user")),
            "name": pd.Categorical(cat("name")),
            "cmdline": pd.Categorical(cat("cmdline")),
            "rss_bytes": np.asarray(cat("rss_bytes"), dtype=np.int64),
            "cgroup": pd.Categorical(cat("cgroup")),
            "pss_bytes": pd.array(cat("pss_bytes"), dtype="Int64"),
            "uss_bytes": pd.array(cat("uss_bytes"), dtype="Int64"),
            "swap_bytes": pd.array(cat("swap_bytes"), dtype="Int64"),
        }
    )
    procs = with_tree(procs)

    def field(name: str) -> pd.arrays.IntegerArray:
        return pd.array([m.get(name) for _, _, m in samples], dtype="Int64")

    system = pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(ts_ns).tz_localize("UTC"),
            "mem_total_bytes": field("MemTotal"),
            "mem_available_bytes": field("MemAvailable"),
            "swap_used_bytes": field("SwapTotal") - field("SwapFree"),
        }
    )
    return procs, system


def median_interval(ts: pd.Series) -> float | None:
    """Sample times -> the median step between distinct ones in seconds (None with fewer than two)."""
    t = np.unique(ns_of(ts))
    return float(np.median(np.diff(t)) / 1e9) if t.size > 1 else None


_WINDOW_COLUMNS = ("pid", "ppid", "start_time", "name", "cmdline", "user", "cgroup", "rss_bytes", "pss_bytes",
                   "uss_bytes", "swap_bytes")  # fmt: skip


class AlertWindow:
    """The collector's recent samples, kept in memory, and the rules evaluated on them every `every` samples.

    Keeps the samples of the last ``max(for of every rule) + margin_s`` seconds (only the columns rules use); every
    `every`-th ``add`` builds frames of them (``sample_frames``), evaluates the rules at the newest sample and
    returns the alerts that started firing since the previous evaluation (``AlertState``); other calls return an
    empty frame at once.
    """

    def __init__(self, rules: Sequence[Rule], every: int = 1, margin_s: float = 60.0, host: str = "",
                 boot_id: str = "") -> None:  # fmt: skip
        """Rules (parse_rules), evaluation period in samples (>= 1), extra seconds kept, host/boot id for the keys."""
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.rules = list(rules)
        self.every = every
        self.keep_ns = int((max((r.for_s for r in self.rules), default=0.0) + margin_s) * 1e9)
        self.host, self.boot_id = host, boot_id
        self.samples: list[tuple[pd.Timestamp, dict[str, list], dict[str, int]]] = []
        self.state = AlertState()
        self.added = 0
        self._none = _empty_alerts()  # returned between evaluations (read-only)

    def add(self, ts: pd.Timestamp, procs: dict[str, Sequence], meminfo: dict[str, int]) -> pd.DataFrame:
        """One collector sample -> alerts that started firing now (ALERT_COLUMNS; empty between evaluations)."""
        ts = pd.Timestamp(ts)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        self.samples.append((ts, {c: list(procs[c]) for c in _WINDOW_COLUMNS}, dict(meminfo)))
        oldest = ts.value - self.keep_ns
        drop = 0
        while drop < len(self.samples) and self.samples[drop][0].value < oldest:
            drop += 1
        del self.samples[:drop]
        self.added += 1
        if self.added % self.every:
            return self._none
        procs, system = sample_frames(self.samples, self.host, self.boot_id)
        return self.state.update(evaluate(self.rules, procs, system, interval_s=median_interval(system["ts"])))
