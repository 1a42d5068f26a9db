"""The emulated board: the generated firmware itself, cross-compiled for QEMU's mps2-an386.

`build_emulated_firmware` compiles the sketch, the generated model library, tinyhar's Arduino layer
for the MPS2 (`firmware_templates/emulator/`) and the TFLM library's sources for the model's ops with
arm-none-eabi-g++; `EmulatedBoard` runs the ELF under `qemu-system-arm -icount shift=0` with UART0 on
a pseudo-terminal, which the host uses as the board's serial port.
"""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyhar import runs
from tinyhar.deploy import tflm_library
from tinyhar.deploy.native_build import CORTEX_M4F, OWN_WARNINGS, compile_sources, link
from tinyhar.errors import TinyharError
from tinyhar.files import read_json
from tinyhar.resources import templates_dir

Log = Callable[[str], None]
QEMU = "qemu-system-arm"
QEMU_APT = "qemu-system-arm"
MACHINE = "mps2-an386"
ICOUNT_SHIFT = 0  # one instruction = 2**0 ns of virtual time: micros() * 1000 = instructions
LAYER_SOURCES = ("startup_mps2.c", "arduino_mps2.cpp")
LINKER_SCRIPT = "mps2_an386.ld"
OWN_DEFINES = ("TINYHAR_EMULATOR=1",)
EMULATOR_OUT = "emulator"  # runs/<run>/emulator/<board>/: objects, ELF and map
_PTY_LINE = re.compile(r"char device redirected to (/dev/\S+)")
_ANGLE_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
_INCLUDES_ARDUINO = re.compile(r'#\s*include\s*[<"]Arduino\.h[>"]')
# Object folders inside out_dir/obj: the footprint groups objects by them.
_FIRMWARE_OBJ, _LAYER_OBJ = "firmware", "arduino"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


def _compile_library(tflm_src: Path, ops: list[str], log: Log) -> tuple[list[Path], int]:
    """The TFLM library's objects for these ops (from the object cache); and how many of them were
    compiled now. The few sources that include Arduino.h also depend on the layer's headers."""
    sources = tflm_library.sources_for_ops(tflm_src, ops)
    includes = tflm_library.include_dirs(tflm_src)
    arduino, plain = [], []
    for src in sources:
        text = src.read_text(encoding="utf-8", errors="replace")
        (arduino if _INCLUDES_ARDUINO.search(text) else plain).append(src)
    defines = tflm_library.DEFINES
    t0 = time.time()
    objects = compile_sources(CORTEX_M4F, plain, includes, defines, ("-w",), None,
                              "TFLM library sources", log)  # fmt: skip
    objects += compile_sources(
        CORTEX_M4F, arduino, [emulator_dir(), *includes],
        (*defines, f"TINYHAR_EMU_LAYER=0x{_layer_digest()}"), ("-w",), None,
        "TFLM sources using Arduino.h", log,
    )  # fmt: skip
    fresh = sum(o.stat().st_mtime >= t0 - 1.0 for o in objects)
    return objects, fresh


def _compile_own(
    folders: Sequence[Path], tflm_src: Path, compat: Path, obj_dir: Path, log: Log
) -> list[Path]:
    """The firmware folders and the Arduino layer, with -Wall -Wextra -Werror (library headers
    are -isystem so only tinyhar's own code is held to them)."""
    layer = emulator_dir()
    includes = [*folders, layer, compat]
    system = tflm_library.include_dirs(tflm_src)
    flags = OWN_WARNINGS
    defines = (*tflm_library.DEFINES, *OWN_DEFINES)
    objects: list[Path] = []
    for i, folder in enumerate(folders):
        sources = firmware_sources(folder)
        ino = [s for s in sources if s.suffix == ".ino"]
        rest = [s for s in sources if s.suffix != ".ino"]
        out = obj_dir / f"{_FIRMWARE_OBJ}{i}"
        objects += compile_sources(CORTEX_M4F, rest, includes, defines, flags, out,
                                   system_includes=system)  # fmt: skip
        if ino:  # as the Arduino builder does: C++ with Arduino.h first
            sketch_flags = (*flags, "-x", "c++", "-include", str(layer / "Arduino.h"))
            objects += compile_sources(CORTEX_M4F, ino, includes, defines, sketch_flags, out,
                                       system_includes=system)  # fmt: skip
    objects += compile_sources(CORTEX_M4F, [layer / s for s in LAYER_SOURCES], includes, defines,
                               flags, obj_dir / _LAYER_OBJ, system_includes=system)  # fmt: skip
    return objects


