"""Rational-rate resampling with an anti-aliasing FIR filter (polyphase, numpy only).

The filter follows scipy.signal.resample_poly's defaults: a Kaiser-windowed sinc (beta 5) with
10 zero crossings each side at the lower of the two Nyquist frequencies. Each phase of the filter is
scaled to a DC gain of exactly 1 and the ends are padded with the edge values, so a constant
(gravity) stays constant up to the last sample."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from tinyhar.errors import TinyharError

_HALF_ZEROS = 10  # sinc zero crossings on each side of the filter's centre
_KAISER_BETA = 5.0
_MAX_DENOMINATOR = 1000


def ratio(from_hz: float, to_hz: float) -> tuple[int, int]:
    """(up, down): the smallest integers with to_hz / from_hz ~= up / down."""
    if not (from_hz > 0 and to_hz > 0):
        raise TinyharError(f"cannot resample from {from_hz} Hz to {to_hz} Hz: rates must be > 0")
    f = Fraction(to_hz / from_hz).limit_denominator(_MAX_DENOMINATOR)
    return f.numerator, f.denominator


def lowpass(up: int, down: int) -> np.ndarray:
    """The anti-aliasing / anti-imaging filter at the upsampled rate, DC gain `up`."""
    m = max(up, down)
    half = _HALF_ZEROS * m
    n = np.arange(-half, half + 1, dtype=np.float64)
    h = np.sinc(n / m) * np.kaiser(2 * half + 1, _KAISER_BETA)
    return h * (up / h.sum())


BLOCK_VALUES = 1 << 21  # filter weights held at once (16 MB of float64), whatever the ratio


def resample(x: np.ndarray, from_hz: float, to_hz: float) -> np.ndarray:
    """Signals (n, C) sampled at from_hz -> (m, C) float32 at to_hz; sample k sits at the input
    time k * from_hz / to_hz (the first samples coincide). Computed in blocks of output samples,
    so the memory beyond input and output stays bounded whatever the rates."""
    x = np.asarray(x, dtype=np.float64)
    up, down = ratio(from_hz, to_hz)
    if up == down or len(x) == 0:
        return x.astype(np.float32)
    h = lowpass(up, down)
    half = (len(h) - 1) // 2
    taps = -(-len(h) // up)  # input samples each output sample draws on
    h = np.concatenate([h, np.zeros(taps * up - len(h) + up)])
    n_out = (len(x) - 1) * up // down + 1
    pad = taps + 1
    padded = np.concatenate([np.repeat(x[:1], pad, axis=0), x, np.repeat(x[-1:], pad, axis=0)])
    out = np.empty((n_out, x.shape[1]), np.float32)
    j = np.arange(taps, dtype=np.int64)
    block = max(1, BLOCK_VALUES // taps)
    for start in range(0, n_out, block):
        k = np.arange(start, min(n_out, start + block), dtype=np.int64)
        centre = k * down + half  # y[k] = sum h[n] xu[centre - n]
        phase, base = centre % up, centre // up
        weights = h[phase[:, None] + up * j[None, :]]  # (block, taps)
        weights /= weights.sum(axis=1, keepdims=True)  # every phase passes DC exactly (gravity)
        idx = base[:, None] - j[None, :] + pad
        for c in range(x.shape[1]):
            out[k, c] = np.einsum("kt,kt->k", weights, padded[idx, c])
    return out


def resample_labels(labels: np.ndarray, from_hz: float, to_hz: float) -> np.ndarray:
    """The label of the nearest input sample at each output sample's time."""
    labels = np.asarray(labels)
    up, down = ratio(from_hz, to_hz)
    if up == down or len(labels) == 0:
        return labels
    n_out = (len(labels) - 1) * up // down + 1
    near = (np.arange(n_out, dtype=np.int64) * down * 2 + up) // (2 * up)
    return labels[np.minimum(near, len(labels) - 1)]
