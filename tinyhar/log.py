"""Messages for the user on stderr at one verbosity, set by `tinyhar -v` / `-q` (as west's log).

`inf` is a step's progress, `dbg` detail only `-v` shows, `wrn` a warning even `-q` shows. Library
functions take a `log: Log` (default `inf`) so that callers and tests can collect the lines.
"""

from __future__ import annotations

from collections.abc import Callable

from tinyhar import interrupt

QUIET, NORMAL, VERBOSE = 0, 1, 2
Log = Callable[[str], None]

_verbosity = NORMAL


def set_verbosity(level: int) -> None:
    """QUIET (warnings only), NORMAL, or VERBOSE (with debug lines)."""
    global _verbosity
    _verbosity = max(QUIET, min(VERBOSE, level))


def verbosity() -> int:
    return _verbosity


def _emit(msg: str) -> None:
    print(msg, file=interrupt.stderr(), flush=True)


def dbg(msg: str) -> None:
    """Detail for `-v`."""
    if _verbosity >= VERBOSE:
        _emit(msg)


def inf(msg: str) -> None:
    """Progress of a step; `-q` hides it."""
    if _verbosity >= NORMAL:
        _emit(msg)


def wrn(msg: str) -> None:
    """A warning, shown at every verbosity."""
    _emit(f"warning: {msg}")
