"""Shared fixtures: one tiny trained and quantized run per test session, and virtual boards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tinyhar.device.verify import VerifyReport
    from tinyhar.device.virtual_board import Faults, VirtualBoard

# The real Arduino libraries (TFLM ports, IMU drivers) at their pinned versions, beside the repo.
SHARED_LIBRARIES = Path(__file__).resolve().parents[2] / "shared" / "arduino" / "libraries"
# Where tinyhar looks for them (instead of arduino-cli's folder), in-process and in subprocesses.
os.environ.setdefault("TINYHAR_ARDUINO_LIBRARIES", str(SHARED_LIBRARIES))

# The installed `tinyhar` entry point of this interpreter, as a user runs it.
_SCRIPT = Path(sys.executable).with_name("tinyhar")
TINYHAR = [str(_SCRIPT)] if _SCRIPT.is_file() else [shutil.which("tinyhar") or "tinyhar"]


def tinyhar(*args: str, timeout: float = 300, check: bool = True, cwd: Path | None = None):
    """Run the real command line in a subprocess; returns the CompletedProcess."""
    proc = subprocess.run(
        [*TINYHAR, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"tinyhar {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
    return proc


def one_error_line(stderr: str) -> str:
    """The single `error:` line a failed command must end with (no traceback); returns it."""
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    return errors[0]


def verify_history(run: Path) -> list[dict]:
    """The lines of R/verify_history.jsonl, oldest first ([] when there is none)."""
    path = run / "verify_history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def verify_quietly(port: str, run: Path, **options: Any) -> VerifyReport:
    """`verify_device` in-process, without a progress bar or log lines; the report."""
    from tinyhar.device.verify import VerifyOptions, verify_device  # lazy: 0.3 s per session

    opts = VerifyOptions(port=port, run=run, progress=False, **options)
    return verify_device(opts, log=lambda _: None)


def require_tools(*tools: str, apt: str) -> None:
    """Skip a test whose compiler or emulator is missing; in CI (`CI` set) fail it instead,
    since .ci/run installs them and a skip there would hide a broken install step."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    msg = f"{', '.join(missing)} not installed (apt-get install -y {apt})"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {msg}; .ci/run must install it")
    pytest.skip(msg)


@pytest.fixture
def host_gcc() -> None:
    require_tools("gcc", "g++", apt="gcc g++")


@pytest.fixture
def arm_gcc() -> None:
    require_tools("arm-none-eabi-gcc", apt="gcc-arm-none-eabi libnewlib-arm-none-eabi")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder built the way a user does: data synth -> train (tiny, 1 epoch) -> quantize."""
    root = tmp_path_factory.mktemp("tiny_run")
    data, run = root / "synth", root / "run"
    tinyhar("data", "synth", "--out", data, "--subjects", "3")
    tinyhar("train", "--data", data, "--arch", "tiny", "--epochs", "1", "--run", run)
    tinyhar("quantize", "--run", run)
    return run


# --- virtual boards (`tinyhar sim` in the background, as a user starts it) ----------------------


@dataclass
class Sim:
    port: str
    proc: subprocess.Popen


@contextmanager
def sim_board(run: Path, *args: str, start_timeout: float = 60) -> Iterator[Sim]:
    """`tinyhar sim --board nano33ble --run R [args]` in the background; yields its pty path."""
    proc = subprocess.Popen(
        [*TINYHAR, "sim", "--board", "nano33ble", "--run", str(run), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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


@pytest.fixture(scope="session")
def clean_sim(tiny_run: Path) -> Iterator[Sim]:
    """One fault-free virtual board for the session's device tests."""
    with sim_board(tiny_run) as sim:
        yield sim


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
