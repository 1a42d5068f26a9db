"""The `tinyhar` command line: parse options, call the library, print. No logic lives here.

Each command imports its module when it runs (`# lazy: fast --help`): TensorFlow alone takes
seconds to import, and `tinyhar --help` should not wait for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tinyhar import __version__, interrupt, log
from tinyhar.board.arduino_dirs import LIBRARIES_ENV
from tinyhar.errors import EXIT_FAILED, EXIT_INTERRUPTED, TinyharError
from tinyhar.runs import DEMO_DIR

MAX_STRIDE = 0xFFFF  # the firmware counts the samples between predictions in 16 bits
MAX_SUBJECT = 999_999  # as tinyhar.data.recordings reads subject numbers
GLOSSARY = (
    "Terms (LSB, TFLM, arena, HELLO, LOSO, Pareto, icount, FQBN, macro-F1, budget): "
    "docs/glossary.md in tinyhar's repository."
)


class _Group(click.Group):
    """Turns TinyharError into one line on stderr and Ctrl-C into a clean exit, however a library
    turned the KeyboardInterrupt into another error."""

    def invoke(self, ctx: click.Context):
        with interrupt.handling():
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt:
                _interrupted()
            except TinyharError as e:
                if interrupt.seen():
                    _interrupted()
                click.echo(f"error: {log.printable(str(e), lines=False)}", file=interrupt.stderr())
                sys.exit(e.exit_code)
            except Exception:
                if interrupt.seen():
                    _interrupted()
                raise


def _echo(text: str) -> None:
    """Print a result on stdout; control characters that came with data (class names, a
    board's strings) are escaped, not sent to the terminal."""
    click.echo(log.printable(text))


def _interrupted() -> None:
    click.echo("interrupted", file=interrupt.stderr())
    sys.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=GLOSSARY)
@click.version_option(__version__, prog_name="tinyhar")
@click.option("-v", "--verbose", is_flag=True, help="Also print debug lines.")
@click.option("-q", "--quiet", is_flag=True, help="Print only warnings, errors and results.")
def main(verbose: bool, quiet: bool) -> None:
    """Activity recognition from wearable IMUs to a microcontroller, verified on the device.

    \b
    Typical use:
      tinyhar data synth --out data/synth     (or: tinyhar data download)
      tinyhar train --data data/synth --sensors arm --arch tiny
      tinyhar build --board nano33ble
      tinyhar flash
      tinyhar verify --port /dev/ttyACM0
    """
    if verbose and quiet:
        raise click.UsageError("-v and -q exclude each other")
    log.set_verbosity(log.VERBOSE if verbose else log.QUIET if quiet else log.NORMAL)


def _path(exists: bool = False, dir_okay: bool = True, file_okay: bool = True) -> click.Path:
    return click.Path(exists=exists, dir_okay=dir_okay, file_okay=file_okay, path_type=Path)


def _default(text: str) -> str:
    """A computed default, shown as click shows a literal one."""
    return f"  [default: {text}]"


LATEST_RUN = "the latest trained run under runs/"
BOARD = "Board: a name from `tinyhar boards`, or a board .toml file"
SIDE = "the side file <model>.json"
# the default subject split (data.windows.default_subject_split), as each option's default
SPLIT = ("the first ~60 % of the subjects by id", "the next ~20 %", "the last ~20 %")


def _libraries_option(f):
    """--libraries, worded alike on every command that needs the board's TFLM library."""
    return click.option(
        "--libraries",
        type=_path(file_okay=False),
        default=None,
        help="Arduino libraries folder that holds the board's TFLM library."
        + _default(f"${LIBRARIES_ENV}, else arduino-cli's, else ~/Arduino/libraries"),
    )(f)


def _run_option(what: str = "Run folder.", default: str = LATEST_RUN, dest: str = "run"):
    """--run, worded alike: a run folder to read (or, for train and search, to write)."""
    return click.option("--run", dest, type=_path(), default=None, help=what + _default(default))


