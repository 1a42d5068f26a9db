"""Board description files (`boards/<name>.toml`): load, validate, list."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tinyhar.board.arduino_core import CompileFlags, load_compile_flags
from tinyhar.board.tflm_library import known_libraries, load_library
from tinyhar.data.units import UNIT_FACTORS  # the one table of unit factors (re-exported)
from tinyhar.errors import TinyharError
from tinyhar.resources import boards_dir

AXES = ("x", "y", "z")
_USB_ID = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")
_AXIS = re.compile(r"^([+-])([xyz])$")
# Board and sketch names become C identifiers and folder names that arduino-cli accepts.
NAME = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class Library:
    """An Arduino library the sketch needs, pinned to a version."""

    name: str
    version: str
    header: str
    git_url: str = ""


@dataclass(frozen=True)
class Imu:
    """The board's IMU as its Arduino library reports it."""

    chip: str
    library: Library
    native_rate_hz: float
    acc_unit: str
    gyro_unit: str
    acc_range: float  # full scale, ± in acc_unit, as the library configures the chip
    gyro_range: float  # ± in gyro_unit
    axis_src: tuple[int, int, int]  # training axis i comes from library axis axis_src[i]
    axis_sign: tuple[int, int, int]  # ... times axis_sign[i]


@dataclass(frozen=True)
class Board:
    """One board: MCU, memory budgets, toolchain, IMU, USB ids."""

    name: str
    title: str
    path: Path
    mcu: str
    cpu: str
    clock_hz: int
    flash_bytes: int
    ram_bytes: int
    sketch_flash_bytes: int
    sketch_ram_bytes: int
    model_flash_bytes: int
    arena_ram_bytes: int
    core_flash_bytes: int  # what the Arduino core takes (an empty sketch), for measured builds
    core_ram_bytes: int
    fqbn: str
    core: str
    core_version: str
    variant: str  # the core's variant folder, e.g. ARDUINO_NANO33BLE ("" when unknown)
    compile_flags: CompileFlags | None  # how the core compiles for this variant, when known
    tflm: Library
    tflm_alternatives: tuple[str, ...]
    imu: Imu
    usb_ids: tuple[tuple[int, int], ...]

    def unit_factor(self, kind: str, training_unit: str) -> float:
        """Factor turning this board's IMU reading of `kind` ("acc"|"gyro") into `training_unit`."""
        unit = self.imu.acc_unit if kind == "acc" else self.imu.gyro_unit
        try:
            return UNIT_FACTORS[(unit, training_unit)]
        except KeyError:
            raise TinyharError(
                f"board {self.name}: no conversion from {kind} unit {unit!r} to {training_unit!r}; "
                f"known: {', '.join(f'{a}->{b}' for a, b in UNIT_FACTORS)}"
            ) from None

    def imu_range(self, kind: str, training_unit: str) -> float:
        """The IMU's full scale (±) for `kind` ("acc"|"gyro"), in `training_unit`."""
        full = self.imu.acc_range if kind == "acc" else self.imu.gyro_range
        return full * self.unit_factor(kind, training_unit)

    def with_tflm(self, name: str | None) -> Board:
        """This board built against another TFLM library it supports (None: its default)."""
        if name is None or name == self.tflm.name:
            return self
        if name not in self.tflm_alternatives:
            choices = ", ".join((self.tflm.name, *self.tflm_alternatives))
            raise TinyharError(f"--tflm-library {name}: {self.name} supports {choices}")
        return replace(self, tflm=_tflm_library(name, str(self.path)))

    def check_rate(self, rate_hz: float) -> None:
        """Refuse a model rate above what the board's IMU delivers (it resamples down, not up)."""
        if rate_hz > self.imu.native_rate_hz:
            raise TinyharError(
                f"the model runs at {rate_hz:g} Hz but {self.name}'s {self.imu.chip} delivers "
                f"{self.imu.native_rate_hz:g} Hz: train at {self.imu.native_rate_hz:g} Hz or less"
            )

    def usb_id_strings(self) -> list[str]:
        return [f"{v:04x}:{p:04x}" for v, p in self.usb_ids]


