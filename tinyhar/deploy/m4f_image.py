"""The firmware image for the emulated Cortex-M4F (QEMU mps2-an386) and what its link map says.

`build_emulated_firmware` compiles the sketch, the generated model library, tinyhar's Arduino
layer for the MPS2 (`firmware_templates/emulator/`) and the TFLM library's sources for the model's
ops with arm-none-eabi-g++; `link_map_footprint` splits the ELF's flash and RAM into the model, the
arena, TFLM, tinyhar's code and the rest. `tinyhar.device.emulator` runs the image.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyhar.board import tflm_library
from tinyhar.deploy.native_build import CORTEX_M4F, OWN_WARNINGS, compile_sources, link
from tinyhar.errors import TinyharError
from tinyhar.log import Log, inf
from tinyhar.resources import templates_dir
from tinyhar.run.firmware import FirmwareTree
from tinyhar.run.records import BuildReport

LAYER_SOURCES = ("startup_mps2.c", "arduino_mps2.cpp")
LINKER_SCRIPT = "mps2_an386.ld"
OWN_DEFINES = ("TINYHAR_EMULATOR=1", "TINYHAR_PROFILE=1")  # it always counts per-op instructions
# What tinyhar_config.h appends to the firmware version under TINYHAR_EMULATOR: HELLO then tells
# the host that latency_us x 1000 = instructions.
_ANGLE_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
_LAYER_HEADERS = ("Arduino.h", "Wire.h")  # what library sources take from the Arduino layer
# TFLM ports the emulated board cannot take, and why.
UNSUPPORTED_LIBRARIES = {
    "Arduino_TensorFlowLite": "its TensorFlowLite.h accepts only the Nano 33 BLE's mbed core "
    '(#error "unsupported board" elsewhere)',
}
# Object folders inside out_dir/obj: the footprint groups objects by them.
_FIRMWARE_OBJ, _LAYER_OBJ = "firmware", "arduino"


def emulator_dir() -> Path:
    """tinyhar's Arduino layer for mps2-an386 (Arduino.h, start-up, linker script, IMU replay)."""
    return templates_dir() / "emulator"


# --- building ---------------------------------------------------------------------------------


@dataclass
class EmulatedImage:
    """An ELF for the emulated board, its linker map and what it holds."""

    elf: Path
    map_file: Path
    footprint: dict[str, dict[str, int]]
    library_sources: int
    library_compiled: int
    seconds: float


def firmware_sources(folder: Path) -> list[Path]:
    """C/C++ sources of one firmware folder as the Arduino builder takes them: a sketch folder's
    top level (and its src/), or a library's src/ folder recursively."""
    suffixes = (".c", ".cpp", ".ino")
    if any(folder.glob("*.ino")):
        top = [p for p in folder.iterdir() if p.suffix in suffixes and p.is_file()]
        sub = [p for p in (folder / "src").rglob("*") if p.suffix in suffixes[:2]]
        return sorted(top) + sorted(sub)
    return sorted(p for p in folder.rglob("*") if p.suffix in suffixes[:2] and p.is_file())