def _subject_options(val_role: str, test_role: str):
    """--train-subjects, --val-subjects and --test-subjects, worded alike for train and search."""
    roles = (
        ("train", "to train on, e.g. 1,2,3,4,5,6"),
        ("val", f"{val_role}, e.g. 7,8"),
        ("test", test_role),
    )
    options = [
        click.option(
            f"--{part}-subjects",
            callback=_subject_ids,
            help=f"Subjects {role}." + _default(default),
        )
        for (part, role), default in zip(roles, SPLIT, strict=True)
    ]

    def apply(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def _board_option(role: str, default: str | None = "nano33ble", shown: str | None = None):
    """--board, worded alike: `BOARD`, its role in the command, and its default."""
    if default is not None:
        return click.option("--board", default=default, show_default=True, help=f"{BOARD}; {role}")
    return click.option("--board", default=None, help=f"{BOARD}; {role}" + _default(shown or ""))


# --- data: tinyhar data synth | info | download -------------------------------------------------


@main.group()
def data() -> None:
    """Get, make, import and inspect datasets (MHEALTH, or a folder with a dataset.toml)."""


@data.command("synth")
@click.option("--out", type=_path(), required=True, help="Folder to write (made atomically).")
@click.option(
    "--subjects",
    type=click.IntRange(1, 99),
    default=10,
    show_default=True,
    help="Synthetic subjects, one log file each.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
def data_synth(out: Path, subjects: int, seed: int) -> None:
    """Write a SYNTHETIC dataset in the exact UCI MHEALTH log format (for offline use and tests)."""
    from tinyhar.data.info import dataset_info  # lazy: fast --help
    from tinyhar.data.synth import synthesize  # lazy: fast --help

    folder = synthesize(out, subjects=subjects, seed=seed)
    info = dataset_info(folder)
    _echo(
        f"wrote SYNTHETIC data: {subjects} subjects, {info.rows} rows "
        f"({info.rows / 50 / 60:.1f} min at 50 Hz), seed {seed} -> {folder}"
    )


@data.command("info")
@click.argument("path", type=_path())
def data_info(path: Path) -> None:
    """Print source, subjects, rows, minutes and class counts of a dataset: a folder with a
    dataset.toml, or MHEALTH (folder, zip or CSV)."""
    from tinyhar.data.info import dataset_info, format_info  # lazy: fast --help

    _echo(format_info(dataset_info(path)))


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("give names separated by commas")
    return names


@data.command("import")
@click.argument("src", type=_path(exists=True))
@click.option(
    "--out",
    type=_path(file_okay=False),
    required=True,
    help="Dataset folder to write (new or empty; made atomically).",
)
@click.option(
    "--acc-unit",
    default=None,
    help="Accelerometer unit: g, mg or m/s^2."
    + _default("from the column names, else from gravity"),
)
@click.option(
    "--gyro-unit",
    default=None,
    help="Gyroscope unit: rad/s or deg/s." + _default("from the column names"),
)
@click.option(
    "--rate",
    "rate_hz",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Samples per second." + _default("from a time column like time_s"),
)
@click.option(
    "--label-column",
    default=None,
    help="Column holding the activity." + _default("a column named activity, label or class"),
)
@click.option(
    "--drop",
    callback=_names,
    default=None,
    help="Labels to drop, comma separated; globs like '*_TO_*'." + _default("none"),
)
@click.option(
    "--subject-pattern",
    default=None,
    help="Regex on file names, the subject number its group." + _default("subjectN"),
)
@click.option(
    "--subject-column", default=None, help="Column holding the subject." + _default("subject")
)
@click.option(
    "--columns",
    callback=_names,
    default=None,
    help="Signal columns, comma separated." + _default("every acc_*/gyro_* column"),
)
@click.option("--name", default=None, help="Dataset name." + _default("the --out folder's name"))
def data_import(
    src,
    out,
    acc_unit,
    gyro_unit,
    rate_hz,
    label_column,
    drop,
    subject_pattern,
    subject_column,
    columns,
    name,
) -> None:
    """Make a dataset folder from CSV or CSV.gz recordings in SRC: infer their rate, units,
    labels and subjects, and write them with a dataset.toml into OUT."""
    from tinyhar.data.importer import (  # lazy: fast --help
        ImportOptions,
        format_import,
        import_dataset,
    )

    opts = ImportOptions(
        acc_unit=acc_unit,
        gyro_unit=gyro_unit,
        rate_hz=rate_hz,
        label_column=label_column,
        drop=drop or [],
        subject_pattern=subject_pattern,
        subject_column=subject_column,
        columns=columns,
        name=name,
    )
    _echo(format_import(import_dataset(src, out, opts, log=log.inf)))


@data.command("download")
@click.option(
    "--dest",
    type=_path(file_okay=False),
    default=None,
    help="Folder for the logs." + _default("$TINYHAR_CACHE/mhealth, else ~/.cache/tinyhar/mhealth"),
)
@click.option(
    "--url",
    envvar="TINYHAR_MHEALTH_URL",
    default=None,
    help="A mirror of the UCI MHEALTH zip (also $TINYHAR_MHEALTH_URL)." + _default("UCI's own"),
)
def data_download(dest: Path | None, url: str | None) -> None:
    """Download MHEALTH from UCI, verify every log by SHA-256, keep it in the user cache."""
    from tinyhar.data.download import (  # lazy: fast --help
        default_data_dir,
        default_url,
        download_mhealth,
        is_downloaded,
    )

    dest = dest or default_data_dir()
    if is_downloaded(dest):
        _echo(f"MHEALTH already downloaded and verified in {dest}; nothing to do")
        return
    _echo(f"downloading MHEALTH from {url or default_url()}")
    folder = download_mhealth(dest, url=url)
    _echo(f"MHEALTH: every subject log verified (SHA-256) in {folder}")
    _echo(f"train on it with: tinyhar train --data {folder}")


# --- training: tinyhar train --------------------------------------------------------------------


def _subject_ids(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        ids = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter("give subject ids separated by commas, e.g. 1,2,3") from None
    if any(not 0 <= i <= MAX_SUBJECT for i in ids):
        raise click.BadParameter(f"subject ids are 0..{MAX_SUBJECT}")
    return ids


@main.command()
@click.option(
    "--data",
    type=_path(),
    default=None,
    help="Dataset folder (tinyhar data import), or MHEALTH folder, zip or CSV."
    + _default("the `tinyhar data download` cache"),
)
@click.option(
    "--sensors",
    type=click.Choice(["arm", "ankle", "both"]),
    default=None,
    help="MHEALTH only: arm = what one wrist-worn board sees; both = the paper's 12."
    + _default("arm"),
)
@click.option(
    "--arch",
    type=click.Choice(["tiny", "paper"]),
    default="tiny",
    show_default=True,
    help="tiny: sized to the model budget (--max-model-kb, --max-arena-kb); paper: the "
    "paper's model as its text gives it.",
)
@_run_option("Run folder to write.", "runs/<time>-<arch>-<sensors or dataset>", "run_dir")
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
    + _default("10 for tiny, 25 for paper, or --stride if smaller"),
)
@click.option(
    "--include-null", is_flag=True, help="MHEALTH: keep the null class as class 0 (13 classes)."
)
@click.option(
    "--classes",
    callback=_names,
    default=None,
    help="Class names to learn, comma separated, in class order."
    + _default("every class with training windows"),
)
@click.option(
    "--split",
    type=click.Choice(["subjects", "loso", "random"]),
    default="subjects",
    show_default=True,
    help="subjects: named subjects per set; LOSO: leave one subject out; random: the paper's "
    "window shuffle (leaks).",
)
@_subject_options("to choose the epoch on", "to report on, e.g. 9,10 (loso: one id)")
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
    help="--folds: trainings at once." + _default("local Ray: the cores"),
)
@click.option(
    "--address",
    envvar="RAY_ADDRESS",
    default=None,
    help="--folds: a Ray cluster (also $RAY_ADDRESS)." + _default("a local Ray"),
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
    default=None,
    help="Augment: clip at this board's IMU range, e.g. nano33ble." + _default("no clipping"),
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
    "e.g. width=16,stride=2,pool=2 (docs/model.md)." + _default("the default shape"),
)
@click.option(
    "--max-model-kb",
    type=click.FloatRange(min=1),
    default=None,
    help="tiny's model budget: the largest int8 model (KB); any budget option sizes "
    "the default shape's width to fit; the board's budget, `tinyhar boards`, is larger."
    + _default("the default shape; 64 with another budget option"),
)
@click.option(
    "--max-arena-kb",
    type=click.FloatRange(min=1),
    default=None,
    help="tiny's model budget: the largest TFLM arena (KB); the board's budget is larger."
    + _default("the default shape; 32 with another budget option"),
)
@click.option(
    "--max-instructions",
    type=click.IntRange(min=1),
    default=None,
    help="tiny's latency budget: instructions per inference, counted on the emulated "
    "nano33ble (needs qemu-system-arm and arm-none-eabi-gcc; an untrained model of "
    "each width tried)." + _default("any"),
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

        count_instructions = instruction_counter()
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
        _echo(format_loso(result))
        if result.summary["failed"]:
            sys.exit(EXIT_FAILED)
        return
    result = run_training(cfg, log=log.inf, count_instructions=count_instructions)
    _echo(summary(result))


@main.command()
@click.option(
    "--data",
    type=_path(),
    default=None,
    help="Dataset folder (tinyhar data import), or MHEALTH folder, zip or CSV."
    + _default("the `tinyhar data download` cache"),
)
@click.option(
    "--sensors",
    type=click.Choice(["arm", "ankle", "both"]),
    default=None,
    help="MHEALTH only: whose channels." + _default("arm"),
)
@_board_option("the best model must fit its budget (flash for the model, RAM for the arena).")
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
    help="Trials at once." + _default("local Ray: the cores"),
)
@click.option(
    "--address",
    envvar="RAY_ADDRESS",
    default=None,
    help="A Ray cluster (also $RAY_ADDRESS)." + _default("a local Ray"),
)
@_run_option(
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
    callback=_names,
    default=None,
    help="Class names to learn, comma separated, in class order."
    + _default("every class with training windows"),
)
@_subject_options("the trials are chosen on", "only reported on, e.g. 9,10")
@click.option(
    "--max-model-kb",
    type=click.FloatRange(min=1),
    default=None,
    help="Model budget: the largest int8 model (KB) the best trial may have."
    + _default("the board's model flash budget"),
)
@click.option(
    "--max-arena-kb",
    type=click.FloatRange(min=1),
    default=None,
    help="Model budget: the largest TFLM arena (KB) the best trial may have."
    + _default("the board's arena RAM budget"),
)
@click.option(
    "--max-instructions",
    type=click.IntRange(min=1),
    default=None,
    help="Latency budget: instructions per inference on the emulated board, a hard "
    "bound (a size over it is counted untrained and not trained) and what the search "
    "minimises beside accuracy." + _default("any; model bytes minimised"),
)
@click.option(
    "--emulate/--no-emulate",
    default=None,
    help="Measure each trial's instructions per inference on the emulated board "
    "(QEMU; about 10 s a trial)."
    + _default("where QEMU, the Arm compiler and the board's TFLM library are"),
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
    _echo(format_search(result))
    if result.summary["best"] is None:
        sys.exit(EXIT_FAILED)


# --- deployment: tinyhar quantize | boards | build | flash ---------------------------------------


@main.command()
@_run_option()
@_board_option("int8 accuracy is also measured with its TFLM library.")
@_libraries_option
def quantize(run: Path | None, board: str, libraries: Path | None) -> None:
    """Convert a trained run to int8 for TFLM; measure accuracy (also as the board's TFLM library
    computes it, where it can be built for the host), arena and size."""
    from tinyhar.deploy.quantize import format_report, quantize_run  # lazy: fast --help

    _echo(format_report(quantize_run(run, board=board, libraries=libraries)))


@main.command()
@_run_option()
@click.option(
    "--data",
    type=_path(exists=True),
    required=True,
    help="Dataset folder (tinyhar data import) or MHEALTH to score on.",
)
@click.option(
    "--subjects",
    callback=_subject_ids,
    default=None,
    help="Only these subjects, e.g. 2,4,9." + _default("all"),
)
@click.option(
    "--sensors",
    type=click.Choice(["arm", "ankle", "both"]),
    default=None,
    help="MHEALTH data, for a run of another dataset: whose channels." + _default("arm"),
)
@_board_option("int8 is also scored with its TFLM library.")
@_libraries_option
def evaluate(
    run: Path | None,
    data: Path,
    subjects: list[int] | None,
    sensors: str | None,
    board: str,
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
    _echo(format_evaluation(ev))


@main.command()
def boards() -> None:
    """List the boards tinyhar can build for, with their budgets: the flash each leaves the int8
    model and the RAM it leaves the TFLM arena."""
    from tinyhar.board.boards import board_table, list_boards  # lazy: fast --help

    _echo("\n".join(board_table(list_boards())))
    _echo(
        "model flash / arena RAM: the board's budget for the int8 model and the TFLM arena "
        "(build and search check it); `train` sizes tiny to a smaller model budget "
        "(--max-model-kb, --max-arena-kb)"
    )


@main.command()
@_board_option("the firmware is for it.")
@_run_option()
@click.option(
    "--model",
    type=_path(exists=True, dir_okay=False),
    default=None,
    help="A .tflite of your own instead of a run.",
)
@click.option(
    "--out",
    type=_path(file_okay=False),
    default=None,
    help="With --model: folder for firmware/ and build.json." + _default("beside the model"),
)
@click.option(
    "--sketch-name",
    default="tinyhar_har",
    show_default=True,
    help="Name of your sketch: firmware/<board>/<name>/<name>.ino.",
)
@click.option(
    "--arena-margin",
    default="25%",
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
    type=click.Choice(["tinyhar", "library"]),
    default="tinyhar",
    show_default=True,
    help="Who runs an op both have: tinyhar's own kernels (fast on the Cortex-M4, the arithmetic "
    "of the current TFLM) or the TFLM library's (tinyhar's only for ops it lacks).",
)
@_libraries_option
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
    help="--model: class names, comma separated." + _default(f"{SIDE}, else class0,class1,..."),
)
@click.option(
    "--window",
    type=int,
    default=None,
    help="--model: samples per window." + _default(f"{SIDE}, else the model's input shape"),
)
@click.option(
    "--channels",
    default=None,
    help="--model: count, or names like acc_x,...,gyro_z."
    + _default(f"{SIDE}, else the model's input shape"),
)
@click.option(
    "--mean",
    default=None,
    help="--model: per-channel means, comma separated." + _default(f"{SIDE}, else 0"),
)
@click.option(
    "--std",
    default=None,
    help="--model: per-channel stds, comma separated." + _default(f"{SIDE}, else 1"),
)
@click.option(
    "--input-scale",
    type=float,
    default=None,
    help="--model, float input: int8 step." + _default(f"{SIDE}, else 1/32"),
)
@click.option(
    "--output-scale",
    type=float,
    default=None,
    help="--model, float output: int8 step."
    + _default(f"{SIDE}, else 1/256 after a SOFTMAX, 1/16 otherwise"),
)
@click.option(
    "--output-zero-point",
    type=int,
    default=None,
    help="--model, float output: int8 zero point (with an output scale)."
    + _default(f"{SIDE}, else 0"),
)
def build(
    board,
    run,
    model,
    out,
    sketch_name,
    arena_margin,
    no_install,
    require_compile,
    stream_at_boot,
    profile,
    tflm_library,
    kernels,
    libraries,
    no_measure,
    train_if_missing,
    labels,
    window,
    channels,
    mean,
    std,
    input_scale,
    output_scale,
    output_zero_point,
) -> None:
    """Generate the firmware for a board: the tinyhar_model Arduino library (model, config, core,
    runner, kernels) and a sketch that is yours; compiled where arduino-cli is.

    Builds --run, else the latest run under runs/; with no run at all it stops and says how to
    make one (or trains one with --train-if-missing)."""
    from tinyhar.deploy.build import (  # lazy: fast --help
        BuildOptions,
        build_firmware,
        format_summary,
    )

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
    _echo(format_summary(build_firmware(opts)))


@main.command()
@_board_option(
    "the run must have been last built for it.", None, "the board the run was last built for"
)
@click.option(
    "--port",
    default=None,
    help="Serial port of the board, e.g. /dev/ttyACM0." + _default("found by USB VID:PID"),
)
@_run_option()
def flash(board, port, run) -> None:
    """Upload the compiled firmware with arduino-cli."""
    from tinyhar.deploy.flash import flash_firmware  # lazy: fast --help

    _echo(flash_firmware(board=board, port=port, run=run))


# --- device: tinyhar sim | verify | monitor -----------------------------------------------------


@main.command()
@_board_option("the virtual board plays it (with --emulate: the board the run was built for).")
@_run_option()
@click.option(
    "--replay",
    type=_path(exists=True),
    default=None,
    help="Dataset folder, or MHEALTH-format file or folder, of the run's dataset for the IMU to "
    "replay." + _default("the run's test recordings"),
)
@click.option(
    "--model",
    type=_path(exists=True, dir_okay=False),
    default=None,
    help="Carry this .tflite instead of the run's (a different model CRC).",
)
@click.option(
    "--drop",
    type=float,
    default=0.0,
    show_default=True,
    help="Fraction of bytes dropped, both directions.",
)
@click.option(
    "--corrupt",
    type=float,
    default=0.0,
    show_default=True,
    help="Fraction of bytes corrupted, both directions.",
)
@click.option("--delay", type=float, default=0.0, show_default=True, help="Delay every reply (ms).")
@click.option(
    "--reset-after",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Reset the device once, while it handles request N (0: never).",
)
@click.option(
    "--seed",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Seed of the fault injection.",
)
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="IMU replay speed (1 = the training rate).",
)
@click.option(
    "--link",
    type=_path(),
    default=None,
    help="Also make this symlink to the pty (a stable --port).",
)
@click.option(
    "--emulate",
    is_flag=True,
    help="Run the generated firmware itself (the run's `tinyhar build`) on an emulated "
    "Cortex-M4F: QEMU mps2-an386.",
)
@_libraries_option
def sim(
    board,
    run,
    replay,
    model,
    drop,
    corrupt,
    delay,
    reset_after,
    seed,
    speed,
    link,
    emulate,
    libraries,
) -> None:
    """Start a virtual board on a pseudo-terminal and print its path (use it as --port)."""
    from tinyhar.device.virtual_board import Faults, run_sim  # lazy: fast --help

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
            board if given else None, run, link, unused, announce=_echo, libraries=libraries
        )
        return
    if libraries is not None:
        raise TinyharError(
            "--libraries: only the emulated board (`tinyhar sim --emulate`) builds the board's "
            "TFLM library; the software board runs the Python TFLM interpreter"
        )
    run_sim(board, run, faults, model=model, replay=replay, speed=speed, link=link, announce=_echo)


