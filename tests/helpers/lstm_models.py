"""LSTM models and harnesses for tinyhar's UNIDIRECTIONAL_SEQUENCE_LSTM kernel: tf_keras LSTMs
converted to int8, their LSTM node's quantization, the Python TFLM interpreter's output sequences,
and tests/c/lstm_harness.cpp built for the host (ctypes) and for the Cortex-M4F under QEMU.

Used by tests/firmware/test_kernel_lstm.py and benchmarks/lstm_kernel.py.
"""

from __future__ import annotations

import ctypes
import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinyhar.board.tflm_library import DEFINES, include_dirs, sources_for_ops
from tinyhar.deploy.native_build import CORTEX_M4F, HOST, OWN_WARNINGS, compile_sources, link
from tinyhar.device.emulator import qemu_command
from tinyhar.lite.tflite_inspect import parse_model

REPO = Path(__file__).resolve().parents[2]
KERNELS = REPO / "firmware_templates" / "kernels"
KERNEL = KERNELS / "tinyhar_lstm.cpp"
C_DIR = REPO / "tests" / "c"
HARNESS = C_DIR / "lstm_harness.cpp"
ARITH_CHECK = C_DIR / "lstm_arith_check.cpp"  # the kernel's arithmetic against the library's
QEMU_MAIN = C_DIR / "lstm_qemu_main.cpp"
STARTUP = C_DIR / "startup_m4.c"
LINKER_SCRIPT = REPO / "firmware_templates" / "emulator" / "mps2_an386.ld"  # with a heap
CHIRALE = "Chirale_TensorFLowLite"
LIBRARY_OPS = ["UNIDIRECTIONAL_SEQUENCE_LSTM"]  # the library's own kernel, for comparison
ARDUINO_ONLY = {"system_setup.cpp", "utility_arduino.cpp"}  # the harness stands in for them
OWN_STD = ("-std=gnu++14",)  # the Nano 33 BLE core's standard (GCC 7): the host's too
ARENA = 512 * 1024
LSTM_INPUTS = 24
TICK_INSTRUCTIONS = 40  # SysTick at 25 MHz under -icount shift=0 (1 instruction = 1 ns)

# lstm_run's flags and return codes (tests/c/lstm_harness.h)
LIBRARY_KERNEL, KEEP_STATE = 1, 2
RUN_OK, ALLOCATE_FAILED = 0, 3


# --- models ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LstmSpec:
    """A tf_keras LSTM(units, return_sequences=True) on (steps, inputs) with random weights,
    calibrated on normal inputs. With `cell_target` (> 1.1), the gates' biases are set so that
    the cell state settles near +-cell_target (largest unit), which sets the converter's cell
    scale: 2^ceil(log2(range)) / 2^15."""

    steps: int
    inputs: int
    units: int
    seed: int = 0
    kernel_std: float = 0.4
    recurrent_std: float = 0.4
    input_std: float = 1.0
    input_mean: float = 0.0
    cell_target: float | None = None
    samples: int = 48  # representative windows


def _weights(spec: LstmSpec) -> list[np.ndarray]:
    rng = np.random.default_rng(spec.seed)
    n = spec.units
    kernel = rng.normal(0, spec.kernel_std, (spec.inputs, 4 * n))
    recurrent = rng.normal(0, spec.recurrent_std, (n, 4 * n))
    bias = rng.normal(0, 0.3, 4 * n)
    bias[n : 2 * n] += 1.0  # keras' unit_forget_bias
    if spec.cell_target is not None:
        # i, g ~ 1: the cell settles at i g / (1 - f) > i g; units spread from 1.1 to the target
        i_g = float(1 / (1 + np.exp(-4.0)) * np.tanh(4.0))
        targets = np.linspace(1.1, max(spec.cell_target, 1.1), n)
        f = 1 - i_g / targets
        bias[:n] = 4.0
        bias[n : 2 * n] = np.log(f / (1 - f))
        bias[2 * n : 3 * n] = 4.0 * np.where(np.arange(n) % 2, 1, -1)  # both signs of c
        bias[3 * n :] = rng.normal(0, 1, n)
    return [kernel.astype(np.float32), recurrent.astype(np.float32), bias.astype(np.float32)]


