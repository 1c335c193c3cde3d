"""Issue 8 item 4: hostile process names stay literal text on every page; the data source is only ever a folder the
server lists under its configured roots (`..`, absolute paths and escaping symlinks are rejected with a message)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, write_crafted_dumps

from memlib import query as q
from memlib.source import open_recording
from tests.store_samples import writer
from ui import data, source

HOSTILE = "![x](http://example.invalid/p) $x$ <b>bold</b>"
HOSTILE_CGROUP = f"/system.slice/{HOSTILE}.service"
HOSTILE_PID = 4242
MARKERS = ("example.invalid", "<b>bold", "$x$")
T0 = pd.Timestamp("2026-11-27 10:00:00", tz="UTC")
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))
# element types whose data may hold names: rendered as plain text / canvas cells (plotly is checked on its own)
TEXT_ONLY_TYPES = {"arrow_data_frame", "dataframe", "code", "text", "download_button", "plotly_chart", "table"}
SKIP_FIELDS = {"id", "form_id", "value", "default", "set_value", "raw_value", "raw_values", "url", "data"}
NOT_RENDERED = {"customdata": "customdata", "ids": "id", "parents": "parent"}  # trace key -> template var
PLAIN_OPTION_TYPES = {"selectbox", "multiselect"}  # options drawn as plain text (radio/pills options are Markdown)


def write_hostile_native(folder: Path, samples: int = 4, name: str = HOSTILE, cgroup: str = HOSTILE_CGROUP) -> Path:
    """A native recording (SegmentWriter, closed) with init, a process named `name` (pid 4242, the same text as
    user and in the command line, cgroup `cgroup`) and its child; returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    w = writer(folder, "vm", "boot-hostile")
    start = [int((T0 - pd.Timedelta(hours=1)).value), int(T0.value - 10**9), int(T0.value - 10**8)]
    for k in range(samples):
        rss = [10 << 20, (100 + 10 * k) << 20, 20 << 20]
        w.append(
            T0 + pd.Timedelta(seconds=5 * k),
            {
                "pid": [1, HOSTILE_PID, HOSTILE_PID + 1],
                "ppid": [0, 1, HOSTILE_PID],
                "start_time": start,
                "uid": [0, 1000, 1000],
                "user": ["root", name, "alice"],
                "state": ["S", "R", "S"],
                "name": ["systemd", name, "child"],
                "cmdline": ["/sbin/init", f"{name} --serve", f"child {name}"],
                "rss_bytes": rss,
                "vsz_bytes": [r * 3 for r in rss],
                "threads": [1, 4, 1],
                "cgroup": ["/init.scope", cgroup, cgroup],
                "pss_bytes": [r // 2 for r in rss],
                "uss_bytes": [r // 3 for r in rss],
                "swap_bytes": [0, 0, 0],
                "smaps_ts": [int((T0 + pd.Timedelta(seconds=5 * k)).value)] * 3,
            },
            {"MemTotal": 8 << 30, "MemFree": 4 << 30, "MemAvailable": 5 << 30, "SwapTotal": 0, "SwapFree": 0},
        )
    w.close()
    return folder


def _proto_strings(msg, skip_options: bool) -> list[str]:
    """Every string field of a protobuf message (nested included), minus ids, values and data payloads."""
    out: list[str] = []
    for field, value in msg.ListFields():
        if field.name in SKIP_FIELDS or (skip_options and field.name == "options"):
            continue
        if isinstance(value, str) or hasattr(value, "ListFields"):
            values = [value]
        elif isinstance(value, bytes | int | float | bool):
            continue
        else:  # a repeated field
            values = list(value)
        for v in values:
            if isinstance(v, str):
                out.append(v)
            elif hasattr(v, "ListFields"):
                out += _proto_strings(v, skip_options)
    return out


def markdown_surfaces(at) -> list[tuple[str, str]]:
    """(element type, text) for every text an AppTest run may render as Markdown/HTML: labels, help, bodies,
    captions, alerts, expander/tab labels, metric label and value... (dataframe cells, code and text excluded)."""
    out: list[tuple[str, str]] = []

    def walk(node) -> None:
        kind = getattr(node, "type", None)
        proto = getattr(node, "proto", None)
        if proto is not None and kind not in TEXT_ONLY_TYPES and hasattr(proto, "ListFields"):
            out.extend((str(kind), s) for s in _proto_strings(proto, kind in PLAIN_OPTION_TYPES))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out


def plotly_html_texts(at) -> list[str]:
    """Every string inside the Plotly figures of an AppTest run (Plotly renders <b>, <a> ... tags in them)."""
    out: list[str] = []

    def strings(obj) -> None:
        if isinstance(obj, str):
            out.append(obj)
        elif isinstance(obj, dict):
            for v in obj.values():
                strings(v)
        elif isinstance(obj, list):
            for v in obj:
                strings(v)

    def walk(node) -> None:
        if getattr(node, "type", None) == "plotly_chart":
            spec = json.loads(node.proto.spec or "{}")
            for trace in spec.get("data", []):
                templates = " ".join(str(trace.get(k, "")) for k in ("hovertemplate", "texttemplate"))
                for key, value in trace.items():
                    # ids/parents/customdata are shown only when a template refers to them
                    if key in NOT_RENDERED and f"%{{{NOT_RENDERED[key]}" not in templates:
                        continue
                    strings(value)
            strings(spec.get("layout", {}))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out


@pytest.fixture(scope="module")
def hostile_dumps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_hostile_native(tmp_path_factory.mktemp("hostile") / "dumps")


def test_the_hostile_recording_loads_with_the_literal_name(hostile_dumps: Path) -> None:
    rec = open_recording(hostile_dumps)
    rows = q.moment(rec, q.resolve(rec))
    assert HOSTILE in set(rows["name"].astype(str))
    assert HOSTILE_CGROUP in set(rows["cgroup"].astype(str))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_a_hostile_name_as_literal_text_only(run_page, hostile_dumps: Path, page: str) -> None:
    params = {"pid": str(HOSTILE_PID), "group": HOSTILE, "by": "name", "cgroup": HOSTILE_CGROUP, "level": "1"}
    at = run_page(hostile_dumps, page, **params)
    assert not at.exception, (page, at.exception)
    bad = [(kind, text) for kind, text in markdown_surfaces(at) if any(m in text for m in MARKERS)]
    assert not bad, f"{page}: hostile text reached a Markdown element: {bad[:5]}"
    html = [t for t in plotly_html_texts(at) if "<b>bold" in t or ("example.invalid" in t and "<a" in t)]
    assert not html, f"{page}: hostile tags inside a Plotly figure: {html[:3]}"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_keeps_the_crafted_seed_command_line_out_of_markdown(run_page, tmp_path: Path, page: str) -> None:
    dumps = write_crafted_dumps(tmp_path / "seed")
    at = run_page(dumps, page, pid="200", level="1")
    assert not at.exception, (page, at.exception)
    bad = [(k, t) for k, t in markdown_surfaces(at) if "example.invalid" in t or "pwn**" in t or "<b>" in t]
    assert not bad, f"{page}: {bad[:5]}"


def test_the_name_is_shown_literally_in_a_table(run_page, hostile_dumps: Path) -> None:
    at = run_page(hostile_dumps, "pages/level.py", level="1")
    cells = [d.value[c].astype(str) for d in at.main.dataframe for c in d.value.columns if c in ("name", "user")]
    assert any((col == HOSTILE).any() for col in cells)


# ---- data source: only listed folders under the configured roots


@pytest.fixture
def roots_dir(tmp_path: Path, hostile_dumps: Path) -> Path:
    """A root `rec/` holding `rec/hostile` (native), `rec/team/seed` (seed CSVs), an empty folder, an escaping
    symlink `rec/escape` -> a recording outside the root, and an inside symlink `rec/alias` -> rec/hostile."""
    rec = tmp_path / "rec"
    (rec / "empty").mkdir(parents=True)
    (rec / "hostile").symlink_to(hostile_dumps, target_is_directory=True)  # a root may hold links...
    write_crafted_dumps(rec / "team" / "seed")
    outside = write_crafted_dumps(tmp_path / "outside")
    (rec / "escape").symlink_to(outside, target_is_directory=True)
    (rec / "alias").symlink_to(rec / "team" / "seed", target_is_directory=True)
    return rec


def test_default_roots_are_the_repo_dumps_and_sample(tmp_path: Path) -> None:
    roots = source.configured_roots({}, app_dir=tmp_path)
    assert [(r.name, r.path) for r in roots] == [("dumps", tmp_path / "dumps"), ("sample", tmp_path / "sample")]
    assert "sample/dumps" in source.list_sources(source.configured_roots({}))


def test_only_folders_inside_the_root_are_listed(roots_dir: Path, hostile_dumps: Path) -> None:
    inside = source.configured_roots({source.ROOT_ENV: str(roots_dir)})
    names = source.list_sources(inside)
    assert names == ["rec/alias", "rec/team/seed"]  # hostile and escape lead out of the root, empty holds nothing
    assert not any("time" in n for n in names)
    # with the link target's parent also configured as a root, it is listed under that root's name
    both = source.configured_roots({source.ROOT_ENV: f"{roots_dir}{os.pathsep}{hostile_dumps.parent}"})
    assert [r.name for r in both] == ["rec", hostile_dumps.parent.name]
    assert f"{hostile_dumps.parent.name}/dumps" in source.list_sources(both)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../outside", "'..'"),
        ("rec/../outside", "'..'"),
        ("rec/team/../../outside", "'..'"),
        ("rec/./team/seed", "'..'"),
        ("/etc", "Absolute"),
        ("~/dumps", "Absolute"),
        ("C:/dumps", "Absolute"),
        ("rec\\..\\outside", "'..'"),
        ("rec/escape", "outside"),
        ("rec/hostile", "outside"),
        ("rec/empty", "no recording"),
        ("rec/nope", "does not exist"),
        ("other/x", "Unknown"),
        ("", "empty"),
        ("rec/" + "a" * 400, "too long"),
        ("rec/team\x00/seed", "NUL"),
    ],
)
def test_bad_source_names_are_rejected_with_a_message(roots_dir: Path, name: str, why: str) -> None:
    roots = source.configured_roots({source.ROOT_ENV: str(roots_dir)})
    folder, error = source.check_name(name, roots)
    assert folder is None and error is not None and why in error, (name, error)
    default = data.DataSource(Path("/srv/default"), "env", "default")
    choice = source.choose(name or None, default, roots)
    assert choice.source == default and choice.name is None


