"""`tinyhar quantize` on a small run folder laid out as docs/architecture.md describes."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinyhar.cli import main
from tinyhar.deploy.quantize import normalise, quantize_input
from tinyhar.lite.keras_env import keras
from tinyhar.lite.reference import TfliteReference, TflmReference
from tinyhar.run import folder as runs

L = keras.layers
WINDOW, CHANNELS, CLASSES = 20, 6, 3
MEAN = np.array([0.0, 1.0, 9.8, 0.0, 0.0, 0.0], np.float32)
STD = np.array([1.0, 2.0, 1.5, 30.0, 30.0, 30.0], np.float32)


def _windows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw training-unit windows whose class sets the level of the first channels."""
    y = rng.integers(0, CLASSES, n)
    x = rng.normal(size=(n, WINDOW, CHANNELS)).astype(np.float32) * STD * 0.5 + MEAN
    x[:, :, :3] += (y[:, None, None] * 1.5 * STD[:3]).astype(np.float32)
    return x.astype(np.float32), y


def _make_run(run: Path) -> None:
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x_train, y_train = _windows(rng, 120)
    x_test, y_test = _windows(rng, 40)
    inp = keras.Input((WINDOW, CHANNELS))
    x = L.Conv1D(6, 3, padding="same", activation="relu")(inp)
    s = L.LSTM(6, return_sequences=True)(x)
    a = L.Attention()([s, s])
    out = L.Dense(CLASSES, activation="softmax")(L.GlobalAveragePooling1D()(a))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(normalise(x_train, MEAN, STD), y_train, epochs=15, batch_size=32, verbose=0)
    run.mkdir(parents=True)
    model.save(run / runs.KERAS_MODEL)
    dataset = {
        "synthetic": True,
        "source": "test",
        "sensors": "arm",
        "channels": [
            {"name": f"arm_{k}_{a}", "column": 14 + i, "unit": u, "kind": k, "axis": a}
            for i, (k, u, a) in enumerate(
                (k, u, a) for k, u in (("acc", "m/s^2"), ("gyro", "deg/s")) for a in "xyz"
            )
        ],
        "window": WINDOW,
        "stride": 10,
        "rate_hz": 50,
        "include_null": False,
        "labels": ["a", "b", "c"],
        "label_ids": [1, 2, 3],
        "normalization": {"mean": MEAN.tolist(), "std": STD.tolist()},
    }
    (run / runs.DATASET_JSON).write_text(json.dumps(dataset))
    np.savez(
        run / runs.WINDOWS_NPZ,
        x_test=x_test,
        y_test=y_test,
        subject_test=np.full(len(y_test), 9),
        x_rep=x_train[:50],
    )
    (run / runs.METRICS_JSON).write_text(json.dumps({"accuracy": 0.0}))


@pytest.fixture(scope="module")
def quantized_run(tmp_path_factory) -> tuple[Path, str]:
    run = tmp_path_factory.mktemp("runs") / "r1"
    _make_run(run)
    result = CliRunner().invoke(main, ["quantize", "--run", str(run)])
    assert result.exit_code == 0, result.output + str(result.exception)
    return run, result.output


@pytest.mark.slow
def test_quantize_writes_consistent_model_and_report(quantized_run):
    run, output = quantized_run
    data = (run / runs.INT8_MODEL).read_bytes()
    q = json.loads((run / runs.QUANTIZE_JSON).read_text())
    assert int(q["model_crc32"], 16) == zlib.crc32(data)
    assert q["model_crc32"] == f"0x{zlib.crc32(data):08x}"
    assert q["model_bytes"] == len(data)
    for key in ("float_accuracy", "int8_accuracy", "int8_accuracy_tflite"):
        assert 0.0 <= q[key] <= 1.0
    assert q["synthetic"] is True
    assert q["test_windows"] == 40
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in q["ops"] and "WHILE" not in q["ops"]
    assert q["input"]["dtype"] == "int8" and q["input"]["shape"] == [1, WINDOW, CHANNELS]
    assert q["output"]["shape"] == [1, CLASSES]
    assert q["arena_bytes"] > 1024 and q["macs"] > 0 and q["params"] > 0
    assert "int8 accuracy (TFLM)" in output and q["model_crc32"] in output
    # as the board computes it: Chirale's kernels and tinyhar's BATCH_MATMUL, built for the host
    board = q["board_int8"]
    assert board["board"] == "nano33ble" and board["library"] == "Chirale_TensorFLowLite 2.0.0"
    assert abs(board["accuracy"] - q["int8_accuracy"]) <= 0.15
    assert 0.5 <= board["top1_agreement_with_python_tflm"] <= 1.0
    assert "int8 accuracy (nano33ble, its TFLM)" in output


