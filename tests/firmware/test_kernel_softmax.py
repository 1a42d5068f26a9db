"""tinyhar's int8 SOFTMAX kernel (firmware_templates/kernels/tinyhar_softmax.cpp), built for the
host with the Chirale TFLM library (scalar and with the emulated DSP) and on QEMU's Cortex-M4F,
compared byte for byte with the Python TFLM interpreter and with Chirale's CMSIS-NN softmax."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers.commands import require_tools
from helpers.kernel_harness import (
    ALLOCATE_FAILED,
    OP_SOFTMAX,
    OWN_SOFTMAX,
    RUN_OK,
    Harness,
    Tensor,
    build_qemu_image,
    host_harness,
    libraries_root,
    random_inputs,
    run_qemu_image,
    single_op_model,
    tflm_outputs,
)
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinyhar.lite.tflite_inspect import inspect_tflite

# The converter's calibrator still uses tf.lite.Interpreter.
pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")


@pytest.fixture(scope="module")
def libraries() -> Path:
    return libraries_root()


@pytest.fixture(scope="module", params=["scalar", "emulated-dsp"])
def harness(request: pytest.FixtureRequest, libraries: Path) -> Harness:
    require_tools("gcc", "g++", apt="gcc g++")
    return host_harness(libraries, emulate_dsp=request.param == "emulated-dsp")


def softmax_model(
    shape: tuple[int, ...], scale: float, zero_point: int, beta: float = 1.0, out: str = "int8"
) -> bytes:
    """SOFTMAX over the last axis of an int8 tensor; int8 or int16 output quantized as TFLite
    requires ([0, 1) over the type's range)."""
    options = schema.SoftmaxOptionsT()
    options.beta = beta
    output = (
        Tensor(shape, "int8", 1 / 256, -128)
        if out == "int8"
        else Tensor(shape, "int16", 1 / 65536, -32768)
    )
    return single_op_model("SOFTMAX", [Tensor(shape, "int8", scale, zero_point)], [output], options)


def diff_min(scale: float, beta: float) -> int:
    """The reference's -CalculateInputRadius(5, shift) for this input scale and beta."""
    real = min(float(np.float32(beta)) * float(np.float32(scale)) * (1 << 26), (1 << 31) - 1.0)
    shift = math.frexp(real)[1]  # QuantizeMultiplierGreaterThanOne's left shift
    return -math.floor(31 * (1 << 26) / (1 << shift))


def compare(harness: Harness, model: bytes, inputs: list[np.ndarray]) -> tuple[int, int]:
    """(bytes where tinyhar's kernel, bytes where the library's CMSIS-NN softmax) differ from
    the Python TFLM interpreter; both runs must succeed."""
    want = tflm_outputs(model, inputs)
    rc, ours = harness.run(model, inputs, OWN_SOFTMAX)
    assert rc == RUN_OK, harness.log
    rc, library = harness.run(model, inputs, OP_SOFTMAX)
    assert rc == RUN_OK, harness.log
    assert ours.shape == want.shape == library.shape
    return int(np.count_nonzero(ours != want)), int(np.count_nonzero(library != want))


def random_cases(seed: int, n: int = 8) -> list[tuple]:
    """(shape, scale, zero point, beta, output type) drawn at random."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        depth = int(rng.choice([1, 2, 3, 5, 12, 50, 64, 100, 255, 300, 511]))
        lead = tuple(int(d) for d in rng.integers(1, 5, size=int(rng.integers(0, 3))))
        scale = float(10 ** rng.uniform(-3, 0.3))
        beta = 1.0 if rng.random() < 0.5 else float(10 ** rng.uniform(-1.3, 0.6))
        out = "int16" if rng.random() < 0.3 else "int8"
        cases.append(((*lead, depth), scale, int(rng.integers(-128, 128)), beta, out))
    return cases


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
@pytest.mark.usefixtures("host_gcc")
def test_random_shapes_scales_and_betas_match_the_interpreter_and_cmsis_nn(
    seed: int, harness: Harness
):
    tried = 0
    for shape, scale, zero_point, beta, out in random_cases(seed):
        model = softmax_model(shape, scale, zero_point, beta, out)
        inputs = random_inputs(model, 12, seed)
        ours, library = compare(harness, model, inputs)
        assert (ours, library) == (0, 0), (shape, scale, zero_point, beta, out)
        tried += int(np.prod(shape)) * 12
    assert tried > 2000


@pytest.mark.usefixtures("host_gcc")
def test_the_non_negative_roundings_equal_gemmlowps(harness: Harness):
    """The kernel's sum and output roundings (tinyhar_requantize.h) against gemmlowp's general
    SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, ties included: random rows almost
    never land on a tie, so this is where an off-by-one in them would show."""
    assert harness.nonnegative_rounding_mismatches(2_000_000, seed=11) == 0


CRAFTED = {
    # all equal: every output is the same 1 / depth
    "all-equal-rows": ((5, 40), 0.1, 0, 1.0, "int8", lambda x: np.repeat(x[..., :1], 40, -1)),
    # only the extremes
    "-128-and-127": ((3, 64), 0.05, 0, 1.0, "int8", lambda x: np.where(x < 0, -128, 127)),
    "rows-of-1": ((4, 7, 1), 0.2, 5, 1.0, "int8", None),
    "rows-of-1-int16": ((9, 1), 0.2, 5, 1.0, "int16", None),
    "beta-0.3": ((2, 50, 50), 0.22, -93, 0.3, "int8", None),
    "beta-3.7": ((2, 50, 50), 0.22, -93, 3.7, "int8", None),
    # diff_min -31: a short table and elements below it
    "short-table": ((6, 80), 0.5, 0, 1.0, "int8", None),
    # diff_min -1: nearly everything below it
    "diff-min-near-0": ((4, 30), 10.0, 0, 1.0, "int8", None),
    # the multiplier capped at 2^31 - 1: diff_min 0
    "capped-multiplier": ((3, 30), 50.0, 0, 2.0, "int8", None),
    "tiny-scale": ((3, 64), 1e-4, 3, 1.0, "int8", None),
    "longest-int8-row": ((2, 511), 0.03, 0, 1.0, "int8", None),
    "long-int16-row": ((1, 4095), 0.01, 0, 1.0, "int16", None),
}


@pytest.mark.parametrize("name", list(CRAFTED))
@pytest.mark.usefixtures("host_gcc")
def test_crafted_edges_match_the_interpreter_and_cmsis_nn(name: str, harness: Harness):
    shape, scale, zero_point, beta, out, shape_inputs = CRAFTED[name]
    model = softmax_model(shape, scale, zero_point, beta, out)
    inputs = random_inputs(model, 10, seed=7)
    if shape_inputs is not None:
        inputs = [shape_inputs(inputs[0]).astype(np.int8)]
    assert compare(harness, model, inputs) == (0, 0)
    want = tflm_outputs(model, inputs)
    if name == "all-equal-rows":
        assert np.all(want == want[..., :1]) and len(np.unique(want)) == 1
    if name == "short-table":
        assert diff_min(scale, beta) == -31
        assert np.count_nonzero(want == -128) > want.size // 4  # below diff_min
    if name == "diff-min-near-0":
        assert diff_min(scale, beta) == -1
    if name == "capped-multiplier":
        assert diff_min(scale, beta) == 0


@pytest.mark.usefixtures("host_gcc")
def test_the_table_is_built_for_large_tensors_only(harness: Harness):
    """Arena bytes against the library's kernel: the 50x50 attention softmax of a trained `tiny`
    (scale 0.22, diff_min -124) gets its 125-entry int32 table; a 12-class softmax computes exp
    directly and takes less arena than the library's."""
    sizes = {}
    for shape in ((1, 50, 50), (1, 12)):
        model = softmax_model(shape, 0.22088, -93)
        inputs = random_inputs(model, 1, seed=3)
        assert harness.run(model, inputs, OWN_SOFTMAX)[0] == RUN_OK
        ours = harness.arena_used
        assert harness.run(model, inputs, OP_SOFTMAX)[0] == RUN_OK
        sizes[shape] = ours - harness.arena_used
    assert diff_min(0.22088, 1.0) == -124
    assert 125 * 4 - 128 <= sizes[(1, 50, 50)] <= 125 * 4 + 64
    assert sizes[(1, 12)] <= 0


@pytest.mark.usefixtures("host_gcc")
def test_rows_the_reference_cannot_represent_and_other_types_are_refused(harness: Harness):
    model = softmax_model((2, 512), 0.05, 0)
    rc, _ = harness.run(model, random_inputs(model, 1, seed=1), OWN_SOFTMAX)
    assert rc == ALLOCATE_FAILED
    assert "SOFTMAX (tinyhar): rows of 512 elements, at most 511 for INT8 output" in harness.log

    options = schema.SoftmaxOptionsT()
    options.beta = 1.0
    model = single_op_model(
        "SOFTMAX", [Tensor((2, 8), "int16", 0.01, 0)], [Tensor((2, 8), "int16", 1 / 32768, 0)],
        options,
    )  # fmt: skip
    inputs = [np.zeros((1, 2, 8), np.int16)]
    rc, _ = harness.run(model, inputs, OWN_SOFTMAX)
    assert rc == ALLOCATE_FAILED
    assert "SOFTMAX (tinyhar): only per-tensor quantized int8 -> int8 or int16, got INT16" in (
        harness.log
    )


# --- a converted model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted() -> bytes:
    """tf.nn.softmax over [1, 50, 50] scores, converted to full int8 by the TFLite converter."""
    from tinyhar.lite.keras_env import tf

    class Softmax(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((1, 50, 50), tf.float32)])
        def f(self, x):
            return tf.nn.softmax(x)

    module = Softmax()
    rng = np.random.default_rng(8)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()],
                                                           module)  # fmt: skip
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        {"x": rng.normal(0, 6, (1, 50, 50)).astype(np.float32)} for _ in range(32)
    )
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.mark.slow
@pytest.mark.usefixtures("host_gcc")
def test_a_converted_softmax_matches_the_interpreter(converted: bytes, harness: Harness):
    assert inspect_tflite(converted).ops == ["SOFTMAX"]
    inputs = random_inputs(converted, 40, seed=9)
    assert compare(harness, converted, inputs) == (0, 0)


@pytest.mark.slow
@pytest.mark.usefixtures("arm_gcc")
def test_on_the_m4_under_qemu_it_matches_the_interpreter(libraries: Path, tmp_path: Path):
    require_tools("qemu-system-arm", apt="qemu-system-arm")
    model = softmax_model((1, 50, 50), 0.22088, -93)
    inputs = random_inputs(model, 4, seed=10)
    run = run_qemu_image(build_qemu_image(libraries, tmp_path, model, inputs, OWN_SOFTMAX),
                         model, runs=4)  # fmt: skip
    assert run.rc == RUN_OK, run.text
    assert int(np.count_nonzero(run.outputs != tflm_outputs(model, inputs))) == 0
    assert [name for name, _ in run.nodes] == ["SOFTMAX"]
    assert 0 < run.instructions(0, 4) < 2500 * 100  # the library's takes about 400 per element
