"""tinyhar's int8 BATCH_MATMUL kernel and op resolver (firmware_templates/kernels/), built for the
host with the Chirale TFLM library and compared byte for byte with the Python TFLM interpreter."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers.commands import require_tools
from helpers.kernel_harness import (
    ALLOCATE_FAILED,
    KERNELS,
    OP_ADD,
    OP_SOFTMAX,
    OWN_SOFTMAX,
    OWN_SOURCES,
    REPO,
    RUN_OK,
    Harness,
    build_qemu_image,
    host_harness,
    libraries_root,
    random_inputs,
    run_qemu_image,
    tflm_outputs,
    with_quantization,
)
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinyhar.board.tflm_library import DEFINES, include_dirs
from tinyhar.deploy.native_build import (
    CORTEX_M4F,
    HOST,
    OWN_WARNINGS,
    Toolchain,
    compile_sources,
)
from tinyhar.lite.tflite_inspect import inspect_tflite, parse_model

RESOLVER_USE = REPO / "tests" / "c" / "bmm_resolver_use.cpp"
TFLM_LIBRARIES = ("Chirale_TensorFLowLite", "Arduino_TensorFlowLite")
NO_BATCH_MATMUL = 256
# The converter's calibrator still uses tf.lite.Interpreter.
pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")


@dataclass(frozen=True)
class Case:
    """One converted tf.linalg.matmul model and the random input pairs it is run on."""

    name: str
    lhs: tuple[int, ...]
    rhs: tuple[int, ...]
    adj_x: bool = False
    adj_y: bool = False
    lhs_range: tuple[float, float] = (-1.0, 3.0)
    rhs_range: tuple[float, float] = (-2.5, 0.7)
    seed: int = 0
    pairs: int = 250


CASES = [
    Case("4d-broadcast-rhs", (1, 4, 8, 16), (1, 1, 16, 8), seed=1),
    Case(
        "3d-adj_x",
        (1, 5, 7),
        (1, 5, 6),
        adj_x=True,
        lhs_range=(0.0, 6.0),
        rhs_range=(-1.0, 1.0),
        seed=2,
    ),
    Case(
        "3d-adj_y",
        (1, 5, 7),
        (1, 6, 7),
        adj_y=True,
        lhs_range=(-4.0, 0.5),
        rhs_range=(-0.2, 3.0),
        seed=3,
    ),
    Case("4d-adj_x-adj_y", (1, 2, 7, 5), (1, 2, 6, 7), adj_x=True, adj_y=True, seed=4),
    Case("4d-by-2d", (1, 3, 4, 5), (5, 6), lhs_range=(-0.3, 0.3), rhs_range=(-8.0, 2.0), seed=5),
    Case("3d-by-4d", (1, 6, 5), (1, 2, 5, 7), seed=6),
    Case("5d", (1, 2, 3, 4, 5), (1, 2, 3, 5, 4), seed=7),
    Case("4d-broadcast-lhs-adj_y", (1, 1, 6, 9), (1, 3, 5, 9), adj_y=True, seed=8),
    Case("5d-broadcast-both-adj_x", (1, 3, 1, 6, 4), (1, 1, 2, 6, 5), adj_x=True, seed=9),
    Case(
        "attention-scores",
        (1, 4, 12, 16),
        (1, 4, 12, 16),
        adj_y=True,
        lhs_range=(-2.0, 2.0),
        rhs_range=(-1.5, 2.5),
        seed=10,
    ),
    # The SIMD paths' blocks and tails: the attention shapes of `tiny` (probs x v without adjoint,
    # K = 50: a 2-deep k tail) and of width 12; N > 64 (two column blocks, 4- and 2-column tails);
    # an odd number of adj_y columns with a 1-deep k tail; zero points on both operands.
    Case(
        "attention-probs-v-width-64",
        (1, 50, 50),
        (1, 50, 64),
        lhs_range=(0.0, 1.0),
        rhs_range=(-1.2, 0.9),
        seed=14,
        pairs=40,
    ),
    Case(
        "attention-scores-width-12",
        (1, 50, 12),
        (1, 50, 12),
        adj_y=True,
        lhs_range=(-1.0, 0.5),
        rhs_range=(-0.3, 1.0),
        seed=15,
        pairs=60,
    ),
    Case("3d-no-adj-70-columns", (1, 3, 7), (1, 7, 70), seed=16, pairs=100),
    Case("3d-adj_y-67-columns", (2, 5, 9), (2, 67, 9), adj_y=True, seed=17, pairs=100),
    # Deeper than a packed block (128): packed in pieces, per row.
    Case("3d-adj_y-depth-203", (1, 6, 203), (1, 7, 203), adj_y=True, seed=20, pairs=60),
]
CRAFTED = Case("crafted", (1, 4, 256), (1, 256, 4), seed=11, pairs=64)


# --- models ---------------------------------------------------------------------------------------


def _convert(module, rep, quantize: bool) -> bytes:
    from tinyhar.lite.keras_env import tf

    conv = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.f.get_concrete_function()], module
    )
    if quantize:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def _signature(case: Case) -> list:
    from tinyhar.lite.keras_env import tf

    return [tf.TensorSpec(case.lhs, tf.float32), tf.TensorSpec(case.rhs, tf.float32)]


def _representative(case: Case) -> Iterator[dict[str, np.ndarray]]:
    rng = np.random.default_rng(case.seed)
    for _ in range(64):
        yield {
            "a": rng.uniform(*case.lhs_range, size=case.lhs).astype(np.float32),
            "b": rng.uniform(*case.rhs_range, size=case.rhs).astype(np.float32),
        }


@functools.cache
def matmul_model(case: Case, quantize: bool = True) -> bytes:
    """`tf.linalg.matmul(a, b)` with the case's shapes and adjoints, full-int8 or float."""
    from tinyhar.lite.keras_env import tf

    class MatMul(tf.Module):
        @tf.function(input_signature=_signature(case))
        def f(self, a, b):
            return tf.linalg.matmul(a, b, adjoint_a=case.adj_x, adjoint_b=case.adj_y)

    return _convert(MatMul(), lambda: _representative(case), quantize)


