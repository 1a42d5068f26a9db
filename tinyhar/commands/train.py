"""`tinyhar train` and `tinyhar search`: a model, or the Pareto front of tiny sizes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tinyhar import log
from tinyhar.board.boards import DEFAULT_BOARD, Board, load_board
from tinyhar.commands.options import (
    MAX_STRIDE,
    BoardParam,
    build_board_option,
    echo,
    names,
    path_type,
    run_option,
    shown_default,
    subject_options,
)
from tinyhar.data.mhealth import SENSOR_SETS
from tinyhar.data.windows import SPLIT_KINDS
from tinyhar.errors import EXIT_FAILED, TinyharError
from tinyhar.model.augment import Augment, clip_to_board
from tinyhar.model.config import ARCHS, DEFAULT_TRAIN_STRIDE, LR_SCHEDULES, TrainConfig
from tinyhar.model.selection import METRICS, SelectionRule
from tinyhar.search import DEFAULT_TRIALS

TRAIN = TrainConfig()  # the library's defaults, shown by the options below
SELECT = SelectionRule()


def _apply(options: list) -> Callable:
    def apply(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


# What a training is asked to do: `train` and every `search` trial take the same options, with
# TrainConfig's defaults (`training_config` turns them back into one).
training_options = _apply(
    [
        click.option(
            "--data",
            type=path_type(),
            default=None,
            help="Dataset folder (tinyhar data import), or MHEALTH folder, zip or CSV."
            + shown_default("the `tinyhar data download` cache"),
        ),
        click.option(
            "--sensors",
            type=click.Choice(list(SENSOR_SETS)),
            default=None,
            help="MHEALTH only: arm = what one wrist-worn board sees; both = the paper's 12."
            + shown_default("arm"),
        ),
        click.option(
            "--epochs",
            type=click.IntRange(1),
            default=TRAIN.epochs,
            show_default=True,
            help="Most epochs (--patience usually stops sooner).",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(1),
            default=TRAIN.batch_size,
            show_default=True,
            help="Windows per training step.",
        ),
        click.option(
            "--stride",
            type=click.IntRange(1, MAX_STRIDE),
            default=TRAIN.stride,
            show_default=True,
            help=f"Samples between window starts (windows are {TRAIN.window} samples).",
        ),
        click.option(
            "--train-stride",
            type=click.IntRange(1, MAX_STRIDE),
            default=None,
            help="Samples between training windows' starts; validation and test keep "
            "--stride; --split random takes --stride."
            + shown_default(
                ", ".join(f"{n} for {a}" for a, n in DEFAULT_TRAIN_STRIDE.items())
                + ", or --stride if smaller"
            ),
        ),
        click.option(
            "--include-null",
            is_flag=True,
            help="MHEALTH: keep the null class as class 0 (13 classes).",
        ),
        click.option(
            "--classes",
            callback=names,
            default=None,
            help="Class names to learn, comma separated, in class order."
            + shown_default("every class with training windows"),
        ),
        subject_options("to choose the epoch (and search's trials) on", "to report on"),
        click.option(
            "--seed",
            type=int,
            default=TRAIN.seed,
            show_default=True,
            help="Seed of the weights, shuffles and sizing: same seed, same run.",
        ),
        click.option(
            "--select",
            type=click.Choice(list(METRICS)),
            default=SELECT.metric,
            show_default=True,
            help="Keep the epoch with the best of this validation score.",
        ),
        click.option(
            "--min-epochs",
            type=click.IntRange(1),
            default=SELECT.min_epochs,
            show_default=True,
            help="Select only from this epoch on.",
        ),
        click.option(
            "--patience",
            type=click.IntRange(1),
            default=SELECT.patience,
            show_default=True,
            help="Stop after this many epochs without a better --select score.",
        ),
        click.option(
            "--rotate",
            type=click.FloatRange(0, 180),
            default=TRAIN.augment.rotate_deg,
            show_default=True,
            help="Augment: rotate the sensor frame (acc and gyro alike) ± degrees.",
        ),
        click.option(
            "--scale",
            type=click.FloatRange(0, 1, max_open=True),
            default=TRAIN.augment.scale,
            show_default=True,
            help="Augment: scale amplitudes by 1 ± this.",
        ),
        click.option(
            "--time-jitter",
            type=click.FloatRange(0, 0.5, max_open=True),
            default=TRAIN.augment.time_jitter,
            show_default=True,
            help="Augment: stretch time by 1 ± this.",
        ),
        click.option(
            "--clip-board",
            type=BoardParam(),
            default=None,
            help=f"Augment: clip at this board's IMU range, e.g. {DEFAULT_BOARD}."
            + shown_default("no clipping"),
        ),
        click.option(
            "--lr-schedule",
            type=click.Choice(LR_SCHEDULES),
            default=TRAIN.lr_schedule,
            show_default=True,
            help="Adam's learning rate: cosine decay to 0 over --epochs, or constant.",
        ),
    ]
)


def training_config(options: dict[str, Any], **more: Any) -> TrainConfig:
    """The TrainConfig of `training_options`' values (and `more` of the command's own)."""
    o = dict(options)
    augment = Augment(
        rotate_deg=o.pop("rotate"), scale=o.pop("scale"), time_jitter=o.pop("time_jitter")
    )
    clip = o.pop("clip_board")
    if clip is not None:
        augment = clip_to_board(augment, clip)
    select = SelectionRule(o.pop("select"), o.pop("min_epochs"), o.pop("patience"))
    return TrainConfig(**o, select=select, augment=augment, **more)


@click.command()
@training_options
@click.option(
    "--arch",
    type=click.Choice(ARCHS),
    default=TRAIN.arch,
    show_default=True,
    help="tiny: sized to the model budget (--max-model-kb, --max-arena-kb); paper: the "
    "paper's model as its text gives it.",
)
@run_option("Run folder to write.", "runs/<time>-<arch>-<sensors or dataset>", "run_dir")
@click.option(
    "--split",
    type=click.Choice(SPLIT_KINDS),
    default=TRAIN.split,
    show_default=True,
    help="subjects: named subjects per set; LOSO: leave one subject out; random: the paper's "
    "window shuffle (leaks).",
)
@click.option(
    "--folds",
    default=None,
    help="With --split loso: hold out each of these subjects in turn, in parallel on "
    "Ray: all, or ids like 1,3,5.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="--folds: trainings at once." + shown_default("local Ray: the cores"),
)
@click.option(
    "--address",
    envvar="RAY_ADDRESS",
    default=None,
    help="--folds: a Ray cluster (also $RAY_ADDRESS)." + shown_default("a local Ray"),
)
@click.option(
    "--size",
    "size_text",
    default=None,
    help="tiny's shape over the default's: build_tiny's options as key=value pairs, "
    "e.g. width=16,stride=2,pool=2 (docs/model.md)." + shown_default("the default shape"),
)
@click.option(
    "--max-model-kb",
    type=click.FloatRange(min=1),
    default=None,
    help="tiny's model budget: the largest int8 model (KB); any budget option sizes "
    "the default shape's width to fit; the board's budget, `tinyhar boards`, is larger."
    + shown_default("the default shape; 64 with another budget option"),
)
@click.option(
    "--max-arena-kb",
    type=click.FloatRange(min=1),
    default=None,
    help="tiny's model budget: the largest TFLM arena (KB); the board's budget is larger."
    + shown_default("the default shape; 32 with another budget option"),
)
@click.option(
    "--max-instructions",
    type=click.IntRange(min=1),
    default=None,
    help="tiny's latency budget: instructions per inference, counted on the emulated "
    f"{DEFAULT_BOARD} (needs qemu-system-arm and arm-none-eabi-gcc; an untrained model of "
    "each width tried)." + shown_default("any"),
)
def train(
    arch: str,
    run_dir: Path | None,
    split: str,
    folds: str | None,
    workers: int | None,
    address: str | None,
    size_text: str | None,
    max_model_kb: float | None,
    max_arena_kb: float | None,
    max_instructions: int | None,
    **training: Any,
) -> None:
    """Train the tiny or paper model; write model, dataset.json, metrics and plots to the run."""
    from tinyhar.model.architectures import parse_size  # lazy: fast --help
    from tinyhar.model.train import summary  # lazy: fast --help
    from tinyhar.model.train import train as run_training  # lazy: fast --help

    size = parse_size(size_text) if size_text is not None else None
    if size is not None and arch != "tiny":
        raise TinyharError("--size shapes tiny: drop it or use --arch tiny")
    cfg = training_config(
        training,
        arch=arch,
        run=run_dir,
        split=split,
        max_model_kb=max_model_kb,
        max_arena_kb=max_arena_kb,
        max_instructions=max_instructions,
        size=size,
    )
    count_instructions = None
    if max_instructions is not None and arch == "tiny":
        from tinyhar.device.instruction_budget import instruction_counter  # lazy: fast --help
        from tinyhar.model.budget import BUDGET_BOARD  # lazy: fast --help

        count_instructions = instruction_counter(load_board(BUDGET_BOARD))
    if folds is not None or workers is not None:
        if split != "loso" or folds is None:
            raise TinyharError(
                "--folds (and --workers) go with --split loso, e.g. --split loso --folds all"
            )
        from tinyhar.model.loso import LosoOptions, format_loso, run_loso  # lazy: fast --help

        opts = LosoOptions(
            train=cfg,
            folds=folds,
            workers=workers,
            address=address,
            progress=log.verbosity() >= log.NORMAL,
            count_instructions=count_instructions,
        )
        result = run_loso(opts, log=log.inf)
        echo(format_loso(result))
        if result.summary["failed"]:
            sys.exit(EXIT_FAILED)
        return
    trained = run_training(cfg, log=log.inf, count_instructions=count_instructions)
    echo(summary(trained))


@click.command()
@training_options
@build_board_option("the best model must fit its budget (flash for the model, RAM for the arena).")
@click.option(
    "--trials",
    type=click.IntRange(1),
    default=DEFAULT_TRIALS,
    show_default=True,
    help="Models of the tiny family to train and measure.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Trials at once." + shown_default("local Ray: the cores"),
)
@click.option(
    "--address",
    envvar="RAY_ADDRESS",
    default=None,
    help="A Ray cluster (also $RAY_ADDRESS)." + shown_default("a local Ray"),
)
@run_option(
    "Run folder to write: trials/, tune/, search.json and the best model.",
    "runs/<time>-tiny-search",
    "run_dir",
)
@click.option(
    "--resume", is_flag=True, help="Continue the interrupted search in --run (same options)."
)
@click.option(
    "--max-model-kb",
    type=click.FloatRange(min=1),
    default=None,
    help="Model budget: the largest int8 model (KB) the best trial may have."
    + shown_default("the board's model flash budget"),
)
@click.option(
    "--max-arena-kb",
    type=click.FloatRange(min=1),
    default=None,
    help="Model budget: the largest TFLM arena (KB) the best trial may have."
    + shown_default("the board's arena RAM budget"),
)
@click.option(
    "--max-instructions",
    type=click.IntRange(min=1),
    default=None,
    help="Latency budget: instructions per inference on the emulated board, a hard "
    "bound (a size over it is counted untrained and not trained) and what the search "
    "minimises beside accuracy." + shown_default("any; model bytes minimised"),
)
@click.option(
    "--emulate/--no-emulate",
    default=None,
    help="Measure each trial's instructions per inference on the emulated board "
    "(QEMU; about 10 s a trial)."
    + shown_default("where QEMU, the Arm compiler and the board's TFLM library are"),
)
def search(
    board: Board,
    trials: int,
    workers: int | None,
    address: str | None,
    run_dir: Path | None,
    resume: bool,
    max_model_kb: float | None,
    max_arena_kb: float | None,
    max_instructions: int | None,
    emulate: bool | None,
    **training: Any,
) -> None:
    """Search the tiny family (width, kernel, pooling, attention, dense branch) on Ray Tune:
    int8 accuracy against model bytes, arena and latency (the emulated firmware's instructions,
    else MACs); the best that fits the board into --run. Every trial trains as `tinyhar train`
    with the same training options."""
    from tinyhar.search.tune import SearchOptions, format_search, run_search  # lazy: fast --help

    cfg = training_config(training, run=run_dir)
    opts = SearchOptions(
        train=cfg,
        board=board,
        trials=trials,
        workers=workers,
        address=address,
        resume=resume,
        max_model_kb=max_model_kb,
        max_arena_kb=max_arena_kb,
        max_instructions=max_instructions,
        emulate=emulate,
        progress=log.verbosity() >= log.NORMAL,
    )
    result = run_search(opts, log=log.inf)
    echo(format_search(result))
    if result.summary["best"] is None:
        sys.exit(EXIT_FAILED)
