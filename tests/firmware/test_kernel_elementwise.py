"""tinyhar's int8 ADD and MUL kernels (firmware_templates/kernels/tinyhar_elementwise.cpp), built
for the host with the Chirale TFLM library and on QEMU's Cortex-M4F, compared byte for byte with the
Python TFLM interpreter and with the library's kernels (CMSIS-NN elementwise, reference broadcast)
on every int8 case the library runs: equal shapes and broadcasting up to 4 dimensions, fused
activations. Above 4 dimensions the library aborts on a broadcast; tinyhar's kernel matches the
interpreter there too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.commands import require_tools
from helpers.kernel_harness import (
    ALLOCATE_FAILED,
    OP_ADD,
    OP_MUL,
    OWN_ADD,
    OWN_MUL,
    RUN_OK,
    Harness,
    Tensor,
    build_qemu_image,
    graph_model,
    host_harness,
    libraries_root,
    random_inputs,
    run_qemu_image,
    single_op_model,
    tflm_outputs,
)
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinyhar.lite.tflite_inspect import inspect_tflite

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning"),
    pytest.mark.filterwarnings("ignore:Statistics for quantized inputs were expected:UserWarning"),
]
BITS = {"ADD": (OWN_ADD, OP_ADD), "MUL": (OWN_MUL, OP_MUL)}
ACTIVATIONS = [
    schema.ActivationFunctionType.NONE,
    schema.ActivationFunctionType.RELU,
    schema.ActivationFunctionType.RELU_N1_TO_1,
    schema.ActivationFunctionType.RELU6,
]
# The unfolded batch norm of a trained `tiny`: conv output [1, 1, 100, 64] times and plus [64].
BN_MUL = ((0.04219012, -128), (0.04009912, -128), (0.04592350, -107))
BN_ADD = ((0.04592350, -107), (0.00373338, 127), (0.04425482, -106))


@pytest.fixture(scope="module")
def libraries() -> Path:
    return libraries_root()


@pytest.fixture(scope="module", params=["scalar", "emulated-dsp"])
def harness(request: pytest.FixtureRequest, libraries: Path) -> Harness:
    require_tools("gcc", "g++", apt="gcc g++")
    return host_harness(libraries, emulate_dsp=request.param == "emulated-dsp")


def options(op: str, activation: int = 0):
    o = schema.AddOptionsT() if op == "ADD" else schema.MulOptionsT()
    o.fusedActivationFunction = activation
    return o


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(a, b))


def model(op, shape1, shape2, quant, activation=0, constant: np.ndarray | None = None) -> bytes:
    """input1 op input2 (a constant when given) -> their broadcast shape."""
    (s1, z1), (s2, z2), (so, zo) = quant
    out = broadcast_shape(shape1, shape2)
    return single_op_model(
        op,
        [Tensor(shape1, "int8", s1, z1), Tensor(shape2, "int8", s2, z2, constant)],
        [Tensor(out, "int8", so, zo)],
        options(op, activation),
    )


def compare(harness: Harness, op: str, m: bytes, inputs, library: bool = True) -> tuple[int, int]:
    """(bytes where tinyhar's kernel, where the library's differ from the interpreter; -1 for
    the library when not run)."""
    own, theirs = BITS[op]
    want = tflm_outputs(m, inputs)
    rc, ours = harness.run(m, inputs, own)
    assert rc == RUN_OK, harness.log
    assert ours.shape == want.shape
    differ = -1
    if library:
        rc, lib = harness.run(m, inputs, theirs)
        assert rc == RUN_OK, harness.log
        differ = int(np.count_nonzero(lib != want))
    return int(np.count_nonzero(ours != want)), differ


def random_shapes(rng: np.random.Generator, max_rank: int) -> tuple[tuple, tuple]:
    """Two shapes that broadcast: per dimension equal, or one of them 1; ranks may differ."""
    rank = int(rng.integers(1, max_rank + 1))
    full = [int(d) for d in rng.choice([1, 2, 3, 4, 5, 8, 13], size=rank)]
    a, b = [], []
    for d in full:
        kind = rng.integers(0, 3)
        a.append(1 if kind == 1 else d)
        b.append(1 if kind == 2 else d)
    drop = int(rng.integers(0, rank))  # b may have fewer dimensions
    return tuple(a), tuple(b[drop:]) or (1,)


def random_quant(rng: np.random.Generator, op: str) -> tuple:
    s1, s2 = (float(10 ** rng.uniform(-3, 0)) for _ in range(2))
    so = (s1 * s2 if op == "MUL" else max(s1, s2)) * float(10 ** rng.uniform(-1, 1.5))
    z1, z2, zo = (int(z) for z in rng.integers(-128, 128, size=3))
    return (s1, z1), (s2, z2), (so, zo)


@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@pytest.mark.usefixtures("host_gcc")
def test_random_broadcasts_match_the_interpreter_and_the_library(
    op: str, seed: int, harness: Harness
):
    rng = np.random.default_rng(seed)
    elements = 0
    for _ in range(8):
        shape1, shape2 = random_shapes(rng, 4)
        if rng.random() < 0.5:
            shape1, shape2 = shape2, shape1
        m = model(op, shape1, shape2, random_quant(rng, op), int(rng.choice(ACTIVATIONS)))
        inputs = random_inputs(m, 8, seed)
        assert compare(harness, op, m, inputs) == (0, 0), (shape1, shape2)
        elements += 8 * int(np.prod(broadcast_shape(shape1, shape2)))
    assert elements > 500


@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.usefixtures("host_gcc")
def test_five_and_six_dimensions_match_the_interpreter(op: str, harness: Harness):
    """The library's broadcast kernels stop at 4 dimensions (they abort the process); the
    interpreter and tinyhar's go to 6."""
    rng = np.random.default_rng(7)
    cases = [((2, 1, 4, 1, 3), (1, 3, 1, 5, 3)), ((2, 3, 1, 2, 1, 3), (3, 1, 2, 4, 3)),
             ((2, 3, 4, 5, 6), (2, 3, 4, 5, 6))]  # fmt: skip
    for shape1, shape2 in cases:
        m = model(op, shape1, shape2, random_quant(rng, op))
        inputs = random_inputs(m, 4, seed=8)
        assert compare(harness, op, m, inputs, library=False)[0] == 0


