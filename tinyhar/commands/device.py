"""`tinyhar sim | verify | monitor | record`: talking to a board, virtual, emulated or real."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tinyhar import log
from tinyhar.board.boards import Board
from tinyhar.commands.options import (
    board_option,
    build_board_option,
    default_of,
    echo,
    libraries_option,
    parameter_default,
    path_type,
    port_option,
    run_option,
    shown_default,
    trace_option,
)
from tinyhar.device.monitor import MonitorOptions, run_monitor
from tinyhar.device.record import RecordOptions, record_imu
from tinyhar.device.verify import VerifyOptions, format_report, verify_device
from tinyhar.device.virtual_board import Faults, run_sim
from tinyhar.errors import EXIT_FAILED, TinyharError


@click.command()
@build_board_option("the virtual board plays it (with --emulate: the board the run was built for).")
@run_option()
@click.option(
    "--replay",
    type=path_type(exists=True),
    default=None,
    help="Dataset folder, or MHEALTH-format file or folder, of the run's dataset for the IMU to "
    "replay." + shown_default("the run's test recordings"),
)
@click.option(
    "--model",
    type=path_type(exists=True, dir_okay=False),
    default=None,
    help="Carry this .tflite instead of the run's (a different model CRC).",
)
@click.option(
    "--drop",
    type=float,
    default=default_of(Faults, "drop"),
    show_default=True,
    help="Fraction of bytes dropped, both directions.",
)
@click.option(
    "--corrupt",
    type=float,
    default=default_of(Faults, "corrupt"),
    show_default=True,
    help="Fraction of bytes corrupted, both directions.",
)
@click.option(
    "--delay",
    type=float,
    default=default_of(Faults, "delay_ms"),
    show_default=True,
    help="Delay every reply (ms).",
)
@click.option(
    "--reset-after",
    type=click.IntRange(0),
    default=default_of(Faults, "reset_after"),
    show_default=True,
    help="Reset the device once, while it handles request N (0: never).",
)
@click.option(
    "--seed",
    type=click.IntRange(0),
    default=default_of(Faults, "seed"),
    show_default=True,
    help="Seed of the fault injection.",
)
@click.option(
    "--speed",
    type=float,
    default=parameter_default(run_sim, "speed"),
    show_default=True,
    help="IMU replay speed (1 = the training rate).",
)
@click.option(
    "--link",
    type=path_type(),
    default=None,
    help="Also make this symlink to the pty (a stable --port).",
)
@click.option(
    "--emulate",
    is_flag=True,
    help="Run the generated firmware itself (the run's `tinyhar build`) on an emulated "
    "Cortex-M4F: QEMU mps2-an386.",
)
@libraries_option
def sim(
    board: Board,
    run: Path | None,
    replay: Path | None,
    model: Path | None,
    drop: float,
    corrupt: float,
    delay: float,
    reset_after: int,
    seed: int,
    speed: float,
    link: Path | None,
    emulate: bool,
    libraries: Path | None,
) -> None:
    """Start a virtual board on a pseudo-terminal and print its path (use it as --port)."""

    faults = Faults(drop=drop, corrupt=corrupt, delay_ms=delay, reset_after=reset_after, seed=seed)
    if emulate:  # the firmware itself under QEMU: tinyhar/device/emulator.py
        from tinyhar.device.emulator import run_emulated_sim  # lazy: fast --help

        ctx = click.get_current_context()
        given = ctx.get_parameter_source("board") != click.core.ParameterSource.DEFAULT
        software_only = {
            "--replay": replay,
            "--model": model,
            "--speed": speed != 1.0,
            "fault injection": faults.describe() != "none",
        }
        unused = [option for option, given_ in software_only.items() if given_]
        run_emulated_sim(
            board.name if given else None, run, link, unused, announce=echo, libraries=libraries
        )
        return
    if libraries is not None:
        raise TinyharError(
            "--libraries: only the emulated board (`tinyhar sim --emulate`) builds the board's "
            "TFLM library; the software board runs the Python TFLM interpreter"
        )
    run_sim(board, run, faults, model=model, replay=replay, speed=speed, link=link, announce=echo)


@click.command()
@port_option
@run_option()
@click.option(
    "--windows",
    type=click.IntRange(1),
    default=None,
    help="Test windows to send." + shown_default("all"),
)
@click.option(
    "--raw", is_flag=True, help="Send raw samples in board units: checks on-device preprocessing."
)
@board_option("--raw converts the samples to its units.", "the one the device names in HELLO")
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=default_of(VerifyOptions, "min_agreement"),
    show_default=True,
    help="Least top-1 agreement with the reference to pass.",
)
@click.option(
    "--max-lsb",
    type=click.IntRange(0),
    default=None,
    help="Largest output difference (int8 LSB) to pass."
    + shown_default(
        "0 against the board's own code or the virtual board's own "
        "interpreter, 1 against the Python interpreter"
    ),
)
@libraries_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=default_of(VerifyOptions, "timeout"),
    show_default=True,
    help="Seconds per attempt.",
)
@click.option(
    "--retries",
    type=click.IntRange(0),
    default=default_of(VerifyOptions, "retries"),
    show_default=True,
    help="Retries per request.",
)
@trace_option
@click.option(
    "--resume", is_flag=True, help="Continue this mode's interrupted run from its last window."
)
@click.option(
    "--profile",
    is_flag=True,
    help="Read the firmware's per-op counts after every window and print where the "
    "inference spends its time (instructions on `sim --emulate`, cycles on a board "
    "built with `build --profile`).",
)
def verify(
    port: str,
    run: Path | None,
    windows: int | None,
    raw: bool,
    board: str | None,
    min_agreement: float,
    max_lsb: int | None,
    libraries: Path | None,
    timeout: float,
    retries: int,
    trace: bool,
    resume: bool,
    profile: bool,
) -> None:
    """Check that the device computes what the host computes; write verify_<mode>.json/.png.

    \b
    The reference, and what agreeing with it proves, depend on the device:
    - a firmware (a board, or `sim --emulate`), with the board's TFLM library
      found (--libraries): the board's own firmware code built for the host;
      bit for bit, it checks the board's kernels, the C core and the link;
    - the same without that library: the Python TFLM interpreter, a newer
      TFLM, within 1 LSB: the board's kernels are not checked bit for bit;
    - the virtual board (`tinyhar sim`): the Python TFLM interpreter, which it
      runs itself: it checks the link, the C core and the preprocessing, not
      the board's kernels.
    The report names its reference. A run that stops part-way keeps a passing
    report as it was; every run adds a line to verify_history.jsonl."""

    opts = VerifyOptions(
        port=port,
        run=run,
        windows=windows,
        raw=raw,
        board=board,
        min_agreement=min_agreement,
        max_lsb=max_lsb,
        libraries=libraries,
        timeout=timeout,
        retries=retries,
        trace=trace,
        resume=resume,
        profile=profile,
        progress=not trace,  # a bar redrawn between trace lines garbles both
    )
    report = verify_device(opts)
    echo(format_report(report))
    if not report.passed:
        sys.exit(EXIT_FAILED)


@click.command()
@port_option
@run_option("Run folder, for class names when the firmware has none.")
@click.option(
    "--last",
    type=click.IntRange(1, 100),
    default=default_of(MonitorOptions, "last"),
    show_default=True,
    help="Predictions in the rolling view.",
)
@click.option("--count", type=click.IntRange(1), default=None, help="Stop after N predictions.")
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after S seconds.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=default_of(MonitorOptions, "timeout"),
    show_default=True,
    help="Seconds per request attempt.",
)
@trace_option
def monitor(
    port: str,
    run: Path | None,
    last: int,
    count: int | None,
    seconds: float | None,
    timeout: float,
    trace: bool,
) -> None:
    """Show the board's live predictions from its IMU; Ctrl-C stops the stream and exits."""

    opts = MonitorOptions(
        port=port, run=run, last=last, count=count, seconds=seconds, timeout=timeout, trace=trace
    )
    run_monitor(opts, out=echo)


