"""The anti-aliasing resampler: passes the band both rates share, removes what would alias."""

from __future__ import annotations

import numpy as np
import pytest

from tinyhar.data.resample import lowpass, ratio, resample, resample_labels
from tinyhar.errors import TinyharError


def _tones(rate: float, seconds: float, freqs: list[float]) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(0, seconds, 1 / rate)
    return t, np.stack([np.sin(2 * np.pi * f * t) for f in freqs], axis=1)


def test_ratio_is_the_smallest_fraction():
    assert ratio(100, 50) == (1, 2)
    assert ratio(119, 50) == (50, 119)
    assert ratio(25, 50) == (2, 1)
    with pytest.raises(TinyharError, match="rates must be > 0"):
        ratio(0, 50)


def test_downsampling_keeps_the_passband_and_removes_what_would_alias():
    _, x = _tones(100, 20, [5, 40])  # 40 Hz folds onto 10 Hz at 50 Hz without a filter
    y = resample(x, 100, 50)
    assert y.shape == (1000, 2) and y.dtype == np.float32
    t = np.arange(len(y)) / 50
    inner = slice(100, -100)
    np.testing.assert_allclose(y[inner, 0], np.sin(2 * np.pi * 5 * t[inner]), atol=1e-3)
    assert np.abs(y[inner, 1]).max() < 0.01  # naive decimation would keep amplitude ~1
    assert np.abs(x[::2, 1]).max() > 0.9


@pytest.mark.parametrize("rate", [119.0, 25.0, 200.0])
def test_other_rates_land_on_50_hz_with_the_signal_in_place(rate):
    t, x = _tones(rate, 10, [2])
    y = resample(x, rate, 50)
    assert len(y) == int((len(x) - 1) * 50 / rate) + 1
    t50 = np.arange(len(y)) / 50
    inner = slice(50, -50)
    np.testing.assert_allclose(y[inner, 0], np.sin(2 * np.pi * 2 * t50[inner]), atol=3e-3)


def test_constant_gravity_stays_constant_to_the_edges():
    x = np.full((333, 3), [0.0, 0.0, 9.80665])
    y = resample(x, 119, 50)
    np.testing.assert_allclose(y[:, 2], 9.80665, rtol=1e-6)


def test_filter_has_unit_dc_gain_per_phase():
    h = lowpass(50, 119)
    assert h.sum() == pytest.approx(50)


def test_labels_take_the_nearest_sample():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2], np.int16)
    assert resample_labels(labels, 100, 50).tolist() == [0, 0, 1, 2]
    assert resample_labels(labels, 50, 100)[:6].tolist() == [0, 0, 0, 0, 0, 1]
