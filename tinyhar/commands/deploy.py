"""`tinyhar quantize | evaluate | boards | build | flash`: from a trained run to a board."""

from __future__ import annotations

from pathlib import Path

import click

from tinyhar import log
from tinyhar.board.boards import Board
from tinyhar.board.tflm_library import KERNEL_CHOICES
from tinyhar.commands.options import (
    PORT,
    SIDE,
    board_option,
    build_board_option,
    default_of,
    echo,
    libraries_option,
    path_type,
    run_option,
    shown_default,
    subject_ids,
)
from tinyhar.deploy.build import BuildOptions, build_firmware, format_summary


@click.command()
@run_option()
@build_board_option("int8 accuracy is also measured with its TFLM library.")
@libraries_option
def quantize(run: Path | None, board: Board, libraries: Path | None) -> None:
    """Convert a trained run to int8 for TFLM; measure accuracy (also as the board's TFLM library
    computes it, where it can be built for the host), arena and size."""
    from tinyhar.deploy.quantize import format_report, quantize_run  # lazy: fast --help

    echo(format_report(quantize_run(run, board=board, libraries=libraries)))


@click.command()
@run_option()
@click.option(
    "--data",
    type=path_type(exists=True),
    required=True,
    help="Dataset folder (tinyhar data import) or MHEALTH to score on.",
)
@click.option(
    "--subjects",
    callback=subject_ids,
    default=None,
    help="Only these subjects, e.g. 2,4,9." + shown_default("all"),
)
@click.option(
    "--sensors",
    type=click.Choice(["arm", "ankle", "both"]),
    default=None,
    help="MHEALTH data, for a run of another dataset: whose channels." + shown_default("arm"),
)
@build_board_option("int8 is also scored with its TFLM library.")
@libraries_option
def evaluate(
    run: Path | None,
    data: Path,
    subjects: list[int] | None,
    sensors: str | None,
    board: Board,
    libraries: Path | None,
) -> None:
    """Score a trained run, float and int8, on another dataset or other subjects; write
    evaluate.json and evaluate_confusion.png into the run."""
    from tinyhar.deploy.evaluate import evaluate_run, format_evaluation  # lazy: fast --help

    ev = evaluate_run(
        run,
        data,
        subjects,
        log=log.inf,
        warn=log.wrn,
        sensors=sensors,
        board=board,
        libraries=libraries,
    )
    echo(format_evaluation(ev))


@click.command()
def boards() -> None:
    """List the boards tinyhar can build for, with their budgets: the flash each leaves the int8
    model and the RAM it leaves the TFLM arena."""
    from tinyhar.board.boards import board_table, list_boards  # lazy: fast --help

    echo("\n".join(board_table(list_boards())))
    echo(
        "model flash / arena RAM: the board's budget for the int8 model and the TFLM arena "
        "(build and search check it); `train` sizes tiny to a smaller model budget "
        "(--max-model-kb, --max-arena-kb)"
    )


