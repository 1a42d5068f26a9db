"""`tinyhar -v` / `-q`: one verbosity for every step's messages, and the exit codes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from helpers.fw_models import make_run

from tinyhar import log
from tinyhar.cli import main
from tinyhar.errors import EXIT_ERROR


@pytest.fixture(autouse=True)
def normal_verbosity():
    yield
    log.set_verbosity(log.NORMAL)


@pytest.mark.parametrize(
    ("level", "shown"),
    [(log.QUIET, ["warning: w"]), (log.NORMAL, ["i", "warning: w"]),
     (log.VERBOSE, ["d", "i", "warning: w"])],
)  # fmt: skip
def test_each_verbosity_shows_its_messages(capsys, level, shown):
    log.set_verbosity(level)
    log.dbg("d")
    log.inf("i")
    log.wrn("w")
    assert capsys.readouterr().err.splitlines() == shown


def _build(tmp_path, *flags):
    run = make_run(tmp_path)
    args = [*flags, "build", "--board", "nano33ble", "--run", str(run), "--no-measure"]
    return CliRunner().invoke(main, args)


def test_quiet_build_prints_the_summary_without_the_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no arduino-cli
    normal, quiet = _build(tmp_path / "a"), _build(tmp_path / "b", "-q")
    assert normal.exit_code == 0 and quiet.exit_code == 0, normal.output + quiet.output
    assert "build: rendered" in normal.stderr and "build: rendered" not in quiet.stderr
    assert "board        nano33ble" in quiet.stdout


def test_v_and_q_together_are_refused():
    res = CliRunner().invoke(main, ["-v", "-q", "boards"])
    assert res.exit_code != 0 and "-v and -q exclude each other" in res.output


def test_an_error_is_one_line_with_its_exit_code(tmp_path):
    res = CliRunner().invoke(main, ["build", "--board", "nosuchboard", "--run", str(tmp_path)])
    assert res.exit_code == EXIT_ERROR
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: unknown board")


def test_run_hints_name_the_command_with_the_run_it_means(tmp_path, monkeypatch):
    from tinyhar.errors import TinyharError
    from tinyhar.run import folder as runs

    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        TinyharError, match="no run found under runs/: make one with `tinyhar demo`"
    ):
        runs.require_run(None, runs.QUANTIZE_JSON, "tinyhar quantize")
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    with pytest.raises(TinyharError, match=f"run `tinyhar quantize --run {run}` first"):
        runs.require_run(run, runs.QUANTIZE_JSON, "tinyhar quantize")
    with pytest.raises(TinyharError, match="has no metrics.json: run `tinyhar train` first"):
        runs.require_run(run)
