"""`tinyhar flash`: upload a run's compiled firmware with arduino-cli to a board found by USB id."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tinyhar.board.boards import Board, resolve_board
from tinyhar.crc import format_crc32
from tinyhar.deploy import arduino
from tinyhar.errors import TinyharError
from tinyhar.log import inf
from tinyhar.run import folder as runs
from tinyhar.run.firmware import FirmwareTree
from tinyhar.run.records import BuildReport

BINARY_SUFFIXES = (".bin", ".hex", ".uf2", ".elf")


def compiled_binary(build_dir: Path, sketch_name: str) -> Path | None:
    """The compiled image arduino-cli left in `build_dir` (`<sketch>.ino.bin` etc.), or None."""
    for suffix in BINARY_SUFFIXES:
        path = build_dir / f"{sketch_name}.ino{suffix}"
        if path.is_file():
            return path
    return None


def choose_port(board: Board, port: str | None, cli: str | None) -> str:
    """The given port (checked), else the one port with the board's USB id; one line otherwise."""
    if port is not None:
        check_port(port)
        return port
    found = arduino.matching_ports(board, cli)
    if not found:
        raise TinyharError(
            f"no {board.title} found on USB (looked for {', '.join(board.usb_id_strings())}): "
            "plug it in (double-tap reset for the bootloader) or pass --port"
        )
    if len(found) > 1:
        listed = ", ".join(f"{p.address} ({p.usb_id()})" for p in found)
        raise TinyharError(f"several boards found: {listed}: pick one with --port")
    check_port(found[0].address)
    return found[0].address


def check_port(port: str) -> None:
    """A local device path must exist and be readable and writable by this user."""
    path = Path(port)
    if not port.startswith("/dev/"):
        return  # COM3, network ports...: let arduino-cli judge
    if not path.exists():
        raise TinyharError(
            f"port {port} does not exist: check the cable or run `tinyhar flash` to find it"
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise TinyharError(arduino.permission_hint(port))


def flash_firmware(
    board: str | None = None,
    port: str | None = None,
    run: Path | None = None,
    log: Callable[[str], None] = inf,
) -> str:
    """Upload R/firmware/<board>/<sketch> as the run's last `tinyhar build` compiled it, from
    any working directory; a one-line summary."""
    cli = arduino.find_cli()
    if cli is None:
        raise TinyharError(
            f"arduino-cli not found on PATH (it uploads the firmware): {arduino.INSTALL_HINT}"
        )
    run = runs.require_run(run, needs=runs.BUILD_JSON, hint="tinyhar build")
    runs.check_run(run)  # the firmware is of this run's int8 model, of this training
    record = BuildReport.load(run)
    b = resolve_board(board, record.board, f"the firmware of {run}")
    fw = FirmwareTree.of_build(run, record)  # in the run, whatever the working directory
    binary = compiled_binary(fw.build_dir, fw.sketch_dir.name)
    if not record.compiled or binary is None:
        raise TinyharError(
            f"no compiled firmware for {b.name} in {fw.build_dir}: run "
            f"`tinyhar build --board {b.name} --run {run}` with arduino-cli installed first"
        )
    address = choose_port(b, port, cli)
    log(f"flash: uploading {binary} to {address} (arduino-cli upload --fqbn {b.fqbn})")
    arduino.upload(cli, b, address, fw.sketch_dir, fw.build_dir)
    return f"flashed {b.name} on {address}: model CRC-32 {format_crc32(record.model_crc32)}"
