"""cgroup rollups (issue 5, item 3): the cgroup tree at a moment and cgroup totals over time, with readable names.

Each process belongs to one cgroup (PROCS ``cgroup``: the v2 path, or the v1 memory controller path). A cgroup's
``own`` totals sum the processes directly in it; its ``tree`` totals add every cgroup below it (so ``/`` holds every
process that has a cgroup). Every ancestor of an occupied cgroup is listed, even without processes of its own.
PSS/USS/swap sums cover the known values only and are null when no member is known. Processes without a recorded
cgroup are left out (``unplaced_processes`` in ``cgroup_tree``'s attrs counts them).

The kernel's own figure for the cgroup (``memory.current`` on v2, ``memory.usage_in_bytes`` on v1: page cache and
kernel memory included, so usually above the process sums) comes from a CGROUP_MEM frame (``ts, host, cgroup,
memory_current_bytes``: ``memlib.query.cgroup_mem``) when one was recorded; null otherwise.

Readable names (``label``): ``/`` -> ``root``; ``foo.slice`` -> ``foo slice``; ``nginx.service`` -> ``nginx
service``; ``session-3.scope`` -> ``session-3 scope``; containers by runtime and short id: ``docker-<id>.scope``
and ``/docker/<id>`` -> ``docker <12 hex>``, ``cri-containerd-<id>.scope`` -> ``containerd <12>``,
``crio-<id>.scope`` -> ``cri-o <12>``, ``libpod-<id>.scope`` -> ``podman <12>``; kubepods ``...-pod<uid>.slice`` ->
``pod <first 8 of uid>``; systemd escapes (``\\x2d``) decoded. ``kind`` is root, slice, service, scope, container,
pod or cgroup.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from memlib import schema
from memlib.tree import TreeIndex

CGROUP_MEM_COLUMNS = schema.CGROUP_MEM_COLUMNS  # ts, host, cgroup, memory_current_bytes (query.cgroup_mem)
CGROUP_TREE_COLUMNS = [
    "cgroup", "parent", "depth", "label", "kind", "processes", "rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes",
    "tree_processes", "tree_rss_bytes", "tree_pss_bytes", "tree_uss_bytes", "tree_swap_bytes", "memory_current_bytes",
]  # fmt: skip
CGROUP_TIMELINE_COLUMNS = [
    "ts", "snap", "cgroup", "label", "processes", "rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes",
    "memory_current_bytes",
]  # fmt: skip
_METRICS = ["rss_bytes", "pss_bytes", "uss_bytes", "swap_bytes"]

_CONTAINER = re.compile(
    r"^(?:(?P<rt>docker|cri-containerd|crio|libpod)-(?P<id>[0-9a-f]{12,64})\.scope"
    r"|(?P<id2>[0-9a-f]{64}))$"
)
_RUNTIME = {"docker": "docker", "cri-containerd": "containerd", "crio": "cri-o", "libpod": "podman"}
_POD = re.compile(r"pod(?P<uid>[0-9a-f]{8})[0-9a-f_-]*\.slice$")
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def parent_of(path: str) -> str | None:
    """'/a/b' -> '/a', '/a' -> '/', '/' -> None."""
    if path in ("/", ""):
        return None
    head = path.rstrip("/").rsplit("/", 1)[0]
    return head or "/"


def readable(path: str) -> tuple[str, str]:
    """cgroup path -> (label, kind); see the module docstring for the rules."""
    if path in ("/", ""):
        return "root", "root"
    last = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), path.rstrip("/").rsplit("/", 1)[-1])
    m = _CONTAINER.match(last)
    if m:
        if m.group("id2"):
            above = path.rstrip("/").rsplit("/", 2)
            runtime = above[-2] if len(above) >= 3 and above[-2] in ("docker", "lxc", "kubepods") else "container"
            return f"{runtime} {m.group('id2')[:12]}", "container"
        return f"{_RUNTIME[m.group('rt')]} {m.group('id')[:12]}", "container"
    pod = _POD.search(last)
    if pod and last.startswith("kubepods"):
        return f"pod {pod.group('uid')}", "pod"
    for suffix in ("slice", "service", "scope"):
        if last.endswith("." + suffix):
            return f"{last[: -len(suffix) - 1]} {suffix}", suffix
    return last, "cgroup"


def _with_ancestors(paths: list[str]) -> list[str]:
    """Occupied cgroup paths -> those paths and all their ancestors, sorted (parents before children)."""
    seen: set[str] = set()
    for p in paths:  # one pass per distinct cgroup (tens to hundreds), never per process
        while p is not None and p not in seen:
            seen.add(p)
            p = parent_of(p)
    return sorted(seen)


def _snap_rows(procs: pd.DataFrame, snap: int, index: TreeIndex | None) -> pd.DataFrame:
    if index is not None:
        return procs.iloc[np.sort(index.rows_of_snap(snap))]
    return procs[procs["snap"].to_numpy() == snap]


def _sums(codes: np.ndarray, frame: pd.DataFrame, size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per code: (sum of known values, number known) for each memory metric column present."""
    out = {}
    for col in _METRICS:
        if col in frame.columns:
            v = frame[col]
            known = v.notna().to_numpy()
            data = v.to_numpy(dtype=np.float64, na_value=0.0)
            total = np.rint(np.bincount(codes, weights=data, minlength=size)).astype(np.int64)
            out[col] = (total, np.bincount(codes, weights=known, minlength=size).astype(np.int64))
        else:
            out[col] = (np.zeros(size, np.int64), np.zeros(size, np.int64))
    return out


