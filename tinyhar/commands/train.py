"""`tinyhar train` and `tinyhar search`: a model, or the Pareto front of tiny sizes."""

from __future__ import annotations

import sys

import click

from tinyhar import log
from tinyhar.board.boards import load_board
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
from tinyhar.errors import EXIT_FAILED, TinyharError


@click.command()
@click.option(
    "--data",
    type=path_type(),
    default=None,
    help="Dataset folder (tinyhar data import), or MHEALTH folder, zip or CSV."
    + shown_default("the `tinyhar data download` cache"),
)
@click.option(
    "--sensors",
    type=click.Choice(["arm", "ankle", "both"]),
    default=None,
    help="MHEALTH only: arm = what one wrist-worn board sees; both = the paper's 12."
    + shown_default("arm"),
)
@click.option(
    "--arch",
    type=click.Choice(["tiny", "paper"]),
    default="tiny",
    show_default=True,
    help="tiny: sized to the model budget (--max-model-kb, --max-arena-kb); paper: the "
    "paper's model as its text gives it.",
)
@run_option("Run folder to write.", "runs/<time>-<arch>-<sensors or dataset>", "run_dir")
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Most epochs (--patience usually stops sooner).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Windows per training step.",
)
@click.option(
    "--stride",
    type=click.IntRange(1, MAX_STRIDE),
    default=50,
    show_default=True,
    help="Samples between window starts (windows are 100 samples, 2 s).",
)
@click.option(
    "--train-stride",
    type=click.IntRange(1, MAX_STRIDE),
    default=None,
    help="Samples between training windows' starts; validation and test keep "
    "--stride; --split random takes --stride."
    + shown_default("10 for tiny, 25 for paper, or --stride if smaller"),
)
@click.option(
    "--include-null", is_flag=True, help="MHEALTH: keep the null class as class 0 (13 classes)."
)
@click.option(
    "--classes",
    callback=names,
    default=None,
    help="Class names to learn, comma separated, in class order."
    + shown_default("every class with training windows"),
)
@click.option(
    "--split",
    type=click.Choice(["subjects", "loso", "random"]),
    default="subjects",
    show_default=True,
    help="subjects: named subjects per set; LOSO: leave one subject out; random: the paper's "
    "window shuffle (leaks).",
)
@subject_options("to choose the epoch on", "to report on, e.g. 9,10 (loso: one id)")
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
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the weights, shuffles and sizing: same seed, same run.",
)
@click.option(
    "--select",
    type=click.Choice(["val_macro_f1", "val_accuracy", "val_loss"]),
    default="val_macro_f1",
    show_default=True,
    help="Keep the epoch with the best of this validation score.",
)
@click.option(
    "--min-epochs",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Select only from this epoch on.",
)
@click.option(
    "--patience",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Stop after this many epochs without a better --select score.",
)
@click.option(
    "--rotate",
    type=click.FloatRange(0, 180),
    default=0.0,
    show_default=True,
    help="Augment: rotate the sensor frame (acc and gyro alike) ± degrees.",
)
@click.option(
    "--scale",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Augment: scale amplitudes by 1 ± this.",
)
@click.option(
    "--time-jitter",
    type=click.FloatRange(0, 0.5, max_open=True),
    default=0.0,
    show_default=True,
    help="Augment: stretch time by 1 ± this.",
)
@click.option(
    "--clip-board",
    type=BoardParam(),
    default=None,
    help="Augment: clip at this board's IMU range, e.g. nano33ble." + shown_default("no clipping"),
)
@click.option(
    "--lr-schedule",
    type=click.Choice(["cosine", "constant"]),
    default="cosine",
    show_default=True,
    help="Adam's learning rate: constant, or cosine decay to 0 over --epochs.",
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
    "nano33ble (needs qemu-system-arm and arm-none-eabi-gcc; an untrained model of "
    "each width tried)." + shown_default("any"),
)
def train(
    data,
    sensors,
    arch,
    run_dir,
    epochs,
    batch_size,
    stride,
    train_stride,
    include_null,
    classes,
    split,
    train_subjects,
    val_subjects,
    test_subjects,
    folds,
    workers,
    address,
    seed,
    select,
    min_epochs,
    patience,
    rotate,
    scale,
    time_jitter,
    clip_board,
    lr_schedule,
    size_text,
    max_model_kb,
    max_arena_kb,
    max_instructions,
) -> None:
    """Train the tiny or paper model; write model, dataset.json, metrics and plots to the run."""
    from tinyhar.model.architectures import parse_size  # lazy: fast --help
    from tinyhar.model.augment import Augment, clip_to_board  # lazy: fast --help
    from tinyhar.model.selection import SelectionRule  # lazy: fast --help
    from tinyhar.model.train import TrainConfig, summary  # lazy: fast --help
    from tinyhar.model.train import train as run_training  # lazy: fast --help

    size = parse_size(size_text) if size_text is not None else None
    if size is not None and arch != "tiny":
        raise TinyharError("--size shapes tiny: drop it or use --arch tiny")
    augment = Augment(rotate_deg=rotate, scale=scale, time_jitter=time_jitter)
    if clip_board:
        augment = clip_to_board(augment, clip_board)

    cfg = TrainConfig(
        data=data,
        sensors=sensors,
        arch=arch,
        run=run_dir,
        epochs=epochs,
        batch_size=batch_size,
        stride=stride,
        train_stride=train_stride,
        include_null=include_null,
        classes=classes,
        split=split,
        train_subjects=train_subjects,
        val_subjects=val_subjects,
        test_subjects=test_subjects,
        seed=seed,
        select=SelectionRule(select, min_epochs, patience),
        augment=augment,
        lr_schedule=lr_schedule,
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
@click.option(
    "--data",
    type=path_type(),
    default=None,
    help="Dataset folder (tinyhar data import), or MHEALTH folder, zip or CSV."
    + shown_default("the `tinyhar data download` cache"),
)
@click.option(
    "--sensors",
    type=click.Choice(["arm", "ankle", "both"]),
    default=None,
    help="MHEALTH only: whose channels." + shown_default("arm"),
)
@build_board_option("the best model must fit its budget (flash for the model, RAM for the arena).")
@click.option(
    "--trials",
    type=click.IntRange(1),
    default=20,
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
    "--epochs",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Most epochs per trial (--patience usually stops sooner).",
)
@click.option(
    "--patience",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Stop a trial after this many epochs with no better val macro-F1.",
)
@click.option(
    "--stride",
    type=click.IntRange(1, MAX_STRIDE),
    default=50,
    show_default=True,
    help="Samples between window starts (windows are 100 samples, 2 s).",
)
@click.option(
    "--classes",
    callback=names,
    default=None,
    help="Class names to learn, comma separated, in class order."
    + shown_default("every class with training windows"),
)
@subject_options("the trials are chosen on", "only reported on, e.g. 9,10")
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
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the search and of every trial's training.",
)
def search(
    data,
    sensors,
    board,
    trials,
    workers,
    address,
    run_dir,
    resume,
    epochs,
    patience,
    stride,
    classes,
    train_subjects,
    val_subjects,
    test_subjects,
    max_model_kb,
    max_arena_kb,
    max_instructions,
    emulate,
    seed,
) -> None:
    """Search the tiny family (width, kernel, pooling, attention, dense branch) on Ray Tune:
    int8 accuracy against model bytes, arena and latency (the emulated firmware's instructions,
    else MACs); the best that fits the board into --run."""
    from tinyhar.model.selection import SelectionRule  # lazy: fast --help
    from tinyhar.model.train import TrainConfig  # lazy: fast --help
    from tinyhar.search.tune import SearchOptions, format_search, run_search  # lazy: fast --help

    cfg = TrainConfig(
        data=data,
        sensors=sensors,
        run=run_dir,
        epochs=epochs,
        select=SelectionRule(patience=patience),
        stride=stride,
        classes=classes,
        train_subjects=train_subjects,
        val_subjects=val_subjects,
        test_subjects=test_subjects,
        seed=seed,
    )
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