@pytest.mark.slow
def test_quantize_without_the_board_library_says_why(quantized_run, tmp_path, monkeypatch):
    run, _ = quantized_run
    monkeypatch.setenv("TINYHAR_ARDUINO_LIBRARIES", str(tmp_path / "no-libraries"))
    copy = tmp_path / "r2"
    copy.mkdir()
    for p in run.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    result = CliRunner().invoke(main, ["quantize", "--run", str(copy)])
    assert result.exit_code == 0, result.output
    q = json.loads((copy / runs.QUANTIZE_JSON).read_text())
    why = q["board_int8"]["unavailable"]
    assert f"is not in {tmp_path / 'no-libraries'} ($TINYHAR_ARDUINO_LIBRARIES)" in why
    assert "Chirale_TensorFLowLite 2.0.0" in why and "--libraries DIR" in why
    assert re.search(r"int8 accuracy \(board's TFLM\) +not measured", result.output)


@pytest.mark.slow
def test_reported_accuracies_match_an_independent_evaluation(quantized_run):
    run, _ = quantized_run
    q = json.loads((run / runs.QUANTIZE_JSON).read_text())
    with np.load(run / runs.WINDOWS_NPZ) as npz:
        x, y = normalise(npz["x_test"], MEAN, STD), npz["y_test"]
    model = keras.models.load_model(run / runs.KERAS_MODEL)
    float_acc = float(np.mean(model.predict(x, verbose=0).argmax(1) == y))
    assert q["float_accuracy"] == pytest.approx(float_acc)
    assert float_acc > 0.8  # the classes are separable: training worked
    data = (run / runs.INT8_MODEL).read_bytes()
    xq = quantize_input(x, q["input"]["scale"], q["input"]["zero_point"])
    tflm = TflmReference(data, q["arena_bytes"]).predict(xq).argmax(1)
    tflite = TfliteReference(data).predict(xq).argmax(1)
    assert q["int8_accuracy"] == pytest.approx(float(np.mean(tflm == y)))
    assert q["int8_accuracy_tflite"] == pytest.approx(float(np.mean(tflite == y)))
    assert abs(q["int8_accuracy"] - float_acc) <= 0.1


@pytest.mark.slow
def test_failed_quantize_leaves_earlier_artifacts_intact(quantized_run, tmp_path):
    run, _ = quantized_run
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in (runs.METRICS_JSON, runs.DATASET_JSON, runs.WINDOWS_NPZ, runs.INT8_MODEL,
                 runs.QUANTIZE_JSON):  # fmt: skip
        (broken / name).write_bytes((run / name).read_bytes())
    (broken / runs.KERAS_MODEL).write_bytes(b"this is not a keras model")
    before = {p.name: p.read_bytes() for p in broken.iterdir()}
    result = CliRunner().invoke(main, ["quantize", "--run", str(broken)])
    assert result.exit_code == 2
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert errors[0].startswith("error: cannot read") and "model.keras" in errors[0]
    assert {p.name: p.read_bytes() for p in broken.iterdir()} == before


def test_quantize_names_a_missing_windows_file(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / runs.KERAS_MODEL).write_bytes(b"x")
    (run / runs.DATASET_JSON).write_text("{}")
    (run / runs.METRICS_JSON).write_text("{}")  # a finished training (quantize needs one)
    result = CliRunner().invoke(main, ["quantize", "--run", str(run)])
    assert result.exit_code == 2
    assert "windows.npz" in result.stderr and result.stderr.count("\n") == 1


def test_input_quantization_rounds_half_to_even_and_clamps():
    q = quantize_input(np.array([0.25, 0.75, -0.25, 100.0, -100.0], np.float32), 0.5, 3)
    # 0.5 -> 0 (even), 1.5 -> 2, -0.5 -> -0; then + zero point 3; the last two clamp
    assert q.tolist() == [3, 5, 3, 127, -128]
