"""A virtual board for a test: `tinyhar sim` as a subprocess, or one served in this process."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.commands import TINYHAR

if TYPE_CHECKING:
    from tinyhar.device.virtual_board import Faults, VirtualBoard


@dataclass
class Sim:
    port: str
    proc: subprocess.Popen


@contextmanager
def sim_board(
    run: Path, *args: str, start_timeout: float = 60, cwd: Path | None = None
) -> Iterator[Sim]:
    """`tinyhar sim --board nano33ble --run R [args]` in the background (in `cwd`); yields its
    pty path."""
    proc = subprocess.Popen(
        [*TINYHAR, "sim", "--board", "nano33ble", "--run", str(run), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    try:
        deadline = time.monotonic() + start_timeout
        line = ""
        while time.monotonic() < deadline and not line:
            line = proc.stdout.readline().strip()
            if proc.poll() is not None and not line:
                raise AssertionError(f"tinyhar sim exited {proc.returncode}: {proc.stderr.read()}")
        assert line.startswith("/dev/"), f"tinyhar sim printed {line!r}, not a pty path"
        yield Sim(line, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()


@contextmanager
def virtual_board(
    run: Path, faults: Faults | None = None, speed: float = 1.0
) -> Iterator[tuple[VirtualBoard, list[str]]]:
    """A virtual nano33ble for `run` on a pty, served by a thread of this process (what `tinyhar
    sim` runs, without starting a process; `speed` replays its IMU faster); yields the board and
    the lines it logged."""
    from tinyhar.board.boards import load_board  # lazy: with the virtual board below
    from tinyhar.device.virtual_board import (  # lazy: 0.6 s (pandas) for every test session
        Faults,
        VirtualBoard,
        board_image,
    )

    lines: list[str] = []
    image = board_image(load_board("nano33ble"), run, log=lines.append)
    vb = VirtualBoard(image, faults or Faults(), speed=speed, log=lines.append)
    server = threading.Thread(target=vb.serve, name="virtual-board", daemon=True)
    server.start()
    try:
        yield vb, lines
    finally:
        vb.stop()
        server.join(timeout=5)
        vb.close()
