"""Distillation: soft training targets from the averaged outputs of trained teacher runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinyhar.errors import TinyharError
from tinyhar.lite.keras_file import load_keras
from tinyhar.run import folder as runs
from tinyhar.run.records import DatasetContract


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Class probabilities at a temperature: p^(1/T), renormalised (T > 1 flattens them)."""
    logp = np.log(np.clip(probs, 1e-7, 1.0)) / temperature
    e = np.exp(logp - logp.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def teacher_probs(teachers: Sequence[Path], x_raw: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """The mean class probabilities of the teacher runs' Keras models on raw windows, each
    normalised by its own dataset.json; one line when a teacher is missing or has other classes."""
    total = np.zeros((len(x_raw), len(labels)), np.float64)
    for run in teachers:
        run = Path(run)
        if not (run / runs.KERAS_MODEL).is_file() or not DatasetContract.exists(run):
            raise TinyharError(f"teacher {run} has no trained model: train it with `tinyhar train`")
        ds = DatasetContract.load(run)
        if list(ds.labels) != list(labels):
            raise TinyharError(
                f"teacher {run} learned classes {', '.join(ds.labels)}, not "
                f"{', '.join(labels)}: train the teacher on the same classes"
            )
        mean = np.asarray(ds.mean, np.float32)
        std = np.asarray(ds.std, np.float32)
        model = load_keras(run / runs.KERAS_MODEL)
        total += model.predict((x_raw - mean) / std, batch_size=512, verbose=0)
    return total / len(teachers)


def distilled_targets(
    y: np.ndarray, probs: np.ndarray, weight: float, temperature: float
) -> np.ndarray:
    """(1 - weight) x the one-hot labels + weight x the softened teacher probabilities."""
    if not 0 < weight <= 1 or temperature <= 0:
        raise TinyharError(
            f"--distill {weight} / temperature {temperature}: give a weight in (0, 1] and a "
            "temperature above 0"
        )
    onehot = np.eye(probs.shape[1], dtype=np.float32)[np.asarray(y, np.int64)]
    return ((1 - weight) * onehot + weight * soften(probs, temperature)).astype(np.float32)
