"""tinyhar's int8 UNIDIRECTIONAL_SEQUENCE_LSTM kernel (firmware_templates/kernels/tinyhar_lstm.cpp)
against the Python TFLM interpreter, byte for byte on whole output sequences.

The kernel is built for the host twice with the Chirale TFLM library (tests/c/lstm_harness.cpp):
its scalar path, and its SIMD path on the C equivalents of the Cortex-M4 DSP instructions
(-DTINYHAR_EMULATE_DSP); once for the Cortex-M4F, run under QEMU with the real instructions.
Models are tf_keras LSTMs converted by tinyhar's converter (tests/helpers/lstm_models.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers.commands import require_tools
from helpers.lstm_models import (
    ALLOCATE_FAILED,
    KEEP_STATE,
    KERNEL,
    KERNELS,
    LIBRARY_KERNEL,
    RUN_OK,
    Harness,
    LstmSpec,
    M4Case,
    build_host_harness,
    build_m4_harness,
    calibrated_inputs,
    lstm_model,
    lstm_node,
    random_inputs,
    run_m4_harness,
    tflm_sequences,
    with_batches,
    with_lstm_options,
    with_quantization,
    with_tensor_types,
)
from helpers.paths import TESTS
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinyhar.board.tflm_library import include_dirs, libraries_dir
from tinyhar.deploy.native_build import CORTEX_M4F, OWN_WARNINGS, compile_sources

CHIRALE = "Chirale_TensorFLowLite"
TFLM_LIBRARIES = (CHIRALE, "Arduino_TensorFlowLite")
# The converter's calibrator still uses tf.lite.Interpreter.
pytestmark = pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")

# Random shapes: odd widths, a width of 1, more units than inputs and the reverse.
RANDOM_SPECS = [
    LstmSpec(10, 6, 5, seed=0),
    LstmSpec(7, 13, 9, seed=1),
    LstmSpec(16, 3, 17, seed=2),
    LstmSpec(24, 32, 24, seed=3, kernel_std=0.2, recurrent_std=0.3),
    LstmSpec(5, 1, 2, seed=4),
]
# Cell state scale 2^power: the converter takes it from the calibrated cell range (under +-2:
# 2^-14, under +-4: 2^-13, ...); the biases hold the cell near a target (lstm_models._weights).
CELL_SPECS = {
    -14: LstmSpec(20, 6, 8, seed=5, kernel_std=0.05, recurrent_std=0.05, cell_target=1.5),
    -13: LstmSpec(20, 6, 8, seed=5, kernel_std=0.05, recurrent_std=0.05, cell_target=3.0),
    -12: LstmSpec(20, 6, 8, seed=5, kernel_std=0.05, recurrent_std=0.05, cell_target=6.0),
    -11: LstmSpec(20, 6, 8, seed=5, kernel_std=0.05, recurrent_std=0.05, cell_target=12.0),
}
# Calibrated on small inputs, run on the whole int8 range: gates, cell and output saturate.
SATURATING_SPEC = LstmSpec(12, 8, 6, seed=7, input_std=0.2, kernel_std=0.8, recurrent_std=0.8)
# So wide an input for so few units that the widened copies would take more arena than the
# reference kernel: the SIMD build takes the scalar path.
WIDE_SPEC = LstmSpec(6, 203, 2, seed=8)
RUNS = 12
CORPUS = TESTS / "corpus" / "lstm"  # a trained model's LSTM and its inputs


@pytest.fixture(scope="module")
def chirale_src() -> Path:
    """Chirale_TensorFLowLite's src/ in the Arduino libraries ($TINYHAR_ARDUINO_LIBRARIES, which
    conftest points at shared/arduino/libraries beside the repository)."""
    libraries = libraries_dir()
    src = libraries / CHIRALE / "src"
    if not (libraries / CHIRALE / "library.properties").is_file():
        msg = f"the Arduino TFLM libraries are not in {libraries}"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {msg}; the CI checkout must carry shared/ beside the repository")
        pytest.skip(msg)
    return src


@pytest.fixture(scope="module")
def harnesses(chirale_src: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Harness]:
    """The harness built twice: the kernel's scalar path and its SIMD path (emulated DSP)."""
    require_tools("gcc", "g++", apt="gcc g++")
    out = tmp_path_factory.mktemp("lstm_harness")
    return {
        name: Harness(build_host_harness(chirale_src, out / name, simd))
        for name, simd in (("scalar", False), ("simd", True))
    }


