"""Build and run tinyhar's own TFLM kernels (firmware_templates/kernels/) beside the Python TFLM
interpreter and the Arduino TFLM library, for the kernel tests and benchmarks/kernel_ops.py.

- `build_host_harness`: tests/c/bmm_harness.cpp, the kernels and the Chirale library's sources as
  one shared object on the host, scalar or with -DTINYHAR_EMULATE_DSP (the SIMD code paths on the
  C equivalents of the M4's DSP instructions), driven through ctypes (`Harness`).
- `build_qemu_image` / `run_qemu_image`: the same harness cross-compiled for the Cortex-M4F and run
  on QEMU's mps2-an386 under -icount shift=0 with semihosting: the real DSP instructions, each
  node's instructions (SysTick ticks x 40) and the arena used.
- `single_op_model`: a one-operator TFLite flatbuffer written directly (any shape, quantization,
  options), which the Python interpreter and the harness both run; no converter needed.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinyhar.board.tflm_library import DEFINES, LIBRARIES_ENV, include_dirs, sources_for_ops
from tinyhar.deploy.native_build import (
    CORTEX_M4F,
    HOST,
    OWN_WARNINGS,
    compile_sources,
    link,
)
from tinyhar.lite.tflite_inspect import inspect_tflite

REPO = Path(__file__).resolve().parents[2]
KERNELS = REPO / "firmware_templates" / "kernels"
C_DIR = REPO / "tests" / "c"
HARNESS = C_DIR / "bmm_harness.cpp"
QEMU_MAIN = C_DIR / "kernel_qemu_main.c"
QEMU_STARTUP = C_DIR / "startup_m4.c"
QEMU_LINKER_SCRIPT = REPO / "firmware_templates" / "emulator" / "mps2_an386.ld"
# The kernels the harness registers (tinyhar::Register_*), in firmware_templates/kernels/.
OWN_SOURCES = (
    "tinyhar_batch_matmul.cpp",
    "tinyhar_softmax.cpp",
    "tinyhar_mean.cpp",
    "tinyhar_elementwise.cpp",
)
CHIRALE = "Chirale_TensorFLowLite"
LIBRARY_OPS = ["ADD", "SOFTMAX", "MEAN", "MUL"]  # what the harness may register from the library
ARDUINO_ONLY = {"system_setup.cpp", "utility_arduino.cpp"}  # the harness stands in for them
OWN_STD = ("-std=gnu++14",)  # the board's C++ standard (the Arduino core's GCC 7)
ARENA = 256 * 1024
EMULATE_DSP = "TINYHAR_EMULATE_DSP"

# bmm_run's `ops` bits and return codes (tests/c/bmm_harness.cpp)
OP_ADD, OP_SOFTMAX, OP_MEAN, OP_MUL = 1, 2, 4, 8
NO_BATCH_MATMUL, OWN_SOFTMAX, OWN_MEAN, OWN_ADD, OWN_MUL = 256, 512, 1024, 2048, 4096
RUN_OK, ALLOCATE_FAILED = 0, 3
# SysTick runs on the 25 MHz CPU clock; under -icount shift=0 an instruction takes 1 ns.
INSTRUCTIONS_PER_TICK = 40

_TYPES = {"int8": schema.TensorType.INT8, "int16": schema.TensorType.INT16,
          "int32": schema.TensorType.INT32, "float32": schema.TensorType.FLOAT32}  # fmt: skip


# --- the libraries --------------------------------------------------------------------------------


def libraries_root() -> Path:
    """The Arduino libraries folder: $TINYHAR_ARDUINO_LIBRARIES (conftest.py sets it), else
    `shared/arduino/libraries` beside the repository; skips the test where it is missing (fails
    it in CI)."""
    default = REPO.parent / "shared" / "arduino" / "libraries"
    root = Path(os.environ.get(LIBRARIES_ENV) or default)
    if not (root / CHIRALE / "library.properties").is_file():
        msg = f"the Arduino TFLM libraries are not in {root}"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {msg}; the CI checkout must carry shared/ beside the repository")
        pytest.skip(msg)
    return root


def library_sources(libraries: Path, ops: list[str] = LIBRARY_OPS) -> tuple[Path, list[Path]]:
    """The Chirale library's src/ folder and the sources the harness links for `ops`."""
    src = libraries / CHIRALE / "src"
    return src, [p for p in sources_for_ops(src, ops) if p.name not in ARDUINO_ONLY]


# --- the host harness -----------------------------------------------------------------------------