def _layer_digest() -> str:
    """A digest of the layer's headers: library files that include Arduino.h depend on them."""
    h = hashlib.sha256()
    for p in sorted(emulator_dir().glob("*.h")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def _forwarding_headers(folders: Sequence[Path], tflm_src: Path, out: Path) -> Path:
    """Headers of the other known TFLM libraries, each including this library's: a runner made
    for one Arduino TFLM port then compiles against another (e.g. TensorFlowLite.h -> Chirale)."""
    out.mkdir(parents=True, exist_ok=True)
    ours = [p.name for p in tflm_src.glob("*.h")]
    wanted = set()
    for folder in folders:
        for src in firmware_sources(folder):
            wanted.update(_ANGLE_INCLUDE.findall(src.read_text(encoding="utf-8", errors="replace")))
    for name in tflm_library.known_libraries():
        header = tflm_library.load_library(name).header
        if header in wanted and not (tflm_src / header).is_file() and ours:
            (out / header).write_text(
                f"// {header} -> {ours[0]}: written by tinyhar's emulator build\n"
                f"#include <{ours[0]}>\n",
                encoding="utf-8",
            )
    return out


def _includes_of(path: Path, dirs: tuple[Path, ...], memo: dict[Path, list[Path]]) -> list[Path]:
    """The headers `path` includes directly that exist in its folder or the include dirs; the
    layer's headers (Arduino.h, Wire.h) by name."""
    if path not in memo:
        found = []
        for name in _ANGLE_INCLUDE.findall(path.read_text(encoding="utf-8", errors="replace")):
            if name in _LAYER_HEADERS:
                found.append(Path(name))
                continue
            hit = next((d / name for d in (path.parent, *dirs) if (d / name).is_file()), None)
            if hit is not None:
                found.append(hit.resolve())
        memo[path] = found
    return memo[path]


def _uses_layer(src: Path, dirs: tuple[Path, ...], memo: dict[Path, list[Path]]) -> bool:
    """Whether a library source includes Arduino.h or Wire.h, directly or through its headers."""
    seen, todo = set(), [src.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for inc in _includes_of(path, dirs, memo):
            if inc.name in _LAYER_HEADERS and not inc.is_absolute():
                return True
            todo.append(inc)
    return False


def _compile_library(tflm_src: Path, ops: list[str], log: Log) -> tuple[list[Path], int]:
    """The TFLM library's objects for these ops (from the object cache); and how many of them were
    compiled now. Sources that reach Arduino.h also depend on the layer's headers (a define
    carries their digest into the cache key)."""
    sources = tflm_library.sources_for_ops(tflm_src, ops)
    includes = tflm_library.include_dirs(tflm_src)
    memo: dict[Path, list[Path]] = {}
    arduino = [s for s in sources if _uses_layer(s, tuple(includes), memo)]
    plain = [s for s in sources if s not in arduino]
    defines: tuple[str, ...] = ()  # the core's defines are in the toolchain
    t0 = time.time()
    objects = compile_sources(
        CORTEX_M4F, plain, includes, defines, ("-w",), None, "TFLM library sources", log
    )
    objects += compile_sources(
        CORTEX_M4F,
        arduino,
        [emulator_dir(), *includes],
        (*defines, f"TINYHAR_EMU_LAYER=0x{_layer_digest()}"),
        ("-w",),
        None,
        "TFLM sources using Arduino.h",
        log,
    )
    fresh = sum(o.stat().st_mtime >= t0 - 1.0 for o in objects)
    return objects, fresh


def _compile_own(
    folders: Sequence[Path], tflm_src: Path, compat: Path, obj_dir: Path, imu: Path | None = None
) -> list[Path]:
    """The firmware folders and the Arduino layer, with -Wall -Wextra -Werror (library headers
    are -isystem so only tinyhar's own code is held to them). With `imu` (a real IMU library's
    src/), its header comes before the layer's replay of the same name."""
    layer = emulator_dir()
    includes = [*folders, *([imu] if imu else []), layer, compat]
    system = tflm_library.include_dirs(tflm_src)
    flags = OWN_WARNINGS
    defines = OWN_DEFINES
    objects: list[Path] = []
    for i, folder in enumerate(folders):
        sources = firmware_sources(folder)
        ino = [s for s in sources if s.suffix == ".ino"]
        rest = [s for s in sources if s.suffix != ".ino"]
        out = obj_dir / f"{_FIRMWARE_OBJ}{i}"
        objects += compile_sources(
            CORTEX_M4F, rest, includes, defines, flags, out, system_includes=system
        )
        if ino:  # as the Arduino builder does: C++ with Arduino.h first
            sketch_flags = (*flags, "-x", "c++", "-include", str(layer / "Arduino.h"))
            objects += compile_sources(
                CORTEX_M4F, ino, includes, defines, sketch_flags, out, system_includes=system
            )
    objects += compile_sources(
        CORTEX_M4F,
        [layer / s for s in LAYER_SOURCES],
        includes,
        defines,
        flags,
        obj_dir / _LAYER_OBJ,
        system_includes=system,
    )
    return objects


def build_emulated_firmware(
    firmware_dirs: Sequence[Path],
    tflm_src: Path,
    ops: list[str],
    out_dir: Path,
    log: Log = inf,
    name: str = "firmware",
    imu_library: Path | None = None,
) -> EmulatedImage:
    """Compile and link the generated firmware (sketch and model library folders) with the TFLM
    library and the MPS2 Arduino layer into `out_dir/<name>.elf`, with its map beside it.
    `imu_library`: link a real IMU library's src/ (I2C on the stub Wire) instead of the replay."""
    t0 = time.monotonic()
    CORTEX_M4F.require()
    why = UNSUPPORTED_LIBRARIES.get(Path(tflm_src).resolve().parent.name)
    if why:
        raise TinyharError(
            f"the emulated board cannot build against {Path(tflm_src).parent.name}: {why}; "
            "build the run with the default library (`tinyhar build` without --tflm-library)"
        )
    folders = [Path(d).resolve() for d in firmware_dirs]
    missing = [str(d) for d in folders if not d.is_dir()]
    if missing:
        raise TinyharError(f"firmware folder {missing[0]} not found: run `tinyhar build` first")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    lib_objects, compiled = _compile_library(Path(tflm_src), ops, log)
    compat = _forwarding_headers(folders, Path(tflm_src), out_dir / "include")
    log(f"compiling the firmware for the Cortex-M4F: {', '.join(str(f) for f in folders)}")
    own = _compile_own(folders, Path(tflm_src), compat, out_dir / "obj", imu_library)
    if imu_library is not None:
        imu_sources = sorted(p for p in Path(imu_library).rglob("*") if p.suffix in (".c", ".cpp"))
        own += compile_sources(
            CORTEX_M4F,
            imu_sources,
            [Path(imu_library), emulator_dir()],
            (),
            ("-w",),
            out_dir / "obj" / "imu",
        )
    elf, map_file = out_dir / f"{name}.elf", out_dir / f"{name}.map"
    ld = ("-nostartfiles", "-T", str(emulator_dir() / LINKER_SCRIPT))
    link(CORTEX_M4F, [*own, *lib_objects], elf, ld, map_file)
    return EmulatedImage(
        elf=elf,
        map_file=map_file,
        footprint=link_map_footprint(map_file),
        library_sources=len(lib_objects),
        library_compiled=compiled,
        seconds=round(time.monotonic() - t0, 2),
    )


# --- the linker map -----------------------------------------------------------------------

GROUPS = ("model", "arena", "tflm", "tinyhar", "arduino", "runtime", "padding")
_TEXT_SECTIONS = (
    ".text",
    ".ARM.extab",
    ".ARM.exidx",
    ".preinit_array",
    ".init_array",
    ".fini_array",
)
_KINDS = {
    **{s: "text" for s in _TEXT_SECTIONS},
    ".rodata": "rodata",
    ".data": "data",
    ".bss": "bss",
}
_INPUT = re.compile(r"^ (\S+)?\s*(0x[0-9a-f]+)\s+(0x[0-9a-f]+)(?:\s+(\S.*))?$")
_SECTION_NAME = re.compile(r"^ (\S+)$")


def _group(obj: str) -> str:
    """The footprint group of an input object, by where the emulator build put it."""
    if obj == "*fill*":
        return "padding"
    path = Path(obj.split("(")[0])
    if obj.endswith(")") or path.suffix == ".a":
        return "runtime"  # newlib, libgcc, libstdc++ members
    parent = path.parent.name
    if parent == _LAYER_OBJ:
        return "arduino"
    if parent.startswith(_FIRMWARE_OBJ):
        return "model" if path.stem.startswith("model_data") else "tinyhar"
    if "objects" in path.parts:
        return "tflm"  # the content-keyed library cache
    return "runtime"  # crt and other toolchain objects


def _map_entries(map_file: Path) -> list[tuple[str, str, int, int, str]]:
    """(output section, input section, address, size, object or "*fill*") of every input section
    the link placed in the sections the footprint counts."""
    lines = map_file.read_text(encoding="utf-8", errors="replace").splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith("Linker script and memory"))
    except StopIteration:
        raise TinyharError(
            f"{map_file} is not a GNU ld map: rebuild the emulated firmware"
        ) from None
    entries, out_sec, pending = [], "", ""
    for ln in (raw.rstrip() for raw in lines[start + 1 :]):
        if ln and not ln[0].isspace():
            out_sec, pending = ln.split()[0], ""
            continue
        m = _INPUT.match(ln)
        if m is None:
            name = _SECTION_NAME.match(ln)
            pending = name.group(1) if name else ""
            continue
        in_sec, pending = m.group(1) or pending, ""
        obj = "*fill*" if in_sec == "*fill*" else (m.group(4) or "").strip()
        if out_sec in _KINDS and in_sec and obj:
            entries.append((out_sec, in_sec, int(m.group(2), 16), int(m.group(3), 16), obj))
    return entries


def link_map_footprint(map_file: Path) -> dict[str, dict[str, int]]:
    """Flash (.text + .rodata + the .data image) and RAM (.data + .bss) per group: model, arena
    (g_arena), tflm (library + kernels), tinyhar (core, runner, kernels, sketch), arduino (the MPS2
    layer), runtime (newlib, libgcc), padding; plus "total" and "reserved" (heap, stack)."""
    out = {g: {"text": 0, "rodata": 0, "data": 0, "bss": 0} for g in (*GROUPS, "total")}
    claimed: dict[str, int] = {}
    # merged string sections overlap in the map: each byte counts once, for the first object
    for out_sec, in_sec, addr, size, obj in sorted(
        _map_entries(Path(map_file)), key=lambda e: (e[0], e[2])
    ):
        end = claimed.get(out_sec, 0)
        claimed[out_sec] = max(end, addr + size)
        size = max(0, addr + size - max(addr, end))
        group = "arena" if "g_arena" in in_sec else _group(obj)
        kind = _KINDS[out_sec]
        out[group][kind] += size
        out["total"][kind] += size
    for sizes in out.values():
        sizes["flash"] = sizes["text"] + sizes["rodata"] + sizes["data"]
        sizes["ram"] = sizes["data"] + sizes["bss"]
    reserved = {"heap": 0, "stack": 0}
    for ln in Path(map_file).read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"^\.(heap|stack)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)", ln)
        if m:
            reserved[m.group(1)] = int(m.group(2), 16)
    return {**out, "reserved": reserved}