def build_emulated_firmware(
    firmware_dirs: Sequence[Path],
    tflm_src: Path,
    ops: list[str],
    out_dir: Path,
    log: Log = _stderr,
    name: str = "firmware",
) -> EmulatedImage:
    """Compile and link the generated firmware (sketch and model library folders) with the TFLM
    library and the MPS2 Arduino layer into `out_dir/<name>.elf`, with its map beside it."""
    t0 = time.monotonic()
    CORTEX_M4F.require()
    folders = [Path(d).resolve() for d in firmware_dirs]
    missing = [str(d) for d in folders if not d.is_dir()]
    if missing:
        raise TinyharError(f"firmware folder {missing[0]} not found: run `tinyhar build` first")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    lib_objects, compiled = _compile_library(Path(tflm_src), ops, log)
    compat = _forwarding_headers(folders, Path(tflm_src), out_dir / "include")
    log(f"emulator: compiling the firmware in {', '.join(str(f) for f in folders)}")
    own = _compile_own(folders, Path(tflm_src), compat, out_dir / "obj", log)
    elf, map_file = out_dir / f"{name}.elf", out_dir / f"{name}.map"
    ld = ("-nostartfiles", "-T", str(emulator_dir() / LINKER_SCRIPT), "-Wl,--no-warn-rwx-segments")
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

GROUPS = ("model", "arena", "tflm", "tinyhar", "arduino", "runtime")
_FLASH_SECTIONS = (".text", ".rodata", ".ARM.extab", ".ARM.exidx", ".preinit_array",
                   ".init_array", ".fini_array")  # fmt: skip
_INPUT = re.compile(r"^ (\S+)?\s*(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S.*)$")


def _group(obj: str) -> str:
    """The footprint group of an input object, by where the emulator build put it."""
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


def _map_entries(map_file: Path) -> Iterable[tuple[str, str, int, str]]:
    """(output section, input section, size, object) for every input section the link kept."""
    lines = map_file.read_text(encoding="utf-8", errors="replace").splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith("Linker script and memory"))
    except StopIteration:
        raise TinyharError(f"{map_file} is not a GNU ld map: relink the emulated firmware") from None
    out_sec, pending = "", ""
    for ln in lines[start + 1 :]:
        if ln and not ln[0].isspace():
            out_sec = ln.split()[0]
            pending = ""
            continue
        m = _INPUT.match(ln)
        if m is None:
            stripped = ln.strip()
            is_name = ln.startswith(" ") and stripped and " " not in stripped and not ln.startswith("  ")
            pending = stripped if is_name else ""
            continue
        name = m.group(1) or pending
        pending = ""
        size = int(m.group(3), 16)
        if name and name != "*fill*" and size:
            yield out_sec, name, size, m.group(4).strip()


def link_map_footprint(map_file: Path) -> dict[str, dict[str, int]]:
    """Flash (.text+.rodata+.data image) and RAM (.data+.bss) per group: model, arena (g_arena),
    tflm (library + kernels), tinyhar (core, runner, kernels, sketch), arduino (MPS2 layer),
    runtime (newlib, libgcc); plus "total" and "reserved" (heap and stack)."""
    out = {g: {"text": 0, "rodata": 0, "data": 0, "bss": 0} for g in (*GROUPS, "total")}
    reserved = {"heap": 0, "stack": 0}
    for out_sec, in_sec, size, obj in _map_entries(Path(map_file)):
        group = "arena" if "g_arena" in in_sec else _group(obj)
        if out_sec in (".text", ".ARM.extab", ".ARM.exidx") or out_sec.endswith("_array"):
            kind = "text"
        elif out_sec in _FLASH_SECTIONS:
            kind = "rodata"
        elif out_sec == ".data":
            kind = "data"
        elif out_sec == ".bss":
            kind = "bss"
        else:
            continue
        out[group][kind] += size
        out["total"][kind] += size
    for ln in Path(map_file).read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"^\.(heap|stack)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)", ln)
        if m:
            reserved[m.group(1)] = int(m.group(2), 16)
    for sizes in out.values():
        sizes["flash"] = sizes["text"] + sizes["rodata"] + sizes["data"]
        sizes["ram"] = sizes["data"] + sizes["bss"]
    return {**out, "reserved": reserved}