@main.command()
@click.option("--port", required=True, help="Serial port of the board, e.g. /dev/ttyACM0.")
@_run_option()
@click.option(
    "--windows",
    type=click.IntRange(1),
    default=None,
    help="Test windows to send." + _default("all"),
)
@click.option(
    "--raw", is_flag=True, help="Send raw samples in board units: checks on-device preprocessing."
)
@_board_option(
    "--raw converts the samples to its units.", None, "the one the device names in HELLO"
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Least top-1 agreement with the reference to pass.",
)
@click.option(
    "--max-lsb",
    type=click.IntRange(0),
    default=None,
    help="Largest output difference (int8 LSB) to pass."
    + _default(
        "0 against the board's own code or the virtual board's own "
        "interpreter, 1 against the Python interpreter"
    ),
)
@_libraries_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds per attempt.",
)
@click.option(
    "--retries", type=click.IntRange(0), default=3, show_default=True, help="Retries per request."
)
@click.option(
    "--trace", is_flag=True, help="Print a hex dump of every frame sent and received on stderr."
)
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
    port,
    run,
    windows,
    raw,
    board,
    min_agreement,
    max_lsb,
    libraries,
    timeout,
    retries,
    trace,
    resume,
    profile,
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
    from tinyhar.device.verify import (  # lazy: fast --help
        VerifyOptions,
        format_report,
        verify_device,
    )

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
    _echo(format_report(report))
    if not report.passed:
        sys.exit(EXIT_FAILED)


