"""Messages for the user on stderr at one verbosity, set by `tinyhar -v` / `-q` (as west's log).

`inf` is a step's progress, `dbg` detail only `-v` shows, `wrn` a warning even `-q` shows. Library
functions take a `log: Log` (default `inf`) so that callers and tests can collect the lines.
"""

from __future__ import annotations

import unicodedata
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


# Format characters that reorder what a terminal shows (bidirectional overrides and isolates).
_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def printable(text: str, lines: bool = True) -> str:
    """`text` safe to print on a terminal: control characters (escape sequences, a title set
    through OSC, a bell) and bidirectional overrides written as \\x1b / \\u202e; newlines and
    tabs kept when `lines` (a one-line error escapes them too)."""
    keep = "\n\t" if lines else ""
    out = []
    for ch in text:
        if ch in keep or not (unicodedata.category(ch) == "Cc" or ch in _BIDI):
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return "".join(out)


def _emit(msg: str) -> None:
    print(printable(msg), file=interrupt.stderr(), flush=True)


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
