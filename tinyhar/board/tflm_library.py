"""The Arduino TFLM libraries a board can use: their facts, where they are installed, which sources
a model needs, and which of its ops the library runs and which tinyhar supplies.

The facts live in `boards/libraries/<name>.toml`: the library's builtin ops (read from its
`micro_mutable_op_resolver.h`, see `read_resolver_ops`) and what its kernels can do.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tinyhar.board.arduino_dirs import (  # noqa: F401 (LIBRARIES_ENV, libraries_dir: re-exported)
    LIBRARIES_ENV,
    LIBRARIES_HOW,
    LibrariesFolder,
    find_cli,
    find_libraries,
    libraries_dir,
)
from tinyhar.errors import TinyharError
from tinyhar.resources import boards_dir

# Include folders of an Arduino TFLM port, relative to its src/ (as arduino-cli adds them).
INCLUDE_SUBDIRS = (
    "",
    "third_party/flatbuffers/include",
    "third_party/gemmlowp",
    "third_party/ruy",
    "third_party/cmsis_nn",
    "third_party/cmsis_nn/Include",
    "third_party/cmsis/CMSIS/Core/Include",
)
# The host builds of the library define ARDUINO as an Arduino build does (the board's builds take
# the core's defines, boards/cores/).
DEFINES = ("ARDUINO",)


@dataclass(frozen=True)
class OwnKernel:
    """A kernel of tinyhar's (firmware_templates/kernels/): its source, TFLM's options parser."""

    source: str
    parser: str  # tflite::Parse<parser> reads the op's builtin options


# tinyhar's own kernels: for ops a library lacks, and for ops where the libraries' kernels are slow
# or compute other than the current TFLM (the Python interpreter). Each is byte-exact with the
# current TFLM reference kernel (tests/test_kernel_*.py, tests/firmware/test_batch_matmul.py).
OWN_KERNELS = {
    "BATCH_MATMUL": OwnKernel("tinyhar_batch_matmul.cpp", "BatchMatMul"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": OwnKernel("tinyhar_lstm.cpp", "UnidirectionalSequenceLSTM"),
    "SOFTMAX": OwnKernel("tinyhar_softmax.cpp", "Softmax"),
    "MEAN": OwnKernel("tinyhar_mean.cpp", "Reducer"),
    "ADD": OwnKernel("tinyhar_elementwise.cpp", "Add"),
    "MUL": OwnKernel("tinyhar_elementwise.cpp", "Mul"),
}
# Who runs an op both have: "tinyhar" (the default: tinyhar's kernel wherever it has one) or
# "library" (the library's wherever it has one; tinyhar's only for ops the library lacks).
KERNEL_CHOICES = ("tinyhar", "library")
# Sources an Arduino build compiles but the firmware never links: tests, audio front end, examples.
_SKIP_PARTS = ("kissfft", "microfrontend", "test_over_serial", "examples")
_SKIP_NAMES = {
    "test_helpers.cpp",
    "test_helper_custom_ops.cpp",
    "fake_micro_context.cpp",
    "mock_micro_graph.cpp",
    "all_ops_resolver.cpp",
    "kernel_runner.cpp",
    "recording_micro_allocator.cpp",
}
_ADD_METHOD = re.compile(
    r"TfLiteStatus\s+(Add\w+)\s*\((?:[^()]|\([^()]*\))*\)\s*\{\s*return\s+AddBuiltin\(\s*"
    r"(?:tflite::)?BuiltinOperator_(\w+)\s*,"
)
_REGISTER_DEF = re.compile(
    r"(?:TfLiteRegistration|TFLMRegistration)\s*\*?\s+(Register_\w+)\s*\(\s*\)\s*\{"
)
_REGISTER_USE = re.compile(r"(Register_\w+)\s*\(\s*\)")


@dataclass(frozen=True)
class TflmLibrary:
    """One Arduino TFLM port at one version, as tinyhar knows it."""

    name: str
    version: str
    header: str
    install: str  # the command that installs it
    ops: dict[str, str]  # builtin op -> MicroMutableOpResolver method
    fc_per_channel: bool  # FULLY_CONNECTED kernels read one weight scale per output channel
    # op -> the largest LSB its kernel differs from the current TFLM by (-1: no bound); ops not
    # listed compute as the Python interpreter does
    interpreter_bounds: dict[str, int]
    notes: str
    path: Path

    @property
    def title(self) -> str:
        return f"{self.name} {self.version}"


def library_facts_dir() -> Path:
    return boards_dir() / "libraries"


def known_libraries() -> list[str]:
    return sorted(p.stem for p in library_facts_dir().glob("*.toml"))


def load_library(name: str) -> TflmLibrary:
    """The facts of a TFLM library by its Arduino name; one line listing the known ones."""
    path = library_facts_dir() / f"{name}.toml"
    if not path.is_file():
        raise TinyharError(
            f"unknown TFLM library {name!r}: tinyhar knows {', '.join(known_libraries())}"
        )
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
        return TflmLibrary(
            name=d["name"],
            version=d["version"],
            header=d["header"],
            install=d["install"],
            ops=dict(d["ops"]),
            fc_per_channel=bool(d["kernels"]["fully_connected_per_channel"]),
            interpreter_bounds={op: int(b) for op, b in d.get("interpreter", {}).items()},
            notes=d.get("notes", ""),
            path=path,
        )
    except (KeyError, TypeError, tomllib.TOMLDecodeError) as e:
        raise TinyharError(f"library facts {path} are broken ({e}): reinstall tinyhar") from None


def read_resolver_ops(src: Path) -> dict[str, str]:
    """Builtin op -> resolver method, read from a library's `micro_mutable_op_resolver.h`."""
    header = src / "tensorflow/lite/micro/micro_mutable_op_resolver.h"
    return {op: method for method, op in _ADD_METHOD.findall(header.read_text(encoding="utf-8"))}


