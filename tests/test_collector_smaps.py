"""The collector's smaps options: --smaps-every (seconds) and --smaps-cpu (% of one core) reach the sampler; bad
values are usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from collector import run as run_mod
from collector.sampler import SMAPS_CPU, SMAPS_EVERY_S, Sampler
from tests.fakeproc import FakeProcess, FakeProcFS


def test_defaults_are_60_s_and_2_percent() -> None:
    args = run_mod.parse_args([])
    assert (args.smaps_every, args.smaps_cpu) == (SMAPS_EVERY_S, SMAPS_CPU * 100) == (60.0, 2.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--smaps-every", "0"], "argument --smaps-every"),
        (["--smaps-every", "-5"], "argument --smaps-every"),
        (["--smaps-every", "inf"], "argument --smaps-every"),
        (["--smaps-cpu", "0"], "argument --smaps-cpu"),
        (["--smaps-cpu", "101"], "argument --smaps-cpu"),
        (["--smaps-cpu", "nan"], "argument --smaps-cpu"),
        (["--smaps-cpu", "lots"], "not a number"),
    ],
)
def test_bad_values_are_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run_mod.parse_args(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_bad_value_from_the_command_line_is_one_clear_line() -> None:
    argv = [sys.executable, "-m", "collector", "--smaps-cpu", "0"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert (
        done.returncode == 2
        and "argument --smaps-cpu" in done.stderr
        and "out of range" in done.stderr
        and "Traceback" not in done.stderr
    )


def test_options_reach_the_sampler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = FakeProcFS(tmp_path / "proc")
    fs.add(FakeProcess(1, "init", ["/sbin/init"], ppid=0))
    made: list[tuple] = []

    def fake_make(smaps: str, every: float, cpu: float) -> Sampler:
        made.append((smaps, every, cpu))
        return Sampler(proc_root=str(fs.root), smaps=smaps, smaps_every=every, smaps_cpu=cpu, clk_tck=100, host="h")

    monkeypatch.setattr(run_mod, "make_sampler", fake_make)
    argv = ["--dumps", str(tmp_path / "d"), "--interval", "0.05", "--duration", "0.1", "--smaps", "on"]
    assert run_mod.run(run_mod.parse_args([*argv, "--smaps-every", "30", "--smaps-cpu", "5"])) == 0
    assert made == [("on", 30.0, 0.05)]
