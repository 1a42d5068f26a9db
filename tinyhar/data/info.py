"""A summary of a dataset: source, channels, subjects, rows, minutes and rows per class."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyhar.data.dataset import Dataset, load_dataset
from tinyhar.data.mhealth import RATE_HZ


@dataclass(frozen=True)
class DatasetInfo:
    """Figures of one dataset (rows at the model's rate); rows per subject in subject order, rows
    per label code (-1: rows that belong to no class)."""

    synthetic: bool
    source: str
    rows_per_subject: dict[int, int]
    class_counts: dict[int, int]
    labels: list[str] = field(default_factory=list)
    name: str = "MHEALTH"
    rate_hz: float = RATE_HZ
    channels: list[str] = field(default_factory=list)  # "acc_x (m/s^2)"

    @property
    def rows(self) -> int:
        return sum(self.rows_per_subject.values())


def dataset_info(data: Dataset | str | Path) -> DatasetInfo:
    """Count subjects, rows and classes of a loaded dataset or of a path `load_dataset` reads."""
    if not isinstance(data, Dataset):
        data = load_dataset(data)
    rows: dict[int, int] = {}
    for r in data.recordings:
        rows[r.subject] = rows.get(r.subject, 0) + int(r.labels.size)
    counts = np.zeros(len(data.labels) + 1, np.int64)  # the last slot counts negative codes
    for r in data.recordings:
        lab = np.where(r.labels < 0, len(data.labels), r.labels).astype(np.int64)
        counts += np.bincount(lab, minlength=len(counts))[: len(counts)]
    class_counts = {i: int(n) for i, n in enumerate(counts[:-1])}
    if counts[-1]:
        class_counts[-1] = int(counts[-1])
    return DatasetInfo(
        synthetic=data.synthetic,
        source=data.source,
        rows_per_subject=dict(sorted(rows.items())),
        class_counts=class_counts,
        labels=list(data.labels),
        name=data.name,
        rate_hz=data.rate_hz,
        channels=[f"{c.name} ({c.unit})" for c in data.channels],
    )


def _minutes(rows: int) -> float:
    return rows / RATE_HZ / 60


def format_info(info: DatasetInfo) -> str:
    """The text `tinyhar data info` prints."""
    if info.synthetic:
        kind = "SYNTHETIC (made by tinyhar data synth)"
    else:
        kind = f"real {info.name}"
    lines = [f"data: {kind}", f"source: {info.source}"]
    if info.name != "MHEALTH":
        resampled = f", resampled to {RATE_HZ} Hz" if info.rate_hz != RATE_HZ else ""
        lines.append(f"rate: {info.rate_hz:g} Hz{resampled}")
        lines.append(f"channels (training units): {', '.join(info.channels)}")
    lines += [
        f"subjects: {len(info.rows_per_subject)}",
        "",
        f"{'subject':>8} {'rows':>9} {'minutes':>8}",
    ]
    for s, n in info.rows_per_subject.items():
        lines.append(f"{s:>8} {n:>9} {_minutes(n):>8.1f}")
    lines.append(f"{'total':>8} {info.rows:>9} {_minutes(info.rows):>8.1f}")
    lines += ["", f"{'label':>5}  {'class':<26} {'rows':>9} {'share':>7}"]
    for label, n in info.class_counts.items():
        share = 100 * n / info.rows if info.rows else 0.0
        name = info.labels[label] if label >= 0 else "(dropped or unlabelled)"
        lines.append(f"{label:>5}  {name:<26} {n:>9} {share:>6.1f}%")
    return "\n".join(lines)
