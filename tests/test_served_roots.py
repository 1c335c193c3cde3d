"""What a viewer may reach and read under the served roots: only folders inside them (loops and unreadable folders
skipped, never a crash), and never a server path or a file's content in what the dashboard shows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import write_crafted_dumps
from tests.test_display import _all_strings
from ui import source

ROOT = Path(__file__).resolve().parents[1]
SHADOW = "root:$6$Zs9aX$Qm1nJkLp0H4sUperSecretHash:19000:0:99999:7:::\n"


def _roots(*paths: Path) -> list[source.Root]:
    return source.configured_roots({source.ROOT_ENV: os.pathsep.join(map(str, paths))})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{rec}/team/seed (from PMI_DUMPS)", "rec/team/seed (from PMI_DUMPS)"),
        ("{rec}", "rec"),
        (
            "[Errno 13] Permission denied: '{rec}/team/seed/time/x.csv'",
            "[Errno 13] Permission denied: 'rec/team/seed/time/x.csv'",
        ),
        ("{other}/dumps/seg-1.procs.parquet: damaged", "…/seg-1.procs.parquet: damaged"),
        ("cannot read /etc/shadow: skipped", "cannot read …/shadow: skipped"),
        ("/", "…"),
        (
            "time/process_mem_1.csv: skipped (line 1: missing column(s) PID)",
            "time/process_mem_1.csv: skipped (line 1: missing column(s) PID)",
        ),
        ("see https://example.com/a/b and a/b/c", "see https://example.com/a/b and a/b/c"),
        ("{rec}x/not-inside", "…/not-inside"),  # a sibling whose name starts like the root is not inside it
        ("name\u202egnp.exe in {rec}/a", "name\\u202egnp.exe in rec/a"),
    ],
)
def test_viewer_text_never_shows_server_paths(tmp_path: Path, text: str, expected: str) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    roots = _roots(rec)
    filled = text.format(rec=rec.resolve(), other=tmp_path / "elsewhere")
    assert source.viewer_text(filled, roots) == expected


def test_loops_and_unreadable_folders_are_skipped_not_fatal(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    write_crafted_dumps(rec / "good")
    (rec / "loop").symlink_to(rec / "loop")  # a symlink loop
    (rec / "a").symlink_to(rec / "b")
    (rec / "b").symlink_to(rec / "a")  # a two-link loop
    (rec / "dangling").symlink_to(tmp_path / "missing")
    os.mkfifo(rec / "fifo")
    (rec / "deep").mkdir()
    (rec / "deep" / "up").symlink_to(rec, target_is_directory=True)  # a loop through a directory link
    roots = _roots(rec)
    assert source.list_sources(roots) == ["rec/deep/up/good", "rec/good"]
    for name in ("rec/loop", "rec/a", "rec/dangling", "rec/fifo"):
        folder, error = source.check_name(name, roots)
        assert folder is None and error, name


def test_the_dashboard_shows_no_server_path_and_no_file_content(monkeypatch, tmp_path: Path) -> None:
    """A recording under a served root holding a seed CSV that is a symlink to a secret file outside the root:
    the page loads the rest, and no text shown anywhere holds the server's paths or the secret file's content."""
    from streamlit.testing.v1 import AppTest

    rec = tmp_path / "served" / "rec"
    folder = write_crafted_dumps(rec / "team")
    secret = tmp_path / "private" / "shadow"
    secret.parent.mkdir()
    secret.write_text(SHADOW)
    (folder / "time" / "process_mem_20261127_100040.csv").symlink_to(secret)
    monkeypatch.setenv("PMI_DUMPS_ROOT", str(rec))
    monkeypatch.setenv("PMI_DUMPS", str(folder))
    monkeypatch.setenv("PMI_TZ", "UTC")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    shown = [str(s) for s in _all_strings(at)]
    assert any("rec/team" in s for s in shown)  # the source, named relative to its root
    leaks = [s for s in shown if str(tmp_path) in s or "Zs9aX" in s or "SuperSecret" in s or "root:$6" in s]
    assert not leaks, leaks[:3]
