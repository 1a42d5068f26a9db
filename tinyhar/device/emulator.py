"""The emulated board: the generated firmware itself, cross-compiled for QEMU's mps2-an386.

`build_emulated_firmware` compiles the sketch, the generated model library, tinyhar's Arduino
layer for the MPS2 (`firmware_templates/emulator/`) and the TFLM library's sources for the model's
ops with arm-none-eabi-g++; `EmulatedBoard` runs the ELF under `qemu-system-arm -icount shift=0`
with UART0 on a pseudo-terminal, which the host uses as the board's serial port.
"""

from __future__ import annotations

import atexit
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from shutil import which
from typing import Any

import numpy as np

from tinyhar.board import tflm_library
from tinyhar.board.boards import Board, resolve_board
from tinyhar.crc import format_crc32
from tinyhar.deploy.build import BuildOptions, build_firmware
from tinyhar.deploy.m4f_image import (
    UNSUPPORTED_LIBRARIES,
    EmulatedImage,
    build_emulated_firmware,
    firmware_dirs_of,
    library_ops,
    tflm_source_for,
)
from tinyhar.device.link import Link
from tinyhar.device.profile import ProfileCollector
from tinyhar.errors import TinyharError
from tinyhar.lite.arena import host_arena_bytes
from tinyhar.lite.reference import TflmReference
from tinyhar.log import Log, inf
from tinyhar.run import folder as runs
from tinyhar.run.firmware import FirmwareTree
from tinyhar.run.records import BuildReport

QEMU = "qemu-system-arm"
QEMU_APT = "qemu-system-arm"
MACHINE = "mps2-an386"
ICOUNT_SHIFT = 0  # one instruction = 2**0 ns of virtual time: micros() * 1000 = instructions
_PTY_LINE = re.compile(r"char device redirected to (/dev/\S+)")


def qemu_command(elf: Path, icount_shift: int = ICOUNT_SHIFT, qemu: str = QEMU) -> list[str]:
    """QEMU's command line: mps2-an386, deterministic instruction timing, UART0 on a new pty,
    no monitor; semihosting lets a fault in the firmware stop QEMU with a message."""
    return [
        qemu,
        "-M",
        MACHINE,
        "-cpu",
        "cortex-m4",
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "pty",
        "-icount",
        f"shift={icount_shift}",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
        str(elf),
    ]


def require_qemu(qemu: str = QEMU) -> str:
    """The QEMU binary's path; one line saying how to install it otherwise."""

    path = which(qemu)
    if path is None:
        raise TinyharError(
            f"{qemu} not found: install QEMU's Arm system emulator "
            f"(sudo apt-get install -y {QEMU_APT})"
        )
    return path