class Harness:
    """tests/c/bmm_harness.cpp (tinyhar's kernels + resolver + Chirale's TFLM) through ctypes."""

    def __init__(self, so: Path) -> None:
        self._lib = ctypes.CDLL(str(so))
        self._lib.bmm_log.restype = ctypes.c_char_p
        self._lib.bmm_arena_used.restype = ctypes.c_size_t
        self._lib.bmm_run.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_size_t,
        ]
        self._lib.bmm_resolver_facts.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_int]

    @property
    def log(self) -> str:
        return self._lib.bmm_log().decode(errors="replace")

    @property
    def arena_used(self) -> int:
        """Arena bytes the last run's interpreter used."""
        return int(self._lib.bmm_arena_used())

    def run(self, model: bytes, inputs: list[np.ndarray], ops: int = 0) -> tuple[int, np.ndarray]:
        """(return code, output 0 of each run); runs are inputs[i][r] for every r."""
        n = len(inputs[0])
        out = inspect_tflite(model).outputs[0]
        outputs = np.zeros((n, *out.shape), dtype=out.dtype)
        packed = pack_inputs(inputs)
        buf = ctypes.create_string_buffer(len(model) + 16)
        aligned = ctypes.addressof(buf) + (-ctypes.addressof(buf) % 16)  # TFLM wants it aligned
        ctypes.memmove(aligned, model, len(model))
        self._lib.bmm_clear_log()
        rc = self._lib.bmm_run(
            aligned, ops, packed.ctypes.data, packed.nbytes, n, outputs.ctypes.data, outputs.nbytes
        )
        return rc, outputs

    def requantize_mismatches(self, n: int, seed: int) -> tuple[int, int]:
        """(inputs where tinyhar::Requantizer and the library's MultiplyByQuantizedMultiplier
        differ, inputs placed next to a rounding boundary) among n pseudo-random ones."""
        near = ctypes.c_int()
        bad = self._lib.bmm_requantize_mismatches(n, ctypes.c_uint32(seed), ctypes.byref(near))
        return int(bad), near.value

    def nonnegative_rounding_mismatches(self, n: int, seed: int) -> int:
        """Inputs where tinyhar_requantize.h's non-negative roundings (the softmax's) and
        gemmlowp's differ, among n pseudo-random ones, half of them on or next to a tie."""
        return int(self._lib.bmm_nonnegative_rounding_mismatches(n, ctypes.c_uint32(seed)))

    def resolver_facts(self) -> list[int]:
        facts = (ctypes.c_int * 10)()
        assert self._lib.bmm_resolver_facts(facts, len(facts)) == 0
        return list(facts)


def pack_inputs(inputs: list[np.ndarray]) -> np.ndarray:
    """Each run's input tensors back to back, runs one after another (the harness's layout)."""
    n = len(inputs[0])
    return np.ascontiguousarray(
        np.concatenate([x.reshape(n, -1).view(np.uint8) for x in inputs], axis=1)
    )


def build_host_harness(libraries: Path, out: Path, emulate_dsp: bool = False) -> Harness:
    """The harness, tinyhar's kernels and the Chirale sources for LIBRARY_OPS as one .so; with
    `emulate_dsp` the kernels take their SIMD paths on tinyhar_simd.h's C equivalents. Library
    objects come from the object cache after the first build."""
    src, lib_sources = library_sources(libraries)
    lib_objects = compile_sources(
        HOST, lib_sources, include_dirs(src), DEFINES, ("-w",), what="TFLM library sources"
    )
    defines = (*DEFINES, EMULATE_DSP) if emulate_dsp else DEFINES
    own_objects = compile_sources(
        HOST,
        [*(KERNELS / s for s in OWN_SOURCES), HARNESS],
        [KERNELS, *include_dirs(src)],
        defines,
        (*OWN_WARNINGS, *OWN_STD),
        out_dir=out,
        what="kernels and harness",
    )
    return Harness(link(HOST, [*own_objects, *lib_objects], out / "kernel_harness.so"))


@functools.cache
def host_harness(libraries: Path, emulate_dsp: bool = False) -> Harness:
    """`build_host_harness` once per process and configuration (the kernel test modules share
    it), in a temporary folder."""
    out = Path(tempfile.mkdtemp(prefix=f"tinyhar-kernels-{'dsp' if emulate_dsp else 'scalar'}-"))
    return build_host_harness(libraries, out, emulate_dsp)


# --- the Python TFLM interpreter ------------------------------------------------------------------