def _get(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise TinyharError(f"{where}: missing key {key!r}; see docs/boards.md for the format")
    value = d[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or isinstance(value, bool) and typ is not bool:
        name = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise TinyharError(f"{where}: {key!r} must be a {name}, got {value!r}")
    return value


def _positive(d: dict[str, Any], key: str, where: str) -> int:
    value = _get(d, key, int, where)
    if value <= 0:
        raise TinyharError(f"{where}: {key!r} must be > 0, got {value}")
    return value


def _library(d: dict[str, Any], where: str) -> Library:
    return Library(
        name=_get(d, "library", str, where),
        version=_get(d, "version", str, where),
        header=_get(d, "header", str, where),
        git_url=d.get("git_url", ""),
    )


def _tflm_library(name: str, where: str) -> Library:
    if name not in known_libraries():
        raise TinyharError(
            f"{where} [tflm]: library {name!r} unknown; one of {', '.join(known_libraries())}"
        )
    facts = load_library(name)
    git_url = ""
    if "--git-url" in facts.install:
        git_url = facts.install.split("--git-url", 1)[1].split()[0].split("#")[0]
    return Library(facts.name, facts.version, facts.header, git_url)


def _axis_map(d: dict[str, Any], where: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    src, sign = [], []
    for axis in AXES:
        spec = _get(d, axis, str, where)
        m = _AXIS.match(spec.strip())
        if not m:
            raise TinyharError(f'{where}: {axis} = {spec!r}: write a sign and an axis, e.g. "-y"')
        sign.append(1 if m.group(1) == "+" else -1)
        src.append(AXES.index(m.group(2)))
    if sorted(src) != [0, 1, 2]:
        raise TinyharError(f"{where}: each library axis must be used once, got {d}")
    return (src[0], src[1], src[2]), (sign[0], sign[1], sign[2])


def parse_board(data: dict[str, Any], path: Path) -> Board:
    """Validate a parsed board file; one-line TinyharError naming the file and key otherwise."""
    w = str(path)
    mcu = _get(data, "mcu", dict, w)
    budget = _get(data, "budget", dict, w)
    arduino = _get(data, "arduino", dict, w)
    tflm = _get(data, "tflm", dict, w)
    imu = _get(data, "imu", dict, w)
    usb = _get(data, "usb", dict, w)
    axis_src, axis_sign = _axis_map(
        _get(imu, "axis_map", dict, f"{w} [imu]"), f"{w} [imu.axis_map]"
    )
    ids = []
    for s in _get(usb, "ids", list, f"{w} [usb]"):
        if not isinstance(s, str) or not _USB_ID.match(s):
            raise TinyharError(f'{w} [usb]: USB id {s!r} must look like "2341:805a"')
        vid, pid = s.split(":")
        ids.append((int(vid, 16), int(pid, 16)))
    if not ids:
        raise TinyharError(f"{w} [usb]: ids is empty; list the board's VID:PID pairs")
    rate = _get(imu, "native_rate_hz", float, f"{w} [imu]")
    ranges = {k: _get(imu, k, float, f"{w} [imu]") for k in ("acc_range", "gyro_range")}
    for k, v in ranges.items():
        if v <= 0:
            raise TinyharError(f"{w} [imu]: {k} must be > 0, got {v}")
    if rate <= 0:
        raise TinyharError(f"{w} [imu]: native_rate_hz must be > 0, got {rate}")
    fqbn = _get(arduino, "fqbn", str, f"{w} [arduino]")
    if fqbn.count(":") < 2:
        raise TinyharError(f'{w} [arduino]: fqbn {fqbn!r} must be "vendor:arch:board"')
    board = Board(
        name=_get(data, "name", str, w),
        title=_get(data, "title", str, w),
        path=path,
        mcu=_get(mcu, "name", str, f"{w} [mcu]"),
        cpu=_get(mcu, "cpu", str, f"{w} [mcu]"),
        clock_hz=_positive(mcu, "clock_hz", f"{w} [mcu]"),
        flash_bytes=_positive(mcu, "flash_bytes", f"{w} [mcu]"),
        ram_bytes=_positive(mcu, "ram_bytes", f"{w} [mcu]"),
        sketch_flash_bytes=_positive(budget, "sketch_flash_bytes", f"{w} [budget]"),
        sketch_ram_bytes=_positive(budget, "sketch_ram_bytes", f"{w} [budget]"),
        model_flash_bytes=_positive(budget, "model_flash_bytes", f"{w} [budget]"),
        arena_ram_bytes=_positive(budget, "arena_ram_bytes", f"{w} [budget]"),
        core_flash_bytes=_positive(budget, "core_flash_bytes", f"{w} [budget]"),
        core_ram_bytes=_positive(budget, "core_ram_bytes", f"{w} [budget]"),
        fqbn=fqbn,
        core=_get(arduino, "core", str, f"{w} [arduino]"),
        core_version=arduino.get("core_version", ""),
        variant=str(arduino.get("variant", "")),
        compile_flags=load_compile_flags(
            _get(arduino, "core", str, f"{w} [arduino]"), str(arduino.get("variant", ""))
        ),
        tflm=_tflm_library(_get(tflm, "library", str, f"{w} [tflm]"), w),
        tflm_alternatives=tuple(
            _tflm_library(n, w).name for n in tflm.get("alternatives", []) if isinstance(n, str)
        ),
        imu=Imu(
            chip=_get(imu, "chip", str, f"{w} [imu]"),
            library=_library(imu, f"{w} [imu]"),
            native_rate_hz=rate,
            acc_unit=_get(imu, "acc_unit", str, f"{w} [imu]"),
            gyro_unit=_get(imu, "gyro_unit", str, f"{w} [imu]"),
            acc_range=ranges["acc_range"],
            gyro_range=ranges["gyro_range"],
            axis_src=axis_src,
            axis_sign=axis_sign,
        ),
        usb_ids=tuple(ids),
    )
    if board.model_flash_bytes > board.sketch_flash_bytes:
        raise TinyharError(f"{w} [budget]: model_flash_bytes exceeds sketch_flash_bytes")
    if board.arena_ram_bytes > board.sketch_ram_bytes:
        raise TinyharError(f"{w} [budget]: arena_ram_bytes exceeds sketch_ram_bytes")
    if not NAME.fullmatch(board.name):
        raise TinyharError(f"{w}: name {board.name!r} may hold only letters, digits and _")
    return board


def read_board_file(path: Path) -> Board:
    """Load and validate one board file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TinyharError(f"cannot read board file {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TinyharError(f"board file {path} is not valid TOML: {e}") from None
    except RecursionError:
        raise TinyharError(f"board file {path} is nested too deeply to read") from None
    return parse_board(data, path)


def list_boards() -> list[Board]:
    """All boards shipped with tinyhar, by name."""
    return [read_board_file(p) for p in sorted(boards_dir().glob("*.toml"))]


def board_names() -> list[str]:
    return sorted(p.stem for p in boards_dir().glob("*.toml"))


DEFAULT_BOARD = "nano33ble"  # the board a command targets when none is given


def default_board() -> Board:
    """The board a command targets when none is given (`DEFAULT_BOARD`)."""
    return load_board(DEFAULT_BOARD)


def resolve_board(given: str | Path | None, built_for: str | None, where: str = "the run") -> Board:
    """The one rule for the board a command acts on: what `where` (a run's firmware, a device)
    was built for, else the board given; a given board that differs is a one-line error."""
    if given is None and built_for is None:
        known = ", ".join(board_names())
        raise TinyharError(f"no board known for {where}: give --board (one of {known})")
    board = load_board(given if given is not None else str(built_for))
    if built_for is not None and board.name != built_for:
        raise TinyharError(
            f"{where} was built for {built_for}, not {board.name}: drop --board, or run "
            f"`tinyhar build --board {board.name}` and flash it first"
        )
    return board


def load_board(name: str | Path) -> Board:
    """A shipped board by name, or a board file given by its path (a user's own board)."""
    text = str(name)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise TinyharError(f"board file {path} not found")
        return read_board_file(path)
    path = boards_dir() / f"{text}.toml"
    if not path.is_file():
        raise TinyharError(
            f"unknown board {text!r}: known boards are {', '.join(board_names())} "
            "(or pass the path of your own .toml, see docs/boards.md)"
        )
    board = read_board_file(path)
    if board.name != text:
        raise TinyharError(f"{path}: name {board.name!r} differs from the file name {text!r}")
    return board


def board_table(boards: list[Board]) -> list[str]:
    """Lines of a table for `tinyhar boards`: MCU, IMU and the model/arena budgets."""
    head = (
        f"{'board':<20} {'MCU':<9} {'clock':>8} {'IMU':<9} {'rate':>6} "
        f"{'model flash':>12} {'arena RAM':>10}  fqbn"
    )
    lines = [head, "-" * len(head)]
    for b in boards:
        lines.append(
            f"{b.name:<20} {b.mcu:<9} {b.clock_hz / 1e6:>5.0f}MHz {b.imu.chip:<9} "
            f"{b.imu.native_rate_hz:>4.0f}Hz {b.model_flash_bytes / 1024:>9.0f} KB "
            f"{b.arena_ram_bytes / 1024:>7.0f} KB  {b.fqbn}"
        )
    return lines