CRAFTED = {
    "batch-norm-mul": ("MUL", (1, 1, 100, 64), (64,), BN_MUL, 0, True),
    "batch-norm-add": ("ADD", (1, 1, 100, 64), (64,), BN_ADD, 0, True),
    "head-batch-norm-add": ("ADD", (1, 64), (64,), BN_ADD, 0, True),
    "channel-constant-first": ("ADD", (64,), (1, 50, 64), BN_ADD, 0, False),
    "scalar": ("MUL", (1,), (3, 40), ((0.1, 5), (0.02, -3), (0.004, 9)), 0, False),
    "relu6-saturating": ("ADD", (4, 30), (4, 30), ((0.1, 0), (0.1, 0), (0.05, -128)), 3, False),
    "relu-n1-to-1": ("MUL", (4, 30), (30,), ((0.05, 0), (0.05, 0), (0.01, 0)), 2, True),
    # scale_1 scale_2 / scale_out = 40: QuantizeMultiplier's shift is positive
    "mul-multiplier-above-1": ("MUL", (2, 30), (2, 30), ((0.2, 0), (0.2, 0), (0.001, 0)), 0, False),
    "add-unequal-scales": ("ADD", (3, 20), (20,), ((1.0, 7), (0.001, -100), (0.5, 3)), 0, True),
}


@pytest.mark.parametrize("name", list(CRAFTED))
@pytest.mark.usefixtures("host_gcc")
def test_crafted_cases_match_the_interpreter_and_the_library(name: str, harness: Harness):
    op, shape1, shape2, quant, activation, constant = CRAFTED[name]
    data = np.random.default_rng(9).integers(-128, 128, shape2, dtype=np.int8) if constant else None
    m = model(op, shape1, shape2, quant, activation, data)
    inputs = random_inputs(m, 12, seed=10)
    assert compare(harness, op, m, inputs) == (0, 0)
    want = tflm_outputs(m, inputs)
    if name == "relu6-saturating":
        assert want.max() == int(round(6 / 0.05)) - 128  # 6.0 at the output's scale
    if name == "mul-multiplier-above-1":
        assert {-128, 127} <= set(np.unique(want).tolist())


