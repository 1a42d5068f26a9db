"""--help a newcomer can read: every option of every command has help, --run, --board and
--libraries read alike everywhere, defaults are shown one way, and every page points at the
glossary, which explains the terms it promises."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner
from helpers.paths import REPO

from tinyhar import cli
from tinyhar.cli import main
from tinyhar.commands import options


def _commands(
    group: click.Group = main, path: str = "tinyhar"
) -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{path} {name}")


def _options() -> Iterator[tuple[str, click.Option]]:
    for path, command in _commands():
        for param in command.params:
            if isinstance(param, click.Option):
                yield f"{path} {param.opts[-1]}", param


def test_every_command_and_every_option_has_help() -> None:
    assert len(list(_commands())) >= 17
    assert [p for p, c in _commands() if not (c.help or "").strip()] == []
    assert [name for name, o in _options() if not (o.help or "").strip()] == []


def test_help_ends_its_sentence_and_shows_defaults_one_way() -> None:
    """'Text.  [default: x]': click's own form, also for computed defaults; no '(default: x)',
    no bare '[x]'."""
    bad = []
    for name, o in _options():
        text = o.help
        if "(default" in text or re.search(r"\[(?!default: )", text):
            bad.append(f"{name}: {text}")
        elif not text.split("  [default: ")[0].rstrip().endswith((".", ")")):
            bad.append(f"{name}: {text}")
    assert bad == []


def test_run_board_and_libraries_are_worded_alike() -> None:
    runs, boards, libraries = [], [], set()
    for name, o in _options():
        if "--run" in o.opts:
            runs.append((name, o.help))
        elif "--board" in o.opts and "clip" not in name:
            boards.append((name, o.help))
        elif "--libraries" in o.opts:
            libraries.add(o.help)
    assert len(runs) >= 10 and len(boards) >= 9
    assert [n for n, h in runs if not h.startswith("Run folder")] == []
    latest = [n for n, h in runs if h.endswith(f"[default: {options.LATEST_RUN}]")]
    assert len(latest) == len(runs) - 2  # all but train's and search's, which write one
    assert [n for n, h in boards if not h.startswith(options.BOARD + "; ")] == []
    assert len(libraries) == 1 and "$TINYHAR_ARDUINO_LIBRARIES" in libraries.pop()


def test_budget_says_which_budget() -> None:
    helps = {name: o.help for name, o in _options()}
    for option in ("--max-model-kb", "--max-arena-kb"):
        assert "model budget" in helps[f"tinyhar train {option}"]
        assert "the board's" in helps[f"tinyhar train {option}"]
        assert "Model budget" in helps[f"tinyhar search {option}"]
    out = CliRunner().invoke(main, ["boards"]).output
    assert "the board's budget for the int8 model and the TFLM arena" in out


@pytest.mark.parametrize("args", [[], ["verify"], ["data", "synth"], ["sim"]])
def test_every_help_page_points_at_the_glossary(args: list[str]) -> None:
    out = CliRunner().invoke(main, [*args, "--help"]).output
    assert "docs/glossary.md" in out


def test_the_glossary_explains_what_help_promises() -> None:
    glossary = (REPO / "docs" / "glossary.md").read_text(encoding="utf-8")
    promised = re.search(r"Terms \(([^)]*)\)", cli.GLOSSARY).group(1).split(", ")
    assert len(promised) >= 9
    defined = re.findall(r"^\*\*([^*]+)\*\*", glossary, re.M)
    for term in promised:
        assert any(term.lower() in d.lower() for d in defined), term
    assert all(c.epilog == cli.GLOSSARY for _, c in _commands())
    assert "(docs/glossary.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_train_and_search_share_the_training_options_with_the_librarys_defaults():
    """search's trials train as `tinyhar train` does: the same options, the library's defaults."""
    from tinyhar.commands.train import search, train
    from tinyhar.model.config import TrainConfig
    from tinyhar.model.selection import SelectionRule

    of_train = {o.name: o for o in train.params}
    of_search = {o.name: o for o in search.params}
    shared = (
        "data sensors epochs batch_size stride train_stride classes train_subjects val_subjects "
        "test_subjects seed select min_epochs patience rotate scale time_jitter clip_board "
        "lr_schedule"
    ).split()
    for name in shared:
        assert name in of_search, name
        assert (of_train[name].help, of_train[name].default) == (
            of_search[name].help,
            of_search[name].default,
        ), name
    cfg, rule = TrainConfig(), SelectionRule()
    defaults = {n: of_train[n].default for n in ("epochs", "batch_size", "stride", "seed")}
    assert defaults == {n: getattr(cfg, n) for n in defaults}
    assert (of_train["select"].default, of_train["patience"].default) == (
        rule.metric,
        rule.patience,
    )
    assert of_train["lr_schedule"].default == cfg.lr_schedule


def test_each_commands_defaults_are_the_librarys():
    """An option named like a field of the library's options has that field's default: no default
    is written once in the CLI and again in the library."""
    from dataclasses import MISSING, fields

    from tinyhar.commands import deploy, device
    from tinyhar.deploy.build import BuildOptions
    from tinyhar.device.monitor import MonitorOptions
    from tinyhar.device.record import RecordOptions
    from tinyhar.device.verify import VerifyOptions
    from tinyhar.device.virtual_board import Faults

    checked = 0
    for command, library_options, renamed in (
        (deploy.build, BuildOptions, {}),
        (device.verify, VerifyOptions, {}),
        (device.sim, Faults, {"delay": "delay_ms"}),
        (device.monitor, MonitorOptions, {}),
        (device.record, RecordOptions, {}),
    ):
        library = {f.name: f.default for f in fields(library_options) if f.default is not MISSING}
        for param in command.params:
            name = renamed.get(param.name, param.name)
            if name in library and library[name] is not None and not param.is_flag:
                assert param.default == library[name], (command.name, param.name)
                checked += 1
    assert checked >= 12