@click.command()
@port_option
@click.option("--label", required=True, help="The activity being recorded, e.g. walking.")
@click.option("--subject", type=click.IntRange(0), required=True, help="Who wears the board.")
@click.option(
    "--out",
    type=path_type(file_okay=False),
    required=True,
    help="Dataset folder: the recording and its dataset.toml go here.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=default_of(RecordOptions, "seconds"),
    show_default=True,
    help="How long to record.",
)
@click.option(
    "--session",
    type=click.IntRange(1),
    default=None,
    help="Session number." + shown_default("the subject's next"),
)
@run_option("Run folder the firmware was built from (its channels).")
@board_option("its units and axes are recorded.", "the one the device names in HELLO")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=default_of(RecordOptions, "timeout"),
    show_default=True,
    help="Seconds per request attempt.",
)
@click.option("--no-plot", is_flag=True, help="No live plot, even where a display exists.")
@trace_option
def record(
    port: str,
    label: str,
    subject: int,
    out: Path,
    seconds: float,
    session: int | None,
    run: Path | None,
    board: str | None,
    timeout: float,
    no_plot: bool,
    trace: bool,
) -> None:
    """Record the board's IMU, as its firmware samples it, into a dataset folder for `train`."""

    opts = RecordOptions(
        port=port,
        label=label,
        out=out,
        subject=subject,
        seconds=seconds,
        session=session,
        run=run,
        board=board,
        timeout=timeout,
        trace=trace,
        progress=not trace,
        plot=not no_plot,
    )
    r = record_imu(opts, log=log.inf)
    lost = f", {r.lost} lost on the way" if r.lost else ""
    echo(
        f"recorded {r.samples} samples ({r.seconds:.1f} s at {r.rate_hz:g} Hz{lost}) "
        f"of {label!r} into {r.file}"
    )
    if r.stopped:
        sys.exit(EXIT_FAILED)