def _ancestor_matrix(nodes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted node paths -> (node index, ancestor-or-self index) pairs as two arrays."""
    pos = {p: i for i, p in enumerate(nodes)}
    child, anc = [], []
    for i, p in enumerate(nodes):
        q: str | None = p
        while q is not None:
            child.append(i)
            anc.append(pos[q])
            q = parent_of(q)
    return np.asarray(child, np.int64), np.asarray(anc, np.int64)


def _memory_at(cgroup_mem: pd.DataFrame | None, ts: pd.Timestamp | None, host: str | None) -> pd.Series:
    """cgroup -> memory_current_bytes recorded at exactly `ts` (and host), as an Int64 series (empty if none)."""
    if cgroup_mem is None or cgroup_mem.empty or ts is None:
        return pd.Series(dtype="Int64")
    hit = (cgroup_mem["ts"] == ts).to_numpy(dtype=bool)
    if host is not None and "host" in cgroup_mem.columns:
        hit = hit & (cgroup_mem["host"].astype(str).to_numpy() == host)
    rows = cgroup_mem[hit].drop_duplicates("cgroup", keep="last")
    return pd.Series(
        rows["memory_current_bytes"].astype("Int64").to_numpy(), index=rows["cgroup"].astype(str).to_numpy()
    )


def cgroup_tree(
    procs: pd.DataFrame, snap: int, cgroup_mem: pd.DataFrame | None = None, index: TreeIndex | None = None
) -> pd.DataFrame:
    """PROCS frame, snapshot (+ optional CGROUP_MEM frame) -> CGROUP_TREE_COLUMNS, one row per cgroup, path order.

    ``processes``/``<m>_bytes``: processes directly in the cgroup; ``tree_*``: the cgroup and all below it;
    ``depth`` 0 for ``/``; ``parent`` null for ``/``; ``memory_current_bytes`` from cgroup_mem at that snapshot's
    time. ``attrs["unplaced_processes"]``: processes of the snapshot with no recorded cgroup.
    """
    rows = _snap_rows(procs, snap, index)
    placed = rows[rows["cgroup"].notna().to_numpy()] if "cgroup" in rows.columns else rows.iloc[0:0]
    cg = placed["cgroup"].astype(str)
    occupied = pd.unique(cg.to_numpy())
    nodes = _with_ancestors(list(occupied))
    pos = pd.Index(nodes)
    codes = pos.get_indexer(cg.to_numpy()) if len(nodes) else np.zeros(0, np.int64)
    n = len(nodes)
    count = np.bincount(codes, minlength=n).astype(np.int64)
    own = _sums(codes, placed, n)
    child, anc = _ancestor_matrix(nodes)
    tree_count = np.bincount(anc, weights=count[child], minlength=n).astype(np.int64)
    labels = [readable(p) for p in nodes]
    out = pd.DataFrame(
        {
            "cgroup": pd.Series(nodes, dtype=object),
            "parent": pd.Series([parent_of(p) for p in nodes], dtype=object),
            "depth": pd.Series([0 if p == "/" else p.rstrip("/").count("/") for p in nodes], dtype="int16"),
            "label": pd.Series([lab for lab, _ in labels], dtype=object),
            "kind": pd.Categorical([k for _, k in labels]),
            "processes": count.astype(np.int32),
        }
    )
    for col in _METRICS:
        total, known = own[col]
        tree_total = np.rint(np.bincount(anc, weights=total[child], minlength=n)).astype(np.int64)
        tree_known = np.bincount(anc, weights=known[child], minlength=n)
        if col == "rss_bytes":
            out[col] = total
        else:
            out[col] = pd.arrays.IntegerArray(total, known == 0)
        out[f"tree_{col}"] = tree_total if col == "rss_bytes" else pd.arrays.IntegerArray(tree_total, tree_known == 0)
    out.insert(out.columns.get_loc("tree_rss_bytes"), "tree_processes", tree_count.astype(np.int32))
    ts = rows["ts"].iloc[0] if len(rows) else None
    host = str(rows["host"].iloc[0]) if len(rows) and "host" in rows.columns else None
    mem = _memory_at(cgroup_mem, ts, host)
    out["memory_current_bytes"] = mem.reindex(nodes).astype("Int64").to_numpy() if n else pd.array([], "Int64")
    out = out[CGROUP_TREE_COLUMNS]
    out.attrs["unplaced_processes"] = int(len(rows) - len(placed))
    return out


def cgroup_members(
    procs: pd.DataFrame, snap: int, cgroup: str, recursive: bool = True, index: TreeIndex | None = None
) -> pd.DataFrame:
    """PROCS frame, snapshot, cgroup path -> the processes in it (and below it when recursive), by RSS descending."""
    rows = _snap_rows(procs, snap, index)
    cg = rows["cgroup"].astype("string")
    hit = cg == cgroup
    if recursive:
        prefix = "/" if cgroup == "/" else cgroup.rstrip("/") + "/"
        hit = hit | cg.str.startswith(prefix)
    return rows[hit.fillna(False).to_numpy(dtype=bool)].sort_values("rss_bytes", ascending=False, kind="stable")


def _roll_up(nodes: list[str], ns: int, arrays: list[np.ndarray]) -> None:
    """Flat (snapshot x node) arrays (node fastest, `nodes` sorted) -> tree totals, in place: deepest nodes first,
    each level's columns are added into their parents' columns (one vector operation per depth level)."""
    pos = {p: i for i, p in enumerate(nodes)}
    parent = np.asarray([pos[q] if (q := parent_of(p)) is not None else -1 for p in nodes], np.int64)
    depth = np.asarray([0 if p == "/" else p.rstrip("/").count("/") for p in nodes], np.int64)
    n = len(nodes)
    for d in range(int(depth.max(initial=0)), 0, -1):
        cols = np.flatnonzero((depth == d) & (parent >= 0))
        if cols.size == 0:
            continue
        for a in arrays:
            by_node = a.reshape(ns, n).T  # a view: node rows
            np.add.at(by_node, parent[cols], by_node[cols])


def cgroup_timeline(
    procs: pd.DataFrame,
    cgroups: list[str] | None = None,
    rollup: bool = True,
    cgroup_mem: pd.DataFrame | None = None,
    weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """PROCS frame -> CGROUP_TIMELINE_COLUMNS: per snapshot and cgroup, process count and sums (tree totals when
    ``rollup``, else processes directly in it), plus memory_current_bytes when recorded. ``cgroups`` keeps only
    those paths (default: all). Sorted by snap, cgroup; rows only where the cgroup had processes. ``weights``: how
    many processes each row stands for (rows that are already per-cgroup sums), default 1."""
    has = procs["cgroup"].notna().to_numpy() if "cgroup" in procs.columns else np.zeros(len(procs), bool)
    placed = procs[has]
    if weights is not None:
        weights = np.asarray(weights, np.int64)[has]
    cat = (
        placed["cgroup"]
        if isinstance(placed["cgroup"].dtype, pd.CategoricalDtype)
        else placed["cgroup"].astype("category")
    )
    cat = cat.cat.remove_unused_categories()
    leaf_paths = [str(c) for c in cat.cat.categories]
    nodes = _with_ancestors(leaf_paths) if rollup else sorted(leaf_paths)
    n = max(len(nodes), 1)
    node_pos = pd.Index(nodes)
    leaf_node = node_pos.get_indexer(leaf_paths) if leaf_paths else np.zeros(0, np.int64)
    snap_values, snap_idx = np.unique(placed["snap"].to_numpy(dtype=np.int64), return_inverse=True)
    ns = snap_values.size
    key = snap_idx.astype(np.int64) * n + leaf_node[cat.cat.codes.to_numpy()]
    # direct sums per (snapshot, cgroup) first, then the small table is rolled up to the ancestors
    count = np.bincount(key, weights=weights, minlength=ns * n).astype(np.int64)
    own = _sums(key, placed, ns * n)
    if rollup and nodes:
        _roll_up(nodes, ns, [count, *(a for pair in own.values() for a in pair)])
    cell = np.flatnonzero(count > 0)
    s_of, g_of = cell // n, cell % n
    if cgroups is not None:
        wanted = np.isin(np.asarray(nodes, dtype=object)[g_of] if nodes else np.zeros(0, object), cgroups)
        cell, s_of, g_of = cell[wanted], s_of[wanted], g_of[wanted]
    ts_ns = np.zeros(ns, np.int64)
    if len(placed):
        ts_ns[snap_idx] = placed["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    label_codes, label_values = pd.factorize(pd.Series([readable(p)[0] for p in nodes], dtype=object))
    out = pd.DataFrame(
        {
            "ts": pd.to_datetime(ts_ns[s_of], utc=True).astype(schema.UTC_NS),
            "snap": snap_values[s_of].astype(np.int32),
            "cgroup": pd.Categorical.from_codes(g_of, categories=pd.Index(nodes, dtype=object)),
            "label": pd.Categorical.from_codes(label_codes[g_of], categories=pd.Index(label_values, dtype=object)),
            "processes": count[cell].astype(np.int32),
            "rss_bytes": own["rss_bytes"][0][cell],
        }
    )
    for col in ("pss_bytes", "uss_bytes", "swap_bytes"):
        total, known = own[col]
        out[col] = pd.arrays.IntegerArray(total[cell], known[cell] == 0)
    out["memory_current_bytes"] = pd.arrays.IntegerArray(np.zeros(len(out), np.int64), np.ones(len(out), bool))
    if cgroup_mem is not None and not cgroup_mem.empty and len(out):
        mem_node = pd.Index(nodes, dtype=object).get_indexer(cgroup_mem["cgroup"].astype(str).to_numpy())
        mem = pd.DataFrame(
            {
                "t": cgroup_mem["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64),
                "g": mem_node,
                "v": cgroup_mem["memory_current_bytes"].astype("Int64").array,
            }
        )
        mem = mem[mem["g"].to_numpy() >= 0].drop_duplicates(["t", "g"], keep="last")
        cells = pd.DataFrame({"t": ts_ns[s_of], "g": g_of.astype(np.int64)})
        out["memory_current_bytes"] = cells.merge(mem, on=["t", "g"], how="left")["v"].astype("Int64").array
    return out[CGROUP_TIMELINE_COLUMNS].reset_index(drop=True)


def rollup_sums(
    per: pd.DataFrame,
    rollup: bool = True,
    cgroups: list[str] | None = None,
    cgroup_mem: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-(ts, cgroup) sums (ts, cgroup, n, rss/pss/uss/swap_bytes; null = none known) -> CGROUP_TIMELINE_COLUMNS
    without snap: tree totals when ``rollup`` (each cgroup plus every cgroup below it), ``cgroups`` keeps only those
    paths; memory_current_bytes from cgroup_mem at the same ts. Sorted by ts, cgroup."""
    frame = pd.DataFrame(
        {
            "snap": pd.factorize(per["ts"], sort=True)[0].astype(np.int64),
            "ts": per["ts"],
            "cgroup": per["cgroup"].astype("category"),
        }
    )
    for col in _METRICS:
        frame[col] = per[col].astype("Int64")
    weights = per["n"].to_numpy(np.int64)
    out = cgroup_timeline(frame, cgroups, rollup, cgroup_mem, weights=weights)
    return out.drop(columns=["snap"])
