"""Distillation: soft targets from teacher runs, and a student trained on them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinyhar.errors import TinyharError
from tinyhar.model.distill import distilled_targets, soften
from tinyhar.run import folder as runs


def test_soft_targets_mix_labels_and_flattened_teacher_probabilities():
    probs = np.array([[0.9, 0.08, 0.02], [0.2, 0.3, 0.5]])
    flat = soften(probs, 2.0)
    assert flat.sum(axis=1) == pytest.approx([1, 1])
    assert flat[0, 0] < 0.9 and flat[0].argmax() == 0  # flatter, same order
    assert soften(probs, 1.0) == pytest.approx(probs)
    t = distilled_targets(np.array([0, 1]), probs, 0.5, 1.0)
    assert t[0] == pytest.approx([0.95, 0.04, 0.01]) and t[1] == pytest.approx([0.1, 0.65, 0.25])
    with pytest.raises(TinyharError, match="--distill"):
        distilled_targets(np.array([0]), probs[:1], 0.0, 1.0)


@pytest.mark.slow
def test_student_trains_on_a_teacher_run_and_records_it(tmp_path):
    from tinyhar.data.synth import synthesize
    from tinyhar.model.train import TrainConfig, train

    data = synthesize(tmp_path / "synth", subjects=4, seed=0)
    quiet = lambda _line: None  # noqa: E731
    teacher = train(TrainConfig(data=data, run=tmp_path / "T", epochs=1, size={"width": 8}), quiet)
    cfg = TrainConfig(data=data, run=tmp_path / "S", epochs=2, size={"width": 8, "pool": 4},
                      teachers=[teacher.run], distill=0.7, distill_temperature=3.0)  # fmt: skip
    student = train(cfg, quiet)
    m = json.loads((student.run / runs.METRICS_JSON).read_text())
    assert m["distillation"] == {"teachers": [str(teacher.run)], "weight": 0.7, "temperature": 3.0}
    assert 0 <= m["accuracy"] <= 1 and m["epochs_run"] == 2
    with pytest.raises(TinyharError, match="no trained model"):
        train(TrainConfig(data=data, run=tmp_path / "U", size={"width": 8},
                          teachers=[tmp_path / "nothing"]), quiet)  # fmt: skip
