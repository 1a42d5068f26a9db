"""The `tinyhar` command line: parse options, call the library, print. No logic lives here.

Each command imports its module when it runs (`# lazy: fast --help`): TensorFlow alone takes
seconds to import, and `tinyhar --help` should not wait for it.
"""

from __future__ import annotations

import sys

import click

from tinyhar import __version__, interrupt, log
from tinyhar.commands import data, demo, deploy, device, train
from tinyhar.errors import EXIT_INTERRUPTED, TinyharError

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
    _set_verbosity(verbose, quiet)


def _set_verbosity(verbose: bool, quiet: bool) -> None:
    if verbose and quiet:
        raise click.UsageError("-v and -q exclude each other")
    if verbose or quiet:
        log.set_verbosity(log.VERBOSE if verbose else log.QUIET)
    else:
        log.set_verbosity(log.NORMAL)


def _verbosity_after(command: click.Command) -> None:
    """-v and -q after the subcommand too (`tinyhar train -v`), as before it."""
    seen: dict[str, bool] = {}

    def given(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        seen[param.name or ""] = value
        if len(seen) == 2 and (seen["verbose"] or seen["quiet"]):
            _set_verbosity(seen["verbose"], seen["quiet"])
        if len(seen) == 2:
            seen.clear()

    for flags, name, text in (
        (["-v", "--verbose"], "verbose", "Also print debug lines."),
        (["-q", "--quiet"], "quiet", "Print only warnings, errors and results."),
    ):
        command.params.append(
            click.Option(flags, name, is_flag=True, expose_value=False, callback=given, help=text)
        )


for _command in (
    data.data,
    train.train,
    train.search,
    deploy.quantize,
    deploy.evaluate,
    deploy.boards,
    deploy.build,
    deploy.flash,
    device.sim,
    device.verify,
    device.monitor,
    device.record,
    demo.demo,
):
    main.add_command(_command)


def _add_glossary(group: click.Group) -> None:
    """Every command's --help ends by pointing at the glossary, as `tinyhar --help` does; -v and
    -q work after each command."""
    for command in group.commands.values():
        command.epilog = command.epilog or GLOSSARY
        if isinstance(command, click.Group):
            _add_glossary(command)
        else:
            _verbosity_after(command)


_add_glossary(main)
