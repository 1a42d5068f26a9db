"""What `tinyhar train` (and each `search` trial) is asked to do, with its defaults: light to
import, so the command line takes its defaults and help from here without loading TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyhar.data.windows import STRIDE, WINDOW
from tinyhar.model.augment import Augment
from tinyhar.model.selection import SelectionRule

DEFAULT_EPOCHS = 50  # the paper's setting
DEFAULT_BATCH = 64
LR_SCHEDULES = ("cosine", "constant")  # the first is the default
ARCHS = ("tiny", "paper")
# Training windows denser than the default --stride (validation, test and the firmware keep
# --stride): on HAPT, better across subjects and steadier between seeds (docs/model.md); tiny's
# default shape, small, gains most from every 10 samples.
DEFAULT_TRAIN_STRIDE = {"tiny": 10, "paper": 25}


@dataclass
class TrainConfig:
    """Everything `tinyhar train` accepts."""

    data: Path | None = None
    sensors: str | None = None  # MHEALTH's sensor set (arm by default); None for a dataset folder
    arch: str = "tiny"
    run: Path | None = None
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH
    stride: int = STRIDE
    train_stride: int | None = None  # training windows' stride; None: training_stride's default
    window: int = WINDOW
    include_null: bool = False
    classes: Sequence[str] | None = None  # class names to learn; None: those in the training data
    split: str = "subjects"
    train_subjects: Sequence[int] | None = None
    val_subjects: Sequence[int] | None = None
    test_subjects: Sequence[int] | None = None
    seed: int = 0
    select: SelectionRule = field(default_factory=SelectionRule)
    augment: Augment = field(default_factory=Augment)
    lr_schedule: str = LR_SCHEDULES[0]  # cosine: from LEARNING_RATE to 0 over `epochs`
    warmup_epochs: int = 0  # the rate climbs linearly to LEARNING_RATE over these first epochs
    label_smoothing: float = 0.0  # the targets: 1 - s on the class, s spread over all classes
    teachers: Sequence[Path] = ()  # trained runs whose mean outputs become soft targets
    distill: float = 0.5  # the teachers' share of the targets
    distill_temperature: float = 2.0
    # tiny's budget: None everywhere: the default shape (TINY_SIZE) as it is; else the largest
    # width of that shape within the budget (unset bytes: DEFAULT_BUDGET's; instructions: any)
    max_model_kb: float | None = None
    max_arena_kb: float | None = None
    max_instructions: int | None = None  # on the emulated board (budget.BUDGET_BOARD)
    # tiny's shape (build_tiny's options over the default shape's; --size): with no budget
    # option, as it is (a search trial, too); with one, the width is sized
    size: dict[str, Any] | None = None