def format_footprint(fp: dict[str, dict[str, int]]) -> list[str]:
    """One line per group: flash and RAM bytes."""
    names = {"model": "model", "arena": "arena (g_arena)", "tflm": "TFLM library + kernels",
             "tinyhar": "tinyhar code", "arduino": "Arduino layer (MPS2)",
             "runtime": "newlib/libgcc", "total": "total"}  # fmt: skip
    return [
        f"{names[g]:<24} flash {fp[g]['flash']:>8} B   RAM {fp[g]['ram']:>8} B"
        for g in (*GROUPS, "total")
    ]


# --- running ------------------------------------------------------------------------------


def qemu_command(elf: Path, icount_shift: int = ICOUNT_SHIFT, qemu: str = QEMU) -> list[str]:
    """QEMU's command line: mps2-an386, deterministic instruction timing, UART0 on a new pty,
    no monitor; semihosting lets a fault in the firmware stop QEMU with a message."""
    return [
        qemu, "-M", MACHINE, "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
        "-serial", "pty", "-icount", f"shift={icount_shift}",
        "-semihosting-config", "enable=on,target=native", "-kernel", str(elf),
    ]  # fmt: skip


def require_qemu(qemu: str = QEMU) -> str:
    """The QEMU binary's path; one line saying how to install it otherwise."""
    from shutil import which

    path = which(qemu)
    if path is None:
        raise TinyharError(
            f"{qemu} not found: install QEMU's Arm system emulator "
            f"(sudo apt-get install -y {QEMU_APT})"
        )
    return path


