"""Every column the store keeps on disk: name, Arrow type, unit (docs/store.md says where the files live).

Units: memory in **bytes**, times as UTC ``timestamp[us, UTC]`` (microseconds: Spark, DuckDB, Polars and Trino all
read them as is; sample and start times carry no finer precision). Unknown values are null, never 0.

Tables (one Parquet file per table per closed segment, under ``<table>/host=<host>/date=<YYYY-MM-DD>/``):

PROCS (one row per process per sample, sorted by pid, start_time, ts):
    ts          timestamp[us, UTC]  sample time; (host, ts) is one snapshot
    boot_id     string              /proc/sys/kernel/random/boot_id ("" for seed dumps)
    pid         int32
    ppid        int32               0 for roots such as init / kthreadd
    start_time  timestamp[us, UTC]  boot time + /proc/<pid>/stat field 22; for seed dumps: first time seen
    uid         int64 (null)        real uid (null for seed dumps)
    user        string              user name (uid as text when unresolvable)
    state       string (null)       R, S, D, Z, ... (null for seed dumps)
    name        string              comm (<= 15 chars); argv[0] basename for seed dumps
    cmdline     string              scrubbed command line, argv joined by " " (kernel threads: "[comm]")
    rss_bytes   int64
    vsz_bytes   int64
    threads     int64 (null)
    cgroup      string (null)       cgroup v2 path ("/system.slice/x.service"), v1 memory path otherwise
    pss_bytes   int64 (null)        from smaps_rollup when readable
    uss_bytes   int64 (null)        Private_Clean + Private_Dirty
    swap_bytes  int64 (null)        Swap
    smaps_ts    timestamp[us, UTC] (null)  when the smaps values were read (they may be older than ts)
  tree columns, for the row's own snapshot (computed by memlib.tree when the segment closes):
    level              int16               0 = root (ppid 0, parent absent from the snapshot, or on a cycle)
    parent_start_time  timestamp[us, UTC] (null)  with ppid: the parent's identity; null for a root
    descendants        int32               processes below it (not counting itself)
    subtree_rss_bytes  int64               own + every descendant's value at that moment
    subtree_pss_bytes, subtree_uss_bytes, subtree_swap_bytes   int64 (null)  sum over the members whose value is
                                           known; null when no member's value is known (a lower bound otherwise)

SYSTEM (one row per sample, sorted by ts): ts, boot_id, then one column per /proc/meminfo field (MEMINFO_COLUMNS:
    ``mem_total_bytes`` ... in bytes; ``huge_pages_total`` ... counts), int64, null when the kernel lacks the field;
    then the collector's own figures (COLLECTOR_FIELDS: smaps coverage, samples skipped on a full disk), counts;
    then the sample's process sums (PROC_SUM_COLUMNS: processes, procs_rss_bytes, procs_pss_bytes,
    pss_known_processes, pss_known_rss_bytes), int64, written when the segment closes so a system series never
    reads process rows (null in older files and in active segments: readers sum the process rows there).
    A field this list does not know is kept under ``meminfo_column(name)``.

CGROUPS (one row per sample and cgroup whose memory use was readable, sorted by cgroup, ts):
    ts, boot_id, cgroup string, memory_current_bytes int64 (memory.current (v2) / memory.usage_in_bytes (v1)).

Partition columns ``host`` (string) and ``date`` (UTC date of ts) come from the directory names, not the files.
"""

from __future__ import annotations

import re
from typing import Literal

import pyarrow as pa

SCHEMA_VERSION = 3  # written into every Parquet file (pmi_schema_version); readers name anything newer and skip it
FOOTER_DIGEST_SINCE = 3  # files of this version on carry pmi_footer_crc32 (version 2: the data digest only)
CURRENT_VERSION = 1  # version in the header of an active segment (.current); its frame format did not change

TS = pa.timestamp("us", tz="UTC")
TS_NS = pa.timestamp("ns", tz="UTC")  # what .current frames hold

