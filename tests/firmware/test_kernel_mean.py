"""tinyhar's int8 MEAN kernel (firmware_templates/kernels/tinyhar_mean.cpp), built for the host
with the Chirale TFLM library (scalar and with the emulated DSP) and on QEMU's Cortex-M4F, compared
byte for byte with the Python TFLM interpreter; and how far the library's own MEAN is from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.commands import require_tools
from helpers.kernel_harness import (
    ALLOCATE_FAILED,
    OP_MEAN,
    OWN_MEAN,
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
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning"),
    pytest.mark.filterwarnings("ignore:Statistics for quantized inputs were expected:UserWarning"),
]

# GlobalAveragePooling1D of a trained `tiny`: the attention output [1, 50, 64] over time.
GAP = ((1, 50, 64), (1,), False, (0.00784263, -1), (0.04199941, -93))


@pytest.fixture(scope="module")
def libraries() -> Path:
    return libraries_root()


@pytest.fixture(scope="module", params=["scalar", "emulated-dsp"])
def harness(request: pytest.FixtureRequest, libraries: Path) -> Harness:
    require_tools("gcc", "g++", apt="gcc g++")
    return host_harness(libraries, emulate_dsp=request.param == "emulated-dsp")


def mean_model(shape, axes, keep_dims, q_in, q_out) -> bytes:
    """MEAN of an int8 tensor over constant `axes` (negative and repeated ones allowed)."""
    rank = len(shape)
    reduced = {a % rank for a in axes}
    if keep_dims:
        out = tuple(1 if i in reduced else d for i, d in enumerate(shape))
    else:
        out = tuple(d for i, d in enumerate(shape) if i not in reduced)
    options = schema.ReducerOptionsT()
    options.keepDims = keep_dims
    axis = Tensor((len(axes),), "int32", data=np.array(axes, np.int32))
    return single_op_model(
        "MEAN", [Tensor(tuple(shape), "int8", *q_in), axis], [Tensor(out, "int8", *q_out)], options
    )


def run_both(harness: Harness, model: bytes, inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tinyhar's outputs, the library's, the Python TFLM interpreter's)."""
    rc, ours = harness.run(model, inputs, OWN_MEAN)
    assert rc == RUN_OK, harness.log
    rc, library = harness.run(model, inputs, OP_MEAN)
    assert rc == RUN_OK, harness.log
    return ours, library, tflm_outputs(model, inputs)


def random_case(rng: np.random.Generator) -> tuple:
    rank = int(rng.integers(1, 6))
    shape = (100_000,)
    while np.prod(shape) > 20_000:  # the interpreters' arenas
        shape = tuple(int(d) for d in rng.choice([1, 2, 3, 4, 5, 7, 9, 16, 33], size=rank))
    count = int(rng.integers(1, rank + 1))
    axes = [int(a) for a in rng.choice(np.arange(-rank, rank), size=count)]  # repeats, negatives
    q_in = (float(10 ** rng.uniform(-3, 0)), int(rng.integers(-128, 128)))
    q_out = (q_in[0] * float(10 ** rng.uniform(-1.5, 1.5)), int(rng.integers(-128, 128)))
    return shape, axes, bool(rng.random() < 0.5), q_in, q_out


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
@pytest.mark.usefixtures("host_gcc")
def test_random_shapes_axes_and_scales_match_the_interpreter(seed: int, harness: Harness):
    rng = np.random.default_rng(seed)
    compared = 0
    for _ in range(8):
        case = random_case(rng)
        model = mean_model(*case)
        inputs = random_inputs(model, 10, seed)
        ours, library, want = run_both(harness, model, inputs)
        assert int(np.count_nonzero(ours != want)) == 0, case
        assert int(np.abs(library.astype(int) - want).max()) <= 1, case
        compared += want.size
    assert compared > 100


CRAFTED = {
    "gap-tiny": GAP,
    "gap-width-12": ((1, 50, 12), (1,), False, (0.0784, 3), (0.042, -93)),
    "t-1": ((1, 1, 64), (1,), False, (0.05, 7), (0.05, 7)),
    "t-1-keep-dims": ((1, 1, 6), (-2,), True, (0.05, 7), (0.02, -7)),
    # more than 256 rows: the 16-bit lanes are flushed; 7 columns: a 3-column tail
    "t-3000": ((1, 3000, 7), (1,), False, (0.01, -128), (0.02, 127)),
    # the last axis: contiguous sums, flushed every 128 words
    "last-axis-700": ((3, 700), (-1,), False, (0.1, 20), (0.05, -4)),
    "all-axes": ((2, 3, 4, 5, 6), (0, 1, 2, 3, 4), False, (0.1, 0), (0.1, 0)),
    "first-and-last": ((3, 4, 5), (0, 2), False, (0.5, -7), (0.01, 0)),
    "two-blocks-keep-dims": ((2, 3, 5, 7), (3, 1), True, (0.1, 5), (0.05, -3)),
    # input scale / output scale = 100: QuantizeMultiplier's shift is positive
    "multiplier-above-1": ((1, 20, 8), (1,), False, (1.0, 0), (0.01, 0)),
    "multiplier-tiny": ((1, 20, 8), (1,), False, (1e-6, 3), (1.0, -5)),
    "size-1-axis": ((4, 1, 6), (1,), False, (0.1, 2), (0.1, 2)),
}


