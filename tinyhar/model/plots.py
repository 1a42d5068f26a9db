"""Confusion-matrix and training-history figures (matplotlib, Agg backend) as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def confusion_png(
    confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str
) -> bytes:
    """Confusion matrix with class names on both axes and the count in every cell."""
    cm = np.asarray(confusion)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(2.2 + 0.55 * n, 1.8 + 0.5 * n))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = cm.max() if cm.size else 0
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                color = "white" if cm[i, j] > top / 2 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def history_png(history: dict[str, list[float]], title: str) -> bytes:
    """Loss and accuracy per epoch, training and validation."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + key)
            if values:
                epochs = range(1, len(values) + 1)
                ax.plot(epochs, values, style, marker="o", ms=3, label=(prefix or "train_") + key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=10)
    return _png(fig)
