"""Measure the smallest TFLM tensor arena a model allocates and runs in.

A too-small arena can crash the TFLM Python interpreter (segfault), so the sizes are tried in a
child process; the parent restarts the child whenever it dies and counts that size as failing.
Search: exponential growth from `floor` until a size works, then bisection to `RESOLUTION` bytes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinyhar.errors import TinyharError
from tinyhar.lite.tflite_inspect import inspect_tflite

RESOLUTION = 16  # bytes; TFLM aligns arena allocations to 16 bytes
MAX_ARENA = 64 * 1024 * 1024


# --- the one arena rule ------------------------------------------------------------------------
# The firmware's arena is the measured one plus a margin, aligned; the host's interpreters get
# twice the firmware's and 4 KB more (64-bit pointers make TFLM's bookkeeping larger on the host).
DEFAULT_MARGIN = "25%"
ARENA_ALIGN = 16
MIN_MARGIN = 1024  # a percentage margin is at least this many bytes


def margin_bytes(spec: str, measured: int) -> int:
    """The arena margin: "2048" bytes, "2KB", or "25%" of the measured arena (at least 1 KB)."""
    text = str(spec).strip().lower().replace(" ", "")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(%|kb|k|b)?", text)
    if not m:
        raise TinyharError(f"--arena-margin {spec!r}: give bytes (2048), kilobytes (2KB) or 25%")
    value, unit = float(m.group(1)), m.group(2) or "b"
    if unit == "%":
        return max(MIN_MARGIN, int(-(-measured * value // 100)))
    return int(value * 1024) if unit in ("kb", "k") else int(value)


def align(n: int, k: int = ARENA_ALIGN) -> int:
    """`n` rounded up to a multiple of `k`."""
    return -(-n // k) * k


def firmware_arena_bytes(measured: int, margin: str = DEFAULT_MARGIN) -> int:
    """The arena a firmware reserves for a model whose measured arena is `measured`."""
    return align(measured + margin_bytes(margin, measured))


def host_arena_bytes(firmware_arena: int) -> int:
    """The arena a host interpreter (Python TFLM, the board library's host build) gets."""
    return 2 * int(firmware_arena) + 4096


def debug_arena_bytes(firmware_arena: int) -> int:
    """The arena for a model rewritten to output every tensor (each one kept alive)."""
    return max(4 * int(firmware_arena), 256 * 1024)


def measure_arena(model_bytes: bytes, floor: int = 1024, resolution: int = RESOLUTION) -> int:
    """Smallest arena (bytes, a multiple of `resolution`, >= floor) with which TFLM allocates
    and invokes the model; TinyharError when it does not run even with MAX_ARENA."""
    n_inputs = len(inspect_tflite(model_bytes).inputs)
    floor = _round_up(max(floor, resolution), resolution)
    with tempfile.TemporaryDirectory(prefix="tinyhar-arena-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model_bytes)
        with _Prober(path, n_inputs) as probe:
            ok, msg = probe(floor)
            if ok:
                return floor
            lo, hi = floor, floor
            while True:  # exponential search for a working size
                hi = min(hi * 2, MAX_ARENA)
                ok, msg = probe(hi)
                if ok:
                    break
                if hi >= MAX_ARENA:
                    raise TinyharError(
                        f"the TFLM interpreter cannot run this model even with a "
                        f"{MAX_ARENA // 1024 // 1024} MB arena ({msg}): check its ops and tensors"
                    )
                lo = hi
            while hi - lo > resolution:  # invariant: lo fails, hi works
                mid = _round_up((lo + hi) // 2, resolution)
                if mid >= hi:
                    mid = hi - resolution
                ok, _ = probe(mid)
                lo, hi = (lo, mid) if ok else (mid, hi)
            return hi


def arena_works(model_bytes: bytes, arena_size: int) -> bool:
    """Whether TFLM allocates and invokes the model with exactly `arena_size` bytes (in a child)."""
    n_inputs = len(inspect_tflite(model_bytes).inputs)
    with tempfile.TemporaryDirectory(prefix="tinyhar-arena-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model_bytes)
        with _Prober(path, n_inputs) as probe:
            return probe(arena_size)[0]


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


class _Prober:
    """A child process answering 'does this arena size work?', restarted when it crashes."""

    def __init__(self, model_path: Path, n_inputs: int) -> None:
        self.args = [sys.executable, "-m", "tinyhar.lite.arena", str(model_path), str(n_inputs)]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> _Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        return subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )

    def _stop(self) -> None:
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __call__(self, size: int) -> tuple[bool, str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None  # started with pipes
        try:
            stdin.write(f"{size}\n")
            stdin.flush()
            line = stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:  # the child died: this size crashed the interpreter
            code = self.proc.wait()
            self.proc = None
            return False, f"interpreter crashed (exit {code})"
        status, _, msg = line.strip().partition(" ")
        return status == "ok", msg


def _child(model_path: str, n_inputs: int) -> None:
    """Answer one 'ok' / 'fail <why>' line per arena size read from stdin."""
    answers = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # TFLM prints allocation errors on stdout: keep them off the answers
    from tflite_micro.python.tflite_micro import runtime  # lazy: after stdout is redirected

    model = Path(model_path).read_bytes()
    for line in sys.stdin:
        try:
            ip = runtime.Interpreter.from_bytes(model, arena_size=int(line))
            for i in range(n_inputs):
                d = ip.get_input_details(i)
                ip.set_input(np.zeros(d["shape"], dtype=d["dtype"]), i)
            ip.invoke()
            answers.write("ok\n")
        except Exception as e:  # any failure to allocate or run means "this size does not work"
            answers.write(f"fail {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}\n")
        answers.flush()


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]))
