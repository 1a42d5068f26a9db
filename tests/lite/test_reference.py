"""Host reference runners: TFLM and TFLite on int8 and float-I/O models."""

from __future__ import annotations

import numpy as np
import pytest

from tinyhar.errors import TinyharError
from tinyhar.lite.convert import to_float_tflite, to_int8_tflite
from tinyhar.lite.keras_env import keras
from tinyhar.lite.reference import Reference, TfliteReference, TflmReference

L = keras.layers


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 3))
    x = L.Conv1D(6, 3, activation="relu")(inp)
    x = L.LSTM(5, return_sequences=True)(x)
    x = L.GlobalAveragePooling1D()(L.Attention()([x, x]))
    return keras.Model(inp, L.Dense(4, activation="softmax")(x))


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return np.random.default_rng(5).normal(size=(12, 16, 3)).astype(np.float32)


@pytest.mark.slow
def test_float_model_references_match_keras(model, windows):
    data = to_float_tflite(model)
    want = model.predict(windows, verbose=0)
    for ref in (TflmReference(data), TfliteReference(data)):
        got = ref.predict(windows)
        assert got.dtype == np.float32 and got.shape == (12, 4)
        np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.slow
def test_int8_references_are_stateless_between_windows(model, windows):
    data = to_int8_tflite(model, windows)
    ref = TflmReference(data)
    scale, zp = ref.input.scale, ref.input.zero_point
    xq = np.clip(np.rint(windows / scale) + zp, -128, 127).astype(np.int8)
    forward = ref.predict(xq)
    backward = ref.predict(xq[::-1])[::-1]
    assert forward.dtype == np.int8 and forward.shape == (12, 4)
    np.testing.assert_array_equal(forward, backward)  # the LSTM state is reset per window
    tflite_ref = TfliteReference(data)
    tflite = tflite_ref.predict(xq)
    for one in (ref, tflite_ref):  # the interface every reference shares: flat windows too
        assert isinstance(one, Reference) and one.name and one.built_from
        np.testing.assert_array_equal(one.predict(xq.reshape(len(xq), -1)), one.predict(xq))
    assert np.abs(forward.astype(int) - tflite.astype(int)).max() <= 2
    with pytest.raises(TinyharError, match="quantize"):
        ref.predict(windows)  # float windows into an int8 model
    with pytest.raises(TinyharError, match="do not fit"):
        ref.predict(xq[:, :8])
