"""Ctrl-C in the command line: remembered, so that it is reported as an interrupt however a library
mangled the KeyboardInterrupt (an extension's ImportError, a SystemError inside TensorFlow, a
wrapped layer error), and with third-party writes to stderr muted from then on."""

from __future__ import annotations

import io
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_seen = False


class _Muted(io.TextIOBase):
    """sys.stderr after Ctrl-C: drops what libraries print; tinyhar writes to `real`."""

    def __init__(self, real) -> None:
        self.real = real

    def write(self, text: str) -> int:
        return len(text)

    def writable(self) -> bool:
        return True


def _on_sigint(_signum: int, _frame: object) -> None:
    global _seen
    if not _seen:
        _seen = True
        sys.stderr = _Muted(sys.stderr)
    raise KeyboardInterrupt


def seen() -> bool:
    """Whether Ctrl-C arrived since `handling()` began."""
    return _seen


def stderr():
    """Where tinyhar's own messages go: stderr, also once it is muted for the libraries."""
    return getattr(sys.stderr, "real", sys.stderr)


@contextmanager
def handling() -> Iterator[None]:
    """Remember Ctrl-C while the block runs; restore the SIGINT handler and stderr after it."""
    global _seen
    _seen = False
    err = sys.stderr
    try:
        old = signal.signal(signal.SIGINT, _on_sigint)
        installed = True
    except ValueError:  # not the main thread: Python's own handling stays
        installed = False
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGINT, old)
        sys.stderr = err
