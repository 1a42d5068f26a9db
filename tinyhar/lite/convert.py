"""Keras model -> TFLite flatbuffer for TensorFlow Lite Micro (static batch 1, builtin ops only)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator

import numpy as np

from tinyhar.errors import TinyharError
from tinyhar.lite.keras_env import keras, tf
from tinyhar.lite.tflite_inspect import FORBIDDEN_OPS, check_tflm_ops, inspect_tflite


def to_int8_tflite(model, representative: np.ndarray, fc_per_channel: bool = False) -> bytes:
    """Full-integer int8 flatbuffer (int8 input and output), static batch 1, TFLITE_BUILTINS_INT8.

    `representative`: normalised float32 windows (n, window, C) for calibration. FULLY_CONNECTED
    weights get one scale per tensor unless `fc_per_channel`: the Arduino TFLM libraries' CMSIS-NN
    FC kernels read one scale (boards/libraries/*.toml).
    """
    rep = _check_representative(model, representative)
    static = static_batch_model(model)

    def samples() -> Iterator[list[np.ndarray]]:
        for x in rep:
            yield [x[None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(static)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = samples
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    conv._experimental_disable_per_channel_quantization_for_dense_layers = not fc_per_channel
    data = _convert(conv, "int8")
    info = inspect_tflite(data)
    bad = [t for t in info.inputs + info.outputs if t.dtype != "int8"]
    if bad:
        raise TinyharError(
            f"int8 conversion left {bad[0].dtype} tensor {bad[0].name} at the model's I/O: "
            "use layers that quantize fully"
        )
    return data


def to_float_tflite(model) -> bytes:
    """Float32 flatbuffer (float input and output), static batch 1, TFLite builtin ops only."""
    conv = tf.lite.TFLiteConverter.from_keras_model(static_batch_model(model))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return _convert(conv, "float")


def static_batch_model(model):
    """The same architecture and weights with every input's batch size fixed to 1.

    Legacy Keras converts an LSTM to UNIDIRECTIONAL_SEQUENCE_LSTM only with a static batch.
    """
    if all(t.shape[0] == 1 for t in model.inputs):
        return model
    inputs = [
        keras.Input(shape=tuple(t.shape[1:]), batch_size=1, dtype=t.dtype, name=_input_name(t))
        for t in model.inputs
    ]
    try:
        clone = keras.models.clone_model(
            model, input_tensors=inputs if len(inputs) > 1 else inputs[0]
        )
    except Exception as e:
        raise TinyharError(
            f"cannot rebuild the model with batch size 1 for conversion ({_first_line(e)}): "
            "give custom layers a get_config()"
        ) from None
    clone.set_weights(model.get_weights())
    return clone


def _input_name(t) -> str | None:
    name = getattr(t, "name", None)
    return name.split(":")[0] if name else None


def _check_representative(model, representative: np.ndarray) -> np.ndarray:
    rep = np.asarray(representative)
    want = tuple(model.inputs[0].shape[1:])
    if len(model.inputs) != 1:
        raise TinyharError(
            f"int8 conversion supports one-input models; this one has {len(model.inputs)}"
        )
    if rep.ndim != len(want) + 1 or len(rep) == 0 or tuple(rep.shape[1:]) != want:
        raise TinyharError(
            f"representative windows have shape {rep.shape}, the model takes (n, "
            f"{', '.join(map(str, want))}) with n >= 1: pass normalised training windows"
        )
    if not np.all(np.isfinite(rep)):
        raise TinyharError(
            "representative windows hold NaN or infinite values: check normalisation"
        )
    return rep.astype(np.float32)


def _convert(converter, kind: str) -> bytes:
    with warnings.catch_warnings(), _stderr_to_file() as log:
        warnings.simplefilter("ignore")
        try:
            data = bytes(converter.convert())
        except Exception as e:
            raise TinyharError(
                f"{kind} TFLite conversion failed: {_first_line(e) or log()}"
            ) from None
    ops = inspect_tflite(data).ops
    flex = [op for op in ops if op.startswith("Flex") or op in FORBIDDEN_OPS]
    if flex:
        raise TinyharError(
            f"{kind} conversion produced {', '.join(flex)} op(s), which TFLM cannot run well or at "
            "all: use legacy Keras layers (tf_keras) and a static batch"
        )
    check_tflm_ops(ops)
    return data


@contextlib.contextmanager
def _stderr_to_file() -> Iterator:
    """Send fd 2 (TF's C++ converter chatter) to a temp file; yields a reader of its last line."""
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)

        def last_line() -> str:
            f.seek(0)
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
            return lines[-1] if lines else "no message"

        try:
            yield last_line
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__