@pytest.mark.usefixtures("host_gcc")
def test_the_batch_norm_takes_no_more_arena_than_the_librarys(harness: Harness):
    for op, quant in (("MUL", BN_MUL), ("ADD", BN_ADD)):
        data = np.random.default_rng(11).integers(-128, 128, (64,), dtype=np.int8)
        m = model(op, (1, 1, 100, 64), (64,), quant, 0, data)
        inputs = random_inputs(m, 1, seed=12)
        own, theirs = BITS[op]
        assert harness.run(m, inputs, own)[0] == RUN_OK
        ours = harness.arena_used
        assert harness.run(m, inputs, theirs)[0] == RUN_OK
        assert ours <= harness.arena_used + 32, op


@pytest.mark.usefixtures("host_gcc")
def test_other_types_are_refused(harness: Harness):
    m = single_op_model(
        "ADD",
        [Tensor((2, 8), "int16", 0.01, 0), Tensor((2, 8), "int16", 0.01, 0)],
        [Tensor((2, 8), "int16", 0.02, 0)],
        options("ADD"),
    )
    rc, _ = harness.run(m, [np.zeros((1, 2, 8), np.int16)] * 2, OWN_ADD)
    assert rc == ALLOCATE_FAILED
    assert "ADD (tinyhar): only per-tensor quantized int8 inputs and output, got INT16" in (
        harness.log
    )


# --- a converted batch norm, and the M4 ----------------------------------------------------------


@pytest.fixture(scope="module")
def converted() -> bytes:
    """Keras BatchNormalization (inference, trained-looking statistics) over [1, 50, 12],
    converted to full int8: the converter writes a MUL and an ADD of [12] constants."""
    from tinyhar.lite.keras_env import keras, tf

    inp = keras.Input((50, 12), batch_size=1)
    bn = keras.layers.BatchNormalization()
    model = keras.Model(inp, bn(inp))
    rng = np.random.default_rng(13)
    bn.set_weights([rng.uniform(0.5, 2, 12), rng.normal(0, 1, 12), rng.normal(0, 2, 12),
                    rng.uniform(0.2, 4, 12)])  # fmt: skip
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        [rng.normal(0, 2, (1, 50, 12)).astype(np.float32)] for _ in range(32)
    )
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.mark.slow
@pytest.mark.usefixtures("host_gcc")
def test_a_converted_batch_norm_matches_the_interpreter(converted: bytes, harness: Harness):
    assert inspect_tflite(converted).ops == ["MUL", "ADD"]
    inputs = random_inputs(converted, 100, seed=14)
    want = tflm_outputs(converted, inputs)
    rc, ours = harness.run(converted, inputs, OWN_ADD | OWN_MUL)
    assert rc == RUN_OK, harness.log
    assert int(np.count_nonzero(ours != want)) == 0
    rc, lib = harness.run(converted, inputs, OP_ADD | OP_MUL)
    assert rc == RUN_OK, harness.log
    assert int(np.count_nonzero(lib != want)) == 0


@pytest.mark.slow
@pytest.mark.usefixtures("arm_gcc")
def test_on_the_m4_under_qemu_the_batch_norm_matches_the_interpreter(
    libraries: Path, tmp_path: Path
):
    require_tools("qemu-system-arm", apt="qemu-system-arm")
    rng = np.random.default_rng(15)
    (s1, z1), (sc, zc), (sm, zm) = BN_MUL
    _, (sa, za), (so, zo) = BN_ADD
    tensors = [
        Tensor((1, 1, 100, 64), "int8", s1, z1),
        Tensor((64,), "int8", sc, zc, rng.integers(-128, 128, 64, dtype=np.int8)),
        Tensor((1, 1, 100, 64), "int8", sm, zm),
        Tensor((64,), "int8", sa, za, rng.integers(-128, 128, 64, dtype=np.int8)),
        Tensor((1, 1, 100, 64), "int8", so, zo),
    ]
    m = graph_model(
        tensors, [("MUL", [0, 1], [2], options("MUL")), ("ADD", [2, 3], [4], options("ADD"))], [4]
    )
    inputs = random_inputs(m, 3, seed=16)
    run = run_qemu_image(build_qemu_image(libraries, tmp_path, m, inputs, OWN_ADD | OWN_MUL), m,
                         runs=3)  # fmt: skip
    assert run.rc == RUN_OK, run.text
    assert int(np.count_nonzero(run.outputs != tflm_outputs(m, inputs))) == 0
    assert [name for name, _ in run.nodes] == ["MUL", "ADD"]
    # the library's reference broadcast takes about 69 and 159 per element
    assert run.instructions(0, 3) < 6400 * 50 and run.instructions(1, 3) < 6400 * 80