def same_as_tflm(
    harnesses: dict[str, Harness], model: bytes, x: np.ndarray, keep_state: bool = False
) -> np.ndarray:
    """Asserts both builds of the kernel give the interpreter's output sequences; returns them."""
    want = tflm_sequences(model, x, keep_state)
    for name, harness in harnesses.items():
        rc, got = harness.run(model, x, KEEP_STATE if keep_state else 0)
        assert rc == RUN_OK, f"{name}: {harness.log}"
        assert got.shape == want.shape
        differ = np.argwhere(got != want)
        assert len(differ) == 0, f"{name}: {len(differ)} bytes differ, first at {differ[0]}"
    return want


# --- the arithmetic, against the library's reference functions -----------------------------------


def test_requantize_matches_multiply_by_quantized_multiplier(harnesses):
    """The one-SMLAL form of MultiplyByQuantizedMultiplier for right shifts, and the steps for
    the rest, on edge values and random ones, multipliers from 2^-40 to 2^8."""
    for harness in harnesses.values():
        bad, checked = harness.check_requantize(multipliers=2000, values=2000, seed=2026)
        assert checked > 3_000_000
        assert bad == 0


def test_sigmoid_and_tanh_match_the_reference_on_every_int16(harnesses):
    for harness in harnesses.values():
        assert harness.check_sigmoid() == 0
        for power in range(-16, -8):  # -12: the cell gate's tanh; the others: the cell's
            assert harness.check_tanh(power) == 0, power


