"""Prometheus / OpenMetrics endpoint of the collector: the latest sample as metric families, via prometheus_client.

``MetricsExporter`` is a prometheus_client Collector. The sampling loop calls ``observe(sample)`` after each sample
(``overran(skipped)`` when slots were missed, ``failed()`` when a sample failed): each call swaps in a new immutable
``_State`` (one reference assignment, no lock, no computation), so serving never delays or loses a sample. The memory
families are built from the latest state by the first scrape after it (at most once per sample, under a lock that only
scrapes take); ``serve`` runs prometheus_client's threaded HTTP server in daemon threads (Prometheus text format,
OpenMetrics when the Accept header asks for it, gzip when accepted). Names, labels and the series bound:
docs/prometheus/README.md.

Series per scrape are bounded whatever the process churn (``series_bound``): system memory, per-group totals for the
``groups`` largest groups of each grouping plus "(other)" and "(unknown)", the ``top`` largest processes and
subtrees, and the collector's health. Process labels are pid, start_time (s since the epoch), name, user, cgroup; the
command line is never exported. Ranking ("default metric") is PSS when it is known for at least PSS_COVERAGE of the
processes that hold memory, else RSS (``pmi_ranking_info{metric=...}``).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from memlib import schema
from memlib.groups import OTHER_GROUP, UNKNOWN_GROUP
from memlib.tree import derive_trees

GroupBy = Literal["name", "user", "cgroup"]
GROUP_BY: tuple[GroupBy, ...] = get_args(GroupBy)
Ranking = Literal["pss", "rss"]
PSS_COVERAGE = 0.95  # PSS ranks when known for this share of the processes that hold memory (RSS > 0)
DEFAULT_HOST = "127.0.0.1"
PREFIX = "pmi_"
METRICS = tuple(schema.MEMORY_METRICS)  # rss, pss, uss, swap
PROCESS_LABELS = ["pid", "start_time", "name", "user", "cgroup"]
SYSTEM_FAMILIES = {  # name -> help; values per memlib.summary's definitions, cached as `free`'s buff/cache
    "memory_total_bytes": "MemTotal.",
    "memory_used_bytes": "MemTotal - MemAvailable (what free calls used).",
    "memory_available_bytes": "MemAvailable: memory available for new work without swapping.",
    "memory_cached_bytes": "buff/cache: Buffers + Cached + SReclaimable.",
    "swap_total_bytes": "SwapTotal.",
    "swap_used_bytes": "SwapTotal - SwapFree.",
}
HEALTH_SERIES = 10  # health families below (one series each)
_COLUMNS = ("pid", "ppid", "start_time", "name", "user", "cgroup", *schema.MEMORY_METRICS.values())


class MetricsError(RuntimeError):
    """The endpoint cannot be served (bad address, port in use)."""


@dataclass(frozen=True)
class MetricsOptions:
    """What /metrics exports: `top` processes and subtrees, per grouping in `group_by` the `groups` largest groups."""

    host: str = DEFAULT_HOST
    port: int = 9187
    top: int = 10
    groups: int = 20
    group_by: tuple[GroupBy, ...] = GROUP_BY


def series_bound(options: MetricsOptions) -> int:
    """Options -> the most series one scrape can hold (memory, groups, top processes/subtrees, health, ranking)."""
    groups = len(options.group_by) * (options.groups + 2) * (len(METRICS) + 1)  # + "(other)" and "(unknown)"
    top = options.top * len(METRICS) + options.top * (len(METRICS) + 1)  # processes; subtrees with their sizes
    return len(SYSTEM_FAMILIES) + 1 + groups + top + HEALTH_SERIES  # + 1: pmi_ranking_info


def parse_addr(text: str) -> tuple[str, int]:
    """'PORT', ':PORT', 'HOST:PORT' or '[IPv6]:PORT' -> (host, port); no host means 127.0.0.1. ValueError if bad."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = "", text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:9187")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected [HOST:]PORT with a port between 0 and 65535")
    return host or DEFAULT_HOST, int(port)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add --metrics-addr, --metrics-top, --metrics-groups and --metrics-group-by to a parser."""
    p.add_argument(
        "--metrics-addr",
        default=None,
        metavar="[HOST:]PORT",
        help=f"serve Prometheus /metrics there (HOST defaults to {DEFAULT_HOST}; 0.0.0.0 only when written)",
    )
    p.add_argument("--metrics-top", type=int, metavar="K", help="top processes and subtrees exported (default 10)")
    p.add_argument("--metrics-groups", type=int, metavar="N", help="groups per grouping (default 20, rest: (other))")
    p.add_argument(
        "--metrics-group-by",
        metavar="KEYS",
        help=f"comma-separated groupings among {', '.join(GROUP_BY)}, or 'none' (default: all)",
    )


def options_from_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> MetricsOptions | None:
    """Parsed --metrics-* options -> MetricsOptions (None without --metrics-addr); bad values are usage errors."""
    if args.metrics_addr is None:
        if (args.metrics_top, args.metrics_groups, args.metrics_group_by) != (None, None, None):
            p.error("--metrics-top, --metrics-groups and --metrics-group-by need --metrics-addr [HOST:]PORT")
        return None
    default = MetricsOptions()
    top = default.top if args.metrics_top is None else args.metrics_top
    groups = default.groups if args.metrics_groups is None else args.metrics_groups
    try:
        host, port = parse_addr(args.metrics_addr)
    except ValueError as exc:
        p.error(f"--metrics-addr {exc}")
    if top < 0 or groups < 0:
        p.error("--metrics-top and --metrics-groups must be >= 0")
    text = ",".join(default.group_by) if args.metrics_group_by is None else args.metrics_group_by
    keys = [k.strip() for k in text.split(",") if k.strip()]
    keys = [] if keys == ["none"] else keys
    bad = [k for k in keys if k not in GROUP_BY]
    if bad:
        p.error(f"--metrics-group-by: unknown grouping {', '.join(bad)}; expected some of {', '.join(GROUP_BY)}")
    group_by = tuple(dict.fromkeys(keys))
    return MetricsOptions(host, port, top, groups, group_by)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Latest:
    """The columns of one sample the endpoint uses (the sampler's lists, never mutated after the sample)."""

    ts_ns: int
    procs: dict[str, list]
    meminfo: dict[str, int]
    elapsed_s: float | None


@dataclass(frozen=True)
class _State:
    """Everything a scrape reads, swapped in whole by the sampling thread."""

    latest: _Latest | None = None
    samples: int = 0
    overruns: int = 0
    skipped: int = 0
    failures: int = 0


class MetricsExporter(Collector):
    """prometheus_client Collector over the collector's latest sample; `serve` starts the HTTP endpoint."""

    def __init__(self, options: MetricsOptions, interval_s: float, log: Callable[[str], None] = print) -> None:
        """Options, the sampling interval (exported as health) and a one-line logger for export errors."""
        self.options = options
        self.interval_s = interval_s
        self.log = log
        self._state = _State()
        self._lock = threading.Lock()  # scrapes only: one computes the families of a new sample, the others wait
        self._built: tuple[_Latest | None, list[Metric], float | None] = (None, [], None)
        self._errors = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._server: tuple[object, threading.Thread] | None = None

    # ------------------------------------------------------------------------------- sampling thread (never blocks)

    def observe(self, sample: object) -> None:
        """A sample (ts, procs, meminfo, stats) was taken: make it the latest; O(1), never raises."""
        try:
            ts = getattr(sample, "ts", None)
            stats = getattr(sample, "stats", None) or {}
            latest = _Latest(
                int(pd.Timestamp(ts).value) if ts is not None else time.time_ns(),
                {c: sample.procs[c] for c in _COLUMNS if c in sample.procs},  # type: ignore[attr-defined]
                dict(getattr(sample, "meminfo", None) or {}),
                stats.get("elapsed_s"),
            )
        except Exception as exc:  # a malformed sample costs its metrics, never the recording
            self.log(f"metrics: cannot take the sample: {type(exc).__name__}: {exc}")
            return
        self._state = replace(self._state, latest=latest, samples=self._state.samples + 1)

    def overran(self, skipped: int) -> None:
        """A sample took longer than the interval and `skipped` slots were dropped."""
        self._state = replace(
            self._state, overruns=self._state.overruns + 1, skipped=self._state.skipped + max(0, skipped)
        )

    def failed(self) -> None:
        """A sample could not be taken or written (it was logged and skipped)."""
        self._state = replace(self._state, failures=self._state.failures + 1)

    # ------------------------------------------------------------------------------- scrape threads

    def describe(self) -> list[Metric]:
        """No fixed description (families depend on the sample): registration does not collect."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The latest sample's families, then the health families (last sample age measured now)."""
        state = self._state
        families, coverage = self._families(state.latest)
        yield from families
        yield from self._health(state, coverage)

    def _families(self, latest: _Latest | None) -> tuple[list[Metric], float | None]:
        with self._lock:
            built, families, coverage = self._built
            if latest is not None and built is not latest:
                try:
                    families, coverage = sample_families(latest, self.options)
                except Exception as exc:  # bad data in one sample: serve health, log, try again with the next one
                    self._errors += 1
                    self.log(f"metrics: cannot export the sample: {type(exc).__name__}: {exc}")
                    families, coverage = [], None
                self._built = (latest, families, coverage)
            return families, coverage

    def _health(self, state: _State, coverage: float | None) -> Iterator[Metric]:
        p = PREFIX + "collector_"
        counters = {
            "samples": ("Samples taken.", state.samples),
            "overruns": ("Samples that took longer than the interval.", state.overruns),
            "skipped_slots": ("Sampling slots skipped after overruns.", state.skipped),
            "failed_samples": ("Samples that could not be taken or written (logged and skipped).", state.failures),
            "export_errors": ("Samples the endpoint could not turn into metrics.", self._errors),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(p + name, doc, value=value)
        yield GaugeMetricFamily(p + "interval_seconds", "Seconds between two samples.", value=self.interval_s)
        latest = state.latest
        if latest is None:
            return
        ts = latest.ts_ns / 1e9
        yield GaugeMetricFamily(p + "last_sample_timestamp_seconds", "When the latest sample was taken.", value=ts)
        yield GaugeMetricFamily(
            p + "last_sample_age_seconds", "Seconds since the latest sample.", value=time.time() - ts
        )
        if latest.elapsed_s is not None:
            yield GaugeMetricFamily(
                p + "last_sample_duration_seconds", "Seconds the latest sample took.", value=latest.elapsed_s
            )
        if coverage is not None:
            yield GaugeMetricFamily(
                p + "smaps_coverage_ratio",
                "Share of the processes holding memory (RSS > 0) whose PSS/USS/swap are known.",
                value=coverage,
            )

    # ------------------------------------------------------------------------------- HTTP endpoint

    def serve(self) -> int:
        """Start the HTTP endpoint on options.host:options.port (daemon threads), log its URL -> the bound port.

        MetricsError when the address cannot be bound (in use, not local, bad host)."""
        host, port = self.options.host, self.options.port
        where = f"[{host}]" if ":" in host else host
        try:
            self._server = start_http_server(port, addr=host, registry=self.registry)
        except (OSError, ValueError) as exc:
            raise MetricsError(
                f"cannot serve metrics on {where}:{port}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        port = int(self._server[0].server_address[1])  # type: ignore[attr-defined]
        loopback = host == "localhost" or host.startswith("127.") or host == "::1"
        note = "" if loopback else " (not loopback: whoever reaches it reads process names, users and cgroups)"
        self.log(f"metrics: serving http://{where}:{port}/metrics{note}")
        return port

    def close(self) -> None:
        """Stop the HTTP endpoint (if started) and wait for its thread."""
        server, self._server = self._server, None
        if server is not None:
            httpd, thread = server
            httpd.shutdown()  # type: ignore[attr-defined]
            httpd.server_close()  # type: ignore[attr-defined]
            thread.join(5)


def sample_families(latest: _Latest, options: MetricsOptions) -> tuple[list[Metric], float | None]:
    """One sample -> (metric families: system, groups, top processes and subtrees, ranking; smaps coverage or None)."""
    out: list[Metric] = list(system_families(latest.meminfo))
    df = _frame(latest.procs)
    holds = df["rss_bytes"].to_numpy() > 0
    known = df["pss_bytes"].notna().to_numpy()
    coverage = float(known[holds].mean()) if holds.any() else None
    ranking: Ranking = "pss" if coverage is not None and coverage >= PSS_COVERAGE else "rss"
    out.append(
        InfoMetricFamily(
            PREFIX + "ranking",
            "The metric that ranks the top processes, subtrees and groups: pss when known for nearly every process.",
            value={"metric": ranking},
        )
    )
    out.extend(group_families(df, options, ranking))
    out.extend(top_families(df, options.top, ranking))
    return out, coverage


def system_families(meminfo: dict[str, int]) -> Iterator[Metric]:
    """/proc/meminfo in bytes -> the SYSTEM_FAMILIES gauges whose inputs are present (a missing one is left out)."""
    m = meminfo.get
    total, avail, swap_total, swap_free = m("MemTotal"), m("MemAvailable"), m("SwapTotal"), m("SwapFree")
    cached = None if m("Cached") is None else m("Buffers", 0) + m("Cached", 0) + m("SReclaimable", 0)
    values = {
        "memory_total_bytes": total,
        "memory_used_bytes": None if total is None or avail is None else total - avail,
        "memory_available_bytes": avail,
        "memory_cached_bytes": cached,
        "swap_total_bytes": swap_total,
        "swap_used_bytes": None if swap_total is None or swap_free is None else swap_total - swap_free,
    }
    for name, value in values.items():
        if value is not None:
            yield GaugeMetricFamily(PREFIX + name, SYSTEM_FAMILIES[name], value=value, unit="bytes")


def _frame(procs: dict[str, list]) -> pd.DataFrame:
    """Sample columns -> one-snapshot frame: snap, pid, ppid, start_time (int ns), name, user, cgroup, metrics."""
    n = len(procs["pid"])
    df = pd.DataFrame(
        {
            "snap": np.zeros(n, np.int32),
            "pid": np.asarray(procs["pid"], dtype=np.int64),
            "ppid": np.asarray(procs["ppid"], dtype=np.int64),
            "start_time": [int(getattr(t, "value", t) or 0) for t in procs["start_time"]],
            "name": pd.array(procs["name"], dtype="string"),
            "user": pd.array(procs.get("user", [None] * n), dtype="string"),
            "cgroup": pd.array(procs.get("cgroup", [None] * n), dtype="string"),
            "rss_bytes": np.asarray(procs["rss_bytes"], dtype=np.int64),
        }
    )
    for col in ("pss_bytes", "uss_bytes", "swap_bytes"):
        df[col] = pd.array(procs.get(col, [None] * n), dtype="Int64")
    return df


def _gauges(kind: str, what: str, labels: list[str]) -> dict[str, GaugeMetricFamily]:
    """metric -> empty gauge family pmi_<kind>_<metric>_bytes, plus 'processes' -> pmi_<kind>_processes."""
    out = {
        m: GaugeMetricFamily(
            f"{PREFIX}{kind}_{m}_bytes", f"{what}: {schema.METRIC_HELP[m]}", labels=labels, unit="bytes"
        )
        for m in METRICS
    }
    out["processes"] = GaugeMetricFamily(f"{PREFIX}{kind}_processes", f"{what}: processes.", labels=labels)
    return out


def _add(families: dict[str, GaugeMetricFamily], labels: list[str], values: dict[str, object]) -> None:
    """Add one series per known value (null -> left out, never 0)."""
    for key, value in values.items():
        if key in families and value is not None and not pd.isna(value):
            families[key].add_metric(labels, float(value))


def group_families(df: pd.DataFrame, options: MetricsOptions, ranking: Ranking) -> Iterator[Metric]:
    """Frame -> pmi_group_{rss,pss,uss,swap}_bytes and pmi_group_processes {by, group}: per grouping, the
    `options.groups` groups largest by `ranking` keep their label, the rest sum into "(other)"; unknown keys form
    "(unknown)". PSS/USS/swap are sums of the known values (left out when none is known)."""
    if not options.group_by:
        return
    fam = _gauges("group", "Sum over the group's processes", ["by", "group"])
    for by in options.group_by:
        keys = np.array([k if isinstance(k, str) and k else UNKNOWN_GROUP for k in df[by].tolist()], dtype=object)
        codes, uniques = pd.factorize(keys)
        n = len(uniques)
        count = np.bincount(codes, minlength=n)
        sums = {m: _known_sums(codes, n, df[schema.MEMORY_METRICS[m]]) for m in METRICS}
        total, known = sums[ranking]
        named = np.flatnonzero(uniques != UNKNOWN_GROUP)
        order = named[np.argsort(-np.where(known[named] > 0, total[named], -1.0), kind="stable")]
        rows = [(str(uniques[i]), [i]) for i in order[: options.groups]]
        rows += [(UNKNOWN_GROUP, list(np.flatnonzero(uniques == UNKNOWN_GROUP)))]
        rows += [(OTHER_GROUP, list(order[options.groups :]))]
        for label, idx in rows:
            if idx:
                values = {m: t[idx].sum() if k[idx].sum() > 0 else None for m, (t, k) in sums.items()}
                _add(fam, [by, label], {**values, "processes": count[idx].sum()})
    yield from fam.values()


def _known_sums(codes: np.ndarray, n: int, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Group codes, group count, nullable values -> (per-group sum of the known values, per-group known count)."""
    known = values.notna().to_numpy()
    return (
        np.bincount(codes, weights=values.to_numpy(dtype=np.float64, na_value=0.0), minlength=n),
        np.bincount(codes, weights=known, minlength=n),
    )


def _floats(values: pd.Series) -> np.ndarray:
    """Nullable column -> float64 array, NaN where unknown."""
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _largest(values: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Values (NaN = unknown) and candidate row positions -> the k rows with the largest values, unknown last."""
    order = np.argsort(-np.nan_to_num(values[rows], nan=-1.0), kind="stable")
    return rows[order[:k]]


def top_families(df: pd.DataFrame, top: int, ranking: Ranking) -> Iterator[Metric]:
    """Frame -> pmi_process_<m>_bytes for the `top` processes largest by `ranking`, and pmi_subtree_<m>_bytes and
    pmi_subtree_processes for the `top` largest subtrees (memlib.tree sums: a process and everything below it; roots
    such as init and kthreadd, whose subtree is everything, and leaves are left out)."""
    if top <= 0 or df.empty:
        return
    users, cgroups = df["user"].tolist(), df["cgroup"].tolist()
    pids, starts, names = df["pid"].tolist(), df["start_time"].tolist(), df["name"].tolist()

    def labels(i: int) -> list[str]:  # pid, start (s since the epoch, 10 ms ticks), name, user, cgroup ('' unknown)
        user, cgroup = users[i], cgroups[i]
        return [str(pids[i]), f"{starts[i] / 1e9:.2f}", str(names[i]), "" if pd.isna(user) else str(user),
                "" if pd.isna(cgroup) else str(cgroup)]  # fmt: skip

    own = {m: _floats(df[schema.MEMORY_METRICS[m]]) for m in METRICS}
    proc = _gauges("process", "The process's own memory", PROCESS_LABELS)
    proc.pop("processes")
    for i in _largest(own[ranking], np.arange(len(df)), top):
        _add(proc, labels(i), {m: v[i] for m, v in own.items()})
    yield from proc.values()

    tree = derive_trees(df)
    size = tree["descendants"].to_numpy() + 1
    subtree = {m: _floats(tree[schema.subtree_column(schema.MEMORY_METRICS[m])]) for m in METRICS}
    inner = np.flatnonzero((tree["level"].to_numpy() >= 1) & (size > 1))
    sub = _gauges("subtree", "The process and every process below it", PROCESS_LABELS)
    for i in _largest(subtree[ranking], inner, top):
        _add(sub, labels(i), {**{m: v[i] for m, v in subtree.items()}, "processes": size[i]})
    yield from sub.values()
