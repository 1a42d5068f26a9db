"""Host reference runners for a .tflite model: TFLM (the reference) and TFLite (a second opinion);
`Reference`, the one interface they share with the board library's host build
(deploy/board_reference) and the virtual board's model.

Both reset the model's variable tensors before every window: the fused LSTM keeps its state in
them, so without a reset one window's result would depend on the windows before it.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

import numpy as np
from tflite_micro.python.tflite_micro import runtime

from tinyhar.errors import TinyharError
from tinyhar.lite.arena import measure_arena
from tinyhar.lite.tflite_inspect import TensorInfo, inspect_tflite


@runtime_checkable
class Reference(Protocol):
    """What a device's outputs are compared with: a model run on the host."""

    name: str  # what it is, as reports print it
    built_from: str  # what it runs: the interpreter and its version, or the sources compiled

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Outputs (n, *output_shape[1:]) for int8 windows (n, *input_shape[1:]), or flat (n, -1),
        one window at a time from a reset state."""
        ...


class _Reference(ABC):
    """Common input checking: `x` is (n, *input_shape[1:]), or flat (n, -1), in the model's input
    dtype."""

    name = ""
    built_from = ""

    def __init__(self, model_bytes: bytes) -> None:
        self.info = inspect_tflite(model_bytes)
        if len(self.info.inputs) != 1 or len(self.info.outputs) != 1:
            raise TinyharError(
                f"the reference runs one-input one-output models; this one has "
                f"{len(self.info.inputs)} inputs and {len(self.info.outputs)} outputs"
            )
        self.input: TensorInfo = self.info.inputs[0]
        self.output: TensorInfo = self.info.outputs[0]

    def _windows(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        want = self.input.shape[1:]
        if x.ndim == 2 and x.shape[1:] != want and x.shape[1] == int(np.prod(want)):
            x = x.reshape(len(x), *want)
        if x.shape[1:] != want:
            raise TinyharError(
                f"windows of shape {x.shape} do not fit the model input {self.input.shape}: "
                f"pass (n, {', '.join(map(str, want))})"
            )
        if x.dtype != np.dtype(self.input.dtype):
            raise TinyharError(
                f"windows are {x.dtype}, the model takes {self.input.dtype}: "
                "quantize them with the model's input scale and zero point"
            )
        return x

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs (n, *output_shape[1:]) in the model's output dtype, one window at a time."""
        x = self._windows(x)
        out = np.empty((len(x), *self.output.shape[1:]), dtype=np.dtype(self.output.dtype))
        for i, window in enumerate(x):
            out[i] = self._run(window[None]).reshape(out.shape[1:])
        return out

    @abstractmethod
    def _run(self, window: np.ndarray) -> np.ndarray:
        """One window (1, ...) through the interpreter, from a reset state."""


class TflmReference(_Reference):
    """The TFLM interpreter (`tflite-micro`), the reference for on-device results."""

    name = "TFLM Python interpreter"

    def __init__(self, model_bytes: bytes, arena_size: int | None = None) -> None:
        super().__init__(model_bytes)
        self.built_from = f"tflite-micro {_version('tflite-micro')}"

        if arena_size is None:
            arena_size = measure_arena(model_bytes)
        self.arena_size = arena_size
        try:
            self._ip = runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_size)
        except RuntimeError as e:
            raise TinyharError(
                f"TFLM cannot allocate the model in {arena_size} bytes ({e}): measure the arena"
            ) from None

    def _run(self, window: np.ndarray) -> np.ndarray:
        self._ip.reset()
        self._ip.set_input(window, 0)
        self._ip.invoke()
        return self._ip.get_output(0)


class TfliteReference(_Reference):
    """TensorFlow's TFLite interpreter: a second opinion (it may differ from TFLM by an LSB).

    Runs TFLite's builtin kernels without the XNNPACK delegate, which moved int8 outputs of our
    LSTM-attention models by up to 5 LSB from TFLM's against 1 LSB without it.
    """

    name = "TFLite interpreter"

    def __init__(self, model_bytes: bytes) -> None:
        super().__init__(model_bytes)
        from tinyhar.lite.keras_env import tf  # lazy: TensorFlow takes seconds to import

        self.built_from = f"TensorFlow {tf.__version__} (builtin kernels, no delegate)"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecation notice pointing to ai_edge_litert
                self._ip = tf.lite.Interpreter(
                    model_content=bytes(model_bytes),
                    experimental_op_resolver_type=(
                        tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                    ),
                )
            self._ip.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise TinyharError(
                f"TensorFlow Lite refuses the model ({first}), though TFLM may run it: re-export "
                "it with the TFLite converter"
            ) from None
        self._in = self._ip.get_input_details()[0]["index"]
        self._out = self._ip.get_output_details()[0]["index"]

    def _run(self, window: np.ndarray) -> np.ndarray:
        self._ip.reset_all_variables()
        self._ip.set_tensor(self._in, window)
        self._ip.invoke()
        return self._ip.get_tensor(self._out)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"
