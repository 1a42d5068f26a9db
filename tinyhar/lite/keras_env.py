"""TensorFlow with legacy Keras and quiet logs: `from tinyhar.lite.keras_env import tf, keras`."""

from __future__ import annotations

import logging
import os
import sys
import tempfile

# Must be set before tensorflow is imported anywhere: legacy Keras converts LSTMs to the fused
# UNIDIRECTIONAL_SEQUENCE_LSTM op that TFLM runs; Keras 3 does not.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def _import_quietly():
    """Import tensorflow and tf_keras with fd 2 captured (C++ logs printed before absl starts)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # lazy: imported with its C++ log captured
            import tf_keras  # lazy: imported with its C++ log captured

            tensorflow.config.list_physical_devices()  # probes CUDA now, while its log is captured
        except Exception:  # the captured log explains a failed import; after Ctrl-C it is noise
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow, tf_keras


tf, keras = _import_quietly()
tf.get_logger().setLevel(logging.ERROR)
try:
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
except ImportError:  # absl ships with tensorflow; stay usable if it ever stops
    pass

__all__ = ["tf", "keras"]