def representative(spec: LstmSpec) -> np.ndarray:
    """The calibration windows (samples, steps, inputs)."""
    rng = np.random.default_rng(spec.seed + 1000)
    shape = (spec.samples, spec.steps, spec.inputs)
    return (spec.input_mean + rng.normal(0, spec.input_std, shape)).astype(np.float32)


@functools.cache
def lstm_model(spec: LstmSpec) -> bytes:
    """The spec's LSTM as a full-int8 flatbuffer (tinyhar's converter, batch 1)."""
    from tinyhar.lite.convert import to_int8_tflite
    from tinyhar.lite.keras_env import keras

    inp = keras.Input(shape=(spec.steps, spec.inputs), batch_size=1)
    layer = keras.layers.LSTM(spec.units, return_sequences=True)
    model = keras.Model(inp, layer(inp))
    layer.set_weights(_weights(spec))
    return to_int8_tflite(model, representative(spec))


@dataclass(frozen=True)
class LstmNode:
    """The model's UNIDIRECTIONAL_SEQUENCE_LSTM: its 24 input tensor indices (-1: none) and the
    quantization the kernel reads."""

    inputs: tuple[int, ...]
    output: int
    input_quant: tuple[float, int]
    hidden_quant: tuple[float, int]
    cell_scale: float
    cell_clip: float
    time_major: bool

    @property
    def cell_power(self) -> int:
        """log2 of the cell state scale (the converter makes it a power of two)."""
        return int(round(np.log2(self.cell_scale)))


def _quant(tensor: schema.TensorT) -> tuple[float, int]:
    q = tensor.quantization
    return float(q.scale[0]), int(q.zeroPoint[0])


def lstm_node(model: bytes) -> LstmNode:
    """The first UNIDIRECTIONAL_SEQUENCE_LSTM node of `model`."""
    m = parse_model(model)
    graph = m.subgraphs[0]
    for op in graph.operators:
        code = m.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM:
            break
    else:
        raise AssertionError("no UNIDIRECTIONAL_SEQUENCE_LSTM in the model")
    ins = tuple(int(i) for i in op.inputs)
    return LstmNode(
        inputs=ins,
        output=int(op.outputs[0]),
        input_quant=_quant(graph.tensors[ins[0]]),
        hidden_quant=_quant(graph.tensors[ins[18]]),
        cell_scale=_quant(graph.tensors[ins[19]])[0],
        cell_clip=float(op.builtinOptions.cellClip),
        time_major=bool(op.builtinOptions.timeMajor),
    )


def with_quantization(model: bytes, changes: dict[int, tuple[float, int]]) -> bytes:
    """A copy of `model` whose tensors (by index) get a new per-tensor (scale, zero point);
    written in place, so the flatbuffer's layout (and buffer alignment) stays as it was."""
    buf = bytearray(model)
    graph = schema.Model.GetRootAsModel(buf, 0).Subgraphs(0)
    for index, (scale, zero_point) in changes.items():
        q = graph.Tensors(index).Quantization()
        q.ScaleAsNumpy()[0] = scale  # views into buf
        q.ZeroPointAsNumpy()[0] = zero_point
    return bytes(buf)


def _repack(m: schema.ModelT, size_hint: int) -> bytes:
    builder = flatbuffers.Builder(size_hint + 4096)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def with_tensor_types(model: bytes, types: dict[int, int]) -> bytes:
    """A copy of `model` whose tensors (by index) get another schema.TensorType."""
    m = parse_model(model)
    for index, tensor_type in types.items():
        m.subgraphs[0].tensors[index].type = tensor_type
    return _repack(m, len(model))


