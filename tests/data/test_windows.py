"""Windowing, splits and normalisation on small arrays built here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tinyhar.data.windows import (
    Windows,
    class_counts,
    default_subject_split,
    make_windows,
    normalization,
    normalize,
    split_windows,
    window_signals,
)
from tinyhar.errors import TinyharError


@dataclass(frozen=True)
class Rec:
    subject: int
    signals: np.ndarray
    labels: np.ndarray


def rec(subject: int, segments: list[tuple[int, int]], seed: int = 0) -> Rec:
    """A recording of (label, n_samples) segments; signals encode subject and sample index."""
    labels = np.concatenate([np.full(n, lab, np.int16) for lab, n in segments])
    sig = np.random.default_rng(seed + subject).normal(size=(len(labels), 23)).astype(np.float32)
    sig[:, 0] = np.arange(len(labels))
    sig[:, 1] += 10 * subject  # a per-subject offset, as between real wearers
    return Rec(subject, sig, labels)


def test_window_shapes_stride_and_content():
    r = rec(1, [(4, 400)])
    x, lab = window_signals(r.signals, r.labels, [0, 14, 15], window=100, stride=50)
    assert x.shape == (7, 100, 3) and x.dtype == np.float32
    assert (lab == 4).all()
    assert x[1, 0, 0] == 50 and x[1, 99, 0] == 149  # second window starts at the stride
    np.testing.assert_array_equal(x[2, :, 1], r.signals[100:200, 14])
    x25, _ = window_signals(r.signals, r.labels, [0], window=100, stride=25)
    assert len(x25) == 13


def test_mixed_windows_are_dropped():
    r = rec(1, [(1, 150), (2, 150)])
    x, lab = window_signals(r.signals, r.labels, [0], window=100, stride=50)
    # starts 0, 50, 100, 150, 200: only the one at 100 (100..199) crosses the boundary at 150
    assert lab.tolist() == [1, 1, 2, 2]
    assert x[:, 0, 0].tolist() == [0, 50, 150, 200]


def test_windows_carry_label_codes_and_drop_what_is_asked():
    recs = [rec(1, [(0, 300), (3, 200), (12, 200)])]
    w = make_windows(recs, [0, 1], drop=(0,))  # MHEALTH's null dropped
    assert sorted(set(w.y.tolist())) == [3, 12]  # label codes, not yet class indices
    wn = make_windows(recs, [0, 1])
    assert class_counts(wn.y, 13)[0] == 5 and class_counts(wn.y, 13)[3] == 3
    assert class_counts(wn.y, 13)[12] == 3
    assert (w.subject == 1).all()
    classes = w.with_classes([12, 3])  # class 0 is label 12, class 1 label 3
    assert class_counts(classes.y, 2) == [3, 3]
    np.testing.assert_array_equal(classes.x[classes.y == 0], w.x[w.y == 12])
    assert len(wn.with_classes([3])) == 3  # windows of other codes are left out


def test_negative_label_codes_never_make_windows():
    r = rec(1, [(2, 300)])
    r.labels[:] = -1  # rows that belong to no class
    with pytest.raises(TinyharError, match="no complete"):
        make_windows([r], [0])


def test_no_windows_is_one_line_error():
    with pytest.raises(TinyharError, match="no complete"):
        make_windows([rec(1, [(0, 500)])], [0], drop=(0,))


def ten_subjects() -> Windows:
    recs = [rec(s, [(1 + s % 12, 300), (0, 100), (4, 300)]) for s in range(1, 11)]
    return make_windows(recs, [0, 1, 2], drop=(0,))


def test_default_subject_splits():
    assert default_subject_split(range(1, 11)) == ([1, 2, 3, 4, 5, 6], [7, 8], [9, 10])
    assert default_subject_split([1, 2, 3, 4]) == ([1, 2], [3], [4])
    with pytest.raises(TinyharError, match="at least 3 subjects"):
        default_subject_split([1, 2])


def test_subject_split_is_disjoint():
    s = split_windows(ten_subjects())
    sets = [set(np.unique(p.subject).tolist()) for p in (s.train, s.val, s.test)]
    assert sets == [{1, 2, 3, 4, 5, 6}, {7, 8}, {9, 10}]
    assert s.train_subjects == [1, 2, 3, 4, 5, 6]
    assert "leak" not in s.note
    named = split_windows(
        ten_subjects(), train_subjects=[1, 2], val_subjects=[3], test_subjects=[5]
    )
    assert set(np.unique(named.test.subject)) == {5} and set(np.unique(named.train.subject)) == {
        1,
        2,
    }
    with pytest.raises(TinyharError, match="more than one"):
        split_windows(ten_subjects(), train_subjects=[1, 2], val_subjects=[2], test_subjects=[5])
    with pytest.raises(TinyharError, match="not in the data"):
        split_windows(ten_subjects(), test_subjects=[42])


def test_loso_holds_out_one_subject():
    s = split_windows(ten_subjects(), kind="loso", test_subjects=[4])
    assert set(np.unique(s.test.subject)) == {4}
    assert 4 not in set(np.unique(s.train.subject)) | set(np.unique(s.val.subject))
    assert s.val_subjects == [5] and len(s.train_subjects) == 8
    total = len(s.train) + len(s.val) + len(s.test)
    assert total == len(ten_subjects())
    with pytest.raises(TinyharError, match="exactly one"):
        split_windows(ten_subjects(), kind="loso", test_subjects=[1, 2])


def test_random_split_notes_the_leak_and_is_seeded():
    w = ten_subjects()
    a = split_windows(w, kind="random", seed=3)
    b = split_windows(w, kind="random", seed=3)
    assert "leak" in a.note and "50 of 100" in a.note
    np.testing.assert_array_equal(a.test.x, b.test.x)
    assert len(a.train) + len(a.val) + len(a.test) == len(w)
    assert len(a.train) > len(a.test) > 0


def test_normalisation_uses_training_split_only():
    w = ten_subjects()
    s = split_windows(w)
    mean, std = normalization(s.train.x)
    flat = s.train.x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, flat.std(0), rtol=1e-5)
    all_mean, _ = normalization(w.x)
    assert abs(all_mean[1] - mean[1]) > 1.0  # the test subjects would have shifted it
    z = normalize(s.train.x, mean, std).reshape(-1, 3)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-3)


def test_flat_channel_gets_a_std_floor():
    x = np.ones((4, 100, 2), np.float32)
    x[..., 1] = np.arange(100)
    mean, std = normalization(x)
    assert std[0] > 0 and np.isfinite(normalize(x, mean, std)).all()
