"""AppTest: the cgroups page — tree with own and rolled-up totals and memory.current, selection, members."""

from __future__ import annotations

from pathlib import Path

import pytest
from native_crafted import NGINX, PG, write_native_crafted

from memlib import query as q
from memlib import source

SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "dumps"


@pytest.fixture
def native_dumps(tmp_path: Path) -> Path:
    """The crafted native recording with PSS and cgroups (see native_crafted.py)."""
    return write_native_crafted(tmp_path / "dumps")


def test_tree_totals_and_memory_current(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/cgroups.py")
    assert not at.exception
    tree = at.main.dataframe[0].value.set_index("path")
    assert tree.loc["/", "tree"] == 10 + 20 + 50 + 100 + 1.0  # every placed process at the latest moment
    assert tree.loc["/", "own"] == 10.0
    assert tree.loc["/system.slice", "tree"] == 170.0 and tree.loc["/system.slice", "processes"] == 0
    assert tree.loc[NGINX, "current"] == 80.0 and tree.loc[NGINX, "tree"] == 70.0
    assert tree.loc[NGINX, "cgroup"].strip() == "nginx service"
    assert tree["current"].isna().sum() == len(tree) - 1  # only nginx's memory.current was recorded
    # nothing selected: the root's processes, biggest first
    assert at.main.dataframe[-1].value["pid"].tolist() == [20, 11, 10, 1, 31]


def test_selected_cgroup_lists_its_processes_with_the_metric(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/cgroups.py", cgroup="/system.slice", metric="pss")
    assert not at.exception
    members = at.main.dataframe[-1].value
    assert members["pid"].tolist() == [11, 10, 20]  # by PSS, the unknown one last
    assert members["own"].iloc[:2].tolist() == [25.0, 10.0] and members["own"].isna().iloc[2]
    tree = at.main.dataframe[0].value.set_index("path")
    assert tree.loc[PG, "tree"] == 0.0 or tree.loc[PG, "tree"] != tree.loc[PG, "tree"]  # unknown PSS: no band
    assert tree.loc["/system.slice", "tree"] == 35.0


def test_unknown_cgroup_in_the_url_falls_back_to_the_root(run_page, native_dumps: Path) -> None:
    at = run_page(native_dumps, "pages/cgroups.py", cgroup="/nowhere.slice")
    assert not at.exception
    assert any("has no processes at this moment" in c.value for c in at.caption)
    assert len(at.main.dataframe[-1].value) == 5


def test_sample_and_seed_recordings(run_page, crafted_dumps: Path) -> None:
    at = run_page(SAMPLE, "pages/cgroups.py")
    assert not at.exception
    rec = source.open_recording(SAMPLE)
    tree_df = q.cgroup_tree(rec, q.resolve(rec))
    paths = at.main.dataframe[0].value["path"].tolist()
    assert paths == tree_df["cgroup"].astype(str).tolist() and paths[0] == "/" and len(paths) == 3  # / > VM's > demo's
    at = run_page(crafted_dumps, "pages/cgroups.py")
    assert not at.exception
    assert any("No cgroup was recorded" in i.value for i in at.info)