Table = Literal["procs", "system", "cgroups"]
TABLES: tuple[Table, ...] = ("procs", "system", "cgroups")

# the columns a writer receives per sample (besides ts), with the Arrow types of a .current frame (times in ns)
SAMPLE_TYPES: dict[str, pa.DataType] = {
    "pid": pa.int32(),
    "ppid": pa.int32(),
    "start_time": TS_NS,
    "uid": pa.int64(),
    "user": pa.string(),
    "state": pa.string(),
    "name": pa.string(),
    "cmdline": pa.string(),
    "rss_bytes": pa.int64(),
    "vsz_bytes": pa.int64(),
    "threads": pa.int64(),
    "cgroup": pa.string(),
    "pss_bytes": pa.int64(),
    "uss_bytes": pa.int64(),
    "swap_bytes": pa.int64(),
    "smaps_ts": TS_NS,
}
SAMPLE_COLUMNS: list[str] = list(SAMPLE_TYPES)

METRIC_COLUMNS: list[str] = ["rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes"]

TREE_TYPES: dict[str, pa.DataType] = {
    "level": pa.int16(),
    "parent_start_time": TS,
    "descendants": pa.int32(),
    "subtree_rss_bytes": pa.int64(),
    "subtree_pss_bytes": pa.int64(),
    "subtree_uss_bytes": pa.int64(),
    "subtree_swap_bytes": pa.int64(),
}
TREE_COLUMNS: list[str] = list(TREE_TYPES)
TREE_SCHEMA = pa.schema(list(TREE_TYPES.items()))

STRING_COLUMNS = ["boot_id", "user", "state", "name", "cmdline", "cgroup"]

PROCS_SCHEMA = pa.schema(
    [
        ("ts", TS),
        ("boot_id", pa.string()),
        *((c, TS if t == TS_NS else t) for c, t in SAMPLE_TYPES.items()),
        *TREE_TYPES.items(),
    ]
)
PROCS_COLUMNS: list[str] = PROCS_SCHEMA.names

# /proc/meminfo field -> stored column (bytes unless in MEMINFO_COUNT_FIELDS), in /proc/meminfo order
_MEMINFO_NAMES = {
    "MemTotal": "mem_total", "MemFree": "mem_free", "MemAvailable": "mem_available", "Buffers": "buffers",
    "Cached": "cached", "SwapCached": "swap_cached", "Active": "active", "Inactive": "inactive",
    "Active(anon)": "active_anon", "Inactive(anon)": "inactive_anon", "Active(file)": "active_file",
    "Inactive(file)": "inactive_file", "Unevictable": "unevictable", "Mlocked": "mlocked", "SwapTotal": "swap_total",
    "SwapFree": "swap_free", "Zswap": "zswap", "Zswapped": "zswapped", "Dirty": "dirty", "Writeback": "writeback",
    "AnonPages": "anon_pages", "Mapped": "mapped", "Shmem": "shmem", "KReclaimable": "kreclaimable", "Slab": "slab",
    "SReclaimable": "sreclaimable", "SUnreclaim": "sunreclaim", "KernelStack": "kernel_stack",
    "PageTables": "page_tables", "SecPageTables": "sec_page_tables", "NFS_Unstable": "nfs_unstable",
    "Bounce": "bounce", "WritebackTmp": "writeback_tmp", "CommitLimit": "commit_limit",
    "Committed_AS": "committed_as", "VmallocTotal": "vmalloc_total", "VmallocUsed": "vmalloc_used",
    "VmallocChunk": "vmalloc_chunk", "Percpu": "percpu", "HardwareCorrupted": "hardware_corrupted",
    "AnonHugePages": "anon_huge_pages", "ShmemHugePages": "shmem_huge_pages", "ShmemPmdMapped": "shmem_pmd_mapped",
    "FileHugePages": "file_huge_pages", "FilePmdMapped": "file_pmd_mapped", "CmaTotal": "cma_total",
    "CmaFree": "cma_free", "Balloon": "balloon", "Unaccepted": "unaccepted", "HugePages_Total": "huge_pages_total",
    "HugePages_Free": "huge_pages_free", "HugePages_Rsvd": "huge_pages_rsvd", "HugePages_Surp": "huge_pages_surp",
    "Hugepagesize": "hugepagesize", "Hugetlb": "hugetlb", "DirectMap4k": "direct_map_4k",
    "DirectMap2M": "direct_map_2m", "DirectMap4M": "direct_map_4m", "DirectMap1G": "direct_map_1g",
}  # fmt: skip
MEMINFO_COUNT_FIELDS = frozenset({"HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"})


