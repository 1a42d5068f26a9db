"""The Nano 33 BLE's real Arduino core (../shared/arduino/cores/mbed_nano, arduino:mbed_nano 4.6.0):
tinyhar's copy of its compile flags matches the core's own files, and the generated firmware (the
tinyhar_model library with tinyhar's kernels, and the sketch) compiles with the core's headers and
its recipe, against the real Chirale_TensorFLowLite and Arduino_LSM9DS1, as arduino-cli would."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.commands import SHARED_LIBRARIES
from helpers.fw_models import har_attention_int8_model, make_run

from tinyhar.board.boards import load_board
from tinyhar.cli import main
from tinyhar.deploy.native_build import CORTEX_M4F

CORE = SHARED_LIBRARIES.parent / "cores" / "mbed_nano"
VARIANT = CORE / "variants" / "ARDUINO_NANO33BLE"
needs_core = pytest.mark.skipif(not CORE.is_dir(), reason=f"no Arduino core at {CORE}")
needs_arm = pytest.mark.usefixtures("arm_gcc")
# What decides the instructions: optimisation, language, ABI, char signedness, sections, frames.
_CODE_FLAG = re.compile(r"^-(O\w*|std=.*|m.*|f.*)$")


def _flag_file(name: str) -> list[str]:
    return shlex.split((VARIANT / name).read_text(encoding="utf-8"))


def _board_entry(key: str) -> str:
    text = (CORE / "boards.txt").read_text(encoding="utf-8")
    return re.search(rf"^nano33ble\.{re.escape(key)}=(.*)$", text, re.M).group(1).strip()


@needs_core
@pytest.mark.parametrize("board", ["nano33ble", "nano33ble_rev2"])
def test_the_emulated_build_takes_the_real_core_s_code_flags(board):
    flags = load_board(board).compile_flags
    assert flags is not None and flags.version == "4.6.0"
    # platform.txt of a git checkout says 9.9.9; the folder's README names the release
    assert "`arduino:mbed_nano` 4.6.0" in (CORE / "README.md").read_text(encoding="utf-8")
    cpu = [f"-mcpu={_board_entry('build.mcu')}", _board_entry("build.float-abi"),
           _board_entry("build.fpu")]  # fmt: skip
    for lang, ours in (("cflags.txt", (*flags.common, *flags.c)),
                       ("cxxflags.txt", (*flags.common, *flags.cxx))):  # fmt: skip
        real = {f for f in _flag_file(lang) if _CODE_FLAG.match(f)} | set(cpu)
        assert real == set(flags.cpu) | set(ours), lang
    assert "-std=gnu++14" in flags.cxx and "-Os" in flags.common
    assert "-mfloat-abi=softfp" in flags.cpu and "-funsigned-char" in flags.common
    # and the toolchain the emulated board compiles with is made of exactly these
    assert set(flags.cpu) | set(flags.common) <= set(CORTEX_M4F.common)
    assert set(flags.cxx) == set(CORTEX_M4F.cxxflags) and set(flags.c) == set(CORTEX_M4F.cflags)


def _recipe(src: Path, out: Path, includes: list[Path]) -> list[str]:
    """platform.txt's recipe.{c,cpp}.o.pattern for the Nano 33 BLE, with -Wall -Wextra -Werror
    (the "all" warning level plus errors) in place of the default -w."""
    cpp = src.suffix in (".cpp", ".ino")
    core = CORE / "cores" / "arduino"
    cmd = [
        "arm-none-eabi-g++" if cpp else "arm-none-eabi-gcc", "-c", "-Wall", "-Wextra", "-Werror",
        "-g3", "-nostdlib", f"@{VARIANT / 'defines.txt'}",
        f"@{VARIANT / ('cxxflags.txt' if cpp else 'cflags.txt')}", "-DARDUINO_ARCH_NRF52840",
        "-MMD", f"-mcpu={_board_entry('build.mcu')}", _board_entry("build.float-abi"),
        _board_entry("build.fpu"), "-DARDUINO=10819", "-DARDUINO_ARDUINO_NANO33BLE",
        "-DARDUINO_ARCH_MBED", "-DARDUINO_LIBRARY_DISCOVERY_PHASE=0",
        f"-I{core / 'api' / 'deprecated'}", f"-I{core / 'api' / 'deprecated-avr-comp'}",
        f"-I{core}", f"-I{VARIANT}", *(f"-I{d}" for d in includes),
        f"-iprefix{core}/", f"@{VARIANT / 'includes.txt'}",
    ]  # fmt: skip
    if src.suffix == ".ino":  # the builder's .ino.cpp: C++ with Arduino.h first
        cmd += ["-x", "c++", "-include", "Arduino.h"]
    return [*cmd, str(src), "-o", str(out)]


@needs_core
@needs_arm
def test_the_firmware_compiles_with_the_real_core_headers_and_recipe(tmp_path):
    run = make_run(tmp_path / "src", model=har_attention_int8_model())
    res = CliRunner().invoke(main, ["build", "--board", "nano33ble", "--run", str(run),
                                    "--no-measure"], env={"PATH": ""})  # fmt: skip
    assert res.exit_code == 0, res.output
    board_dir = run / "firmware" / "nano33ble"
    library = board_dir / "libraries" / "tinyhar_model" / "src"
    sketch = board_dir / "tinyhar_har" / "tinyhar_har.ino"
    kernels = sorted(p.name for p in library.glob("tinyhar_*.cpp") if p.stem != "tinyhar_runner")
    assert kernels, "the model's firmware should carry at least one of tinyhar's kernels"
    includes = [
        library,
        SHARED_LIBRARIES / "Chirale_TensorFLowLite" / "src",
        SHARED_LIBRARIES / "Arduino_LSM9DS1" / "src",
        CORE / "libraries" / "Wire",
    ]
    sources = [*sorted(library.glob("*.c")), *sorted(library.glob("*.cpp")), sketch]
    failures = []
    for src in sources:
        proc = subprocess.run(_recipe(src, tmp_path / f"{src.name}.o", includes),
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            failures.append(f"{src.name}:\n{proc.stderr[-2500:]}")
    assert not failures, "\n".join(failures)
    assert all((tmp_path / f"{s.name}.o").stat().st_size > 0 for s in sources)