def with_lstm_options(model: bytes, **options: object) -> bytes:
    """A copy of `model` whose LSTM options (schema field names: cellClip,
    fusedActivationFunction, ...) take the given values."""
    m = parse_model(model)
    for op in m.subgraphs[0].operators:
        if isinstance(op.builtinOptions, schema.UnidirectionalSequenceLSTMOptionsT):
            for name, value in options.items():
                assert hasattr(op.builtinOptions, name), name
                setattr(op.builtinOptions, name, value)
    return _repack(m, len(model))


def with_batches(model: bytes, batches: int, time_major: bool) -> bytes:
    """A copy of a batch-1 LSTM model taking `batches` sequences, batch- or time-major."""
    m = parse_model(model)
    graph = m.subgraphs[0]
    node = lstm_node(model)
    _, steps, width = graph.tensors[node.inputs[0]].shape
    units = graph.tensors[node.output].shape[2]
    lead = (steps, batches) if time_major else (batches, steps)
    for index, shape in (
        (node.inputs[0], (*lead, width)),
        (node.output, (*lead, units)),
        (node.inputs[18], (batches, units)),
        (node.inputs[19], (batches, units)),
    ):
        graph.tensors[index].shape = np.array(shape, dtype=np.int32)
        graph.tensors[index].shapeSignature = None
    for op in graph.operators:
        if isinstance(op.builtinOptions, schema.UnidirectionalSequenceLSTMOptionsT):
            op.builtinOptions.timeMajor = time_major
    return _repack(m, len(model))


def input_shape(model: bytes) -> tuple[int, ...]:
    m = parse_model(model)
    graph = m.subgraphs[0]
    return tuple(int(d) for d in graph.tensors[graph.inputs[0]].shape)


def output_shape(model: bytes) -> tuple[int, ...]:
    m = parse_model(model)
    graph = m.subgraphs[0]
    return tuple(int(d) for d in graph.tensors[graph.outputs[0]].shape)


def random_inputs(model: bytes, runs: int, seed: int, low: int = -128, high: int = 127):
    """`runs` int8 input tensors, uniform in [low, high]."""
    rng = np.random.default_rng(seed)
    return rng.integers(low, high + 1, size=(runs, *input_shape(model)), dtype=np.int8)


def calibrated_inputs(model: bytes, spec: LstmSpec, runs: int, seed: int) -> np.ndarray:
    """`runs` inputs drawn like the calibration data, quantized with the model's input scale."""
    scale, zero_point = lstm_node(model).input_quant
    rng = np.random.default_rng(seed)
    x = spec.input_mean + rng.normal(0, spec.input_std, (runs, *input_shape(model)))
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


# --- the Python TFLM interpreter ------------------------------------------------------------------


