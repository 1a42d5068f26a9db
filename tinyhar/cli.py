"""The `tinyhar` command line: parse options, call the library, print. No logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tinyhar import __version__
from tinyhar.errors import TinyharError


class _Group(click.Group):
    """Turns TinyharError into one line on stderr and Ctrl-C into a clean exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TinyharError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinyhar")
def main() -> None:
    """Activity recognition from wearable IMUs to a microcontroller, verified on the device.

    \b
    Typical use:
      tinyhar data synth --out data/synth     (or: tinyhar data download)
      tinyhar train --data data/synth --sensors arm --arch tiny
      tinyhar build --board nano33ble
      tinyhar flash
      tinyhar verify --port /dev/ttyACM0
    """


def _path(exists: bool = False, dir_okay: bool = True, file_okay: bool = True) -> click.Path:
    return click.Path(exists=exists, dir_okay=dir_okay, file_okay=file_okay, path_type=Path)


# --- data: tinyhar data synth | info | download -------------------------------------------------


@main.group()
def data() -> None:
    """Get, make and inspect MHEALTH-format datasets."""


@data.command("synth")
@click.option("--out", type=_path(), required=True, help="Folder to write (made atomically).")
@click.option("--subjects", type=click.IntRange(1, 99), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
def data_synth(out: Path, subjects: int, seed: int) -> None:
    """Write a SYNTHETIC dataset in the exact UCI MHEALTH log format (for offline use and tests)."""
    from tinyhar.data.info import dataset_info
    from tinyhar.data.synth import synthesize

    folder = synthesize(out, subjects=subjects, seed=seed)
    info = dataset_info(folder)
    click.echo(
        f"wrote SYNTHETIC data: {subjects} subjects, {info.rows} rows "
        f"({info.rows / 50 / 60:.1f} min at 50 Hz), seed {seed} -> {folder}"
    )


@data.command("info")
@click.argument("path", type=_path())
def data_info(path: Path) -> None:
    """Print source, subjects, rows, minutes and class counts of a dataset (folder, zip or CSV)."""
    from tinyhar.data.info import dataset_info, format_info

    click.echo(format_info(dataset_info(path)))


# --- training: tinyhar train --------------------------------------------------------------------


# --- deployment: tinyhar quantize | boards | build | flash ---------------------------------------


@main.command()
@click.option("--run", "run", type=_path(), default=None, help="Run folder (default: latest run).")
def quantize(run: Path | None) -> None:
    """Convert a trained run to int8 for TFLM; measure accuracy, arena and size."""
    from tinyhar.deploy.quantize import format_report, quantize_run

    click.echo(format_report(quantize_run(run)))


# --- device: tinyhar sim | verify | monitor -----------------------------------------------------


# --- end to end: tinyhar demo -------------------------------------------------------------------
