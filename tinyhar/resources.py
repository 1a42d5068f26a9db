"""Where tinyhar's files live: those it ships (boards, firmware templates, checksums), its cache.

In a checkout `boards/` and `firmware_templates/` sit beside the package; a wheel carries them
inside it (pyproject.toml maps them), so both places are looked at.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name


def boards_dir() -> Path:
    """The folder of board description files (`<name>.toml`)."""
    return _shipped("boards")


def templates_dir() -> Path:
    """The folder of Jinja templates and static C sources of the firmware."""
    return _shipped("firmware_templates")


def package_data(name: str) -> Path:
    """A data file shipped in `tinyhar/data/`."""
    return PACKAGE_DIR / "data" / name


def cache_dir() -> Path:
    """$TINYHAR_CACHE, else $XDG_CACHE_HOME/tinyhar, else ~/.cache/tinyhar."""
    if os.environ.get("TINYHAR_CACHE"):
        return Path(os.environ["TINYHAR_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tinyhar"
