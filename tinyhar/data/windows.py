"""Windows of raw training-unit signals, subject-aware splits and train-only normalisation."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from tinyhar.errors import TinyharError

WINDOW = 100
STRIDE = 50
REPRESENTATIVE_WINDOWS = 500  # training windows that calibrate the int8 quantization
SPLIT_KINDS = ("subjects", "loso", "random")
STD_FLOOR = 1e-3  # training units (m/s^2, deg/s): a flat channel must not divide by ~0
RANDOM_FRACTIONS = (0.70, 0.15, 0.15)


@dataclass(frozen=True)
class Windows:
    """Windows (n, window, C) float32 in training units, class indices and the subject of each."""

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> Windows:
        return Windows(self.x[mask], self.y[mask], self.subject[mask])

    def with_classes(self, codes: Sequence[int]) -> Windows:
        """Only the windows of label codes `codes`, y the index of its code in `codes`."""
        code_array = np.asarray(codes, np.int64)
        top = max(code_array.max(initial=0), self.y.max(initial=0))
        lut = np.full(int(top) + 1, -1, np.int64)
        lut[code_array] = np.arange(len(code_array))
        y = lut[self.y]
        keep = y >= 0
        return Windows(self.x[keep], y[keep], self.subject[keep])


@dataclass(frozen=True)
class Split:
    """Train / validation / test windows and how they were split."""

    train: Windows
    val: Windows
    test: Windows
    kind: str
    train_subjects: list[int]
    val_subjects: list[int]
    test_subjects: list[int]
    note: str

    def with_classes(self, codes: Sequence[int]) -> Split:
        """Each set with only the windows of `codes`, labelled by class index."""
        return replace(
            self,
            train=self.train.with_classes(codes),
            val=self.val.with_classes(codes),
            test=self.test.with_classes(codes),
        )


def window_signals(
    signals: np.ndarray,
    labels: np.ndarray,
    columns: Sequence[int],
    window: int = WINDOW,
    stride: int = STRIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut (n, window, C) float32 windows every `stride` samples, keeping only single-label ones.

    Returns the windows and their MHEALTH label ids; a window whose samples carry more than one
    label (a transition) is dropped.
    """
    if window < 1 or stride < 1:
        raise TinyharError(f"window ({window}) and stride ({stride}) must be at least 1 sample")
    n = len(labels)
    c = len(columns)
    if n < window:
        return np.zeros((0, window, c), np.float32), np.zeros(0, np.int64)
    lab = np.lib.stride_tricks.sliding_window_view(np.asarray(labels), window)[::stride]
    uniform = lab.min(axis=1) == lab.max(axis=1)
    sig = np.asarray(signals, dtype=np.float32)[:, list(columns)]
    views = np.lib.stride_tricks.sliding_window_view(sig, window, axis=0)[::stride]  # (m, C, w)
    x = np.ascontiguousarray(views[uniform].transpose(0, 2, 1), dtype=np.float32)
    return x, lab[uniform, 0].astype(np.int64)


def make_windows(
    recordings: Iterable,
    columns: Sequence[int],
    window: int = WINDOW,
    stride: int = STRIDE,
    drop: Collection[int] = (),
) -> Windows:
    """Windows of every recording (objects with .subject, .signals, .labels); y is the label code.

    Windows of a negative label code (rows that belong to no class) or of a code in `drop` are
    left out; `Split.with_classes` later turns codes into class indices."""
    xs, ys, ss = [], [], []
    for rec in recordings:
        x, lab = window_signals(rec.signals, rec.labels, columns, window, stride)
        keep = (lab >= 0) & ~np.isin(lab, list(drop))
        xs.append(x[keep])
        ys.append(lab[keep])
        ss.append(np.full(int(keep.sum()), int(rec.subject), np.int64))
    if not xs or sum(len(y) for y in ys) == 0:
        raise TinyharError(
            f"no complete {window}-sample single-activity windows in the data: "
            "check the recordings hold labelled activity segments"
        )
    return Windows(np.concatenate(xs), np.concatenate(ys), np.concatenate(ss))


