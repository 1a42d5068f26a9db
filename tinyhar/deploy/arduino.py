"""Drive arduino-cli: find it, install the core and libraries, compile, upload, list ports."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serial.tools import list_ports

from tinyhar.board.arduino_dirs import find_cli
from tinyhar.board.boards import Board, Library
from tinyhar.errors import TinyharError

INSTALL_HINT = (
    "install it with `curl -fsSL https://raw.githubusercontent.com/arduino/arduino-cli/master/"
    "install.sh | sh` (puts it in ./bin; add that to PATH), `brew install arduino-cli`, or a "
    "release from https://arduino.github.io/arduino-cli/latest/installation/"
)
_FLASH_RE = re.compile(
    r"Sketch uses (\d+) bytes \((\d+)%\) of program storage space\. Maximum is (\d+) bytes"
)
_RAM_RE = re.compile(
    r"Global variables use (\d+) bytes \((\d+)%\) of dynamic memory.*?Maximum is (\d+) bytes"
)
_RAM_SHORT_RE = re.compile(r"Global variables use (\d+) bytes")
TIMEOUT_S = 1800  # a first compile of the mbed core takes minutes


@dataclass(frozen=True)
class CompileResult:
    """Flash and RAM use as arduino-cli reports them (None where it did not say)."""

    flash_used: int | None
    flash_max: int | None
    ram_used: int | None
    ram_max: int | None
    output: str


@dataclass(frozen=True)
class Port:
    """A serial port with its USB ids, as arduino-cli or pyserial lists it."""

    address: str
    vid: int | None
    pid: int | None
    description: str = ""

    def usb_id(self) -> str:
        if self.vid is None or self.pid is None:
            return "no USB id"
        return f"{self.vid:04x}:{self.pid:04x}"


def require_cli() -> str:
    cli = find_cli()
    if cli is None:
        raise TinyharError(f"arduino-cli not found on PATH: {INSTALL_HINT}")
    return cli


def run_cli(
    cli: str, args: list[str], env: dict[str, str] | None = None, timeout: float = TIMEOUT_S
) -> subprocess.CompletedProcess:
    """Run arduino-cli; output captured as text."""
    try:
        return subprocess.run(
            [cli, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired:
        raise TinyharError(f"`arduino-cli {' '.join(args)}` took over {timeout:.0f} s") from None
    except OSError as e:
        raise TinyharError(f"cannot run {cli}: {e.strerror}") from None


def _check(proc: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        raise TinyharError(f"arduino-cli failed to {what}: {last_line(proc)}")
    return proc


def last_line(proc: subprocess.CompletedProcess) -> str:
    """The most telling line of a failed arduino-cli run (its last error line)."""
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [f"exit code {proc.returncode}"])[-1]


def _json(proc: subprocess.CompletedProcess, what: str) -> Any:
    _check(proc, what)
    try:
        return json.loads(proc.stdout or "null")
    except json.JSONDecodeError:
        raise TinyharError(f"arduino-cli gave no JSON when asked to {what}: update it") from None


def installed_cores(cli: str) -> set[str]:
    data = _json(run_cli(cli, ["core", "list", "--format", "json"]), "list cores")
    items = data.get("platforms", []) if isinstance(data, dict) else data or []
    return {str(p.get("id") or p.get("ID") or "") for p in items if isinstance(p, dict)}


def installed_libraries(cli: str) -> dict[str, str]:
    data = _json(run_cli(cli, ["lib", "list", "--format", "json"]), "list libraries")
    items = data.get("installed_libraries", []) if isinstance(data, dict) else data or []
    out = {}
    for item in items:
        lib = item.get("library", item) if isinstance(item, dict) else {}
        if lib.get("name"):
            out[str(lib["name"])] = str(lib.get("version", ""))
    return out


def ensure_installed(cli: str, board: Board, log=print) -> list[str]:
    """Install the board's core and libraries where missing; the list of what was installed."""
    done = []
    if board.core not in installed_cores(cli):
        log(f"installing core {board.core} (once; a few minutes)")
        _check(run_cli(cli, ["core", "update-index"]), "update the core index")
        spec = f"{board.core}@{board.core_version}" if board.core_version else board.core
        _check(run_cli(cli, ["core", "install", spec]), f"install core {spec}")
        done.append(spec)
    have = installed_libraries(cli)
    for lib in (board.imu.library, board.tflm):
        if lib.name not in have:
            done.append(install_library(cli, lib, log))
        elif have[lib.name] != lib.version:
            log(
                f"note: library {lib.name} {have[lib.name]} is installed; {board.name} was "
                f"written for {lib.version} (`arduino-cli lib install {lib.name}@{lib.version}`)"
            )
    return done