@click.command()
@build_board_option("the firmware is for it.")
@run_option()
@click.option(
    "--model",
    type=path_type(exists=True, dir_okay=False),
    default=None,
    help="A .tflite of your own instead of a run.",
)
@click.option(
    "--out",
    type=path_type(file_okay=False),
    default=None,
    help="With --model: folder for firmware/ and build.json." + shown_default("beside the model"),
)
@click.option(
    "--sketch-name",
    default=default_of(BuildOptions, "sketch_name"),
    show_default=True,
    help="Name of your sketch: firmware/<board>/<name>/<name>.ino.",
)
@click.option(
    "--arena-margin",
    default=default_of(BuildOptions, "arena_margin"),
    show_default=True,
    help="Added to the measured arena: bytes, KB or a percentage.",
)
@click.option("--no-install", is_flag=True, help="Do not install the Arduino core or libraries.")
@click.option("--require-compile", is_flag=True, help="Fail when arduino-cli cannot compile.")
@click.option("--stream-at-boot", is_flag=True, help="Stream predictions from reset.")
@click.option(
    "--profile",
    is_flag=True,
    help="Count each op's CPU cycles on the board (DWT) for `tinyhar verify --profile`; "
    "the emulated board always counts instructions.",
)
@click.option(
    "--tflm-library",
    default=None,
    help="Build against another TFLM library the board supports (see its board file).",
)
@click.option(
    "--kernels",
    type=click.Choice(KERNEL_CHOICES),
    default=default_of(BuildOptions, "kernels"),
    show_default=True,
    help="Who runs an op both have: tinyhar's own kernels (fast on the Cortex-M4, the arithmetic "
    "of the current TFLM) or the TFLM library's (tinyhar's only for ops it lacks).",
)
@libraries_option
@click.option(
    "--no-measure",
    is_flag=True,
    help="Skip the Cortex-M4F link measuring flash and RAM (estimate them).",
)
@click.option(
    "--train-if-missing",
    is_flag=True,
    help="With no run at all, train one with the defaults first (minutes; on synthetic "
    "data unless MHEALTH was downloaded).",
)
@click.option(
    "--labels",
    default=None,
    help="--model: class names, comma separated."
    + shown_default(f"{SIDE}, else class0,class1,..."),
)
@click.option(
    "--window",
    type=int,
    default=None,
    help="--model: samples per window." + shown_default(f"{SIDE}, else the model's input shape"),
)
@click.option(
    "--channels",
    default=None,
    help="--model: count, or names like acc_x,...,gyro_z."
    + shown_default(f"{SIDE}, else the model's input shape"),
)
@click.option(
    "--mean",
    default=None,
    help="--model: per-channel means, comma separated." + shown_default(f"{SIDE}, else 0"),
)
@click.option(
    "--std",
    default=None,
    help="--model: per-channel stds, comma separated." + shown_default(f"{SIDE}, else 1"),
)
@click.option(
    "--input-scale",
    type=float,
    default=None,
    help="--model, float input: int8 step." + shown_default(f"{SIDE}, else 1/32"),
)
@click.option(
    "--output-scale",
    type=float,
    default=None,
    help="--model, float output: int8 step."
    + shown_default(f"{SIDE}, else 1/256 after a SOFTMAX, 1/16 otherwise"),
)
@click.option(
    "--output-zero-point",
    type=int,
    default=None,
    help="--model, float output: int8 zero point (with an output scale)."
    + shown_default(f"{SIDE}, else 0"),
)
def build(
    board: Board,
    run: Path | None,
    model: Path | None,
    out: Path | None,
    sketch_name: str,
    arena_margin: str,
    no_install: bool,
    require_compile: bool,
    stream_at_boot: bool,
    profile: bool,
    tflm_library: str | None,
    kernels: str,
    libraries: Path | None,
    no_measure: bool,
    train_if_missing: bool,
    labels: str | None,
    window: int | None,
    channels: str | None,
    mean: str | None,
    std: str | None,
    input_scale: float | None,
    output_scale: float | None,
    output_zero_point: int | None,
) -> None:
    """Generate the firmware for a board: the tinyhar_model Arduino library (model, config, core,
    runner, kernels) and a sketch that is yours; compiled where arduino-cli is.

    Builds --run, else the latest run under runs/; with no run at all it stops and says how to
    make one (or trains one with --train-if-missing)."""

    opts = BuildOptions(
        board=board,
        run=run,
        model=model,
        out=out,
        sketch_name=sketch_name,
        arena_margin=arena_margin,
        install=not no_install,
        require_compile=require_compile,
        stream_at_boot=stream_at_boot,
        profile=profile,
        tflm_library=tflm_library,
        kernels=kernels,
        libraries=libraries,
        measure=not no_measure,
        train_if_missing=train_if_missing,
        model_options={
            "labels": labels,
            "window": window,
            "channels": channels,
            "mean": mean,
            "std": std,
            "input_scale": input_scale,
            "output_scale": output_scale,
            "output_zero_point": output_zero_point,
        },
    )
    echo(format_summary(build_firmware(opts)))


@click.command()
@board_option("the run must have been last built for it.", "the board the run was last built for")
@click.option(
    "--port",
    default=None,
    help=PORT + shown_default("found by USB VID:PID"),
)
@run_option()
def flash(board: str | None, port: str | None, run: Path | None) -> None:
    """Upload the compiled firmware with arduino-cli."""
    from tinyhar.deploy.flash import flash_firmware  # lazy: fast --help

    echo(flash_firmware(board=board, port=port, run=run))