# --- against the interpreter ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("spec", RANDOM_SPECS, ids=lambda s: f"T{s.steps}-I{s.inputs}-U{s.units}")
def test_random_shapes_match_python_tflm_byte_for_byte(spec: LstmSpec, harnesses):
    model = lstm_model(spec)
    x = np.concatenate(
        [random_inputs(model, RUNS, spec.seed), calibrated_inputs(model, spec, RUNS, spec.seed)]
    )
    want = same_as_tflm(harnesses, model, x)
    assert want.shape == (2 * RUNS, 1, spec.steps, spec.units)  # the whole sequence
    assert len(np.unique(want)) > min(50, want.size // 8)  # not a saturated constant


def test_a_trained_lstm_where_float_and_double_scale_products_part_matches_python_tflm(harnesses):
    """The LSTM of a `tiny` trained 1 epoch on synthetic data (cell scale 2^-13, clip 10), alone,
    on the three windows of 200 where a gate multiplier from the float product of the input and
    weight scales (as older TFLMs take it) gave 1 LSB off the interpreter's double product."""
    model = (CORPUS / "trained_cell2e-13.tflite").read_bytes()
    x = np.load(CORPUS / "trained_cell2e-13_inputs.npy")[:, None]
    assert lstm_node(model).cell_power == -13
    same_as_tflm(harnesses, model, x)


@pytest.mark.slow
@pytest.mark.parametrize("power", [-14, -13, -11])
def test_cell_state_scales_match_python_tflm(power: int, harnesses):
    spec = CELL_SPECS[power]
    model = lstm_model(spec)
    node = lstm_node(model)
    assert node.cell_scale == 2.0**power  # the flatbuffer's cell state scale is the case's
    x = np.concatenate([calibrated_inputs(model, spec, RUNS, 1), random_inputs(model, RUNS, 2)])
    want = same_as_tflm(harnesses, model, x)
    assert len(np.unique(want)) > 50


@pytest.mark.slow
def test_the_library_lstm_loses_the_cell_state_below_2e_minus_12_and_tinyhar_does_not(
    harnesses,
):
    """Chirale's kernel shifts the cell state right in place when its scale is finer than
    2^-12: its outputs leave the interpreter's at 2^-14 and 2^-13, not at 2^-12 or 2^-11."""
    simd = harnesses["simd"]
    for power, spec in CELL_SPECS.items():
        model = lstm_model(spec)
        assert lstm_node(model).cell_power == power
        x = calibrated_inputs(model, spec, RUNS, 3)
        want = tflm_sequences(model, x)
        rc, library = simd.run(model, x, LIBRARY_KERNEL)
        assert rc == RUN_OK, simd.log
        rc, ours = simd.run(model, x)
        assert rc == RUN_OK, simd.log
        assert np.array_equal(ours, want)
        off = np.abs(library.astype(int) - want)
        if power < -12:
            assert np.count_nonzero(off) > want.size // 4, power
            assert off.max() >= 4, power  # several LSB
            assert off[:, :, -5:].mean() > off[:, :, 0].mean(), power  # growing with the steps
        else:
            assert np.count_nonzero(off) == 0, power


@pytest.mark.slow
def test_saturating_inputs_match_python_tflm(harnesses):
    from tflite_micro.python.tflite_micro import runtime

    model = lstm_model(SATURATING_SPEC)
    node = lstm_node(model)
    x = random_inputs(model, RUNS, 9)
    x[0], x[1] = -128, 127
    x[2, ..., ::2], x[2, ..., 1::2] = 127, -128
    want = same_as_tflm(harnesses, model, x)
    assert want.min() == -128
    # the cell state reaches its int16 limit (clipped to +-32767 by the converter's cell_clip)
    interpreter = runtime.Interpreter.from_bytes(
        model, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors
    )
    interpreter.set_input(x[0], 0)
    interpreter.invoke()
    cell = interpreter.GetTensor(node.inputs[19], 0)["tensor_data"]
    assert np.abs(cell.astype(int)).max() == 32767


@pytest.mark.slow
@pytest.mark.parametrize("clip", [0.0, 0.5], ids=["no-clip", "clip-0.5"])
def test_cell_clip_matches_python_tflm(clip: float, harnesses):
    """The converter sets cell_clip 10 (past int16 at these scales); 0 turns clipping off, so the
    cell saturates at -32768 too; 0.5 clips it at 0.5 / 2^-13 = 4096."""
    from tflite_micro.python.tflite_micro import runtime

    model = with_lstm_options(lstm_model(SATURATING_SPEC), cellClip=clip)
    node = lstm_node(model)
    assert node.cell_clip == clip and node.cell_power == -13
    x = random_inputs(model, RUNS, 10)
    x[0], x[1] = -128, 127
    same_as_tflm(harnesses, model, x)
    interpreter = runtime.Interpreter.from_bytes(
        model, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors
    )
    extremes = set()
    for run in x:
        interpreter.reset()
        interpreter.set_input(run, 0)
        interpreter.invoke()
        cell = interpreter.GetTensor(node.inputs[19], 0)["tensor_data"].astype(int)
        extremes |= {cell.min(), cell.max()}
    assert (min(extremes), max(extremes)) == ((-4096, 4096) if clip else (-32768, 32767))


@pytest.mark.slow
def test_extreme_zero_points_match_python_tflm(harnesses):
    """Input and hidden state zero points at the ends of int8, and weights with zero points
    (the converter's are 0; the reference kernel subtracts them anyway)."""
    spec = RANDOM_SPECS[1]
    model = lstm_model(spec)
    node = lstm_node(model)
    ins = node.inputs
    for zx, zh in ((-128, 127), (127, -128)):
        edited = with_quantization(
            model,
            {
                ins[0]: (node.input_quant[0], zx),
                ins[18]: (node.hidden_quant[0], zh),
                node.output: (node.hidden_quant[0], zh),
            },
        )
        want = same_as_tflm(harnesses, edited, random_inputs(edited, RUNS, 4))
        assert len(np.unique(want)) > 10
    from tinyhar.lite.tflite_inspect import parse_model

    tensors = parse_model(model).subgraphs[0].tensors
    weights = {
        ins[k]: (float(tensors[ins[k]].quantization.scale[0]), zw)
        for k, zw in ((1, 127), (2, 3), (7, -5), (8, -128))
    }
    edited = with_quantization(model, weights)
    want = same_as_tflm(harnesses, edited, random_inputs(edited, RUNS, 5))
    assert len(np.unique(want)) > 50


@pytest.mark.slow
@pytest.mark.parametrize("shift", ["left", "right-31", "flushed"])
def test_extreme_scales_match_python_tflm(shift: str, harnesses):
    """Input (and hidden state) scales moved so that the input gates' requantization shifts left
    (multipliers above 1), right by 31 (multipliers in [2^-32, 2^-31)) or further
    (QuantizeMultiplier flushes them to 0)."""
    from tinyhar.lite.tflite_inspect import parse_model

    model = lstm_model(RANDOM_SPECS[1])
    node = lstm_node(model)
    ins = node.inputs
    (sx, zx), (sh, zh) = node.input_quant, node.hidden_quant
    tensors = parse_model(model).subgraphs[0].tensors
    unit = [sx * float(tensors[ins[k]].quantization.scale[0]) * 2**12 for k in (1, 2, 3, 4)]
    assert max(unit) / min(unit) < 1.9  # one factor puts all four in one power-of-two band
    factor = {"left": 4.0, "right-31": 2.0**-31 / (1.05 * max(unit)), "flushed": 2.0**-40}[shift]
    hidden = 4.0 if shift == "left" else 1.0
    sx, sh = sx * factor, sh * hidden
    edited = with_quantization(model, {ins[0]: (sx, zx), ins[18]: (sh, zh), node.output: (sh, zh)})
    band = {"left": (1.0, 2.0**31), "right-31": (2.0**-32, 2.0**-31), "flushed": (0, 2.0**-32)}
    low, high = band[shift]
    assert all(low <= m * factor < high for m in unit)
    want = same_as_tflm(harnesses, edited, random_inputs(edited, RUNS, 11))
    if shift == "left":  # shifted right 31 or flushed, the input's sums round to 0
        assert len(np.unique(want)) > 20


@pytest.mark.slow
@pytest.mark.parametrize("time_major", [False, True], ids=["batch-major", "time-major"])
def test_batches_match_python_tflm(time_major: bool, harnesses):
    model = with_batches(lstm_model(RANDOM_SPECS[0]), batches=3, time_major=time_major)
    assert lstm_node(model).time_major == time_major
    x = random_inputs(model, RUNS, 6)
    want = same_as_tflm(harnesses, model, x)
    assert not np.array_equal(want[:, 0], want[:, 1])  # three different sequences


@pytest.mark.slow
def test_the_state_carries_over_between_invokes_as_in_python_tflm(harnesses):
    """Without a reset, each invoke starts from the state the last one left."""
    model = lstm_model(RANDOM_SPECS[1])
    x = random_inputs(model, RUNS, 7)
    kept = same_as_tflm(harnesses, model, x, keep_state=True)
    assert not np.array_equal(kept[1:], tflm_sequences(model, x)[1:])


@pytest.mark.slow
def test_a_wide_input_for_few_units_takes_the_scalar_path(harnesses):
    model = lstm_model(WIDE_SPEC)
    same_as_tflm(harnesses, model, random_inputs(model, RUNS, 8))
    # no scratch buffers: both builds allocate the same arena
    assert harnesses["simd"].arena_used == harnesses["scalar"].arena_used
    model = lstm_model(RANDOM_SPECS[1])
    same_as_tflm(harnesses, model, random_inputs(model, 1, 8))
    assert harnesses["simd"].arena_used > harnesses["scalar"].arena_used


@pytest.mark.slow
def test_other_types_are_refused_in_prepare_with_one_line(harnesses):
    """The int16-activation LSTM (16x8, which the reference kernel also runs) is not supported."""
    model = lstm_model(RANDOM_SPECS[0])
    node = lstm_node(model)
    int16 = schema.TensorType.INT16
    edited = with_tensor_types(model, {node.inputs[0]: int16, node.inputs[18]: int16,
                                       node.output: int16})  # fmt: skip
    for harness in harnesses.values():
        rc, _ = harness.run(edited, random_inputs(edited, 1, 0))
        assert rc == ALLOCATE_FAILED
        lines = [ln for ln in harness.log.splitlines() if "(tinyhar)" in ln]
        assert lines == [
            "UNIDIRECTIONAL_SEQUENCE_LSTM (tinyhar): only int8 input/output, int8 weights, int32 "
            "bias, int16 cell state; got input INT16, weights INT8, bias INT32, cell INT16, hidden "
            "INT16, output INT16"
        ]


@pytest.mark.slow
def test_a_cell_activation_other_than_tanh_is_refused_in_prepare(harnesses):
    """The reference kernel aborts in Eval on it; this one refuses it in Prepare."""
    relu = schema.ActivationFunctionType.RELU
    model = with_lstm_options(lstm_model(RANDOM_SPECS[0]), fusedActivationFunction=relu)
    for harness in harnesses.values():
        rc, _ = harness.run(model, random_inputs(model, 1, 0))
        assert rc == ALLOCATE_FAILED
        lines = [ln for ln in harness.log.splitlines() if "(tinyhar)" in ln]
        assert lines == ["UNIDIRECTIONAL_SEQUENCE_LSTM (tinyhar): cell gate activation 1, "
                         "supported is tanh (4)"]  # fmt: skip


@pytest.mark.slow
def test_the_arena_is_no_larger_than_with_the_library_kernel(harnesses):
    """The library interpreter with tinyhar's kernel allocates no more than with its own LSTM
    and no more than the Python interpreter measures (64-bit host builds both)."""
    from tinyhar.lite.arena import measure_arena

    for spec in (RANDOM_SPECS[3], CELL_SPECS[-13], WIDE_SPEC):
        model = lstm_model(spec)
        x = random_inputs(model, 1, 0)
        rc, _ = harnesses["simd"].run(model, x, LIBRARY_KERNEL)
        assert rc == RUN_OK
        library = harnesses["simd"].arena_used
        python = measure_arena(model)
        for harness in harnesses.values():
            rc, _ = harness.run(model, x)
            assert rc == RUN_OK
            assert harness.arena_used <= min(library, python)


# --- on the Cortex-M4F under QEMU -----------------------------------------------------------------


@pytest.mark.slow
def test_the_real_dsp_instructions_match_python_tflm_under_qemu(chirale_src, tmp_path):
    """The kernel cross-compiled as the firmware is (-Os, its own -O2 pragma) with SXTB16,
    SMLAD, SSAT and post-indexed loads run by QEMU's Cortex-M4F."""
    require_tools("arm-none-eabi-g++", "qemu-system-arm",
                  apt="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")  # fmt: skip
    from tinyhar.lite.arena import measure_arena

    cell = lstm_model(CELL_SPECS[-13])
    odd = lstm_model(RANDOM_SPECS[1])
    cases = [
        M4Case(cell, calibrated_inputs(cell, CELL_SPECS[-13], 4, 1)),
        M4Case(odd, random_inputs(odd, 4, 2)),
    ]
    elf = build_m4_harness(chirale_src, tmp_path, cases)
    for case, result in zip(cases, run_m4_harness(elf, cases), strict=True):
        assert result.rc == RUN_OK
        assert np.array_equal(result.outputs, tflm_sequences(case.model, case.x))
        assert result.instructions > 0
        assert result.arena_used <= measure_arena(case.model)


# --- builds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("library", TFLM_LIBRARIES)
def test_the_kernel_compiles_for_the_board_without_warnings(library: str, tmp_path: Path):
    """-Wall -Wextra -Werror with the Nano 33 BLE core's flags (-Os, gnu++14, softfp), against
    both libraries' headers as -isystem; the M4's build takes the SIMD path."""
    require_tools("arm-none-eabi-g++", apt="gcc-arm-none-eabi libnewlib-arm-none-eabi")
    src = libraries_dir() / library / "src"
    if not src.is_dir():
        pytest.skip(f"{library} is not in {libraries_dir()}")
    objects = compile_sources(
        CORTEX_M4F,
        [KERNEL],
        [KERNELS],
        (),  # the board's toolchain carries the core's defines and flags (gnu++14, unsigned char)
        OWN_WARNINGS,
        out_dir=tmp_path,
        system_includes=include_dirs(src),
    )
    disassembly = subprocess.run(
        ["arm-none-eabi-objdump", "-d", str(objects[0])], capture_output=True, text=True, check=True
    ).stdout
    for instruction in ("smlad", "sxtb16", "ssat", "ldrd"):  # the SIMD path is the M4's
        assert f"\t{instruction}\t" in disassembly, instruction
