"""`tinyhar demo`: the whole job offline on synthetic data."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tinyhar import log
from tinyhar.board.boards import Board
from tinyhar.commands.options import (
    build_board_option,
    default_of,
    echo,
    libraries_option,
    path_type,
    shown_default,
)
from tinyhar.data.synth import SUBJECTS
from tinyhar.errors import EXIT_FAILED
from tinyhar.model.config import DEFAULT_EPOCHS, TrainConfig
from tinyhar.run.folder import DEMO_DIR


@click.command()
@click.option(
    "--out",
    type=path_type(file_okay=False),
    default=DEMO_DIR,
    show_default=True,
    help="Run folder for everything the demo makes (its data in OUT/data).",
)
@build_board_option("the firmware is built and verified for it.")
@click.option(
    "--subjects",
    type=click.IntRange(3, 99),
    default=SUBJECTS,
    show_default=True,
    help="Synthetic subjects.",
)
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=DEFAULT_EPOCHS,
    show_default=True,
    help="Most epochs (early stopping usually ends sooner).",
)
@click.option(
    "--seed",
    type=int,
    default=default_of(TrainConfig, "seed"),
    show_default=True,
    help="Seed of the synthetic data and the training: same seed, same run.",
)
@click.option(
    "--windows",
    type=click.IntRange(1),
    default=None,
    help="Test windows to verify." + shown_default("all"),
)
@libraries_option
def demo(
    out: Path,
    board: Board,
    subjects: int,
    epochs: int,
    seed: int,
    windows: int | None,
    libraries: Path | None,
) -> None:
    """The whole job offline on SYNTHETIC data: train, quantize, build, verify a virtual board."""
    from tinyhar.demo import DemoOptions, format_summary, run_demo  # lazy: fast --help

    opts = DemoOptions(
        out=out,
        board=board,
        subjects=subjects,
        epochs=epochs,
        seed=seed,
        windows=windows,
        libraries=libraries,
    )
    summary = run_demo(opts, log=log.inf)
    echo(format_summary(summary))
    if not summary["passed"]:
        sys.exit(EXIT_FAILED)