@dataclass
class EmulatedBoard:
    """QEMU running an emulated-board ELF, its UART0 on `port` (a pty); a context manager."""

    elf: Path
    icount_shift: int = ICOUNT_SHIFT
    qemu: str = QEMU
    port: str = ""
    proc: subprocess.Popen | None = None
    output: deque = field(default_factory=lambda: deque(maxlen=50))
    _found: threading.Event = field(default_factory=threading.Event)

    def start(self, timeout: float = 20.0) -> str:
        """Start QEMU and return the pty path it put UART0 on."""
        exe = require_qemu(self.qemu)
        if not Path(self.elf).is_file():
            raise TinyharError(f"{self.elf} not found: build the emulated firmware first")
        cmd = qemu_command(Path(self.elf), self.icount_shift, exe)
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._drain, args=(stream,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise TinyharError(f"{QEMU} did not start: {self.last_output() or 'no output'}")
        return self.port

    def _drain(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            m = _PTY_LINE.search(line)
            if m and not self.port:
                self.port = m.group(1)
                self._found.set()
            elif line:
                self.output.append(line)
        stream.close()

    def last_output(self) -> str:
        return self.output[-1] if self.output else ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise a one-line error when QEMU has stopped (e.g. the firmware faulted)."""
        if self.proc is not None and self.proc.poll() is not None:
            raise TinyharError(
                f"the emulated board stopped (QEMU exit {self.proc.returncode}): "
                f"{self.last_output() or 'no message'}"
            )

    def stop(self) -> None:
        """Stop QEMU (SIGTERM, then SIGKILL after 5 s)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.proc = proc  # keep the exit code for check()

    def __enter__(self) -> EmulatedBoard:
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_emulator(elf: Path, icount_shift: int = ICOUNT_SHIFT, timeout: float = 20.0) -> EmulatedBoard:
    """A started EmulatedBoard for `elf`: use `.port` as the serial port, `.stop()` when done."""
    board = EmulatedBoard(Path(elf), icount_shift)
    board.start(timeout)
    return board


# --- tinyhar sim --emulate ------------------------------------------------------------------


def firmware_dirs_of(record: dict[str, Any]) -> list[Path]:
    """The folders of a build.json's firmware: the model library's src/ (when the build made one)
    and the sketch folder."""
    sketch = Path(record["sketch_dir"])
    dirs = []
    library = record.get("library_dir")
    candidates = [Path(library)] if library else [sketch.parent / "libraries" / "tinyhar_model"]
    for lib in candidates:
        src = lib / "src" if (lib / "src").is_dir() else lib
        if src.is_dir():
            dirs.append(src)
    return [*dirs, sketch]


def tflm_source_for(record: dict[str, Any], libraries: Path | None = None) -> Path:
    """The installed TFLM library's src/ a build.json's firmware compiles against."""
    from tinyhar.deploy.boards import load_board

    name = record.get("tflm_library") or load_board(record["board"]).tflm.name
    if isinstance(name, dict):
        name = name.get("name")
    lib = tflm_library.load_library(str(name))
    return tflm_library.library_src(tflm_library.libraries_dir(libraries), lib)


def build_for_run(
    run: Path, libraries: Path | None = None, log: Log = _stderr
) -> tuple[EmulatedImage, dict[str, Any]]:
    """The emulated firmware of the run's latest `tinyhar build` (runs/<run>/build.json)."""
    rec = read_json(runs.require_run(run, runs.BUILD_JSON, "tinyhar build") / runs.BUILD_JSON)
    out = Path(run) / EMULATOR_OUT / rec["board"]
    image = build_emulated_firmware(
        firmware_dirs_of(rec), tflm_source_for(rec, libraries), list(rec["ops"]), out, log,
        name=rec.get("sketch_name", "firmware"),
    )  # fmt: skip
    return image, rec


def run_emulated_sim(
    board: str | None,
    run: Path | None,
    link_path: Path | None = None,
    announce: Callable[[str], None] = print,
    log: Log = _stderr,
) -> None:
    """`tinyhar sim --emulate`: build the run's firmware for the emulated board, start QEMU,
    announce the pty path (first line on stdout, as `tinyhar sim`) and serve until Ctrl-C."""
    run = runs.require_run(run, runs.BUILD_JSON, "tinyhar build")
    rec = read_json(run / runs.BUILD_JSON)
    if board is not None and board != rec["board"]:
        raise TinyharError(
            f"{run} was built for {rec['board']}, not {board}: pass --board {rec['board']} "
            f"or run `tinyhar build --run {run} --board {board}` first"
        )
    require_qemu()
    image, rec = build_for_run(run, log=log)
    fp = image.footprint
    emu = EmulatedBoard(image.elf)
    made_link = False
    try:
        port = emu.start()
        if link_path is not None:
            made_link = _make_link(Path(link_path), port)
        announce(port)
        log(
            f"sim: emulated {rec['board']} firmware ({MACHINE}, Cortex-M4F, -icount "
            f"shift={ICOUNT_SHIFT}: latency_us x 1000 = instructions) on {port}"
            + (f" (link {link_path})" if made_link else "")
            + f": model CRC-32 {rec['model_crc32']}, flash {fp['total']['flash']} B, "
            f"RAM {fp['total']['ram']} B, built in {image.seconds:.1f} s"
        )
        log(f"sim: verify with: tinyhar verify --port {link_path if made_link else port}; "
            "Ctrl-C stops")  # fmt: skip
        _wait(emu)
    finally:
        emu.stop()
        if made_link and Path(link_path).is_symlink():
            Path(link_path).unlink()


def _make_link(link_path: Path, port: str) -> bool:
    if link_path.is_symlink():
        link_path.unlink()
    elif link_path.exists():
        raise TinyharError(f"--link {link_path} exists and is not a symlink: pick another path")
    link_path.symlink_to(port)
    return True


def _wait(emu: EmulatedBoard) -> None:
    """Until Ctrl-C or SIGTERM; raises when QEMU stops on its own."""
    stop = threading.Event()
    old = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.2):
            emu.check()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)


__all__ = [
    "EmulatedBoard",
    "EmulatedImage",
    "build_emulated_firmware",
    "build_for_run",
    "link_map_footprint",
    "run_emulated_sim",
    "start_emulator",
]
