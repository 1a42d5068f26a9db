"""One view of every dataset tinyhar reads: a folder with a dataset.toml, or MHEALTH (whose
description is built in). Signals are in training units at the model's rate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyhar.data.manifest import MANIFEST, read_manifest
from tinyhar.data.mhealth import (
    LABEL_NAMES,
    RATE_HZ,
    SENSOR_SETS,
    Channel,
    Recording,
    channels,
    load_mhealth,
)
from tinyhar.data.recordings import read_recordings
from tinyhar.data.units import TRAINING_UNITS
from tinyhar.errors import TinyharError

MHEALTH = "MHEALTH"
MHEALTH_NULL = 0  # MHEALTH's label 0: no activity; dropped unless asked for


@dataclass(frozen=True)
class Dataset:
    """Recordings with labels as codes into `labels` (negative: belongs to no class)."""

    name: str
    source: str
    synthetic: bool
    recordings: list[Recording]
    channels: list[Channel]  # the channels a model takes; .column indexes a recording's signals
    labels: list[str]  # class name of each label code
    rate_hz: float  # the files' rate (signals are at RATE_HZ)
    null_code: int | None = None  # a label code dropped unless asked for (MHEALTH's Null)

    @property
    def is_mhealth(self) -> bool:
        return self.name == MHEALTH

    def model_channels(self, sensors: str | None) -> list[Channel]:
        """The channels a model takes: MHEALTH's sensor set (arm by default), or all channels of
        a dataset folder (which has no sensor sets)."""
        if self.is_mhealth:
            if sensors is not None and sensors not in SENSOR_SETS:
                raise TinyharError(f"--sensors {sensors}: choose one of {', '.join(SENSOR_SETS)}")
            return channels(sensors or "arm")
        if sensors is not None:
            raise TinyharError(
                f"--sensors {sensors} chooses MHEALTH's sensors; {self.name} is a dataset folder "
                "whose channels are all used: leave --sensors out"
            )
        return list(self.channels)


def is_manifest_dataset(path: Path) -> bool:
    """Whether `path` is a dataset.toml or a folder holding one."""
    path = Path(path)
    return (path / MANIFEST).is_file() if path.is_dir() else path.name == MANIFEST


def load_dataset(path: str | Path) -> Dataset:
    """Read a dataset folder (or its dataset.toml), else MHEALTH in a form `load_mhealth` reads."""
    path = Path(path).expanduser()
    if is_manifest_dataset(path):
        return _from_manifest(path)
    data = load_mhealth(path)
    return Dataset(
        name=MHEALTH,
        source=data.source,
        synthetic=data.synthetic,
        recordings=data.recordings,
        channels=channels("both"),
        labels=[LABEL_NAMES[i] for i in sorted(LABEL_NAMES)],
        rate_hz=RATE_HZ,
        null_code=MHEALTH_NULL,
    )


def _from_manifest(path: Path) -> Dataset:
    m = read_manifest(path)
    assert m.path is not None  # read_manifest records where it read
    folder = m.path.parent
    recs = read_recordings(m, folder)
    chans = [
        Channel(c.name, i, TRAINING_UNITS[c.kind], c.kind, c.axis) for i, c in enumerate(m.channels)
    ]
    kind = "synthetic dataset" if m.synthetic else "dataset"
    return Dataset(
        name=m.name,
        source=f"{kind} {m.name} in {folder.resolve()}",
        synthetic=m.synthetic,
        recordings=recs,
        channels=chans,
        labels=[m.class_name(c) for c in m.classes],
        rate_hz=m.rate_hz,
    )
