"""The `dataset.json` description of a run's inputs: channels, windowing, labels, normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tinyhar.data.mhealth import RATE_HZ
from tinyhar.data.windows import Split
from tinyhar.run.records import Channel, DatasetContract


def split_info(split: Split) -> dict:
    """The split's kind, subject ids per set and its note."""
    return {
        "kind": split.kind,
        "train": list(split.train_subjects),
        "val": list(split.val_subjects),
        "test": list(split.test_subjects),
        "note": split.note,
    }


def dataset_spec(
    *,
    name: str,
    synthetic: bool,
    source: str,
    sensors: str,
    channels: Sequence[Channel],
    window: int,
    stride: int,
    train_stride: int,
    include_null: bool,
    labels: Sequence[str],
    label_ids: Sequence[int],
    mean: np.ndarray,
    std: np.ndarray,
    split: Split,
) -> DatasetContract:
    """The dataset.json of a run, as docs/architecture.md (the run folder) describes it.

    `labels` are the class names in class order; `label_ids` each class's label code in the
    dataset (MHEALTH: its label id 0-12; a dataset folder: the index in its manifest's classes)."""
    return DatasetContract(
        dataset=str(name),
        synthetic=bool(synthetic),
        source=str(source),
        sensors=sensors,
        channels=tuple(channels),
        window=int(window),
        stride=int(stride),
        train_stride=int(train_stride),
        rate_hz=RATE_HZ,
        include_null=bool(include_null),
        labels=tuple(str(x) for x in labels),
        label_ids=tuple(int(i) for i in label_ids),
        mean=tuple(float(v) for v in np.asarray(mean, np.float32)),
        std=tuple(float(v) for v in np.asarray(std, np.float32)),
        split=split_info(split),
        counts={"train": len(split.train), "val": len(split.val), "test": len(split.test)},
    )
