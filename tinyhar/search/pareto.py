"""The Pareto front of a search: int8 accuracy against flash (model bytes), RAM (arena bytes) and
latency (the emulated firmware's instructions per inference, else MACs), and its figure."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCORE = "int8_val_accuracy"  # higher is better
# Latency: measured on the emulated firmware where every trial was, else counted from the graph.
LATENCY = {
    "instructions": ("instructions per inference (M)", 1e6),
    "macs": ("MACs per inference (k)", 1e3),
}


def latency_key(points: Sequence[dict[str, Any]]) -> str:
    """ "instructions" when every point has them, else "macs"."""
    return "instructions" if points and all(p.get("instructions") for p in points) else "macs"


def costs(points: Sequence[dict[str, Any]]) -> tuple[str, str, str]:
    """What a search minimises: flash (model bytes), RAM (arena bytes) and latency."""
    return ("model_bytes", "arena_bytes", latency_key(points))


def dominates(a: dict[str, Any], b: dict[str, Any], cost: Sequence[str]) -> bool:
    """Whether `a` is at least as good as `b` everywhere and better somewhere."""
    ge = a[SCORE] >= b[SCORE] and all(a[c] <= b[c] for c in cost)
    gt = a[SCORE] > b[SCORE] or any(a[c] < b[c] for c in cost)
    return ge and gt


def pareto_front(points: Sequence[dict[str, Any]]) -> list[int]:
    """Indices of the points no other point dominates, smallest model first."""
    cost = costs(points)
    front = [i for i, p in enumerate(points) if not any(dominates(q, p, cost) for q in points)]
    return sorted(front, key=lambda i: (points[i]["model_bytes"], -points[i][SCORE]))


def pareto_png(
    points: Sequence[dict[str, Any]],
    front: Sequence[int],
    best: int | None,
    budget: dict[str, int],
    title: str,
) -> bytes:
    """Accuracy against model KB, arena KB and latency: every trial, the front, the best that
    fits."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    lat = latency_key(points)
    labels = (
        ("model_bytes", "int8 model (KB)", 1024),
        ("arena_bytes", "TFLM arena (KB)", 1024),
        (lat, *LATENCY[lat]),
    )
    limits = {
        "model_bytes": budget.get("model_bytes"),
        "arena_bytes": budget.get("arena_bytes"),
        "instructions": budget.get("instructions"),
    }
    for ax, (key, name, unit) in zip(axes, labels, strict=True):
        ax.scatter(
            [p[key] / unit for p in points],
            [p[SCORE] for p in points],
            c="0.6",
            s=18,
            label="trial",
        )
        fr = sorted(front, key=lambda i: points[i][key])
        ax.plot(
            [points[i][key] / unit for i in fr],
            [points[i][SCORE] for i in fr],
            "o",
            c="tab:red",
            ms=5,
            label="Pareto front",
        )
        if best is not None:
            ax.scatter(
                [points[best][key] / unit],
                [points[best][SCORE]],
                marker="*",
                s=160,
                c="tab:blue",
                zorder=3,
                label="best within budget",
            )
        limit = limits.get(key)
        if limit and limit <= 1.5 * max(p[key] for p in points):
            ax.axvline(limit / unit, ls="--", c="k", lw=0.8, label="budget")
        elif limit:  # far right of every trial: a line there would squeeze them all to the left
            name += f"  (budget {limit / unit:.0f}, off the axis)"
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("int8 accuracy (validation)")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
