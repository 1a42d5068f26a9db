"""int8/float conversion for TFLM, flatbuffer inspection, and arena measurement by bisection."""

from __future__ import annotations

import numpy as np
import pytest

from tinyhar.errors import TinyharError
from tinyhar.lite.arena import RESOLUTION, arena_works, measure_arena
from tinyhar.lite.convert import _convert, tf, to_float_tflite, to_int8_tflite
from tinyhar.lite.keras_env import keras
from tinyhar.lite.tflite_inspect import (
    check_tflm_ops,
    inspect_tflite,
    resolver_method,
    unsupported_ops,
)

L = keras.layers
WINDOW, CHANNELS, CLASSES = 24, 3, 4


def _attention_model():
    """Conv1D -> LSTM -> self-attention -> pool -> Dense, dynamic batch as after training."""
    inp = keras.Input((WINDOW, CHANNELS))
    x = L.Conv1D(8, 3, activation="relu")(inp)
    x = L.LSTM(6, return_sequences=True)(x)
    x = L.MultiHeadAttention(num_heads=1, key_dim=4)(x, x)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inp, L.Dense(CLASSES, activation="softmax")(x))


def _counting_model():
    """A model whose MACs and parameters are easy to count by hand."""
    inp = keras.Input((WINDOW, CHANNELS))
    x = L.Conv1D(8, 3)(inp)  # valid: 22 steps
    x = L.LSTM(6)(x)
    return keras.Model(inp, L.Dense(CLASSES)(x))


@pytest.fixture(scope="module")
def rep() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(16, WINDOW, CHANNELS)).astype(np.float32)


@pytest.fixture(scope="module")
def int8_model(rep) -> bytes:
    keras.utils.set_random_seed(1)
    return to_int8_tflite(_attention_model(), rep)


@pytest.mark.slow
def test_int8_conversion_has_int8_io_fused_lstm_and_no_while(int8_model):
    info = inspect_tflite(int8_model)
    assert [t.dtype for t in info.inputs + info.outputs] == ["int8", "int8"]
    assert info.inputs[0].shape == (1, WINDOW, CHANNELS)
    assert info.outputs[0].shape == (1, CLASSES)
    assert 0 < info.inputs[0].scale < 1 and -128 <= info.inputs[0].zero_point <= 127
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in info.ops
    assert "BATCH_MATMUL" in info.ops
    assert "WHILE" not in info.ops
    assert info.stateful  # the LSTM keeps its state in variable tensors


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_inspect_lists_exactly_the_ops_tflite_runs(int8_model):
    """Compare with the op list of TensorFlow's own interpreter, an independent reader."""
    interp = tf.lite.Interpreter(model_content=int8_model)
    theirs = [d["op_name"] for d in interp._get_ops_details()]
    info = inspect_tflite(int8_model)
    assert set(info.ops) == set(theirs)
    assert len(info.ops) == len(set(info.ops))
    assert sum(info.op_counts.values()) == len(theirs)
    check_tflm_ops(info.ops)  # every op is in TFLM's resolver
    methods = [resolver_method(op) for op in info.ops]
    assert "AddUnidirectionalSequenceLSTM" in methods and "AddBatchMatMul" in methods


@pytest.mark.slow
def test_macs_and_params_match_a_hand_count(rep):
    model = _counting_model()
    info = inspect_tflite(to_int8_tflite(model, rep))
    steps = WINDOW - 2
    conv = steps * 8 * (3 * CHANNELS)
    lstm = steps * 4 * (8 + 6) * 6
    dense = 6 * CLASSES
    assert info.macs == conv + lstm + dense
    # Keras counts the same weights and biases; TFLite adds a few shape constants
    assert model.count_params() <= info.params <= model.count_params() + 16


@pytest.mark.slow
def test_float_conversion_keeps_float_io():
    keras.utils.set_random_seed(2)
    info = inspect_tflite(to_float_tflite(_attention_model()))
    assert [t.dtype for t in info.inputs + info.outputs] == ["float32", "float32"]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in info.ops and "WHILE" not in info.ops


@pytest.mark.slow
def test_a_while_loop_is_refused_in_one_line():
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def doubling(x):
        return tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * 2.0), [0, x])[1]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([doubling.get_concrete_function()])
    with pytest.raises(TinyharError) as e:
        _convert(conv, "float")
    assert "WHILE" in str(e.value) and "\n" not in str(e.value)


def test_representative_of_the_wrong_shape_is_refused():
    model = _counting_model()
    with pytest.raises(TinyharError, match=r"\(3, 24, 5\)"):
        to_int8_tflite(model, np.zeros((3, WINDOW, 5), np.float32))
    with pytest.raises(TinyharError, match="NaN"):
        to_int8_tflite(model, np.full((3, WINDOW, CHANNELS), np.nan, np.float32))


def test_resolver_names_and_missing_ops():
    assert resolver_method("CONV_2D") == "AddConv2D"
    assert resolver_method("FULLY_CONNECTED") == "AddFullyConnected"
    assert resolver_method("EXPAND_DIMS") == "AddExpandDims"
    assert unsupported_ops(["MEAN", "FlexEinsum", "RFFT2D"]) == ["FlexEinsum", "RFFT2D"]
    with pytest.raises(TinyharError, match="FlexEinsum, RFFT2D"):
        check_tflm_ops(["MEAN", "FlexEinsum", "RFFT2D"])
    with pytest.raises(TinyharError, match="RFFT2D"):
        resolver_method("RFFT2D")


def test_inspect_refuses_bytes_that_are_not_a_model():
    with pytest.raises(TinyharError, match="TFL3"):
        inspect_tflite(b"\x00" * 64)
    with pytest.raises(TinyharError):
        inspect_tflite(b"\x10\x00\x00\x00TFL3" + b"\xff" * 8)


@pytest.mark.slow
def test_measured_arena_is_the_smallest_that_runs(int8_model):
    arena = measure_arena(int8_model)
    assert arena % RESOLUTION == 0 and arena > 1024
    assert arena_works(int8_model, arena)
    assert not arena_works(int8_model, arena - RESOLUTION)
    assert arena_works(int8_model, arena + 4096)
