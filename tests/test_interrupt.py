"""Ctrl-C is quiet: one `interrupted` line and exit 130, no third-party log lines, at any moment."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time

import click
import pytest
from click.testing import CliRunner
from conftest import TINYHAR

from tinyhar.cli import _Group
from tinyhar.errors import EXIT_INTERRUPTED

# What TensorFlow, absl and Python print when they are not kept quiet.
THIRD_PARTY = re.compile(
    r"cuda|tensorflow[/:]|TensorFlow binary|TF-TRT|oneDNN|absl|^[EWI]\d{4} |Traceback", re.I
)


def _assert_quiet_interrupt(args: list[str], after_s: float, cwd) -> None:
    """Run `tinyhar ARGS`, send Ctrl-C after `after_s`: exit 130, last line `interrupted`, no
    third-party lines (skips when the command finished first)."""
    proc = subprocess.Popen([*TINYHAR, *args], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=cwd)  # fmt: skip
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip(f"{args[0]} finished within {after_s} s: nothing to interrupt")
    assert proc.returncode == 130, err
    assert err.rstrip().splitlines()[-1] == "interrupted", err
    assert not [line for line in err.splitlines() if THIRD_PARTY.search(line)], err


@pytest.mark.slow
@pytest.mark.parametrize("after_s", [0.5, 1.5, 3.0])  # TensorFlow's import takes about 3 s
def test_ctrl_c_during_quantize_prints_only_interrupted(tiny_run, tmp_path, after_s):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    _assert_quiet_interrupt(["quantize", "--run", str(run)], after_s, tmp_path)


def _commands(run, synth, tmp_path):
    return {
        "train": ["train", "--data", str(synth), "--arch", "tiny", "--epochs", "1",
                  "--run", str(tmp_path / "trained")],
        "build": ["build", "--run", str(run)],
        "demo": ["demo"],
    }  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "build", "demo"])
@pytest.mark.parametrize("after_s", [1.0, 3.0])
def test_ctrl_c_during_any_long_command_prints_only_interrupted(
    tiny_run, tmp_path, command, after_s
):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    args = _commands(run, tiny_run.parent / "synth", tmp_path)[command]  # its training data
    _assert_quiet_interrupt(args, after_s, tmp_path)


def _group_raising(exc: BaseException) -> click.Group:
    group = _Group("tinyhar")

    @group.command("load")
    def load() -> None:
        raise exc

    return group


def _import_failed_by_ctrl_c() -> ImportError:
    """What a pybind11 extension (matplotlib's ft2font) raises when Ctrl-C lands in its init."""
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise ImportError("initialization failed") from interrupt
    except ImportError as e:
        return e


def test_ctrl_c_turned_into_an_import_error_is_still_an_interrupt():
    result = CliRunner().invoke(_group_raising(_import_failed_by_ctrl_c()), ["load"])
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.output.strip().splitlines()[-1] == "interrupted"


def test_an_import_error_of_its_own_is_not_taken_for_an_interrupt():
    result = CliRunner().invoke(_group_raising(ImportError("no module named x")), ["load"])
    assert isinstance(result.exception, ImportError)
