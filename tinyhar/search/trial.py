"""One trial of `tinyhar search`: train a `tiny` variant, convert it to int8, and measure its int8
accuracy (validation and test), model bytes, arena bytes, MACs and, where the emulated board runs,
the instructions per inference of its firmware. The trial's folder is a run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinyhar.board.boards import Board
from tinyhar.data.dataset import load_dataset
from tinyhar.data.windows import normalize
from tinyhar.deploy.build import BuildOptions
from tinyhar.deploy.quantize import convert_and_measure, load_run_inputs, normalise, tflm_outputs
from tinyhar.device.emulator import measure_instructions
from tinyhar.device.instruction_budget import measure_tiny_instructions
from tinyhar.files import atomic_write_bytes, atomic_write_json, read_json
from tinyhar.model.architectures import DROPOUT
from tinyhar.model.train import (
    Prepared,
    TrainConfig,
    evaluate,
    fit,
    prepare,
    resolve_data,
    train_metrics,
    write_run,
)
from tinyhar.run import folder as runs
from tinyhar.search.pareto import SCORE

# What a search varies in the `tiny` family (build_tiny's parameters).
SPACE: dict[str, list[Any]] = {
    "width": [8, 12, 16, 24, 32, 48, 64],
    "kernel": [3, 5, 7],
    "pool": [2, 4],
    "stride": [1, 2],
    "attention": ["dot", "pool", "none"],
    "branch": [True, False],
    "stats": ["none", "mean"],
}
# What it keeps fixed, whatever the default shape: batch norm folded into the conv and dense
# layers (the same MACs as after the ReLU, without its MUL and ADD), the conv as wide as the LSTM.
FIXED: dict[str, Any] = {"norm": "bn_relu", "means": "mean", "filters": None, "dropout": DROPOUT}


MEMO_DIR = ".sizes"  # in R/trials: the figures of each size tried, by a digest of the size


@dataclass(frozen=True)
class TrialContext:
    """What every trial shares: the training (data as an absolute path) and where trials go."""

    train: TrainConfig
    root: Path  # R/trials: one run folder per trial
    emulate_board: Board | None = None  # measure instructions on this board's emulated firmware
    max_instructions: int | None = None  # a hard bound: a size over it is not trained


def _quiet(_line: str) -> None:
    pass


def size_of(params: dict[str, Any]) -> dict[str, Any]:
    """build_tiny's keyword arguments from a trial's parameters (plain Python types): FIXED,
    then those of SPACE it has."""
    cast = {"width": int, "kernel": int, "pool": int, "stride": int, "branch": bool}
    size = dict(FIXED)
    for key in SPACE:
        if key in params:
            value = params[key]
            size[key] = cast[key](value) if key in cast else _plain(value)
    return {"stride": 1, "stats": "none"} | size  # a search from before they were searched


def _plain(value: Any) -> Any:
    """A choice as JSON takes it: numpy's bools and strings as Python's."""
    return bool(value) if isinstance(value, bool | np.bool_) else str(value)


def _memo(root: Path, size: dict[str, Any]) -> Path:
    """Where the figures of a model size are kept: TPE suggests some sizes more than once."""
    key = json.dumps(size, sort_keys=True).encode()
    return root / MEMO_DIR / f"{hashlib.sha256(key).hexdigest()[:16]}.json"


def run_trial(params: dict[str, Any], ctx: TrialContext, name: str) -> dict[str, Any]:
    """Train, write the trial's run folder (with model_int8.tflite), and return its figures. A
    size tried before returns that trial's figures (the training is seeded: they would repeat)."""
    memo = _memo(ctx.root, size_of(params))
    if memo.is_file():
        return read_json(memo)
    figures = _train_and_measure(params, ctx, name)
    atomic_write_json(memo, figures)
    return figures


def _train_and_measure(params: dict[str, Any], ctx: TrialContext, name: str) -> dict[str, Any]:
    run, size = ctx.root / name, size_of(params)
    cfg = replace(ctx.train, arch="tiny", size=size, run=run)
    prep = prepare(cfg, load_dataset(resolve_data(cfg.data)), warn=_quiet)
    over = _over_instructions(size, prep, ctx)
    if over is not None:
        return over | {"trained_in": name}
    model, history, fitted, budget = fit(cfg, prep, log=_quiet)
    metrics = train_metrics(cfg, prep, evaluate(model, prep), model, history, fitted, budget)
    write_run(run, cfg, prep, model, history, metrics, _quiet)

    ds, arr = load_run_inputs(run)  # the windows `tinyhar quantize` uses
    x_rep = normalise(arr["x_rep"], np.asarray(ds.mean), np.asarray(ds.std))
    int8, info, arena = convert_and_measure(model, x_rep, _quiet)
    inp = info.inputs[0]
    x_val = normalize(prep.split.val.x, prep.mean, prep.std)
    x_test = normalise(arr["x_test"], np.asarray(ds.mean), np.asarray(ds.std))
    _, val_out = tflm_outputs(int8, arena, x_val, inp.scale, inp.zero_point)
    _, test_out = tflm_outputs(int8, arena, x_test, inp.scale, inp.zero_point)
    atomic_write_bytes(run / runs.INT8_MODEL, int8)
    emulated = {}
    if ctx.emulate_board is not None:
        opts = BuildOptions(board=ctx.emulate_board, run=run)
        emulated = measure_instructions(opts, log=_quiet)
    return emulated | {
        "int8_val_accuracy": _accuracy(val_out, prep.split.val.y),
        "int8_test_accuracy": _accuracy(test_out, arr["y_test"]),
        "float_test_accuracy": metrics.accuracy,
        "model_bytes": len(int8),
        "arena_bytes": int(arena),
        "macs": int(info.macs),
        "weights": metrics.params,
        "epochs_run": metrics.epochs_run,
        "train_seconds": metrics.train_seconds,
        "run": str(run),
        "trained_in": name,
    }


def _over_instructions(size: dict[str, Any], prep: Prepared, ctx: TrialContext) -> dict | None:
    """With a bound on instructions: an untrained model of `size` is counted first (the count
    barely depends on the weights) and a size over the bound is reported, not trained."""
    if ctx.max_instructions is None or ctx.emulate_board is None:
        return None
    shape = (ctx.train.window, len(prep.dataset.channels))
    n = measure_tiny_instructions(shape, len(prep.class_names), size, ctx.emulate_board)
    if n <= ctx.max_instructions:
        return None
    return {"over_instructions": n, "instructions": n, SCORE: 0.0}


def _accuracy(scores: np.ndarray, y: np.ndarray) -> float:
    pred = np.asarray(scores).reshape(len(scores), -1).argmax(axis=1)
    return float(np.mean(pred == np.asarray(y))) if len(pred) else 0.0
