"""Ctrl-C is quiet: one `interrupted` line and exit 130, no third-party log lines, at any moment."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner
from helpers.commands import TINYHAR

from tinyhar import log
from tinyhar.cli import _Group
from tinyhar.errors import EXIT_INTERRUPTED, TinyharError

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


def _group(command) -> click.Group:
    group = _Group("tinyhar")
    group.command("load")(command)
    return group


def _ctrl_c_mangled_into(error: Exception):
    """A command in which Ctrl-C lands inside a library that prints a traceback and raises
    something else (pybind11: ImportError; TensorFlow: SystemError, then a Keras layer error that
    tinyhar turns into "cannot read model.keras"); tinyhar logs a line on the way out."""

    def load() -> None:
        try:
            signal.raise_signal(signal.SIGINT)  # the user's Ctrl-C, real, to this process
        except KeyboardInterrupt:
            print("Traceback (most recent call last):\n  SystemError: ...", file=sys.stderr)
            log.wrn("kept 3 windows")
            raise error from None

    return load


@pytest.mark.parametrize(
    "error",
    [ImportError("initialization failed"), TinyharError("cannot read run/model.keras (lstm)")],
    ids=["import-error", "tinyhar-error"],
)
def test_ctrl_c_that_a_library_turned_into_another_error_is_still_an_interrupt(error):
    # the handler found is the one restored: Python's default, or SIG_IGN where the tests were
    # started with SIGINT ignored (`nohup`, `&` in a script, some CI runners)
    found = signal.getsignal(signal.SIGINT)
    result = CliRunner().invoke(_group(_ctrl_c_mangled_into(error)), ["load"])
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.output.splitlines() == ["warning: kept 3 windows", "interrupted"]
    assert signal.getsignal(signal.SIGINT) is found


@pytest.mark.parametrize("found", [signal.SIG_IGN, signal.default_int_handler])
def test_the_handler_found_is_the_handler_restored(found):
    """However SIGINT was handled when tinyhar started, it is handled so again afterwards."""
    before = signal.signal(signal.SIGINT, found)
    try:
        result = CliRunner().invoke(_group(_ctrl_c_mangled_into(ImportError("x"))), ["load"])
        assert result.exit_code == EXIT_INTERRUPTED
        assert signal.getsignal(signal.SIGINT) is found
    finally:
        signal.signal(signal.SIGINT, before)


def test_an_import_error_of_its_own_is_not_taken_for_an_interrupt():
    def load() -> None:
        raise ImportError("no module named x")

    result = CliRunner().invoke(_group(load), ["load"])
    assert isinstance(result.exception, ImportError)
