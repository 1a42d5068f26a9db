"""A summary of a dataset: where it comes from, subjects, rows, minutes and rows per class."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyhar.data.mhealth import LABEL_NAMES, RATE_HZ, MhealthData, label_counts, load_mhealth


@dataclass(frozen=True)
class DatasetInfo:
    """Figures of one dataset; rows per subject in subject order, rows per MHEALTH label id."""

    synthetic: bool
    source: str
    rows_per_subject: dict[int, int]
    class_counts: dict[int, int]

    @property
    def rows(self) -> int:
        return sum(self.rows_per_subject.values())


def dataset_info(data: MhealthData | str | Path) -> DatasetInfo:
    """Count subjects, rows and classes of a loaded dataset or of a path `load_mhealth` reads."""
    if not isinstance(data, MhealthData):
        data = load_mhealth(data)
    return DatasetInfo(
        synthetic=data.synthetic,
        source=data.source,
        rows_per_subject={r.subject: int(r.labels.size) for r in data.recordings},
        class_counts=label_counts(r.labels for r in data.recordings),
    )


def _minutes(rows: int) -> float:
    return rows / RATE_HZ / 60


def format_info(info: DatasetInfo) -> str:
    """The text `tinyhar data info` prints."""
    kind = "SYNTHETIC (made by tinyhar data synth)" if info.synthetic else "real MHEALTH"
    lines = [
        f"data: {kind}",
        f"source: {info.source}",
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
        lines.append(f"{label:>5}  {LABEL_NAMES[label]:<26} {n:>9} {share:>6.1f}%")
    return "\n".join(lines)
