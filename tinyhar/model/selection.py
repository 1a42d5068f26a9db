"""Model selection: which epoch's weights a training keeps, and when it stops (the rule)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tinyhar.errors import TinyharError
from tinyhar.model.metrics import classification_metrics

# metric name in the history -> True when larger is better
METRICS: dict[str, bool] = {"val_macro_f1": True, "val_accuracy": True, "val_loss": False}
DEFAULT_METRIC = "val_macro_f1"
DEFAULT_MIN_EPOCHS = 10
DEFAULT_PATIENCE = 10


@dataclass(frozen=True)
class SelectionRule:
    """Keep the epoch with the best `metric` among epochs >= `min_epochs` (ties: the earliest);
    stop once `patience` epochs after it brought nothing better."""

    metric: str = DEFAULT_METRIC
    min_epochs: int = DEFAULT_MIN_EPOCHS
    patience: int = DEFAULT_PATIENCE

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise TinyharError(
                f"unknown selection metric {self.metric!r}: use one of {', '.join(METRICS)}"
            )
        if self.min_epochs < 1 or self.patience < 1:
            raise TinyharError("--min-epochs and --patience must be at least 1")

    def describe(self) -> str:
        """One line for logs and docs."""
        best = "highest" if METRICS[self.metric] else "lowest"
        return (
            f"the epoch with the {best} {self.metric} from epoch {self.min_epochs} on; "
            f"stop {self.patience} epochs after it"
        )

    def to_json(self) -> dict:
        return {**asdict(self), "rule": self.describe()}


def best_epoch(values: Sequence[float], rule: SelectionRule) -> int:
    """The 1-based epoch `rule` keeps given the metric's per-epoch `values`; before `min_epochs`
    epochs have run, the best so far (so a short training still keeps its best)."""
    if not values:
        raise TinyharError("no epochs to select from")
    v = np.asarray(values, np.float64)
    start = rule.min_epochs - 1 if len(v) >= rule.min_epochs else 0
    tail = v[start:]
    tail = np.where(np.isnan(tail), -np.inf if METRICS[rule.metric] else np.inf, tail)
    idx = int(np.argmax(tail) if METRICS[rule.metric] else np.argmin(tail))
    return start + idx + 1


def should_stop(values: Sequence[float], rule: SelectionRule) -> bool:
    """True once `patience` epochs have passed after the kept epoch (and min_epochs have run)."""
    n = len(values)
    return n >= rule.min_epochs and n - best_epoch(values, rule) >= rule.patience


def selection_callback(
    rule: SelectionRule,
    x_val: np.ndarray,
    y_val: np.ndarray,
    class_names: Sequence[str],
):
    """A Keras callback that adds val_macro_f1 to each epoch's logs, keeps the weights of the
    epoch `rule` selects, stops by its patience, and restores those weights at the end."""
    from tinyhar.lite.keras_env import keras  # lazy: TensorFlow takes seconds to import

    class KeepBest(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.values: list[float] = []
            self.best_weights = None
            self.kept = 0

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            pred = np.argmax(self.model.predict(x_val, batch_size=256, verbose=0), axis=1)
            logs["val_macro_f1"] = classification_metrics(y_val, pred, class_names)["macro_f1"]
            self.values.append(float(logs.get(rule.metric, np.nan)))
            best = best_epoch(self.values, rule)
            if best == len(self.values):
                self.best_weights = self.model.get_weights()
                self.kept = best
            if should_stop(self.values, rule):
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return KeepBest()
