"""Every path under a run's `firmware/<board>/`, spelled here only and resolved against the run
folder, so `flash`, `sim`, `verify` and the emulator read the same files from any directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyhar.errors import TinyharError
from tinyhar.run.folder import BUILD_JSON, redo_hint
from tinyhar.run.records import BuildReport

FIRMWARE_DIR = "firmware"
FIRMWARE_LIBRARY = "tinyhar_model"  # the Arduino library every build regenerates
LIBRARIES_DIR = "libraries"  # beside the sketch, as arduino-cli's --libraries takes it
SKETCH_BUILD_DIR = "build"  # arduino-cli's output inside the sketch folder
M4F_DIR = "m4f"  # firmware/<board>/m4f/: the Cortex-M4F link that measures flash and RAM
EMULATOR_DIR = "emulator"  # emulator/<board>/: `sim --emulate`'s build (objects, ELF, map)


@dataclass(frozen=True)
class FirmwareTree:
    """One board's firmware in a run folder (or beside a --model): `folder/firmware/<board>/`."""

    folder: Path  # the folder that holds build.json
    board: str
    sketch_name: str

    def __post_init__(self) -> None:
        for what, value in (("board", self.board), ("sketch_name", self.sketch_name)):
            if not value or value in (".", "..") or Path(value).name != value:
                raise TinyharError(
                    f"{Path(self.folder) / BUILD_JSON}: {what} {value!r} is not a folder name: "
                    f"{redo_hint(Path(self.folder), BUILD_JSON)}"
                )

    @classmethod
    def of_build(cls, folder: Path, record: BuildReport) -> FirmwareTree:
        """The firmware a build.json describes, inside `folder` (the one holding it). build.json's
        own paths are as `tinyhar build` spelt them, relative to where it ran: not used."""
        return cls(Path(folder), record.board, record.sketch_name or Path(record.sketch_dir).name)

    @property
    def board_dir(self) -> Path:
        return Path(self.folder) / FIRMWARE_DIR / self.board

    @property
    def sketch_dir(self) -> Path:
        """The user's sketch folder."""
        return self.board_dir / self.sketch_name

    @property
    def library_dir(self) -> Path:
        """The tinyhar_model library every build rewrites."""
        return self.board_dir / LIBRARIES_DIR / FIRMWARE_LIBRARY

    @property
    def build_dir(self) -> Path:
        """Where arduino-cli leaves the compiled image."""
        return self.sketch_dir / SKETCH_BUILD_DIR

    @property
    def m4f_dir(self) -> Path:
        return self.board_dir / M4F_DIR

    @property
    def emulator_dir(self) -> Path:
        return Path(self.folder) / EMULATOR_DIR / self.board