def test_a_listed_name_resolves_inside_the_root(roots_dir: Path) -> None:
    roots = source.configured_roots({source.ROOT_ENV: str(roots_dir)})
    folder, error = source.check_name("rec/team/seed", roots)
    assert error is None and folder == (roots_dir / "team" / "seed").resolve()
    choice = source.choose("rec/alias", data.DataSource(None, "none", "nothing"), roots)
    assert choice.name == "rec/alias" and choice.source.path == folder


@pytest.fixture
def run_with_roots(monkeypatch: pytest.MonkeyPatch, roots_dir: Path):
    """Factory: AppTest of app.py with PMI_DUMPS_ROOT=roots_dir, no PMI_DUMPS (the server default is the repo's)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("PMI_DUMPS", raising=False)
    monkeypatch.setenv("PMI_DUMPS_ROOT", str(roots_dir))
    monkeypatch.setenv("PMI_TZ", "UTC")

    def run(**params: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        for k, v in params.items():
            at.query_params[k] = v
        at.run()
        return at

    return run


def test_sidebar_offers_only_the_listed_recordings_and_no_path_entry(run_with_roots) -> None:
    at = run_with_roots()
    assert not at.exception
    (box,) = [s for s in at.sidebar.selectbox if s.label == "Recording"]
    assert box.options == [source.DEFAULT_LABEL, "rec/alias", "rec/team/seed"]
    assert box.value == source.DEFAULT_LABEL
    assert not [t for t in at.text_input if any(w in t.label.lower() for w in ("path", "folder", "dumps", "source"))]


def test_choosing_a_recording_sets_the_url_and_shows_it(run_with_roots) -> None:
    at = run_with_roots()
    at.sidebar.selectbox(key="w_source").set_value("rec/team/seed").run()
    assert not at.exception
    assert at.query_params.get("source") in ("rec/team/seed", ["rec/team/seed"])
    assert any("source: rec/team/seed" in t.value for t in at.sidebar.text)  # the Data box's facts, as text
    assert any(m.label == "Processes" and m.value == "7" for m in at.metric)  # the crafted seed's last snapshot


@pytest.mark.parametrize("name", ["../outside", "/etc", "rec/escape", "rec/empty"])
def test_a_rejected_source_in_the_url_says_why_and_shows_the_default(run_with_roots, name: str) -> None:
    at = run_with_roots(source=name)
    assert not at.exception
    assert any("rejected" in e.value for e in at.error)
    assert at.text and any(("'..'" in t.value or "Absolute" in t.value or "outside" in t.value or "no recording"
                            in t.value) for t in at.text)  # fmt: skip
    assert "source" not in at.query_params
    sb = next(s for s in at.sidebar.selectbox if s.label == "Recording")
    assert sb.value == source.DEFAULT_LABEL


def test_the_chosen_source_survives_a_view_change(run_with_roots) -> None:
    at = run_with_roots(source="rec/team/seed")
    assert not at.exception and not at.error
    at.sidebar.radio(key="w_unit").set_value("GiB").run()  # the callback rewrites the URL from the view state
    assert not at.exception
    assert at.query_params.get("unit") in ("GiB", ["GiB"])
    assert at.query_params.get("source") in ("rec/team/seed", ["rec/team/seed"])
    assert any("source: rec/team/seed" in t.value for t in at.sidebar.text)  # the Data box's facts, as text