def tflm_outputs(model: bytes, inputs: list[np.ndarray]) -> np.ndarray:
    """Output 0 of the Python TFLM interpreter for each run of `inputs`."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=ARENA)
    outs = []
    for r in range(len(inputs[0])):
        for i, x in enumerate(inputs):
            interpreter.set_input(x[r], i)
        interpreter.invoke()
        outs.append(interpreter.get_output(0).copy())
    return np.stack(outs)


def random_inputs(model: bytes, n: int, seed: int) -> list[np.ndarray]:
    """n random int8 values per model input; the first four runs hold the extremes."""
    rng = np.random.default_rng(seed)
    xs = [
        rng.integers(-128, 128, size=(n, *t.shape), dtype=np.int8)
        for t in inspect_tflite(model).inputs
    ]
    for r, values in enumerate([(-128, -128), (127, 127), (-128, 127), (127, -128)][:n]):
        for x, v in zip(xs, values, strict=False):
            x[r] = v
    return xs


def with_quantization(model: bytes, changes: dict[int, tuple[float, int]]) -> bytes:
    """A copy of `model` whose tensors (by index) get a new per-tensor (scale, zero point)."""
    buf = bytearray(model)
    subgraph = schema.Model.GetRootAsModel(buf, 0).Subgraphs(0)
    for index, (scale, zero_point) in changes.items():
        q = subgraph.Tensors(index).Quantization()
        q.ScaleAsNumpy()[0] = scale  # views into buf
        q.ZeroPointAsNumpy()[0] = zero_point
    return bytes(buf)


# --- one-op models --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tensor:
    """A tensor of a one-op model: shape, type, per-tensor quantization, constant data."""

    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: float = 0.0
    zero_point: int = 0
    data: np.ndarray | None = field(default=None, compare=False)


def single_op_model(op: str, inputs: list[Tensor], outputs: list[Tensor], options=None) -> bytes:
    """A TFLite flatbuffer with one builtin operator `op` (its options as a schema *OptionsT);
    inputs with data are constants, the others the model's inputs in order."""
    n_in = len(inputs)
    ops = [(op, list(range(n_in)), list(range(n_in, n_in + len(outputs))), options)]
    return graph_model([*inputs, *outputs], ops, list(range(n_in, n_in + len(outputs))))


def graph_model(tensors: list[Tensor], operators: list[tuple], outputs: list[int]) -> bytes:
    """A TFLite flatbuffer of builtin `operators` (op name, input tensor indices, output tensor
    indices, options as a schema *OptionsT or None) over `tensors`, run in the order given.
    Tensors with data are constants; the model's inputs are the tensors no operator writes and
    that have no data, in index order; `outputs` are the model's outputs."""
    model = schema.ModelT()
    model.version = 3
    model.description = "tinyhar kernel test"
    model.operatorCodes = []
    model.buffers = [schema.BufferT()]
    graph = schema.SubGraphT()
    graph.tensors = []
    for k, spec in enumerate(tensors):
        t = schema.TensorT()
        t.shape = list(spec.shape)
        t.type = _TYPES[spec.dtype]
        t.name = f"t{k}"
        buffer = schema.BufferT()
        if spec.data is not None:
            buffer.data = np.frombuffer(np.ascontiguousarray(spec.data).tobytes(), np.uint8)
        t.buffer = len(model.buffers)
        model.buffers.append(buffer)
        if spec.scale > 0:
            q = schema.QuantizationParametersT()
            q.scale = [float(spec.scale)]
            q.zeroPoint = [int(spec.zero_point)]
            t.quantization = q
        graph.tensors.append(t)
    codes: dict[str, int] = {}
    graph.operators = []
    written: set[int] = set()
    for name, ins, outs, options in operators:
        if name not in codes:
            code = getattr(schema.BuiltinOperator, name)
            opcode = schema.OperatorCodeT()
            opcode.builtinCode = code
            opcode.deprecatedBuiltinCode = min(code, 127)
            opcode.version = 1
            codes[name] = len(model.operatorCodes)
            model.operatorCodes.append(opcode)
        operator = schema.OperatorT()
        operator.opcodeIndex = codes[name]
        operator.inputs = list(ins)
        operator.outputs = list(outs)
        if options is not None:
            kind = type(options).__name__.removesuffix("T")
            operator.builtinOptionsType = getattr(schema.BuiltinOptions, kind)
            operator.builtinOptions = options
        graph.operators.append(operator)
        written.update(outs)
    graph.inputs = [k for k, t in enumerate(tensors) if t.data is None and k not in written]
    graph.outputs = list(outputs)
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# --- the emulated Cortex-M4F ----------------------------------------------------------------------