@dataclass(frozen=True)
class KernelPlan:
    """Who runs each op of a model: the library (through its resolver method) or tinyhar."""

    library_methods: dict[str, str]  # op -> Add method
    own_kernels: dict[str, OwnKernel]  # op -> tinyhar's kernel

    @property
    def ops(self) -> list[str]:
        return [*self.library_methods, *self.own_kernels]


def plan_kernels(
    ops: list[str],
    lib: TflmLibrary,
    prefer: str = "tinyhar",
    not_int8: frozenset[str] = frozenset(),
) -> KernelPlan:
    """Who runs each op: tinyhar's kernel where it has one (`prefer="library"`: only where the
    library has none), else the library's; one line naming an op neither has. tinyhar's kernels
    are int8 only: ops in `not_int8` (a node with another input type) go to the library."""
    if prefer not in KERNEL_CHOICES:
        raise TinyharError(f"kernels {prefer!r}: use one of {', '.join(KERNEL_CHOICES)}")
    methods, own, missing = {}, {}, []
    for op in ops:
        ours = op in OWN_KERNELS and op not in not_int8
        if ours and (prefer == "tinyhar" or op not in lib.ops):
            own[op] = OWN_KERNELS[op]
        elif op in lib.ops:
            methods[op] = lib.ops[op]
        else:
            missing.append(op)
    if missing:
        raise TinyharError(
            f"op {', '.join(missing)} is in neither {lib.title} nor tinyhar's own kernels: "
            "retrain or convert the model without it"
        )
    return KernelPlan(methods, own)


def interpreter_bounds(kernels: dict[str, str], lib: TflmLibrary) -> tuple[dict[str, int], str]:
    """How many LSB each op of a firmware may differ from the Python TFLM interpreter where a
    difference starts: 0 for tinyhar's kernels and the library's that compute as it does, the
    library's bound where one is known. `kernels`: op -> who runs it (build.json's "kernels").
    Returns ({}, why) when a library kernel of the model differs without bound."""
    bounds: dict[str, int] = {}
    for op, who in kernels.items():
        bound = 0 if who == "tinyhar" else lib.interpreter_bounds.get(op, 0)
        if bound < 0:
            return {}, (
                f"{lib.title}'s {op} kernel computes other than the current TFLM without a known "
                "bound (docs/boards.md): the Python interpreter is a second opinion only"
            )
        bounds[op] = bound
    return bounds, ""


