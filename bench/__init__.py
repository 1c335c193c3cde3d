"""Benchmarks: `python -m bench` runs every bench_*.py module and writes bench/RESULTS.md (see bench/__main__.py)."""
