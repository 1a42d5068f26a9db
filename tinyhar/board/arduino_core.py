"""Arduino cores as tinyhar knows them (`boards/cores/<core>.toml`): how each compiles a sketch.

A board file names its core and variant; the variant's flags are the ones that decide the code
(optimisation, language standard, float ABI, char signedness), so the emulated board runs the
instructions the user's board runs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from tinyhar.errors import TinyharError
from tinyhar.resources import boards_dir


@dataclass(frozen=True)
class CompileFlags:
    """One variant of one Arduino core: its compiler flags, as its recipe passes them."""

    core: str  # e.g. arduino:mbed_nano
    version: str
    variant: str
    toolchain: str  # the compiler Arduino ships for the core
    cpu: tuple[str, ...]
    common: tuple[str, ...]
    c: tuple[str, ...]
    cxx: tuple[str, ...]
    defines: tuple[str, ...]

    @property
    def title(self) -> str:
        return f"{self.core} {self.version} ({self.variant})"


def cores_dir() -> Path:
    return boards_dir() / "cores"


def core_file(core: str) -> Path:
    """`boards/cores/<arch>.toml` for a core named `vendor:arch`."""
    return cores_dir() / f"{core.split(':')[-1]}.toml"


def _strings(d: dict, key: str, where: str) -> tuple[str, ...]:
    value = d.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TinyharError(f"{where}: {key!r} must be a list of strings; reinstall tinyhar")
    return tuple(value)


def load_compile_flags(core: str, variant: str) -> CompileFlags | None:
    """The flags of `core`'s `variant`, or None when tinyhar has no facts for them."""
    path = core_file(core)
    if not variant or not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise TinyharError(f"core facts {path} are broken ({e}): reinstall tinyhar") from None
    v = data.get("variants", {}).get(variant)
    if v is None:
        return None
    where = f"{path} [variants.{variant}]"
    return CompileFlags(
        core=str(data.get("name", core)),
        version=str(data.get("version", "")),
        variant=variant,
        toolchain=str(data.get("toolchain", "")),
        cpu=_strings(v, "cpu", where),
        common=_strings(v, "common", where),
        c=_strings(v, "c", where),
        cxx=_strings(v, "cxx", where),
        defines=_strings(v, "defines", where),
    )
