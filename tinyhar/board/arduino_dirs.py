"""Where the Arduino tools are on this machine: arduino-cli, and the libraries folder that holds
the board's TFLM library. One rule for every command that needs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CLI_ENV = "TINYHAR_ARDUINO_CLI"  # arduino-cli to use instead of the one on PATH
LIBRARIES_ENV = "TINYHAR_ARDUINO_LIBRARIES"
LIBRARIES_HOW = f"give --libraries DIR or set ${LIBRARIES_ENV} to the folder that holds it"


def find_cli() -> str | None:
    """Path of arduino-cli ($TINYHAR_ARDUINO_CLI overrides PATH), or None."""
    override = os.environ.get(CLI_ENV)
    if override:
        return override if Path(override).is_file() else None
    return shutil.which("arduino-cli")


@dataclass(frozen=True)
class LibrariesFolder:
    """An Arduino libraries folder and which rule chose it (for messages)."""

    path: Path
    origin: str

    def __str__(self) -> str:
        return f"{self.path} ({self.origin})"


def default_user_dir() -> Path:
    """arduino-cli's default `directories.user` on this platform."""
    if sys.platform in ("darwin", "win32"):
        return Path.home() / "Documents" / "Arduino"
    return Path.home() / "Arduino"


def arduino_cli_user_dir(cli: str) -> Path | None:
    """`arduino-cli config get directories.user` (1.x), else its `config dump` (0.x); None when
    arduino-cli does not say."""
    for args in (["config", "get", "directories.user"], ["config", "dump", "--format", "json"]):
        try:
            proc = subprocess.run([cli, *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        if proc.returncode != 0 or not proc.stdout.strip():
            continue
        if args[1] == "get":
            return Path(proc.stdout.strip().splitlines()[0].strip().strip('"'))
        try:
            cfg = json.loads(proc.stdout)
        except ValueError:
            return None
        user = cfg.get("config", cfg).get("directories", {}).get("user")
        return Path(user) if user else None
    return None


def find_libraries(option: Path | None = None) -> LibrariesFolder:
    """--libraries, else $TINYHAR_ARDUINO_LIBRARIES, else arduino-cli's `directories.user`/
    libraries, else the platform's default (~/Arduino/libraries on Linux)."""
    if option is not None:
        return LibrariesFolder(Path(option).expanduser(), "--libraries")
    if os.environ.get(LIBRARIES_ENV):
        return LibrariesFolder(Path(os.environ[LIBRARIES_ENV]).expanduser(), f"${LIBRARIES_ENV}")
    cli = find_cli()
    user = arduino_cli_user_dir(cli) if cli else None
    if user is not None:
        return LibrariesFolder(user / "libraries", "arduino-cli's directories.user")
    why = "arduino-cli gave no directories.user" if cli else "no arduino-cli"
    return LibrariesFolder(
        default_user_dir() / "libraries",
        f"the Arduino default: no --libraries, no ${LIBRARIES_ENV}, {why}",
    )


def libraries_dir(option: Path | None = None) -> Path:
    """The libraries folder `find_libraries` chooses."""
    return find_libraries(option).path