@functools.cache
def attention_model() -> bytes:
    """softmax(q k^T + bias): BATCH_MATMUL from tinyhar, ADD and SOFTMAX from the library."""
    from tinyhar.lite.keras_env import tf

    case = Case("attention", (1, 4, 6, 8), (1, 4, 6, 8), adj_y=True, seed=12)
    bias = np.random.default_rng(case.seed).normal(size=(1, 4, 6, 6)).astype(np.float32)

    class Attention(tf.Module):
        @tf.function(input_signature=_signature(case))
        def f(self, a, b):
            return tf.nn.softmax(tf.linalg.matmul(a, b, adjoint_b=True) + bias)

    return _convert(Attention(), lambda: _representative(case), True)


@dataclass(frozen=True)
class Operands:
    """The BATCH_MATMUL node of a model: where its operands sit among the model's inputs,
    its adjoint flags and the (scale, zero point) of lhs, rhs and output."""

    lhs: int
    rhs: int
    tensors: tuple[int, int, int]  # lhs, rhs, output
    adj_x: bool
    adj_y: bool
    quant: tuple[tuple[float, int], tuple[float, int], tuple[float, int]]


def operands(model: bytes) -> Operands:
    """The first BATCH_MATMUL node of `model`."""
    m = parse_model(model)
    sg = m.subgraphs[0]
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.BATCH_MATMUL:
            break
    else:
        raise AssertionError("no BATCH_MATMUL in the model")
    inputs = [int(i) for i in sg.inputs]

    def quant(index: int) -> tuple[float, int]:
        q = sg.tensors[index].quantization
        if q is None or q.scale is None:
            return 0.0, 0
        return float(q.scale[0]), int(q.zeroPoint[0])

    return Operands(
        lhs=inputs.index(int(op.inputs[0])),
        rhs=inputs.index(int(op.inputs[1])),
        tensors=(int(op.inputs[0]), int(op.inputs[1]), int(op.outputs[0])),
        adj_x=bool(op.builtinOptions.adjX),
        adj_y=bool(op.builtinOptions.adjY),
        quant=(quant(op.inputs[0]), quant(op.inputs[1]), quant(op.outputs[0])),
    )


