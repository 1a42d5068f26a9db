"""Small models and hand-made run folders for the firmware tests (built once a session)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from tinyhar.run import folder as runs
from tinyhar.run.records import BuildReport, DatasetContract, QuantizeReport

LABELS = ["Walking", "Sitting and relaxing", "Running", "Cycling"]
CHANNELS = [(k, a) for k in ("acc", "gyro") for a in "xyz"]
MEAN = [0.1, 9.7, 0.3, 1.0, -2.0, 0.5]
STD = [3.0, 2.5, 4.0, 40.0, 35.0, 30.0]


@functools.cache
def har_int8_model() -> bytes:
    """A small CNN-LSTM classifier like tinyhar's, int8 I/O, window 100 x 6 channels, 4 classes."""
    from tinyhar.lite.convert import to_int8_tflite
    from tinyhar.lite.keras_env import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((100, 6), batch_size=1)
    x = keras.layers.Conv1D(8, 5, activation="relu")(inp)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.LSTM(8)(x)
    out = keras.layers.Dense(len(LABELS), activation="softmax")(x)
    rep = np.random.default_rng(0).normal(size=(32, 100, 6)).astype(np.float32)
    return to_int8_tflite(keras.Model(inp, out), rep)


@functools.cache
def har_attention_int8_model() -> bytes:
    """tinyhar's `tiny` at width 8 (conv, LSTM, self-attention, branch), int8, 100 x 6, 4 classes:
    every op kind the firmware's own kernels serve."""
    from tinyhar.lite.convert import to_int8_tflite
    from tinyhar.lite.keras_env import keras
    from tinyhar.model.architectures import build_model

    keras.utils.set_random_seed(0)
    model = build_model("tiny", (100, 6), len(LABELS), batch_size=1, width=8, filters=None,
                        stride=1, norm="relu_bn", attention="dot", stats="none",
                        means="mean")  # fmt: skip  # the former default shape: MUL, ADD, MEAN
    rep = np.random.default_rng(0).normal(size=(32, 100, 6)).astype(np.float32)
    return to_int8_tflite(model, rep)


@functools.cache
def third_party_float_model() -> bytes:
    """A third-party-like model: a 2-D conv net (not made by tinyhar) with float32 I/O,
    input (1, 40, 3, 1): 40 samples of a 3-axis accelerometer, 5 gesture classes."""
    from tinyhar.lite.convert import to_float_tflite
    from tinyhar.lite.keras_env import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((40, 3, 1), batch_size=1)
    x = keras.layers.Conv2D(4, (5, 3), activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(5, activation="softmax")(x)
    return to_float_tflite(keras.Model(inp, out))


def dataset_json(synthetic: bool = True) -> dict:
    units = {"acc": "m/s^2", "gyro": "deg/s"}
    return {
        "synthetic": synthetic,
        "source": "hand-made test run",
        "sensors": "arm",
        "channels": [
            {"name": f"arm_{k}_{a}", "column": 14 + i, "unit": units[k], "kind": k, "axis": a}
            for i, (k, a) in enumerate(CHANNELS)
        ],
        "window": 100,
        "stride": 50,
        "rate_hz": 50,
        "include_null": False,
        "labels": LABELS,
        "label_ids": [4, 2, 11, 9],
        "normalization": {"mean": MEAN, "std": STD},
    }


def make_run(
    root: Path,
    with_quantize_json: bool = True,
    arena_bytes: int | None = None,
    model: bytes | None = None,
) -> Path:
    """A run folder as docs/architecture.md describes it, holding the small int8 model (or
    `model`)."""
    from tinyhar.lite.arena import measure_arena

    run = root / "run"
    run.mkdir(parents=True)
    own_model = model is not None
    model = model if own_model else har_int8_model()
    (run / runs.INT8_MODEL).write_bytes(model)
    dataset_record().save(run)
    (run / runs.METRICS_JSON).write_text(json.dumps({"accuracy": 0.5, "synthetic": True}))
    if with_quantize_json:
        arena = arena_bytes or (measure_arena(model) if own_model else measured_arena())
        quantize_record(model, arena).save(run)
    return run


def dataset_record(synthetic: bool = True) -> DatasetContract:
    """dataset_json() as the record the package reads."""
    return DatasetContract.from_json(dataset_json(synthetic), Path("dataset.json"))


def build_record(board: str, model: bytes, arena_bytes: int) -> BuildReport:
    """A build.json for `model` on `board`: its size and CRC, made-up firmware figures."""
    from tinyhar.crc import crc32

    return BuildReport(
        board=board, fqbn="", model=runs.INT8_MODEL, model_bytes=len(model),
        arena_bytes=arena_bytes, arena_measured=arena_bytes, arena_margin=0,
        model_crc32=crc32(model), ops=[], tflm_library={}, kernels={}, resolver_methods=[],
        footprint={}, flash_budget=0, ram_budget=0, sketch_flash_max=0, sketch_ram_max=0,
        sketch_dir="", sketch_kept=False, library_dir="", sketch_name="tinyhar_har",
        synthetic=True, origin={}, config={}, made_from={},
    )  # fmt: skip


def quantize_record(model: bytes, arena: int) -> QuantizeReport:
    """A quantize.json for `model`: its real figures, made-up accuracies."""
    from tinyhar.deploy.quantize import model_figures
    from tinyhar.lite.tflite_inspect import inspect_tflite

    return QuantizeReport(
        float_accuracy=0.5, int8_accuracy=0.5, int8_accuracy_tflite=0.5,
        tflm_tflite_top1_agreement=1.0, tflm_tflite_max_abs_diff=0, float_int8_top1_agreement=1.0,
        board_int8={}, test_windows=0, representative_windows=0,
        **model_figures(model, inspect_tflite(model), arena),
        labels=LABELS, synthetic=True, seconds=0.0,
    )  # fmt: skip


@functools.cache
def measured_arena() -> int:
    from tinyhar.lite.arena import measure_arena

    return measure_arena(har_int8_model())


def make_keras_run(root: Path) -> Path:
    """A run folder as `tinyhar train` leaves it (model.keras, dataset.json, windows.npz,
    metrics.json) but not quantized yet; a small untrained CNN-LSTM."""
    from tinyhar.lite.keras_env import keras

    keras.utils.set_random_seed(2)
    run = root / "trained"
    run.mkdir(parents=True)
    inp = keras.Input((100, 6))
    x = keras.layers.Conv1D(8, 5, activation="relu")(inp)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.LSTM(8)(x)
    out = keras.layers.Dense(len(LABELS), activation="softmax")(x)
    keras.Model(inp, out).save(run / runs.KERAS_MODEL)
    rng = np.random.default_rng(4)
    raw = (rng.normal(size=(40, 100, 6)) * STD + MEAN).astype(np.float32)
    np.savez(
        run / runs.WINDOWS_NPZ,
        x_test=raw[:20],
        y_test=rng.integers(0, len(LABELS), 20),
        subject_test=np.full(20, 9),
        x_rep=raw[20:],
    )
    dataset_record().save(run)
    (run / runs.METRICS_JSON).write_text(json.dumps({"accuracy": 0.25, "synthetic": True}))
    return run