def default_subject_split(subjects: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """Train / val / test subjects by id order: about 60 / 20 / 20 % (10 -> 6/2/2, 4 -> 2/1/1)."""
    subs = sorted(set(int(s) for s in subjects))
    if len(subs) < 3:
        raise TinyharError(
            f"a subject-independent split needs at least 3 subjects, the data has {len(subs)}: "
            "use --split random or more subjects"
        )
    n_test = max(1, round(len(subs) * 0.2))
    n_val = max(1, round(len(subs) * 0.2))
    n_train = len(subs) - n_test - n_val
    return subs[:n_train], subs[n_train : n_train + n_val], subs[n_train + n_val :]


def _check_subjects(name: str, chosen: Sequence[int], present: Sequence[int]) -> list[int]:
    chosen = sorted(set(int(s) for s in chosen))
    missing = [s for s in chosen if s not in present]
    if missing:
        raise TinyharError(
            f"--{name}-subjects {','.join(map(str, missing))} not in the data "
            f"(subjects present: {','.join(map(str, present))})"
        )
    if not chosen:
        raise TinyharError(f"no {name} subjects: name at least one with --{name}-subjects")
    return chosen


def split_windows(
    w: Windows,
    kind: str = "subjects",
    train_subjects: Sequence[int] | None = None,
    val_subjects: Sequence[int] | None = None,
    test_subjects: Sequence[int] | None = None,
    seed: int = 0,
    window: int = WINDOW,
    stride: int = STRIDE,
) -> Split:
    """Split windows by subject ("subjects"), leave one subject out ("loso"), or at random."""
    present = sorted(int(s) for s in np.unique(w.subject))
    if kind == "random":
        return _random_split(w, present, seed, window, stride)
    if kind == "loso":
        if test_subjects is None:
            test_subjects = [present[-1]]
        if len(set(test_subjects)) != 1:
            raise TinyharError(
                "--split loso leaves out exactly one subject: pass --test-subjects K"
            )
        test = _check_subjects("test", test_subjects, present)
        rest = [s for s in present if s not in test]
        if val_subjects is None:
            # the subject after K (cyclically) validates, so early stopping never sees K
            later = [s for s in rest if s > test[0]]
            val_subjects = [later[0] if later else rest[0]] if len(rest) > 1 else []
        val = _check_subjects("val", val_subjects, present)
        train = sorted(train_subjects) if train_subjects else [s for s in rest if s not in val]
        train = _check_subjects("train", train, present)
        note = f"leave-one-subject-out: subject {test[0]} is the test set, subject(s) " + (
            f"{', '.join(map(str, val))} validate, the rest train"
        )
    elif kind == "subjects":
        if train_subjects is None and val_subjects is None and test_subjects is None:
            train, val, test = default_subject_split(present)
        else:
            train, val, test = _named_subjects(present, train_subjects, val_subjects, test_subjects)
        note = "subject-independent: no subject appears in more than one of train, val, test"
    else:
        raise TinyharError(f"unknown split {kind!r}: use one of {', '.join(SPLIT_KINDS)}")
    overlap = (set(train) & set(val)) | (set(train) & set(test)) | (set(val) & set(test))
    if overlap:
        raise TinyharError(
            f"subject(s) {','.join(map(str, sorted(overlap)))} are in more than one of "
            "train/val/test: give each subject to one set"
        )
    parts = [w.take(np.isin(w.subject, s)) for s in (train, val, test)]
    for name, part in zip(("train", "val", "test"), parts, strict=True):
        if len(part) == 0:
            raise TinyharError(f"the {name} split has no windows: choose other subjects for it")
    train_w, val_w, test_w = parts
    return Split(train_w, val_w, test_w, kind, list(train), list(val), list(test), note=note)


def _named_subjects(
    present: list[int],
    train: Sequence[int] | None,
    val: Sequence[int] | None,
    test: Sequence[int] | None,
) -> tuple[list[int], list[int], list[int]]:
    """Complete a partly named subject split: unnamed sets take the remaining subjects."""
    used = set(train or []) | set(val or [])
    if test is None:
        remaining = [s for s in present if s not in used]
        test = remaining if train is not None and val is not None else remaining[-1:]
    if val is None:
        remaining = [s for s in present if s not in set(test) | set(train or [])]
        val = remaining if train is not None else remaining[-1:]
    if train is None:
        train = [s for s in present if s not in set(test) | set(val)]
    return (
        _check_subjects("train", train, present),
        _check_subjects("val", val, present),
        _check_subjects("test", test, present),
    )


def _random_split(w: Windows, present: list[int], seed: int, window: int, stride: int) -> Split:
    if len(w) < 3:
        raise TinyharError(f"only {len(w)} windows: a random split needs at least 3")
    order = np.random.default_rng(seed).permutation(len(w))
    n_train = int(round(len(w) * RANDOM_FRACTIONS[0]))
    n_val = max(1, int(round(len(w) * RANDOM_FRACTIONS[1])))
    n_train = min(n_train, len(w) - n_val - 1)
    idx = np.split(order, [n_train, n_train + n_val])
    parts = [w.take(np.sort(i)) for i in idx]
    overlap = max(window - stride, 0)
    note = (
        "random window split (as in the paper): windows of the same subjects are shuffled into "
        f"train/val/test, and neighbouring windows overlap by {overlap} of {window} samples, so "
        "overlapping windows leak across the split and the test accuracy is optimistic; use the "
        "default subject split for an honest estimate"
    )
    return Split(
        parts[0],
        parts[1],
        parts[2],
        kind="random",
        train_subjects=present,
        val_subjects=present,
        test_subjects=present,
        note=note,
    )


def normalization(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (float32) over all samples of the training windows only."""
    flat = np.asarray(x_train, np.float64).reshape(-1, x_train.shape[-1])
    mean = flat.mean(axis=0)
    std = np.maximum(flat.std(axis=0), STD_FLOOR)
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) * (1 / std) per channel in float32, as the device does: the model's input."""
    inv_std = (1.0 / np.asarray(std, np.float32)).astype(np.float32)
    return (np.asarray(x, np.float32) - np.asarray(mean, np.float32)) * inv_std


def class_counts(y: np.ndarray, n_classes: int) -> list[int]:
    """Windows per class index."""
    return np.bincount(np.asarray(y, np.int64), minlength=n_classes).tolist()
