"""`tinyhar quantize`: a trained run -> model_int8.tflite + quantize.json, with measured figures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tinyhar.board import preprocess
from tinyhar.board.boards import Board, default_board
from tinyhar.board.preprocess import PreprocessConfig
from tinyhar.crc import crc32, format_crc32
from tinyhar.deploy.board_reference import for_board
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_write_bytes, remove
from tinyhar.lite.arena import RESOLUTION, measure_arena
from tinyhar.lite.convert import to_int8_tflite
from tinyhar.lite.keras_file import load_keras
from tinyhar.lite.reference import TfliteReference, TflmReference
from tinyhar.lite.tflite_inspect import ModelInfo, inspect_tflite
from tinyhar.log import inf
from tinyhar.run import folder as runs
from tinyhar.run.records import DatasetContract, QuantizeReport, TensorQuantization


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Training-unit windows (..., C) -> normalised float32, exactly as the device computes it."""
    return preprocess.normalise(
        x, PreprocessConfig.in_training_frame(np.asarray(mean), np.asarray(std))
    )


def quantize_input(n: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Normalised float32 -> int8 like the firmware: clamp(rint(n * (1/scale)) + zp, -128, 127)."""
    c = np.shape(n)[-1]
    cfg = PreprocessConfig.in_training_frame(np.zeros(c), np.ones(c), scale, zero_point)
    return preprocess.quantize(n, cfg)


def tflm_outputs(
    int8: bytes, arena: int, x: np.ndarray, scale: float, zero_point: int
) -> tuple[np.ndarray, np.ndarray]:
    """(int8 windows, int8 scores) of normalised windows `x` as the Python TFLM interpreter runs
    the int8 model: the scoring `quantize` and `evaluate` share."""
    xq = quantize_input(x, scale, zero_point)
    return xq, TflmReference(int8, arena).predict(xq)


def load_run_inputs(run: Path) -> tuple[DatasetContract, dict[str, np.ndarray]]:
    """dataset.json and windows.npz of a run, checked; TinyharError naming what is missing."""
    for name in (runs.KERAS_MODEL, runs.WINDOWS_NPZ):
        if not (run / name).exists():
            raise TinyharError(f"{run} has no {name}: train the run again with `tinyhar train`")
    ds = DatasetContract.load(run)
    try:
        with np.load(run / runs.WINDOWS_NPZ) as npz:
            arrays = {k: npz[k] for k in ("x_test", "y_test", "x_rep")}
    except (OSError, ValueError, KeyError) as e:
        raise TinyharError(
            f"{run / runs.WINDOWS_NPZ} is unreadable or incomplete ({e}): retrain the run"
        ) from None
    c = arrays["x_test"].shape[-1] if arrays["x_test"].ndim == 3 else -1
    if c != len(ds.channels) or arrays["x_rep"].ndim != 3 or len(arrays["x_rep"]) == 0:
        raise TinyharError(
            f"{run / runs.WINDOWS_NPZ} windows {arrays['x_test'].shape} do not match the "
            f"{len(ds.channels)} channels of {DatasetContract.FILE}: retrain the run"
        )
    if len(arrays["x_test"]) == 0 or len(arrays["y_test"]) != len(arrays["x_test"]):
        raise TinyharError(
            f"{run / runs.WINDOWS_NPZ} has {len(arrays['x_test'])} test windows and "
            f"{len(arrays['y_test'])} labels: retrain the run with a test split"
        )
    return ds, arrays


def quantize_run(
    run: Path | None,
    log: Callable[[str], None] = inf,
    board: Board | None = None,
    libraries: Path | None = None,
) -> QuantizeReport:
    """Convert R/model.keras to int8, evaluate float/TFLM/TFLite accuracy and the accuracy with
    the board's own TFLM library (where it can be built), measure the arena, then write
    R/model_int8.tflite and R/quantize.json; returns the report."""

    run = runs.require_run(run)  # metrics.json: training finished
    runs.check_record(run, runs.METRICS_JSON)  # model, dataset.json and windows belong together
    made_from = runs.digests(run, [runs.KERAS_MODEL])
    ds, arr = load_run_inputs(run)
    x_test = normalise(arr["x_test"], np.asarray(ds.mean), np.asarray(ds.std))
    x_rep = normalise(arr["x_rep"], np.asarray(ds.mean), np.asarray(ds.std))
    y_test = np.asarray(arr["y_test"]).astype(np.int64)

    t0 = time.monotonic()
    log(f"quantize: loading {run / runs.KERAS_MODEL}")
    model = load_keras(run / runs.KERAS_MODEL)
    log(f"quantize: float accuracy on {len(x_test)} test windows")
    float_pred = top1(model.predict(x_test, batch_size=256, verbose=0))
    int8, info, arena = convert_and_measure(model, x_rep, log)
    inp = info.inputs[0]
    log(f"quantize: int8 accuracy with TFLM and TFLite ({len(x_test)} windows)")
    xq, tflm_out = tflm_outputs(int8, arena, x_test, inp.scale, inp.zero_point)
    tflite_out = TfliteReference(int8).predict(xq)
    on_board = board_accuracy(
        int8, ds, board or default_board(), arena, libraries, xq, tflm_out, y_test, log
    )

    report = QuantizeReport(
        **accuracies(float_pred, tflm_out, tflite_out, y_test),
        board_int8=on_board,
        test_windows=int(len(x_test)),
        representative_windows=int(len(x_rep)),
        **model_figures(int8, info, arena),
        labels=list(ds.labels),
        synthetic=ds.synthetic,
        seconds=round(time.monotonic() - t0, 1),
        run=str(run),
    )
    return write_quantized(run, int8, report, made_from)


def write_quantized(
    run: Path, int8: bytes, report: QuantizeReport, made_from: dict[str, str]
) -> QuantizeReport:
    """model_int8.tflite, then quantize.json with the digests of the model.keras it was made from
    and of the int8 model; the old quantize.json goes first, so no crash leaves one that
    describes another int8 model. Returns the report as written."""
    remove(QuantizeReport.path(run))
    atomic_write_bytes(run / runs.INT8_MODEL, int8)
    report = replace(report, made_from=made_from, outputs=runs.digests(run, [runs.INT8_MODEL]))
    report.save(run)
    return report


def convert_and_measure(
    model, x_rep: np.ndarray, log: Callable[[str], None]
) -> tuple[bytes, ModelInfo, int]:
    """(int8 .tflite, what it holds, its measured TFLM arena in bytes)."""
    log(f"quantize: converting to int8 with {len(x_rep)} representative windows")
    int8 = to_int8_tflite(model, x_rep)
    info = inspect_tflite(int8)
    log("quantize: measuring the TFLM arena (bisection)")
    return int8, info, int(measure_arena(int8))


def accuracies(
    float_pred: np.ndarray, tflm_out: np.ndarray, tflite_out: np.ndarray, y: np.ndarray
) -> dict[str, Any]:
    """Float, TFLM and TFLite accuracy, and how the int8 interpreters agree."""
    tflm_pred, tflite_pred = top1(tflm_out), top1(tflite_out)
    return {
        "float_accuracy": _accuracy(float_pred, y),
        "int8_accuracy": _accuracy(tflm_pred, y),
        "int8_accuracy_tflite": _accuracy(tflite_pred, y),
        "tflm_tflite_top1_agreement": _accuracy(tflm_pred, tflite_pred),
        "tflm_tflite_max_abs_diff": int(
            np.abs(tflm_out.astype(np.int32) - tflite_out.astype(np.int32)).max(initial=0)
        ),
        "float_int8_top1_agreement": _accuracy(tflm_pred, float_pred),
    }


def model_figures(int8: bytes, info: ModelInfo, arena: int) -> dict[str, Any]:
    """Size, arena, ops, cost, CRC and quantization of the int8 model."""
    return {
        "model_bytes": len(int8),
        "arena_bytes": int(arena),
        "arena_resolution": RESOLUTION,
        "ops": info.ops,
        "op_counts": info.op_counts,
        "macs": info.macs,
        "params": info.params,
        "stateful": info.stateful,
        "model_crc32": crc32(int8),
        "input": TensorQuantization.of(info.inputs[0]),
        "output": TensorQuantization.of(info.outputs[0]),
    }


def board_accuracy(
    model: bytes,
    dataset: DatasetContract,
    board: Board,
    arena: int,
    libraries: Path | None,
    xq: np.ndarray,
    python_out: np.ndarray,
    y: np.ndarray,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """int8 accuracy as the board computes it: its TFLM library (and tinyhar's kernels) built for
    the host; or why that could not be done."""

    log(f"quantize: int8 accuracy with {board.name}'s TFLM library built for the host")
    ref, why = for_board(model, dataset, board, arena, libraries, log)
    if ref is None:
        log(f"quantize: note: no board-library accuracy ({why})")
        return {"board": board.name, "unavailable": why}
    out = ref.predict(xq)
    pred = out.argmax(1)
    diff = np.abs(out.astype(np.int32) - python_out.reshape(len(xq), -1).astype(np.int32))
    return {
        "board": board.name,
        "library": library_title(board),
        "accuracy": _accuracy(pred, y),
        "top1_agreement_with_python_tflm": _accuracy(pred, top1(python_out)),
        "max_abs_diff_lsb_with_python_tflm": int(diff.max(initial=0)),
    }


def library_title(board: Board) -> str:
    """'Chirale_TensorFLowLite 2.0.0': the board's TFLM library and its version."""
    return f"{board.tflm.name} {board.tflm.version}"


def format_report(report: QuantizeReport) -> str:
    """The figures of a quantize report as a small table."""
    r = report
    synth = " (synthetic data)" if r.synthetic else ""
    on_board = r.board_int8 or {}
    board_row = (
        (
            f"int8 accuracy ({on_board['board']}, its TFLM)",
            f"{on_board['accuracy']:.4f}  ({on_board['library']} built for the host; top-1 "
            f"agreement with TFLM {on_board['top1_agreement_with_python_tflm']:.4f})",
        )
        if "accuracy" in on_board
        else ("int8 accuracy (board's TFLM)", f"not measured: {on_board.get('unavailable')}")
    )
    rows = [
        ("float accuracy (Keras)", f"{r.float_accuracy:.4f}"),
        board_row,
        ("int8 accuracy (TFLM)", f"{r.int8_accuracy:.4f}"),
        ("int8 accuracy (TFLite)", f"{r.int8_accuracy_tflite:.4f}"),
        ("TFLM/TFLite top-1 agreement", f"{r.tflm_tflite_top1_agreement:.4f}"),
        ("test windows", str(r.test_windows)),
        ("int8 model", f"{r.model_bytes} B ({r.model_bytes / 1024:.1f} KB)"),
        ("TFLM arena (measured)", f"{r.arena_bytes} B ({r.arena_bytes / 1024:.1f} KB)"),
        ("params (int8 constants) / MACs", f"{r.params} / {r.macs}"),
        ("model CRC-32", format_crc32(r.model_crc32)),
        ("input scale / zero point", f"{r.input.scale:.6g} / {r.input.zero_point}"),
        ("ops", ", ".join(r.ops)),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"quantized {r.run}{synth}"]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def top1(y: np.ndarray) -> np.ndarray:
    """The top class of each row of scores."""
    return np.asarray(y).reshape(len(y), -1).argmax(axis=1)


def _accuracy(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.asarray(a) == np.asarray(b))) if len(a) else 0.0
