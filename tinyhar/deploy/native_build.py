"""Compile C/C++ for the host or the Cortex-M4F: toolchains, a content-keyed object cache, linking.

Library objects (TFLM and its kernels) are cached under `<cache>/objects/<toolchain>/`, keyed by the
compiler, the flags, the include folders and the source's bytes, so a second build only compiles
tinyhar's own files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tinyhar.board.arduino_core import CompileFlags, load_compile_flags
from tinyhar.errors import TinyharError
from tinyhar.log import Log, dbg
from tinyhar.resources import cache_dir

OWN_WARNINGS = ("-Wall", "-Wextra", "-Werror")


@dataclass(frozen=True)
class Toolchain:
    """A C and C++ compiler pair with the flags every file gets."""

    name: str
    cc: str
    cxx: str
    common: tuple[str, ...]
    cflags: tuple[str, ...]
    cxxflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    apt: str  # the Debian packages that bring it

    def require(self) -> None:
        """One line naming the packages to install when the compilers are missing."""
        missing = [t for t in (self.cc, self.cxx) if shutil.which(t) is None]
        if missing:
            raise TinyharError(
                f"{', '.join(missing)} not found: install the {self.name} toolchain "
                f"(sudo apt-get install -y {self.apt})"
            )

    def identity(self) -> str:
        """The compilers' version lines: part of every cache key."""
        return _version(self.cc) + "|" + _version(self.cxx)


HOST = Toolchain(
    name="host",
    cc="gcc",
    cxx="g++",
    # The board's language standard and char signedness (boards/cores/), so the host reference
    # computes what the board computes and no C++17 slips into the firmware's code.
    common=("-O2", "-fPIC", "-funsigned-char"),
    cflags=("-std=gnu11",),
    cxxflags=("-std=gnu++14",),
    ldflags=("-shared",),
    apt="gcc g++",
)


def cortex_m_toolchain(flags: CompileFlags) -> Toolchain:
    """arm-none-eabi-gcc/g++ with an Arduino core variant's own flags (boards/cores/), so what is
    compiled here is the code a user's board runs."""
    return Toolchain(
        name=f"cortex-m-{flags.variant.lower()}-{flags.version}",
        cc="arm-none-eabi-gcc",
        cxx="arm-none-eabi-g++",
        common=(*flags.cpu, *flags.common, *(f"-D{d}" for d in flags.defines)),
        cflags=flags.c,
        cxxflags=flags.cxx,
        ldflags=(*flags.cpu, "-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs"),
        apt="gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib",
    )


# The emulated board's toolchain: the Nano 33 BLE's core (the Cortex-M4F QEMU emulates).
_EMULATED = load_compile_flags("arduino:mbed_nano", "ARDUINO_NANO33BLE")
assert _EMULATED is not None, "boards/cores/mbed_nano.toml lacks ARDUINO_NANO33BLE"
CORTEX_M4F = cortex_m_toolchain(_EMULATED)


@cache
def _version(tool: str) -> str:
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return tool
    return out.stdout.splitlines()[0] if out.stdout else tool


def objects_cache() -> Path:
    """Where cached library objects live (`$TINYHAR_CACHE/objects`)."""
    return cache_dir() / "objects"


def compile_command(
    tc: Toolchain,
    source: Path,
    obj: Path,
    includes: Sequence[Path],
    defines: Sequence[str],
    flags: Sequence[str] = (),
    system_includes: Sequence[Path] = (),
) -> list[str]:
    """The compiler call for one source (C or C++ by its suffix). Warnings are not reported for
    headers under `system_includes` (third-party libraries), so -Werror judges our code only."""
    is_c = source.suffix == ".c"
    return [
        tc.cc if is_c else tc.cxx,
        *tc.common,
        *(tc.cflags if is_c else tc.cxxflags),
        *flags,
        *(f"-D{d}" for d in defines),
        *(f"-I{p}" for p in includes),
        *(a for p in system_includes for a in ("-isystem", str(p))),
        "-c",
        str(source),
        "-o",
        str(obj),
    ]


