"""Which classes a model learns: those the training windows hold, or the ones the user names."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence

import numpy as np

from tinyhar.data.windows import Split
from tinyhar.errors import TinyharError

MAX_CLASS_NAME = 64  # characters of a class name (the firmware carries each one)


def normalise_label(value: str) -> str:
    """A label value as tinyhar compares and keeps it: surrounding whitespace removed. Import
    infers classes and reading maps rows with this one function, so they agree."""
    return str(value).strip()


def class_name_problem(name: str) -> str | None:
    """What is wrong with `name` as a class name (empty, surrounded by spaces, a control
    character, longer than MAX_CLASS_NAME), or None when nothing is."""
    if not name.strip():
        return "is empty"
    if name != name.strip():
        return "has spaces around it"
    bad = next((ch for ch in name if unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        return f"holds the control character U+{ord(bad):04X}"
    if len(name) > MAX_CLASS_NAME:
        return f"is {len(name)} characters long, more than {MAX_CLASS_NAME}"
    return None


def shown(name: str, limit: int = 40) -> str:
    """A class name as one line shows it: quoted and escaped (repr), cut after `limit` chars."""
    return repr(name[:limit] + ("..." if len(name) > limit else ""))


def case_duplicates(names: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of distinct names that differ only in case (Walk, walk): likely one class twice."""
    first: dict[str, str] = {}
    pairs = []
    for name in names:
        key = name.casefold()
        if key in first and first[key] != name:
            pairs.append((first[key], name))
        first.setdefault(key, name)
    return pairs


def choose_classes(
    split: Split,
    labels: Sequence[str],
    chosen: Sequence[str] | None = None,
    warn: Callable[[str], None] = lambda s: None,
) -> list[int]:
    """Label codes of the model's classes, in class order: `chosen` (names) in the order given,
    else every label with training windows in label order. Warns once for classes without
    training windows and once for classes without test windows."""
    in_train = set(np.unique(split.train.y).tolist())
    in_test = set(np.unique(split.test.y).tolist())
    seen = in_train | in_test | set(np.unique(split.val.y).tolist())
    if chosen is not None:
        codes = [_code(name, labels) for name in chosen]
        if len(set(codes)) != len(codes):
            raise TinyharError("--classes names a class twice: name each class once")
        if len(codes) < 2:
            raise TinyharError("--classes needs at least two classes")
        missing = [labels[c] for c in codes if c not in in_train]
        if missing:
            warn(
                f"--classes {', '.join(missing)}: no training windows; the model cannot learn "
                "them (choose other training subjects or leave them out)"
            )
    else:
        codes = sorted(in_train)
        left_out = [labels[c] for c in sorted(seen - in_train)]
        if left_out:
            warn(
                f"class(es) {', '.join(left_out)} have no training windows and are left out of "
                "the model (give their subjects to training, or choose with --classes)"
            )
        if len(codes) < 2:
            raise TinyharError(
                f"the training windows hold {len(codes)} class(es); a classifier needs two: "
                "choose other training subjects"
            )
    untested = [labels[c] for c in codes if c not in in_test]
    if untested:
        warn(
            f"class(es) {', '.join(untested)} have no test windows: their test scores are "
            "empty (choose other test subjects)"
        )
    return codes


def _code(name: str, labels: Sequence[str]) -> int:
    for i, label in enumerate(labels):
        if label == name:
            return i
    folded = [i for i, label in enumerate(labels) if label.lower() == name.strip().lower()]
    if len(folded) == 1:
        return folded[0]
    raise TinyharError(
        f"--classes {name!r} is not a class of the data; its classes are {', '.join(labels)}"
    )