def tflm_sequences(model: bytes, x: np.ndarray, keep_state: bool = False) -> np.ndarray:
    """Output 0 of the Python TFLM interpreter for each run x[r]; the state is reset before
    each run unless `keep_state`."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(model, arena_size=ARENA)
    outs = []
    for run in x:
        if not keep_state:
            interpreter.reset()
        interpreter.set_input(run, 0)
        interpreter.invoke()
        outs.append(interpreter.get_output(0).copy())
    return np.stack(outs)


# --- the harness on the host ----------------------------------------------------------------------


class Harness:
    """tests/c/lstm_harness.cpp (tinyhar's kernel or the library's, Chirale's TFLM) via ctypes."""

    def __init__(self, so: Path) -> None:
        self._lib = ctypes.CDLL(str(so))
        self._lib.lstm_log.restype = ctypes.c_char_p
        self._lib.lstm_arena_used.restype = ctypes.c_size_t
        for check in ("lstm_check_requantize", "lstm_check_sigmoid", "lstm_check_tanh"):
            getattr(self._lib, check).restype = ctypes.c_long
        self._lib.lstm_run.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_size_t,
        ]

    @property
    def log(self) -> str:
        return self._lib.lstm_log().decode(errors="replace")

    def check_requantize(self, multipliers: int, values: int, seed: int) -> tuple[int, int]:
        """(mismatches, comparisons) of the kernel's Requantize against the library's
        MultiplyByQuantizedMultiplier (tests/c/lstm_arith_check.cpp)."""
        checked = ctypes.c_long(0)
        bad = self._lib.lstm_check_requantize(
            ctypes.c_long(multipliers), ctypes.c_long(values), ctypes.c_uint(seed),
            ctypes.byref(checked),
        )  # fmt: skip
        return int(bad), int(checked.value)

    def check_sigmoid(self) -> int:
        """Mismatches of the kernel's sigmoid against the library's over every int16."""
        return int(self._lib.lstm_check_sigmoid())

    def check_tanh(self, power: int) -> int:
        """Mismatches of the kernel's tanh of a cell at scale 2^power, over every int16."""
        return int(self._lib.lstm_check_tanh(ctypes.c_int(power)))

    @property
    def arena_used(self) -> int:
        """The last run's interpreter.arena_used_bytes()."""
        return int(self._lib.lstm_arena_used())

    def run(self, model: bytes, x: np.ndarray, flags: int = 0) -> tuple[int, np.ndarray]:
        """(return code, output 0 of each run x[r])."""
        runs = len(x)
        outputs = np.zeros((runs, *output_shape(model)), dtype=np.int8)
        packed = np.ascontiguousarray(x.reshape(runs, -1))
        buf = ctypes.create_string_buffer(len(model) + 16)
        aligned = ctypes.addressof(buf) + (-ctypes.addressof(buf) % 16)  # TFLM wants it aligned
        ctypes.memmove(aligned, model, len(model))
        self._lib.lstm_clear_log()
        rc = self._lib.lstm_run(
            aligned,
            flags,
            packed.ctypes.data,
            packed.nbytes,
            runs,
            outputs.ctypes.data,
            outputs.nbytes,
        )
        return rc, outputs


def library_sources(src: Path) -> list[Path]:
    """The Chirale sources the harness links: the interpreter and the library's LSTM kernel."""
    return [p for p in sources_for_ops(src, LIBRARY_OPS) if p.name not in ARDUINO_ONLY]


def build_host_harness(src: Path, out_dir: Path, simd: bool) -> Path:
    """The harness as a shared library: the kernel's SIMD path on the C equivalents of the DSP
    instructions (-DTINYHAR_EMULATE_DSP) or its scalar path. Library objects are cached."""
    lib_objects = compile_sources(
        HOST, library_sources(src), include_dirs(src), DEFINES, ("-w",), what="TFLM sources"
    )
    defines = (*DEFINES, *(("TINYHAR_EMULATE_DSP",) if simd else ()))
    own = compile_sources(
        HOST,
        [KERNEL, HARNESS, ARITH_CHECK],
        [KERNELS, C_DIR],
        defines,
        (*OWN_WARNINGS, *OWN_STD),
        out_dir=out_dir,
        what="LSTM kernel and harness",
        system_includes=include_dirs(src),
    )
    # -Bsymbolic: two harness builds loaded in one process each call their own kernel
    return link(HOST, [*own, *lib_objects], out_dir / "lstm_harness.so", ("-Wl,-Bsymbolic",))


# --- the harness on the Cortex-M4F under QEMU -----------------------------------------------------


@dataclass(frozen=True)
class M4Case:
    """One lstm_run on the emulated board: the model, its runs' inputs and lstm_run's flags."""

    model: bytes
    x: np.ndarray
    flags: int = 0


@dataclass(frozen=True)
class M4Result:
    rc: int
    arena_used: int
    instructions: int  # the LSTM op's invokes, all runs (SysTick ticks x 40)
    outputs: np.ndarray


def _c_array(kind: str, name: str, data: bytes | np.ndarray, align: int = 0) -> str:
    body = ",".join(str(int(b)) for b in data) or "0"
    pre = f"alignas({align}) " if align else ""
    return f"{pre}static const {kind} {name}[] = {{{body}}};\n"