# --- the harness ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def libraries() -> Path:
    return libraries_root()


@pytest.fixture(scope="module", params=["scalar", "emulated-dsp"])
def harness(request: pytest.FixtureRequest, libraries: Path) -> Harness:
    """The harness with tinyhar's kernels and Chirale's ADD, SOFTMAX, MEAN and MUL, as one .so:
    scalar, and with -DTINYHAR_EMULATE_DSP (the kernels' SIMD paths on tinyhar_simd.h's C
    equivalents of the M4's DSP instructions)."""
    require_tools("gcc", "g++", apt="gcc g++")
    return host_harness(libraries, emulate_dsp=request.param == "emulated-dsp")


# --- TFLM's requantization, written out -----------------------------------------------------------


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: (q, shift) with real ~= q * 2**(shift - 31)."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    scaled = fraction * (1 << 31)  # exact: a power-of-two scaling
    q = math.floor(scaled) + (scaled - math.floor(scaled) >= 0.5)  # TfLiteRound: half away
    if q == 1 << 31:
        q, shift = q // 2, shift + 1
    return (0, 0) if shift < -31 else (q, shift)


def requantize(acc: np.ndarray, multiplier: tuple[int, int], zero_point: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier (gemmlowp's two roundings) + zero point, clamped to int8."""
    q, shift = multiplier
    x = acc.astype(np.int64) * (1 << max(shift, 0)) * q
    x = x + np.where(x >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(x >= 0, x >> 31, -((-x) >> 31))  # C++ division truncates
    exponent = max(-shift, 0)
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (high < 0)
    out = (high >> exponent) + ((high & mask) > threshold) + zero_point
    return np.clip(out, -128, 127).astype(np.int8)


def tflm_multiplier(quant) -> tuple[int, int]:
    """TFLM's fixed-point multiplier: double(lhs_scale) * double(rhs_scale) / double(out_scale)."""
    (ls, _), (rs, _), (os_, _) = quant
    return quantize_multiplier(ls * rs / os_)


def float_product_multiplier(quant) -> tuple[int, int]:
    """The libraries' GetQuantizedConvolutionMultipler: the scale product rounded to float."""
    (ls, _), (rs, _), (os_, _) = quant
    return quantize_multiplier(float(np.float32(ls) * np.float32(rs)) / os_)


def formula_outputs(model: bytes, inputs: list[np.ndarray]) -> np.ndarray:
    """The model's BATCH_MATMUL computed in numpy with TFLite's integer arithmetic."""
    o = operands(model)
    (_, lz), (_, rz), (_, oz) = o.quant
    lhs = inputs[o.lhs].astype(np.int64) - lz
    rhs = inputs[o.rhs].astype(np.int64) - rz
    lhs = lhs.swapaxes(-1, -2) if o.adj_x else lhs
    rhs = rhs.swapaxes(-1, -2) if o.adj_y else rhs
    rhs = rhs.reshape(len(rhs), *(1,) * (lhs.ndim - rhs.ndim), *rhs.shape[1:])
    lhs = lhs.reshape(len(lhs), *(1,) * (rhs.ndim - lhs.ndim), *lhs.shape[1:])
    return requantize(np.matmul(lhs, rhs), tflm_multiplier(o.quant), oz)


def first_accumulators(multiplier: tuple[int, int], zero_point: int, limit: int) -> np.ndarray:
    """For each output v in -127..127, the smallest accumulator in [-limit, limit] that
    requantizes to v or more (limit + 1 where none does)."""
    v = np.arange(-127, 128)
    lo = np.full(v.shape, -limit - 1, np.int64)
    hi = np.full(v.shape, limit + 1, np.int64)
    while np.any(hi - lo > 1):
        mid = (lo + hi) // 2
        up = requantize(mid, multiplier, zero_point) >= v
        hi, lo = np.where(up, mid, hi), np.where(up, lo, mid)
    return hi


def split_accumulator(acc: int, depth: int, x_range, y_range) -> tuple[list[int], list[int]] | None:
    """x, y of length `depth` inside the ranges with sum(x * y) == acc, or None."""
    (x_lo, x_hi), (y_lo, y_hi) = x_range, y_range
    if y_hi < 1 or y_lo > -1:
        return None
    sign = 1 if acc >= 0 else -1
    _, y = max(
        [(x_hi, y_hi), (x_lo, y_lo), (x_hi, y_lo), (x_lo, y_hi)], key=lambda p: p[0] * p[1] * sign
    )
    xs, ys, rest = [], [], acc
    for _ in range(depth - 2):
        x = max(x_lo, min(x_hi, int(rest / y)))
        xs.append(x)
        ys.append(y)
        rest -= x * y
    x1 = max(x_lo, x_lo + rest)  # the last two terms: x1 * 1 + x2 * (-1) == rest
    x2 = x1 - rest
    if not (x_lo <= x1 <= x_hi and x_lo <= x2 <= x_hi):
        return None
    return xs + [x1, x2], ys + [1, -1]


# --- tests ----------------------------------------------------------------------------------------


def test_the_cases_hold_enough_random_pairs():
    assert sum(c.pairs for c in CASES) >= 2000
    assert {(c.adj_x, c.adj_y) for c in CASES} == {(a, b) for a in (0, 1) for b in (0, 1)}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.usefixtures("host_gcc")
def test_kernel_matches_python_tflm_byte_for_byte(case: Case, harness: Harness):
    model = matmul_model(case)
    assert inspect_tflite(model).ops == ["BATCH_MATMUL"]
    o = operands(model)
    assert (o.adj_x, o.adj_y) == (case.adj_x, case.adj_y)
    assert any(zp != 0 for _, zp in o.quant)
    inputs = random_inputs(model, case.pairs, case.seed)

    rc, ours = harness.run(model, inputs)
    assert rc == RUN_OK, harness.log
    theirs = tflm_outputs(model, inputs)
    assert ours.shape == theirs.shape
    assert int(np.count_nonzero(ours != theirs)) == 0
    assert int(np.count_nonzero(ours != formula_outputs(model, inputs))) == 0
    assert len(np.unique(ours)) > 100  # the comparison is not between two constant tensors


@pytest.mark.slow
@pytest.mark.usefixtures("host_gcc")
def test_requantization_takes_the_scale_product_in_double(harness: Harness):
    """Accumulators where the double product of the scales and the float one (the libraries'
    GetQuantizedConvolutionMultipler) requantize differently: the kernel and Python TFLM both
    follow the double product. The converted model's lhs scale is moved to a neighbouring float
    whose product with the rhs scale rounds badly, and its output scale is set to make the
    multiplier small (1.3e-5, not a round number, whose boundaries would fall on integers), so
    that many accumulators tell the two apart."""
    converted = matmul_model(CRAFTED)
    o = operands(converted)
    assert (o.adj_x, o.adj_y) == (False, False)
    (ls, lz), (rs, rz), _ = o.quant
    near = (np.float32(ls) + np.arange(-2000, 2000) * np.spacing(np.float32(ls))).astype(np.float32)
    exact = near.astype(np.float64) * rs
    ls = float(near[np.argmax(np.abs((near * np.float32(rs)).astype(np.float64) - exact))])
    oz = 3
    model = with_quantization(
        converted,
        {o.tensors[0]: (ls, lz), o.tensors[2]: (float(np.float32(ls * rs / 1.3e-5)), oz)},
    )
    o = operands(model)
    in_double, in_float = tflm_multiplier(o.quant), float_product_multiplier(o.quant)

    depth = CRAFTED.lhs[-1]
    limit = depth * 255 * 255
    first_double = first_accumulators(in_double, oz, limit)
    first_float = first_accumulators(in_float, oz, limit)
    telling = np.minimum(first_double, first_float)[first_double != first_float]
    inputs = random_inputs(model, CRAFTED.pairs, CRAFTED.seed)
    lhs, rhs = inputs[o.lhs], inputs[o.rhs]
    chosen: list[int] = []
    for acc in telling[np.abs(telling) <= limit][: CRAFTED.pairs]:
        split = split_accumulator(int(acc), depth, (-128 - lz, 127 - lz), (-128 - rz, 127 - rz))
        if split is not None:
            lhs[len(chosen), 0, 0, :] = np.array(split[0]) + lz
            rhs[len(chosen), 0, :, 0] = np.array(split[1]) + rz
            chosen.append(int(acc))
    assert len(chosen) >= 8, "too few accumulators tell the two products apart"
    n = len(chosen)
    crafted = [x[:n] for x in inputs]
    acc = (lhs[:n, 0, 0, :].astype(np.int64) - lz) * (rhs[:n, 0, :, 0].astype(np.int64) - rz)
    assert acc.sum(axis=1).tolist() == chosen
    want = requantize(np.array(chosen), in_double, oz)
    assert not np.any(want == requantize(np.array(chosen), in_float, oz))

    rc, ours = harness.run(model, crafted)
    assert rc == RUN_OK, harness.log
    assert ours[:, 0, 0, 0].tolist() == want.tolist()
    assert int(np.count_nonzero(ours != tflm_outputs(model, crafted))) == 0
    assert int(np.count_nonzero(ours != formula_outputs(model, crafted))) == 0


@pytest.mark.slow
@pytest.mark.usefixtures("host_gcc")
def test_library_ops_and_own_ops_mix_in_one_resolver(harness: Harness):
    model = attention_model()
    assert inspect_tflite(model).ops == ["BATCH_MATMUL", "ADD", "SOFTMAX"]
    inputs = random_inputs(model, 200, seed=13)

    rc, ours = harness.run(model, inputs, OP_ADD | OP_SOFTMAX)
    assert rc == RUN_OK, harness.log
    assert int(np.count_nonzero(ours != tflm_outputs(model, inputs))) == 0

    rc, _ = harness.run(model, inputs[:1], OP_SOFTMAX)
    assert rc == ALLOCATE_FAILED and "ADD" in harness.log
    rc, _ = harness.run(model, inputs[:1], OP_ADD | OP_SOFTMAX | NO_BATCH_MATMUL)
    assert rc == ALLOCATE_FAILED and "BATCH_MATMUL" in harness.log


@functools.cache
def two_matmuls_model() -> bytes:
    """softmax(a b^T) b: both SIMD layouts (adj_y, then no adjoint) with k and column tails."""
    from tinyhar.lite.keras_env import tf

    case = Case("two-matmuls", (1, 21, 12), (1, 21, 12), seed=18)

    class TwoMatMuls(tf.Module):
        @tf.function(input_signature=_signature(case))
        def f(self, a, b):
            return tf.linalg.matmul(tf.nn.softmax(tf.linalg.matmul(a, b, adjoint_b=True)), b)

    return _convert(TwoMatMuls(), lambda: _representative(case), True)


@pytest.mark.slow
@pytest.mark.usefixtures("arm_gcc")
def test_kernel_on_the_m4_under_qemu_matches_python_tflm(libraries: Path, tmp_path: Path):
    """The real SMLAD/SXTB16/PKHBT instructions: the harness on QEMU's Cortex-M4F."""
    require_tools("qemu-system-arm", apt="qemu-system-arm")
    model = two_matmuls_model()
    assert inspect_tflite(model).ops == ["BATCH_MATMUL", "SOFTMAX"]
    inputs = random_inputs(model, 8, seed=18)
    elf = build_qemu_image(libraries, tmp_path, model, inputs, ops=OWN_SOFTMAX)
    run = run_qemu_image(elf, model, runs=8)
    assert run.rc == RUN_OK, run.text
    want = tflm_outputs(model, inputs)
    assert run.outputs.shape == want.shape
    assert int(np.count_nonzero(run.outputs != want)) == 0
    assert len(np.unique(want)) > 50
    assert [name for name, _ in run.nodes] == ["BATCH_MATMUL", "SOFTMAX", "BATCH_MATMUL"]
    assert all(ticks > 0 for _, ticks in run.nodes)


def test_requantizer_equals_the_librarys_multiply_by_quantized_multiplier(harness: Harness):
    """tinyhar_requantize.h, used by the kernels, against the library's function on 2 million
    inputs, half of them next to a rounding boundary."""
    bad, near = harness.requantize_mismatches(2_000_000, seed=19)
    assert near > 500_000
    assert bad == 0


@pytest.mark.usefixtures("host_gcc")
def test_resolver_hands_out_the_registration_as_batch_matmul(harness: Harness):
    facts = harness.resolver_facts()
    assert facts[:2] == [0, 0]  # library().AddAdd() and AddBatchMatMul() succeed
    assert facts[2] == schema.BuiltinOperator.BATCH_MATMUL  # builtin_code of the copy
    assert facts[3:7] == [1, 1, 1, 1]  # kernel functions, ParseBatchMatMul, ADD from library
    assert facts[7] != 0 and facts[8] != 0  # a second BATCH_MATMUL, a second own op: refused
    assert facts[9] == 1  # through the MicroOpResolver interface too


@pytest.mark.slow
@pytest.mark.usefixtures("host_gcc")
def test_a_float_batch_matmul_is_refused_in_prepare(harness: Harness):
    model = matmul_model(CASES[2], quantize=False)
    assert [t.dtype for t in inspect_tflite(model).inputs] == ["float32", "float32"]
    inputs = [np.zeros((1, *t.shape), np.float32) for t in inspect_tflite(model).inputs]
    rc, _ = harness.run(model, inputs)
    assert rc == ALLOCATE_FAILED
    assert "BATCH_MATMUL (tinyhar): only per-tensor quantized int8" in harness.log
    assert "got FLOAT32 x FLOAT32 -> FLOAT32" in harness.log


@pytest.mark.parametrize("library", TFLM_LIBRARIES)
@pytest.mark.parametrize("toolchain", [HOST, CORTEX_M4F], ids=lambda tc: tc.name)
def test_kernel_and_resolver_compile_without_warnings(
    library: str,
    toolchain: Toolchain,
    libraries: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
):
    """-Wall -Wextra -Werror against both libraries' headers: C++11 on the host, the M4F
    toolchain's own standard for the board."""
    request.getfixturevalue("host_gcc" if toolchain is HOST else "arm_gcc")
    src = libraries / library / "src"
    std = ("-std=gnu++11",) if toolchain is HOST else ()
    objects = compile_sources(
        toolchain,
        [*(KERNELS / k for k in OWN_SOURCES), RESOLVER_USE],
        [KERNELS, *include_dirs(src)],
        DEFINES if toolchain is HOST else (),  # the board's toolchain has the core's defines
        (*OWN_WARNINGS, *std),
        out_dir=tmp_path,
        what="tinyhar kernel sources",
    )
    assert all(o.stat().st_size > 0 for o in objects)