def format_footprint(fp: dict[str, dict[str, int]]) -> list[str]:
    """One line per group: flash and RAM bytes."""
    names = {
        "model": "model",
        "arena": "arena (g_arena)",
        "tflm": "TFLM library + kernels",
        "tinyhar": "tinyhar code",
        "arduino": "Arduino layer (MPS2)",
        "runtime": "newlib/libgcc",
        "padding": "alignment padding",
        "total": "total",
    }
    return [
        f"{names[g]:<24} flash {fp[g]['flash']:>8} B   RAM {fp[g]['ram']:>8} B"
        for g in (*GROUPS, "total")
    ]


# --- running ------------------------------------------------------------------------------


def firmware_dirs_of(record: BuildReport, folder: Path) -> list[Path]:
    """The source folders of a build.json's firmware, in `folder` (the one holding that
    build.json): the model library's src/ (when the build made one) and the sketch folder."""
    fw = FirmwareTree.of_build(folder, record)
    src = fw.library_dir / "src"
    return [src, fw.sketch_dir] if src.is_dir() else [fw.sketch_dir]


def tflm_source_for(record: BuildReport, libraries: Path | None = None) -> Path:
    """The installed TFLM library's src/ that a build.json's firmware compiles against."""
    if not record.library_name:
        raise TinyharError("build.json does not name its TFLM library: run `tinyhar build` again")
    lib = tflm_library.load_library(record.library_name)
    return tflm_library.tflm_source(lib, libraries)


def library_ops(record: BuildReport) -> list[str]:
    """The ops whose kernels come from the TFLM library (not tinyhar's own kernels)."""
    return [op for op, who in record.kernels.items() if who != "tinyhar"]