def write_cases_header(cases: list[M4Case], path: Path) -> None:
    """tests/c/lstm_qemu_main.cpp's cases as C arrays."""
    out = ["#include <stddef.h>\n#include <stdint.h>\n"]
    rows, most = [], 0
    for k, case in enumerate(cases):
        x = np.ascontiguousarray(case.x, dtype=np.int8)
        out.append(_c_array("uint8_t", f"model_{k}", case.model, 16))
        out.append(_c_array("int8_t", f"inputs_{k}", x.reshape(-1)))
        out_bytes = len(x) * int(np.prod(output_shape(case.model)))
        most = max(most, out_bytes)
        rows.append(f"{{model_{k}, inputs_{k}, {x.nbytes}u, {len(x)}, {out_bytes}u, {case.flags}}}")
    out.append(
        "struct LstmCase { const uint8_t* model; const int8_t* inputs; size_t input_bytes; "
        "int runs; size_t output_bytes; int flags; };\n"
    )
    out.append(f"static const LstmCase kCases[] = {{{', '.join(rows)}}};\n")
    out.append(f"#define LSTM_MAX_OUTPUT_BYTES {most}u\n")
    path.write_text("".join(out))


def build_m4_harness(src: Path, out_dir: Path, cases: list[M4Case]) -> Path:
    """A bare-metal Cortex-M4F image (QEMU mps2-an386) running `cases` through the harness with
    the real DSP instructions; the toolchain's flags as the firmware's (-Os)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_cases_header(cases, out_dir / "lstm_cases.h")
    # the board's toolchain carries the core's defines (ARDUINO=...)
    lib_objects = compile_sources(
        CORTEX_M4F, library_sources(src), include_dirs(src), (), ("-w",), what="TFLM sources"
    )
    own = compile_sources(
        CORTEX_M4F,
        [KERNEL, HARNESS, QEMU_MAIN],
        [KERNELS, C_DIR, out_dir],
        (),
        (*OWN_WARNINGS, *OWN_STD),
        out_dir=out_dir,
        what="LSTM kernel and harness",
        system_includes=include_dirs(src),
    )
    start = compile_sources(CORTEX_M4F, [STARTUP], [C_DIR], (), OWN_WARNINGS, out_dir=out_dir)
    ld = ("-nostartfiles", "-T", str(LINKER_SCRIPT))
    return link(CORTEX_M4F, [*start, *own, *lib_objects], out_dir / "lstm_harness.elf", ld)


_CASE_LINE = re.compile(r"^CASE (\d+) rc=(\d+) arena=(\d+) ticks=(\d+)$")
_OUT_LINE = re.compile(r"^OUT (\d+) ([0-9a-f]*)$")


def run_m4_harness(elf: Path, cases: list[M4Case], timeout: float = 600) -> list[M4Result]:
    """The image's results under `qemu-system-arm -icount shift=0`, one per case."""
    proc = subprocess.run(qemu_command(elf), capture_output=True, text=True, timeout=timeout)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0 or "DONE" not in text:
        raise AssertionError(f"QEMU exited {proc.returncode}:\n{text[-2000:]}")
    heads: dict[int, tuple[int, int, int]] = {}
    chunks: dict[int, list[bytes]] = {}
    for line in text.splitlines():
        if m := _CASE_LINE.match(line.strip()):
            heads[int(m[1])] = (int(m[2]), int(m[3]), int(m[4]))
        elif m := _OUT_LINE.match(line.strip()):
            chunks.setdefault(int(m[1]), []).append(bytes.fromhex(m[2]))
    results = []
    for k, case in enumerate(cases):
        rc, arena, ticks = heads[k]
        raw = b"".join(chunks.get(k, []))
        shape = (len(case.x), *output_shape(case.model))
        out = np.frombuffer(raw, np.int8).reshape(shape) if rc == RUN_OK else np.zeros(0)
        results.append(M4Result(rc, arena, ticks * TICK_INSTRUCTIONS, out))
    return results