@main.command()
@click.option("--port", required=True, help="Serial port of the board, e.g. /dev/ttyACM0.")
@_run_option("Run folder, for class names when the firmware has none.")
@click.option(
    "--last",
    type=click.IntRange(1, 100),
    default=10,
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
    default=1.0,
    show_default=True,
    help="Seconds per request attempt.",
)
@click.option(
    "--trace", is_flag=True, help="Print a hex dump of every frame sent and received on stderr."
)
def monitor(port, run, last, count, seconds, timeout, trace) -> None:
    """Show the board's live predictions from its IMU; Ctrl-C stops the stream and exits."""
    from tinyhar.device.monitor import MonitorOptions, run_monitor  # lazy: fast --help

    opts = MonitorOptions(
        port=port, run=run, last=last, count=count, seconds=seconds, timeout=timeout, trace=trace
    )
    run_monitor(opts, out=_echo)


@main.command()
@click.option("--port", required=True, help="Serial port of the board, e.g. /dev/ttyACM0.")
@click.option("--label", required=True, help="The activity being recorded, e.g. walking.")
@click.option("--subject", type=click.IntRange(0), required=True, help="Who wears the board.")
@click.option(
    "--out",
    type=_path(file_okay=False),
    required=True,
    help="Dataset folder: the recording and its dataset.toml go here.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="How long to record.",
)
@click.option(
    "--session",
    type=click.IntRange(1),
    default=None,
    help="Session number." + _default("the subject's next"),
)
@_run_option("Run folder the firmware was built from (its channels).")
@_board_option("its units and axes are recorded.", None, "the one the device names in HELLO")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds per request attempt.",
)
@click.option("--no-plot", is_flag=True, help="No live plot, even where a display exists.")
@click.option(
    "--trace", is_flag=True, help="Print a hex dump of every frame sent and received on stderr."
)
def record(port, label, subject, out, seconds, session, run, board, timeout, no_plot, trace):
    """Record the board's IMU, as its firmware samples it, into a dataset folder for `train`."""
    from tinyhar.device.record import RecordOptions, record_imu  # lazy: fast --help

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
    _echo(
        f"recorded {r.samples} samples ({r.seconds:.1f} s at {r.rate_hz:g} Hz{lost}) "
        f"of {label!r} into {r.file}"
    )
    if r.stopped:
        sys.exit(EXIT_FAILED)


# --- end to end: tinyhar demo -------------------------------------------------------------------


@main.command()
@click.option(
    "--out",
    type=_path(file_okay=False),
    default=DEMO_DIR,
    show_default=True,
    help="Run folder for everything the demo makes (its data in OUT/data).",
)
@_board_option("the firmware is built and verified for it.")
@click.option(
    "--subjects",
    type=click.IntRange(3, 99),
    default=10,
    show_default=True,
    help="Synthetic subjects.",
)
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Most epochs (early stopping usually ends sooner).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the synthetic data and the training: same seed, same run.",
)
@click.option(
    "--windows",
    type=click.IntRange(1),
    default=None,
    help="Test windows to verify." + _default("all"),
)
@_libraries_option
def demo(out, board, subjects, epochs, seed, windows, libraries) -> None:
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
    _echo(format_summary(summary))
    if not summary["passed"]:
        sys.exit(EXIT_FAILED)


def _add_glossary(group: click.Group) -> None:
    """Every command's --help ends by pointing at the glossary, as `tinyhar --help` does."""
    for command in group.commands.values():
        command.epilog = command.epilog or GLOSSARY
        if isinstance(command, click.Group):
            _add_glossary(command)


_add_glossary(main)
