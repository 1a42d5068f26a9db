"""Where the files shipped with tinyhar live (boards, firmware templates, checksums).

In a checkout `boards/` and `firmware_templates/` sit beside the package; a wheel carries them
inside it (pyproject.toml maps them), so both places are looked at.
"""

from __future__ import annotations

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
