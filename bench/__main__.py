"""`python -m bench [--quick] [--only NAME] [--out PATH] [--json PATH]`: run every bench/bench_*.py, write RESULTS.md.

Each module has ``run(quick: bool = False) -> list[dict]``; a row is {name, value (or median_s), unit, min, max,
repeats, target, ok, note}. The report starts with the machine (CPU, cores, RAM, kernel, Python, package versions,
process count, date), then one table per module, then every missed target spelled out. A module that raises is
reported as failed and the others still run. The full run writes bench/RESULTS.md; ``--quick`` (tiny sizes, for the
smoke test) prints the report and writes a file only when ``--out`` is given. A full run of some modules (``--only``)
keeps the other modules' sections of the existing report, each marked with the date of the run that measured it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "RESULTS.md"
PACKAGES = ["pandas", "numpy", "pyarrow", "psutil", "streamlit", "plotly"]


def discover() -> list[str]:
    """Module names bench.bench_* found next to this file, sorted."""
    return sorted(f"bench.{p.stem}" for p in BENCH_DIR.glob("bench_*.py"))


def _first(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def machine() -> dict[str, str]:
    """Facts about this machine and software, as label -> text."""
    mem = _first("/proc/meminfo", "MemTotal")
    try:
        procs = str(sum(n.isdigit() for n in os.listdir("/proc")))
    except OSError:
        procs = "unknown"
    versions = []
    for pkg in PACKAGES:
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{pkg} (not installed)")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "CPU": _first("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": str(os.cpu_count()),
        "RAM": f"{int(mem.split()[0]) / 1024**2:.1f} GiB" if mem else "unknown",
        "kernel": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "packages": ", ".join(versions),
        "processes at start": procs,
        "load average at start (1, 5, 15 min)": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def fmt(v: object) -> str:
    """A number with 3 significant digits (no exponent below 1e6); text as is; '–' for missing."""
    if v is None:
        return "–"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if math.isnan(v):
        return "–"
    if v == 0 or abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.01:
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
    return f"{v:.2g}"


def value_of(r: dict) -> tuple[object, str]:
    """(median value, unit) of a row that has `value` + `unit`, or `median_s` (seconds)."""
    if "value" in r:
        return r["value"], str(r.get("unit", ""))
    return r.get("median_s"), "s"


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def kept_sections(old: str, rerun: set[str]) -> dict[str, str]:
    """A previous report's text -> {module: its section's lines, marked with that run's date} for modules not in
    `rerun` (the previous run's own kept sections stay marked with their first date)."""
    date = next((ln.split(":", 1)[1].strip() for ln in old.splitlines() if ln.startswith("- **date**:")), "unknown")
    kept: dict[str, str] = {}
    for part in old.split("\n## ")[1:]:
        head, _, body = part.partition("\n")
        if not head.startswith("bench.") or head in rerun:
            continue
        body = body.strip("\n")
        if not body.startswith("Kept from the run of"):
            body = f"Kept from the run of {date} (not re-run in this one).\n\n" + body
        kept[head] = body
    return kept


def _missed_in(module: str, section: str) -> list[str]:
    """The missed-target lines of a kept section's table."""
    out = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("|") and len(cells) == 9 and cells[7] == "**NO**":
            out.append(f"{module}: {cells[0]} = {cells[1]} {cells[2]}, target {cells[6]} (kept from an earlier run)")
    return out


def render(
    info: dict[str, str], results: dict[str, list[dict] | str], quick: bool, kept: dict[str, str] | None = None
) -> str:
    """Machine facts + {module: rows or error text} (+ kept sections of an earlier report) -> the Markdown report."""
    out = ["# Benchmark results" + (" (quick run: tiny sizes, numbers not meaningful)" if quick else ""), ""]
    out.append("Written by `python -m bench`" + (" --quick" if quick else "") + ". Medians; spread is min–max.")
    out.append("")
    out += [f"- **{k}**: {v}" for k, v in info.items()]
    missed: list[str] = []
    kept = kept or {}
    for module in sorted({*results, *kept}):
        out += ["", f"## {module}", ""]
        if module not in results:
            out += kept[module].splitlines()
            missed += _missed_in(module, kept[module])
            continue
        rows = results[module]
        if isinstance(rows, str):
            out += ["**FAILED**:", "", "```", rows.strip(), "```"]
            missed.append(f"{module}: the module failed (see its section)")
            continue
        out.append("| measurement | median | unit | min | max | repeats | target | met | note |")
        out.append("| --- | ---: | --- | ---: | ---: | ---: | --- | --- | --- |")
        for r in rows:
            value, unit = value_of(r)
            ok = r.get("ok")
            met = "–" if ok is None else ("yes" if ok else "**NO**")
            cells = [r.get("name", "?"), fmt(value), unit, fmt(r.get("min")), fmt(r.get("max"))]
            cells += [fmt(r.get("repeats")), r.get("target") or "", met, r.get("note") or ""]
            out.append("| " + " | ".join(cell(c) for c in cells) + " |")
            if ok is False:
                missed.append(f"{module}: {r.get('name')} = {fmt(value)} {unit}, target {r.get('target')}")
    out += ["", "## Targets missed", ""]
    out += [f"- {m}" for m in missed] if missed else ["None: every target with a verdict was met."]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, write the report; exit status 1 when a module failed."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test); prints unless --out is given")
    p.add_argument("--only", action="append", default=[], help="run only bench_NAME (repeatable)")
    p.add_argument("--out", type=Path, help=f"report path (default {DEFAULT_OUT.name} for a full run)")
    p.add_argument("--json", type=Path, help="also write {module: rows} as JSON here")
    args = p.parse_args(argv)
    modules = discover()
    if args.only:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.only}
        unknown = wanted - {m.split(".")[1] for m in modules}
        if unknown:
            p.error(f"no such bench module: {', '.join(sorted(unknown))}")
        modules = [m for m in modules if m.split(".")[1] in wanted]
    info = machine()
    results: dict[str, list[dict] | str] = {}
    failed = False
    for name in modules:
        t = time.perf_counter()
        print(f"{name} ...", file=sys.stderr, flush=True)
        try:
            mod = importlib.import_module(name)
            results[name] = mod.run(quick=args.quick)
        except Exception:
            results[name] = traceback.format_exc()
            failed = True
        print(f"{name} done in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    info["load average at end (1, 5, 15 min)"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out = args.out or (None if args.quick else DEFAULT_OUT)
    kept = kept_sections(out.read_text(), set(results)) if args.only and out is not None and out.exists() else {}
    report = render(info, results, args.quick, kept)
    if out is None:
        print(report)
    else:
        out.write_text(report)
        print(f"wrote {out}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
