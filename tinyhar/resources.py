"""Where the files shipped inside the package live (boards, firmware templates, checksums)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def boards_dir() -> Path:
    """The folder of board description files (`<name>.toml`)."""
    return PACKAGE_DIR / "boards"


def templates_dir() -> Path:
    """The folder of Jinja templates and static C sources of the firmware."""
    return PACKAGE_DIR / "firmware_templates"


def package_data(name: str) -> Path:
    """A data file shipped in `tinyhar/data/`."""
    return PACKAGE_DIR / "data" / name