class EmulatedBoard:
    """QEMU running an emulated-board ELF with its UART0 on a pty (`port`); a context manager.
    QEMU's output (e.g. a fault report from the firmware) is kept in `output`."""

    def __init__(self, elf: Path, icount_shift: int = ICOUNT_SHIFT, qemu: str = QEMU) -> None:
        self.elf, self.icount_shift, self.qemu = Path(elf), icount_shift, qemu
        self.port = ""
        self.proc: subprocess.Popen | None = None
        self.output: deque[str] = deque(maxlen=50)
        self._found = threading.Event()

    def start(self, timeout: float = 20.0) -> str:
        """Start QEMU and return the pty path of UART0 (from QEMU's "char device redirected
        to /dev/pts/N" line)."""
        exe = require_qemu(self.qemu)
        if not self.elf.is_file():
            raise TinyharError(f"{self.elf} not found: build the emulated firmware first")
        self.proc = subprocess.Popen(
            qemu_command(self.elf, self.icount_shift, exe),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        atexit.register(self.stop)  # an exception or exit never leaves QEMU running
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._drain, args=(stream,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise TinyharError(f"{QEMU} did not start: {self.last_output() or 'no output'}")
        return self.port

    def _drain(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            m = _PTY_LINE.search(line)
            if m and not self.port:
                self.port = m.group(1)
                self._found.set()
            elif line:
                self.output.append(line)
        stream.close()

    def last_output(self) -> str:
        return self.output[-1] if self.output else ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise a one-line error when QEMU has stopped on its own (e.g. the firmware faulted)."""
        if self.proc is not None and self.proc.poll() is not None:
            time.sleep(0.1)  # let the output threads take QEMU's last words
            raise TinyharError(
                f"the emulated board stopped (QEMU exit {self.proc.returncode}): "
                f"{self.last_output() or 'no message'}"
            )

    def stop(self) -> None:
        """Stop QEMU: SIGTERM, SIGKILL after 5 s. The exit code stays in `proc`."""
        proc = self.proc
        atexit.unregister(self.stop)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmulatedBoard:
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulator(
    elf: Path, icount_shift: int = ICOUNT_SHIFT, timeout: float = 20.0
) -> EmulatedBoard:
    """A started EmulatedBoard for `elf`: `.port` is its serial port; `.stop()` when done."""
    board = EmulatedBoard(Path(elf), icount_shift)
    board.start(timeout)
    return board


# --- instructions per inference -------------------------------------------------------------


def emulation_missing(board: Board) -> str | None:
    """What this machine lacks to run `board`'s firmware on the emulated board (None: nothing)."""
    for tool, apt in ((QEMU, QEMU_APT), ("arm-none-eabi-g++", "gcc-arm-none-eabi")):
        if which(tool) is None:
            return f"{tool} not found (sudo apt-get install -y {apt})"
    try:
        src = tflm_library.tflm_source(tflm_library.load_library(board.tflm.name))
    except TinyharError as e:
        return str(e)
    why = UNSUPPORTED_LIBRARIES.get(src.resolve().parent.name)
    return f"the emulated board cannot take {src.resolve().parent.name}: {why}" if why else None


def measure_instructions(
    opts: BuildOptions, windows: int = 3, log: Log = inf, profile: bool = False
) -> dict[str, Any]:
    """Build the firmware `opts` describes (a run's, or a --model's), run it on the emulated board
    and return the median instructions per inference over `windows` seeded random windows, with
    the firmware's flash and RAM from its link map. TFLM's kernels take as long on any input.
    `profile`: also the per-op profile ("profile") and the largest difference of the device's
    outputs from the Python TFLM interpreter's ("python_tflm_max_lsb")."""
    opts = replace(opts, install=False, measure=False)
    build_firmware(opts, log=log)
    if opts.model is not None:
        folder = Path(opts.out or Path(opts.model).parent)
    elif opts.run is not None:
        folder = Path(opts.run)
    else:
        raise TinyharError("counting instructions needs a run folder or a model file")
    image, rec = build_for_run(folder, opts.libraries, log=log)
    model = Path(opts.model).read_bytes() if opts.model else (folder / runs.INT8_MODEL).read_bytes()
    board = rec.board
    rng = np.random.default_rng(0)
    collector = ProfileCollector(model, "the emulated board") if profile else None
    with EmulatedBoard(image.elf) as emu, Link(emu.port, timeout=30) as link:
        info = link.hello()
        if not info.has_model or info.runner_status:
            problem = info.runner_problem()
            raise TinyharError(f"the emulated {board} firmware in {folder}: {problem}")
        q = rng.integers(-128, 128, (windows, info.window, info.channels), dtype=np.int8)
        results = []
        for w in q:
            results.append(link.infer(w))
            if collector is not None:
                collector.add(*link.profile())
    total = image.footprint["total"]
    out: dict[str, Any] = {
        # -icount shift=0: 1 us = 1000 instructions
        "instructions": int(np.median([r.latency_us for r in results])) * 1000,
        "flash_bytes": int(total["flash"]),
        "ram_bytes": int(total["ram"]),
    }
    profiled = collector.result() if collector is not None else None
    if profiled is not None:
        out["profile"] = profiled.to_json()
        python = TflmReference(model, host_arena_bytes(rec.arena_bytes)).predict(
            q.reshape(len(q), *info.input.shape[1:])
        )
        device = np.stack([r.output for r in results]).astype(np.int32)
        out["python_tflm_max_lsb"] = int(np.abs(device - python.reshape(device.shape)).max())
    return out


# --- tinyhar sim --emulate ------------------------------------------------------------------


def build_for_run(
    run: Path | None, libraries: Path | None = None, log: Log = inf
) -> tuple[EmulatedImage, BuildReport]:
    """The emulated firmware of the run's latest `tinyhar build`, in runs/<run>/emulator/<board>/;
    also returns the build.json record."""
    run = runs.require_run(run, runs.BUILD_JSON, "tinyhar build")
    runs.check_run(run)
    rec = BuildReport.load(run)
    image = build_emulated_firmware(
        firmware_dirs_of(rec, run),
        tflm_source_for(rec, libraries),
        library_ops(rec),
        FirmwareTree.of_build(run, rec).emulator_dir,
        log,
        name=rec.sketch_name or "firmware",
    )
    return image, rec


def run_emulated_sim(
    board: str | None,
    run: Path | None,
    link_path: Path | None = None,
    software_only: Sequence[str] = (),
    announce: Callable[[str], None] = print,
    log: Log = inf,
    libraries: Path | None = None,
) -> None:
    """`tinyhar sim --emulate`: build the run's firmware for the emulated board, start QEMU,
    announce the pty path (first line on stdout, as `tinyhar sim` does) and serve until Ctrl-C
    or SIGTERM. `software_only` names options given that only the software board has;
    `libraries`: the Arduino libraries folder with the board's TFLM library (--libraries)."""
    if software_only:
        raise TinyharError(
            f"{', '.join(software_only)}: only the software board (`tinyhar sim` without "
            "--emulate) has it; the emulated board runs the firmware as built"
        )
    run = runs.require_run(run, runs.BUILD_JSON, "tinyhar build")
    runs.check_run(run)
    resolve_board(board, BuildReport.load(run).board, f"the firmware of {run}")
    require_qemu()
    with _sigterm_interrupts():
        try:
            image, rec = build_for_run(run, libraries, log=log)
            _serve(image, rec, link_path, announce, log)
        except KeyboardInterrupt:
            pass


def _serve(
    image: EmulatedImage,
    rec: BuildReport,
    link_path: Path | None,
    announce: Callable[[str], None],
    log: Log,
) -> None:
    fp = image.footprint["total"]
    made_link = False
    with EmulatedBoard(image.elf) as emu:
        try:
            if link_path is not None:
                made_link = _make_link(Path(link_path), emu.port)
            log(
                f"sim: emulated {rec.board} on {emu.port}"
                + (f" (link {link_path})" if made_link else "")
                + f": the generated firmware on QEMU {MACHINE} (Cortex-M4F, -icount "
                f"shift={ICOUNT_SHIFT}: latency_us x 1000 = instructions), model CRC-32 "
                f"{format_crc32(rec.model_crc32)}, flash {fp['flash']} B, RAM {fp['ram']} B, "
                f"built in {image.seconds:.1f} s"
            )
            port = link_path if made_link else emu.port
            log(f"sim: verify with: tinyhar verify --port {port}; Ctrl-C stops")
            announce(emu.port)
            while True:
                time.sleep(0.2)
                emu.check()
        finally:
            if made_link and link_path is not None and Path(link_path).is_symlink():
                Path(link_path).unlink()


def _make_link(link_path: Path, port: str) -> bool:
    if link_path.is_symlink():
        link_path.unlink()
    elif link_path.exists():
        raise TinyharError(f"--link {link_path} exists and is not a symlink: pick another path")
    link_path.symlink_to(port)
    return True


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so a terminated `sim --emulate` stops QEMU too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
