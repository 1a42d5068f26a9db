"""Reading a run's Keras model file."""

from __future__ import annotations

from pathlib import Path

from tinyhar.errors import TinyharError


def load_keras(path: Path):
    """A run's Keras model; one line naming the file when it cannot be read."""
    from tinyhar.lite.keras_env import keras  # lazy: TensorFlow takes seconds to import

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # a corrupt or foreign file fails in many ways
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise TinyharError(
            f"cannot read {path} ({first}): train the run again with `tinyhar train`"
        ) from None
