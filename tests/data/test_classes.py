"""The model's classes: only those the training windows hold, or those --classes names, with one
warning line for a class missing from the training or the test windows."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.hapt_data import HAPT_CLASSES, hapt_folder

from tinyhar.data.classes import choose_classes
from tinyhar.data.dataset import load_dataset
from tinyhar.data.windows import Split, Windows
from tinyhar.errors import TinyharError
from tinyhar.model.train import TrainConfig, prepare

LABELS = ["walk", "sit", "run", "jump"]


def _w(codes: list[int]) -> Windows:
    y = np.asarray(codes, np.int64)
    return Windows(np.zeros((len(y), 4, 2), np.float32), y, np.ones(len(y), np.int64))


def _split(train: list[int], val: list[int], test: list[int]) -> Split:
    return Split(_w(train), _w(val), _w(test), "subjects", [1], [2], [3], "")


def test_default_is_the_classes_with_training_windows_in_label_order():
    warnings: list[str] = []
    codes = choose_classes(_split([1, 0, 0, 1], [0, 1], [1, 0]), LABELS, warn=warnings.append)
    assert codes == [0, 1] and warnings == []


def test_a_class_only_outside_training_is_left_out_with_one_warning():
    warnings: list[str] = []
    split = _split([0, 1, 0], [0, 2], [1, 2, 3, 0])
    assert choose_classes(split, LABELS, warn=warnings.append) == [0, 1]
    assert len(warnings) == 1 and "run, jump" in warnings[0] and "training" in warnings[0]
    relabelled = split.with_classes([0, 1])
    assert relabelled.test.y.tolist() == [1, 0]  # run and jump windows left the test set


def test_a_class_without_test_windows_gets_one_warning():
    warnings: list[str] = []
    assert choose_classes(_split([0, 1, 2], [0], [0, 1]), LABELS, warn=warnings.append) == [0, 1, 2]
    assert len(warnings) == 1 and "run" in warnings[0] and "no test windows" in warnings[0]


def test_named_classes_keep_the_given_order_and_warn_when_untrainable():
    warnings: list[str] = []
    split = _split([0, 1, 2], [0], [0, 1, 2, 3])
    assert choose_classes(split, LABELS, ["Sit", "walk"], warnings.append) == [1, 0]
    assert warnings == []
    assert choose_classes(split, LABELS, ["jump", "walk"], warnings.append) == [3, 0]
    assert len(warnings) == 1 and "jump" in warnings[0] and "--classes" in warnings[0]


def test_unknown_or_repeated_class_names_are_refused():
    split = _split([0, 1], [0], [0, 1])
    with pytest.raises(TinyharError, match="'swim' is not a class.*walk, sit, run, jump"):
        choose_classes(split, LABELS, ["walk", "swim"])
    with pytest.raises(TinyharError, match="twice"):
        choose_classes(split, LABELS, ["walk", "walk"])
    with pytest.raises(TinyharError, match="needs two"):
        choose_classes(_split([0, 0], [0], [0]), LABELS)


def test_hapt_prepares_with_its_own_names_units_and_chosen_classes(tmp_path):
    data = load_dataset(hapt_folder(tmp_path, (1, 3, 5)))
    warnings: list[str] = []
    prep = prepare(TrainConfig(), data, warn=warnings.append)
    ds = prep.dataset.to_json()
    assert ds["labels"] == HAPT_CLASSES and ds["label_ids"] == list(range(6))
    assert ds["dataset"] == "hapt" and ds["sensors"] == "all" and warnings == []
    assert [(c["name"], c["unit"]) for c in ds["channels"]] == [
        ("acc_x", "m/s^2"),
        ("acc_y", "m/s^2"),
        ("acc_z", "m/s^2"),
        ("gyro_x", "deg/s"),
        ("gyro_y", "deg/s"),
        ("gyro_z", "deg/s"),
    ]
    assert ds["split"]["train"] == [1] and ds["split"]["test"] == [5]
    chosen = prepare(TrainConfig(classes=["WALKING", "LAYING"]), data, warn=warnings.append)
    assert list(chosen.dataset.labels) == ["WALKING", "LAYING"]
    assert list(chosen.dataset.label_ids) == [3, 0]
    assert set(np.unique(chosen.split.test.y)) == {0, 1}
    with pytest.raises(TinyharError, match="--sensors arm chooses MHEALTH"):
        prepare(TrainConfig(sensors="arm"), data)
    with pytest.raises(TinyharError, match="--include-null"):
        prepare(TrainConfig(include_null=True), data)