def _vectors_module():
    """tests/c/vectors.py (QEMU's command line for the C tests), loaded as test_core_qemu does."""
    name = "core_vectors"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, C_DIR / "vectors.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _c_array(data: bytes) -> str:
    return ",".join(str(b) for b in data)


def write_kernel_case(
    path: Path, model: bytes, inputs: list[np.ndarray], ops: int, output_bytes: int
) -> None:
    """kernel_case.h for kernel_qemu_main.c: the model, its inputs, the ops bits and sizes."""
    packed = pack_inputs(inputs)
    path.write_text(
        "#include <stdint.h>\n"
        f"#define KERNEL_CASE_OPS {ops}\n#define KERNEL_CASE_RUNS {len(inputs[0])}\n"
        f"#define KERNEL_CASE_OUTPUT_BYTES {output_bytes}\n"
        "__attribute__((aligned(16))) static const uint8_t kernel_case_model[] = {"
        f"{_c_array(model)}}};\n"
        f"static const int8_t kernel_case_inputs[] = {{{_c_array(packed.tobytes())}}};\n"
    )


def build_qemu_image(
    libraries: Path,
    out: Path,
    model: bytes,
    inputs: list[np.ndarray],
    ops: int,
    kernels: list[Path] | None = None,
) -> Path:
    """The harness on the Cortex-M4F with `model` and its `inputs` built in, as an ELF for QEMU's
    mps2-an386. `kernels` replaces tinyhar's kernel sources (an older kernel, for comparisons)."""
    src, lib_sources = library_sources(libraries)
    out.mkdir(parents=True, exist_ok=True)
    output = inspect_tflite(model).outputs[0]
    output_bytes = int(np.prod(output.shape)) * np.dtype(output.dtype).itemsize
    write_kernel_case(out / "kernel_case.h", model, inputs, ops, output_bytes)
    lib_objects = compile_sources(
        CORTEX_M4F, lib_sources, include_dirs(src), (), ("-w",), what="TFLM library sources"
    )
    own = kernels if kernels is not None else [KERNELS / s for s in OWN_SOURCES]
    own_objects = compile_sources(
        CORTEX_M4F,
        [*own, HARNESS],
        [KERNELS, *include_dirs(src)],
        (),  # the board's toolchain carries the core's defines
        (*OWN_WARNINGS, *OWN_STD),
        out_dir=out,
        what="kernels and harness",
    )
    main_objects = compile_sources(
        CORTEX_M4F, [QEMU_MAIN, QEMU_STARTUP], [out, C_DIR], (), OWN_WARNINGS, out_dir=out,
        what="QEMU start-up",
    )  # fmt: skip
    flags = ("-nostartfiles", "-T", str(QEMU_LINKER_SCRIPT))
    return link(CORTEX_M4F, [*main_objects, *own_objects, *lib_objects], out / "kernel.elf", flags)


@dataclass
class QemuRun:
    """What kernel_qemu_main.c printed: return code, arena bytes, outputs, per-node ticks."""

    rc: int
    arena: int
    outputs: np.ndarray
    nodes: list[tuple[str, int]]  # (op name, SysTick ticks summed over the runs)
    text: str

    def instructions(self, node: int, runs: int) -> float:
        """Instructions per run of one node (-icount shift=0: 40 per 25 MHz SysTick tick)."""
        return self.nodes[node][1] * INSTRUCTIONS_PER_TICK / runs


def run_qemu_image(elf: Path, model: bytes, runs: int, timeout: float = 300) -> QemuRun:
    """Runs the image under -icount shift=0 and parses what it printed."""
    proc = _vectors_module().run_qemu(elf, timeout=timeout, extra=("-icount", "shift=0"))
    text = proc.stdout + proc.stderr
    values = dict(re.findall(r"^(rc|arena) (\d+)$", text, re.M))
    if "rc" not in values:
        raise AssertionError(f"QEMU printed no result (exit {proc.returncode}):\n{text[-2000:]}")
    out = inspect_tflite(model).outputs[0]
    raw = bytes.fromhex("".join(re.findall(r"^out ([0-9a-f]+)$", text, re.M)))
    outputs = np.frombuffer(raw, dtype=out.dtype)
    outputs = outputs.reshape(runs, *out.shape) if outputs.size else outputs
    nodes = [(name, int(ticks)) for _, name, ticks in
             re.findall(r"^ticks (\d+) (\S+) (\d+)$", text, re.M)]  # fmt: skip
    return QemuRun(int(values["rc"]), int(values.get("arena", 0)), outputs, nodes, text)
