"""memlib.display: control, format and bidi characters made visible; the dashboard and the CLI apply it."""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from memlib.display import _INVISIBLE_RE, visible, visible_frame, visible_series

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    ("\u202egnp.exe", "\\u202egnp.exe"),  # right-to-left override: would show as "exe.png"
    ("a\u2066b\u2067c\u2068d\u2069", "a\\u2066b\\u2067c\\u2068d\\u2069"),  # isolates
    ("x\u200ey\u200fz", "x\\u200ey\\u200fz"),  # LRM / RLM
    ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),  # embeddings, pop, LRO
    ("line1\nline2", "line1\\nline2"),
    ("tab\there\r", "tab\\there\\r"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # ESC: a terminal colour / title sequence
    ("nul\x00bel\x07del\x7f", "nul\\x00bel\\x07del\\x7f"),
    ("c1\x85\x9b", "c1\\x85\\x9b"),  # C1 controls (NEL, CSI)
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),
    ("tag\U000e0041", "tag\\U000e0041"),
    # kept as they are
    ("python3", "python3"),
    ("/usr/bin/python3 -m http.server 8000", "/usr/bin/python3 -m http.server 8000"),
    ("héllo wörld", "héllo wörld"),
    ("日本語 العربية עברית", "日本語 العربية עברית"),
    ("emoji 😀", "emoji 😀"),
    ("[kworker/0:1-events]", "[kworker/0:1-events]"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_visible_table(text: str, expected: str) -> None:
    assert visible(text) == expected


def test_class_covers_every_control_format_and_separator_character() -> None:
    """The regex class is every code point of categories Cc, Cf, Zl, Zp in this Python's Unicode database."""
    missing = [
        hex(cp)
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Zl", "Zp") and not _INVISIBLE_RE.fullmatch(chr(cp))
    ]
    assert not missing, missing


def test_series_and_frames() -> None:
    cat = pd.Series(pd.Categorical(["a\u202eb", "plain", None, "a\u202eb"]))
    got = visible_series(cat)
    assert got.tolist()[:2] == ["a\\u202eb", "plain"] and pd.isna(got.iloc[2])
    frame = pd.DataFrame({"name": cat, "pid": [1, 2, 3, 4], "cmdline": ["x\ny", "ok", None, "z"]})
    shown = visible_frame(frame)
    assert shown["cmdline"].tolist()[:2] == ["x\\ny", "ok"] and shown["pid"].tolist() == [1, 2, 3, 4]
    assert frame["cmdline"].iloc[0] == "x\ny"  # the data itself is unchanged
    clean = pd.DataFrame({"name": ["a", "b"]})
    assert visible_frame(clean) is clean


# ---- the dashboard: every page shows such names escaped (tables, text, code, chart labels, legends, treemaps)

BIDI_NAME = "\u202egnp.exe\n\x1b[2J\u2066x\u2069"
RAW = ("\u202e", "\u2066", "\u2069", "\x1b", "gnp.exe\n")


def _all_strings(at) -> list[str]:
    """Every text an AppTest run shows: dataframe cells and column names, text, code, Markdown surfaces, Plotly."""
    from tests.test_ui_safety import markdown_surfaces, plotly_html_texts

    out = [t for _, t in markdown_surfaces(at)] + plotly_html_texts(at)

    def walk(node) -> None:
        kind = getattr(node, "type", None)
        if kind in ("arrow_data_frame", "dataframe"):
            frame = node.value
            out.extend(map(str, frame.columns))
            for col in frame.columns:
                out.extend(frame[col].astype(str).tolist())
        elif kind in ("text", "code"):
            out.append(str(node.value))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out


@pytest.fixture(scope="module")
def bidi_dumps(tmp_path_factory: pytest.TempPathFactory):
    from tests.test_ui_safety import write_hostile_native

    folder = tmp_path_factory.mktemp("bidi") / "dumps"
    return write_hostile_native(folder, name=BIDI_NAME, cgroup=f"/system.slice/{BIDI_NAME}.service")


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "pages").glob("*.py")))
def test_every_page_shows_control_and_bidi_characters_escaped(run_page, bidi_dumps, page: str) -> None:
    from tests.test_ui_safety import HOSTILE_PID

    params = {"pid": str(HOSTILE_PID), "group": BIDI_NAME, "by": "name", "level": "1"}
    at = run_page(bidi_dumps, f"pages/{page}", **params)
    assert not at.exception, at.exception
    shown = _all_strings(at)
    raw = [s for s in map(str, shown) if any(r in s for r in RAW)]
    assert not raw, f"{page}: {raw[:3]}"
    if page in ("level.py", "pid.py", "overview.py"):
        assert any("\\u202egnp.exe\\n\\x1b[2J" in str(s) for s in shown), page


def test_cli_table_escapes_names(bidi_dumps, capsys) -> None:
    from memlib.cli import main

    assert main(["snapshot", "--dumps", str(bidi_dumps)]) == 0
    out = capsys.readouterr().out
    assert "\\u202egnp.exe\\n\\x1b[2J" in out and not any(r in out for r in RAW)


def test_cli_notices_escape_file_names(tmp_path, capsys) -> None:
    """A damaged file whose name holds ESC and a newline is named in the CLI's notes as escapes."""
    from memlib.cli import main
    from tests.conftest import write_crafted_dumps

    folder = write_crafted_dumps(tmp_path / "d")
    (folder / "time" / "junk\x1b]0;pwned\x07\n.txt").write_text("x")
    assert main(["snapshot", "--dumps", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "junk\\x1b]0;pwned\\x07\\n.txt" in err and "\x1b" not in err