@pytest.mark.parametrize("name", list(CRAFTED))
@pytest.mark.usefixtures("host_gcc")
def test_crafted_edges_match_the_interpreter(name: str, harness: Harness):
    model = mean_model(*CRAFTED[name])
    inputs = random_inputs(model, 30, seed=4)
    ours, library, want = run_both(harness, model, inputs)
    assert int(np.count_nonzero(ours != want)) == 0
    assert int(np.abs(library.astype(int) - want).max()) <= 1
    if name == "multiplier-above-1":
        assert {-128, 127} <= set(np.unique(want).tolist())  # saturates


@pytest.mark.usefixtures("host_gcc")
def test_the_library_mean_is_one_lsb_off_the_interpreter_where_tinyhar_is_exact(harness: Harness):
    """Chirale_TensorFLowLite 2.0.0's MEAN divides in float: on the GlobalAveragePooling1D of a
    trained `tiny` it is +-1 off the Python TFLM interpreter on about 1 % of the outputs."""
    model = mean_model(*GAP)
    inputs = random_inputs(model, 500, seed=5)
    ours, library, want = run_both(harness, model, inputs)
    assert int(np.count_nonzero(ours != want)) == 0
    diff = library.astype(int) - want
    assert set(np.unique(diff).tolist()) == {-1, 0, 1}
    assert 0.001 < np.count_nonzero(diff) / diff.size < 0.05


@pytest.mark.usefixtures("host_gcc")
def test_arena_stays_below_the_librarys(harness: Harness):
    """tinyhar's MEAN needs no scratch buffer; the library's takes an int32 per output."""
    model = mean_model(*GAP)
    inputs = random_inputs(model, 1, seed=6)
    assert harness.run(model, inputs, OWN_MEAN)[0] == RUN_OK
    ours = harness.arena_used
    assert harness.run(model, inputs, OP_MEAN)[0] == RUN_OK
    assert ours < harness.arena_used


@pytest.mark.usefixtures("host_gcc")
def test_a_runtime_axis_and_other_types_are_refused(harness: Harness):
    options = schema.ReducerOptionsT()
    model = single_op_model(
        "MEAN",
        [Tensor((1, 5, 4), "int8", 0.1, 0), Tensor((1,), "int32")],
        [Tensor((1, 4), "int8", 0.1, 0)],
        options,
    )
    inputs = [np.zeros((1, 1, 5, 4), np.int8), np.ones((1, 1), np.int32)]
    rc, _ = harness.run(model, inputs, OWN_MEAN)
    assert rc == ALLOCATE_FAILED
    assert "MEAN (tinyhar): the axis must be a constant int32 tensor" in harness.log

    axis = Tensor((1,), "int32", data=np.array([1], np.int32))
    model = single_op_model(
        "MEAN",
        [Tensor((1, 5, 4), "int16", 0.1, 0), axis],
        [Tensor((1, 4), "int16", 0.1, 0)],
        options,
    )
    rc, _ = harness.run(model, [np.zeros((1, 1, 5, 4), np.int16)], OWN_MEAN)
    assert rc == ALLOCATE_FAILED
    assert "MEAN (tinyhar): only per-tensor quantized int8 input and output, got INT16" in (
        harness.log
    )


# --- a converted model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted() -> bytes:
    """Keras GlobalAveragePooling1D over [1, 50, 12], converted to full int8."""
    from tinyhar.lite.keras_env import keras, tf

    inp = keras.Input((50, 12), batch_size=1)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling1D()(inp))
    rng = np.random.default_rng(12)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        [rng.normal(0.5, 2, (1, 50, 12)).astype(np.float32)] for _ in range(32)
    )
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.mark.slow
@pytest.mark.usefixtures("host_gcc")
def test_a_converted_global_average_pooling_matches_the_interpreter(
    converted: bytes, harness: Harness
):
    assert inspect_tflite(converted).ops == ["MEAN"]
    inputs = random_inputs(converted, 200, seed=13)
    ours, library, want = run_both(harness, converted, inputs)
    assert int(np.count_nonzero(ours != want)) == 0
    assert int(np.abs(library.astype(int) - want).max()) <= 1


@pytest.mark.slow
@pytest.mark.usefixtures("arm_gcc")
def test_on_the_m4_under_qemu_it_matches_the_interpreter(libraries: Path, tmp_path: Path):
    require_tools("qemu-system-arm", apt="qemu-system-arm")
    model = mean_model(*GAP)
    inputs = random_inputs(model, 6, seed=14)
    run = run_qemu_image(build_qemu_image(libraries, tmp_path, model, inputs, OWN_MEAN), model,
                         runs=6)  # fmt: skip
    assert run.rc == RUN_OK, run.text
    assert int(np.count_nonzero(run.outputs != tflm_outputs(model, inputs))) == 0
    assert [name for name, _ in run.nodes] == ["MEAN"]
    assert 0 < run.instructions(0, 6) < 3200 * 10  # the library's takes about 140 per element
