"""The store: a Hive-partitioned Parquet dataset of every process's memory, plus the active segment being written.

Format and layout in docs/store.md; every column in ``store.schema``. Writer (``SegmentWriter``, ``recover``) for the
collector; closed-file listing, verification and the active segment's reader for memlib.source; retention; migration
of the previous layout. Pure file I/O: no /proc, no analysis code (tree columns come from a ``derive`` callable).
"""

from store.current import CurrentRead, read_current
from store.files import ClosedFile, CurrentFile, list_closed, list_current, safe_host
from store.retention import apply_retention, store_bytes
from store.schema import SCHEMA_VERSION, TABLES, Table
from store.segment import Derive, SegmentTables, build_tables, check, publish, ts_range, verify
from store.writer import SegmentWriter, compact_current, recover

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "ClosedFile",
    "CurrentFile",
    "CurrentRead",
    "Derive",
    "SegmentTables",
    "SegmentWriter",
    "Table",
    "apply_retention",
    "build_tables",
    "check",
    "compact_current",
    "list_closed",
    "list_current",
    "publish",
    "read_current",
    "recover",
    "safe_host",
    "store_bytes",
    "ts_range",
    "verify",
]