# fields the collector adds to each sample's system row about itself (counts, not bytes; absent when not measured)
COLLECTOR_FIELDS: dict[str, str] = {
    "smaps_every_ms": "smaps_every_ms",  # the promised age of PSS/USS/swap values, ms
    "smaps_eligible": "smaps_eligible",  # processes alive that long (their smaps_rollup is read)
    "smaps_stale": "smaps_stale",  # of those, how many lack values that fresh
    "smaps_unreadable": "smaps_unreadable",  # of the stale, how many failed their last read
    "smaps_cpu_us": "smaps_cpu_us",  # CPU spent reading smaps_rollup in that sample, µs
    "CollectorSkippedSamples": "collector_skipped_samples",  # samples skipped (full disk) just before this one
}


# the sample's process sums, written when its segment closes (null in files written before them, and in an active
# segment: readers sum the process rows there)
PROC_SUM_COLUMNS = (
    "processes",  # process rows of the sample
    "procs_rss_bytes",  # Σ rss_bytes (null without process rows)
    "procs_pss_bytes",  # Σ pss_bytes over the processes whose PSS is known (null when none is)
    "pss_known_processes",  # how many processes have a PSS
    "pss_known_rss_bytes",  # Σ rss_bytes of those (null when none)
)


def meminfo_column(field: str) -> str:
    """A /proc/meminfo field name -> its stored column ('MemTotal' -> 'mem_total_bytes', 'HugePages_Free' ->
    'huge_pages_free'; collector fields as COLLECTOR_FIELDS says); other fields get lower snake case + '_bytes'."""
    if field in COLLECTOR_FIELDS:
        return COLLECTOR_FIELDS[field]
    base = _MEMINFO_NAMES.get(field) or re.sub(r"[^a-z0-9]+", "_", field.lower()).strip("_") or "field"
    return base if field in MEMINFO_COUNT_FIELDS else f"{base}_bytes"


MEMINFO_COLUMNS: dict[str, str] = {f: meminfo_column(f) for f in _MEMINFO_NAMES}  # kernel name -> column
MEMINFO_FIELDS: dict[str, str] = {c: f for f, c in MEMINFO_COLUMNS.items()}  # column -> kernel name
SYSTEM_SCHEMA = pa.schema(
    [
        ("ts", TS),
        ("boot_id", pa.string()),
        *((c, pa.int64()) for c in MEMINFO_COLUMNS.values()),
        *((c, pa.int64()) for c in COLLECTOR_FIELDS.values()),
        *((c, pa.int64()) for c in PROC_SUM_COLUMNS),
    ]
)

CGROUPS_SCHEMA = pa.schema(
    [("ts", TS), ("boot_id", pa.string()), ("cgroup", pa.string()), ("memory_current_bytes", pa.int64())]
)
CGROUP_MEM_FIELD_PREFIX = "cgroup_mem:"  # in a .current system frame: field name of a cgroup's memory use + path

SCHEMAS: dict[Table, pa.Schema] = {"procs": PROCS_SCHEMA, "system": SYSTEM_SCHEMA, "cgroups": CGROUPS_SCHEMA}
PARTITION_TYPES: dict[str, pa.DataType] = {"host": pa.string(), "date": pa.date32()}
