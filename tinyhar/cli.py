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


# --- training: tinyhar train --------------------------------------------------------------------


# --- deployment: tinyhar quantize | boards | build | flash ---------------------------------------


# --- device: tinyhar sim | verify | monitor -----------------------------------------------------


# --- end to end: tinyhar demo -------------------------------------------------------------------
