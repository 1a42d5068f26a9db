"""Options shared by the commands, worded alike everywhere, with their defaults from the library."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, TypeVar

import click

from tinyhar import log
from tinyhar.board.arduino_dirs import LIBRARIES_ENV
from tinyhar.board.boards import DEFAULT_BOARD, Board, load_board

F = TypeVar("F", bound=Callable[..., Any])  # a command function an option decorates

MAX_STRIDE = 0xFFFF  # the firmware counts the samples between predictions in 16 bits


def echo(text: str) -> None:
    """Print a result on stdout; control characters that came with data (class names, a
    board's strings) are escaped, not sent to the terminal."""
    click.echo(log.printable(text))


def path_type(exists: bool = False, dir_okay: bool = True, file_okay: bool = True) -> click.Path:
    return click.Path(exists=exists, dir_okay=dir_okay, file_okay=file_okay, path_type=Path)


def shown_default(text: str) -> str:
    """A computed default, shown as click shows a literal one."""
    return f"  [default: {text}]"


LATEST_RUN = "the latest trained run under runs/"
BOARD = "Board: a name from `tinyhar boards`, or a board .toml file"
SIDE = "the side file <model>.json"
# the default subject split (data.windows.default_subject_split), as each option's default
SPLIT = ("the first ~60 % of the subjects by id", "the next ~20 %", "the last ~20 %")


def libraries_option(f: F) -> F:
    """--libraries, worded alike on every command that needs the board's TFLM library."""
    return click.option(
        "--libraries",
        type=path_type(file_okay=False),
        default=None,
        help="Arduino libraries folder that holds the board's TFLM library."
        + shown_default(f"${LIBRARIES_ENV}, else arduino-cli's, else ~/Arduino/libraries"),
    )(f)


def run_option(what: str = "Run folder.", default: str = LATEST_RUN, dest: str = "run"):
    """--run, worded alike: a run folder to read (or, for train and search, to write)."""
    return click.option(
        "--run", dest, type=path_type(), default=None, help=what + shown_default(default)
    )


def subject_options(val_role: str, test_role: str):
    """--train-subjects, --val-subjects and --test-subjects, worded alike for train and search."""
    roles = (
        ("train", "to train on, e.g. 1,2,3,4,5,6"),
        ("val", f"{val_role}, e.g. 7,8"),
        ("test", test_role),
    )
    options = [
        click.option(
            f"--{part}-subjects",
            callback=subject_ids,
            help=f"Subjects {role}." + shown_default(default),
        )
        for (part, role), default in zip(roles, SPLIT, strict=True)
    ]

    def apply(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


class BoardParam(click.ParamType):
    """A board name or board file, resolved to a `Board` where the command starts."""

    name = "board"

    def convert(
        self, value: str | Board, param: click.Parameter | None, ctx: click.Context | None
    ) -> Board:
        # an unknown board is tinyhar's one-line error (TinyharError), not a usage screen
        return value if isinstance(value, Board) else load_board(value)


def build_board_option(role: str):
    """--board for a command that makes something for a board: a `Board`, `DEFAULT_BOARD` if
    none is given."""
    return click.option(
        "--board",
        type=BoardParam(),
        default=DEFAULT_BOARD,
        show_default=True,
        help=f"{BOARD}; {role}",
    )


def board_option(role: str, shown: str):
    """--board for a command acting on a built run or a device: the name given, if any, which
    `boards.resolve_board` checks against what the firmware was built for."""
    return click.option("--board", default=None, help=f"{BOARD}; {role}" + shown_default(shown))


def names(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("give names separated by commas")
    return names


def subject_ids(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """--*-subjects: comma-separated subject ids."""
    from tinyhar.data.recordings import MAX_SUBJECT  # lazy: pandas, fast --help

    if value is None:
        return None
    try:
        ids = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter("give subject ids separated by commas, e.g. 1,2,3") from None
    if any(not 0 <= i <= MAX_SUBJECT for i in ids):
        raise click.BadParameter(f"subject ids are 0..{MAX_SUBJECT}")
    return ids


def default_of(cls: type, name: str) -> Any:
    """A library dataclass field's default: an option shows the library's, not a copy of it."""
    field = {f.name: f for f in fields(cls)}[name]
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    raise ValueError(f"{cls.__name__}.{name} has no default")


def parameter_default(fn: Callable, name: str) -> Any:
    """A library function's default for its parameter `name`."""
    return inspect.signature(fn).parameters[name].default


PORT = "Serial port of the board, e.g. /dev/ttyACM0."

port_option = click.option("--port", required=True, help=PORT)
trace_option = click.option(
    "--trace", is_flag=True, help="Print a hex dump of every frame sent and received on stderr."
)