# --- where the libraries are ------------------------------------------------------------------


def library_src(libraries: Path | LibrariesFolder, lib: TflmLibrary) -> Path:
    """The installed library's src/ folder in `libraries`; otherwise one line naming the folder
    looked in (and why that one) and how to install the library or point at it."""
    where = libraries if isinstance(libraries, LibrariesFolder) else None
    folder = (libraries.path if isinstance(libraries, LibrariesFolder) else libraries) / lib.name
    props = folder / "library.properties"
    if not props.is_file():
        install = f"`{lib.install}`" if find_cli() else "the Arduino IDE's Library Manager"
        raise TinyharError(
            f"{lib.title}, the board's TFLM library, is not in {where or folder.parent}: install "
            f"it with {install}, or {LIBRARIES_HOW}"
        )
    text = props.read_text(encoding="utf-8", errors="replace")
    version = re.search(r"^version=(.+)$", text, re.M)
    found = version.group(1).strip() if version else "?"
    if found != lib.version:
        raise TinyharError(
            f"{folder} is {lib.name} {found}, tinyhar needs {lib.version}: `{lib.install}`"
        )
    return folder / "src"


def tflm_source(lib: TflmLibrary, libraries: Path | None = None) -> Path:
    """`lib`'s src/ in the libraries folder the one rule finds (`arduino_dirs.find_libraries`:
    --libraries, $TINYHAR_ARDUINO_LIBRARIES, arduino-cli's, the platform default)."""
    return library_src(find_libraries(libraries), lib)


def include_dirs(src: Path) -> list[Path]:
    return [src / sub if sub else src for sub in INCLUDE_SUBDIRS]


def _all_sources(src: Path) -> list[Path]:
    files = [p for p in src.rglob("*") if p.suffix in (".c", ".cpp", ".cc")]
    return sorted(
        p
        for p in files
        if p.name not in _SKIP_NAMES and not any(part in _SKIP_PARTS for part in p.parts)
    )


def sources_for_ops(src: Path, ops: list[str]) -> list[Path]:
    """The library sources a firmware with these builtin ops links: the interpreter, CMSIS-NN,
    the kernel helpers, and the kernels that define the ops' registration functions."""
    header = (src / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text(encoding="utf-8")
    wanted: set[str] = set()
    for op in ops:
        m = re.search(rf"BuiltinOperator_{op}\s*\)?\s*,\s*([^;]*?)\)\s*;", header, re.S)
        default = re.search(
            rf"Add\w+\(\s*const TfLiteRegistration& registration = (Register_\w+)\(\)\)\s*\{{"
            rf"\s*return AddBuiltin\(BuiltinOperator_{op}\b",
            header,
        )
        if default:
            wanted.add(default.group(1))
        if m:
            wanted.update(_REGISTER_USE.findall(m.group(1)))
    kernels = src / "tensorflow/lite/micro/kernels"
    chosen = []
    for path in _all_sources(src):
        if kernels not in path.parents:
            chosen.append(path)
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        defined = set(_REGISTER_DEF.findall(text))
        if defined & wanted or (not defined and not path.stem.endswith("_common")):
            chosen.append(path)
    # A CMSIS-NN kernel replaces the reference one of the same name: keep only the CMSIS-NN file.
    cmsis = {p.name for p in chosen if p.parent.name == "cmsis_nn"}
    chosen = [p for p in chosen if not (p.parent == kernels and p.name in cmsis)]
    bases = {p.stem for p in chosen if kernels in p.parents}
    commons = [kernels / f"{b}_common.cpp" for b in sorted(bases)]
    return chosen + [p for p in commons if p.is_file()]