def install_library(cli: str, lib: Library, log=print) -> str:
    if lib.git_url:
        log(f"installing library {lib.name} from {lib.git_url}")
        _check(
            run_cli(
                cli,
                ["lib", "install", "--git-url", lib.git_url],
                env={"ARDUINO_LIBRARY_ENABLE_UNSAFE_INSTALL": "true"},
            ),
            f"install library {lib.name} from {lib.git_url}",
        )
        return f"{lib.name} ({lib.git_url})"
    spec = f"{lib.name}@{lib.version}"
    log(f"installing library {spec}")
    _check(run_cli(cli, ["lib", "install", spec]), f"install library {spec}")
    return spec


def parse_sizes(text: str) -> tuple[int | None, int | None, int | None, int | None]:
    """(flash used, flash max, RAM used, RAM max) from arduino-cli's compile summary."""
    flash_used = flash_max = ram_used = ram_max = None
    m = _FLASH_RE.search(text)
    if m:
        flash_used, flash_max = int(m.group(1)), int(m.group(3))
    m = _RAM_RE.search(text)
    if m:
        ram_used, ram_max = int(m.group(1)), int(m.group(3))
    else:
        m = _RAM_SHORT_RE.search(text)
        if m:
            ram_used = int(m.group(1))
    return flash_used, flash_max, ram_used, ram_max


def compile_sketch(
    cli: str, board: Board, sketch_dir: Path, build_dir: Path, libraries: Path
) -> CompileResult:
    """`arduino-cli compile --fqbn ... --libraries L --output-dir B sketch_dir`, sizes parsed;
    `libraries` holds the generated tinyhar_model library."""
    proc = run_cli(
        cli,
        [
            "compile",
            "--fqbn",
            board.fqbn,
            "--libraries",
            str(libraries),
            "--output-dir",
            str(build_dir),
            str(sketch_dir),
        ],
    )
    text = (proc.stdout or "") + "\n" + (proc.stderr or "")
    if proc.returncode != 0:
        raise TinyharError(f"arduino-cli compile failed for {board.fqbn}: {last_line(proc)}")
    return CompileResult(*parse_sizes(text), output=text)


def upload(cli: str, board: Board, port: str, sketch_dir: Path, build_dir: Path) -> str:
    """`arduino-cli upload -p port --fqbn ... --input-dir build_dir sketch_dir`; its output."""
    proc = run_cli(
        cli,
        [
            "upload",
            "-p",
            port,
            "--fqbn",
            board.fqbn,
            "--input-dir",
            str(build_dir),
            str(sketch_dir),
        ],
        timeout=300,
    )
    text = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        if "permission denied" in text.lower() or "access denied" in text.lower():
            raise TinyharError(permission_hint(port))
        raise TinyharError(f"upload to {port} failed: {last_line(proc)}")
    return text


def permission_hint(port: str) -> str:
    return (
        f"no permission to open {port}: add yourself to the dialout group with "
        "`sudo usermod -aG dialout $USER`, then log out and in again"
    )


def _hex(value: object) -> int | None:
    try:
        return int(str(value), 16)
    except (TypeError, ValueError):
        return None


def parse_board_list(text: str) -> list[Port]:
    """Ports from `arduino-cli board list --format json` (old list form and new object form)."""
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError:
        return []
    items = data.get("detected_ports", []) if isinstance(data, dict) else data or []
    ports = []
    for item in items:
        port = item.get("port", item) if isinstance(item, dict) else {}
        address = port.get("address")
        if not address:
            continue
        props = port.get("properties") or {}
        names = [b.get("name", "") for b in item.get("matching_boards", []) or []]
        ports.append(
            Port(
                address=str(address),
                vid=_hex(props.get("vid")),
                pid=_hex(props.get("pid")),
                description=", ".join(n for n in names if n) or str(port.get("label", "")),
            )
        )
    return ports


def cli_ports(cli: str) -> list[Port]:
    proc = run_cli(cli, ["board", "list", "--format", "json"], timeout=60)
    return parse_board_list(proc.stdout) if proc.returncode == 0 else []


def serial_ports() -> list[Port]:
    """Serial ports with USB ids as pyserial sees them."""

    return [
        Port(p.device, p.vid, p.pid, p.description or "") for p in list_ports.comports() if p.device
    ]


def matching_ports(board: Board, cli: str | None) -> list[Port]:
    """Ports with one of the board's USB VID:PIDs, from arduino-cli and pyserial, deduplicated."""
    found: dict[str, Port] = {}
    for port in (cli_ports(cli) if cli else []) + serial_ports():
        if (port.vid, port.pid) in board.usb_ids and port.address not in found:
            found[port.address] = port
    return sorted(found.values(), key=lambda p: p.address)
