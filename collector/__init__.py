"""Collector: records every process's memory on a fixed schedule into the native dump store (the `store` package)."""
