"""`tinyhar data`: make, get, import and inspect datasets."""

from __future__ import annotations

from pathlib import Path

import click

from tinyhar import log
from tinyhar.commands.options import (
    echo,
    names,
    parameter_default,
    path_type,
    shown_default,
)
from tinyhar.data.synth import synthesize


@click.group()
def data() -> None:
    """Get, make, import and inspect datasets (MHEALTH, or a folder with a dataset.toml)."""


@data.command("synth")
@click.option("--out", type=path_type(), required=True, help="Folder to write (made atomically).")
@click.option(
    "--subjects",
    type=click.IntRange(1, 99),
    default=parameter_default(synthesize, "subjects"),
    show_default=True,
    help="Synthetic subjects, one log file each.",
)
@click.option(
    "--seed",
    type=int,
    default=parameter_default(synthesize, "seed"),
    show_default=True,
    help="Same seed, same bytes.",
)
def data_synth(out: Path, subjects: int, seed: int) -> None:
    """Write a SYNTHETIC dataset in the exact UCI MHEALTH log format (for offline use and tests)."""
    from tinyhar.data.info import dataset_info  # lazy: fast --help
    from tinyhar.data.synth import synthesize  # lazy: fast --help

    folder = synthesize(out, subjects=subjects, seed=seed)
    info = dataset_info(folder)
    echo(
        f"wrote SYNTHETIC data: {subjects} subjects, {info.rows} rows "
        f"({info.rows / 50 / 60:.1f} min at 50 Hz), seed {seed} -> {folder}"
    )


@data.command("info")
@click.argument("path", type=path_type())
def data_info(path: Path) -> None:
    """Print source, subjects, rows, minutes and class counts of a dataset: a folder with a
    dataset.toml, or MHEALTH (folder, zip or CSV)."""
    from tinyhar.data.info import dataset_info, format_info  # lazy: fast --help

    echo(format_info(dataset_info(path)))


@data.command("import")
@click.argument("src", type=path_type(exists=True))
@click.option(
    "--out",
    type=path_type(file_okay=False),
    required=True,
    help="Dataset folder to write (new or empty; made atomically).",
)
@click.option(
    "--acc-unit",
    default=None,
    help="Accelerometer unit: g, mg or m/s^2."
    + shown_default("from the column names, else from gravity"),
)
@click.option(
    "--gyro-unit",
    default=None,
    help="Gyroscope unit: rad/s or deg/s." + shown_default("from the column names"),
)
@click.option(
    "--rate",
    "rate_hz",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Samples per second." + shown_default("from a time column like time_s"),
)
@click.option(
    "--label-column",
    default=None,
    help="Column holding the activity." + shown_default("a column named activity, label or class"),
)
@click.option(
    "--drop",
    callback=names,
    default=None,
    help="Labels to drop, comma separated; globs like '*_TO_*'." + shown_default("none"),
)
@click.option(
    "--subject-pattern",
    default=None,
    help="Regex on file names, the subject number its group." + shown_default("subjectN"),
)
@click.option(
    "--subject-column", default=None, help="Column holding the subject." + shown_default("subject")
)
@click.option(
    "--columns",
    callback=names,
    default=None,
    help="Signal columns, comma separated." + shown_default("every acc_*/gyro_* column"),
)
@click.option(
    "--name", default=None, help="Dataset name." + shown_default("the --out folder's name")
)
def data_import(
    src: Path,
    out: Path,
    acc_unit: str | None,
    gyro_unit: str | None,
    rate_hz: float | None,
    label_column: str | None,
    drop: list[str] | None,
    subject_pattern: str | None,
    subject_column: str | None,
    columns: list[str] | None,
    name: str | None,
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
    echo(format_import(import_dataset(src, out, opts, log=log.inf)))


@data.command("download")
@click.option(
    "--dest",
    type=path_type(file_okay=False),
    default=None,
    help="Folder for the logs."
    + shown_default("$TINYHAR_CACHE/mhealth, else ~/.cache/tinyhar/mhealth"),
)
@click.option(
    "--url",
    envvar="TINYHAR_MHEALTH_URL",
    default=None,
    help="A mirror of the UCI MHEALTH zip (also $TINYHAR_MHEALTH_URL)."
    + shown_default("UCI's own"),
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
        echo(f"MHEALTH already downloaded and verified in {dest}; nothing to do")
        return
    echo(f"downloading MHEALTH from {url or default_url()}")
    folder = download_mhealth(dest, url=url)
    echo(f"MHEALTH: every subject log verified (SHA-256) in {folder}")
    echo(f"train on it with: tinyhar train --data {folder}")