def _cache_key(tc: Toolchain, source: Path, includes, defines, flags, system_includes) -> str:
    h = hashlib.sha256()
    parts = (
        tc.identity(),
        tc.common,
        tc.cflags,
        tc.cxxflags,
        flags,
        defines,
        includes,
        system_includes,
    )
    for part in parts:
        h.update(repr(tuple(map(str, part)) if not isinstance(part, str) else part).encode())
    h.update(str(source.resolve()).encode())
    h.update(source.read_bytes())
    return h.hexdigest()[:32]


def compile_sources(
    tc: Toolchain,
    sources: Sequence[Path],
    includes: Sequence[Path],
    defines: Sequence[str] = (),
    flags: Sequence[str] = (),
    out_dir: Path | None = None,
    what: str = "sources",
    log: Log | None = None,
    jobs: int | None = None,
    system_includes: Sequence[Path] = (),
) -> list[Path]:
    """Object files for `sources`, in order. Cached by content when `out_dir` is None: keyed by
    the compiler, the flags, the source's bytes and resolved paths, so `../lib` and `/abs/lib`
    (or a symlink to it) share their objects."""
    tc.require()
    # resolved for the key and the command alike (an object embeds its source's path: __FILE__)
    sources = [Path(s).resolve() for s in sources]
    includes = [Path(p).resolve() for p in includes]
    system_includes = [Path(p).resolve() for p in system_includes]
    jobs = jobs or os.cpu_count() or 2
    plans: list[tuple[Path, Path]] = []
    for src in sources:
        if out_dir is None:
            key = _cache_key(tc, src, includes, defines, flags, system_includes)
            obj = objects_cache() / tc.name / key[:2] / f"{key}.o"
        else:
            obj = Path(out_dir) / f"{src.stem}{src.suffix.replace('.', '_')}.o"
        plans.append((src, obj))
    todo = [(s, o) for s, o in plans if out_dir is not None or not o.is_file()]
    if todo and log is not None:
        cached = len(plans) - len(todo)
        log(
            f"compiling {len(todo)} {what} for {tc.name}"
            + (f" ({cached} cached)" if cached else "")
            + (" - takes a few minutes the first time, seconds after" if len(todo) > 20 else "")
        )

    def one(plan: tuple[Path, Path]) -> str | None:
        src, obj = plan
        obj.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=obj.parent, suffix=".o.tmp")
        os.close(fd)
        cmd = compile_command(tc, src, Path(tmp), includes, defines, flags, system_includes)
        dbg(" ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            Path(tmp).unlink(missing_ok=True)
            return f"{src}:\n{proc.stderr.strip()}"
        os.replace(tmp, obj)
        return None

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        errors = [e for e in pool.map(one, todo) if e]
    if errors:
        raise CompileError(f"{len(errors)} of {len(todo)} {what} failed to compile", errors)
    return [o for _, o in plans]


def link(
    tc: Toolchain,
    objects: Sequence[Path],
    out: Path,
    flags: Sequence[str] = (),
    map_file: Path | None = None,
) -> Path:
    """Link objects into `out` (a shared library on the host, an ELF for the M4F)."""
    cmd = [tc.cxx, *tc.ldflags, *flags, *map(str, objects), "-o", str(out)]
    if map_file is not None:
        cmd.insert(1, f"-Wl,-Map={map_file}")
    out.parent.mkdir(parents=True, exist_ok=True)
    dbg(" ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError(f"linking {out.name} failed", [proc.stderr.strip()])
    return out


class CompileError(TinyharError):
    """A compile or link failed; `details` holds the compiler's messages."""

    def __init__(self, message: str, details: list[str]) -> None:
        first = details[0].strip().splitlines() if details else []
        where = next((ln for ln in first if "error" in ln), first[-1] if first else "")
        super().__init__(f"{message}: {where.strip()}" if where else message)
        self.details = details
