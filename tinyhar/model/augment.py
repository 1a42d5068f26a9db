"""Train-time augmentation of raw windows (training units), seeded numpy: what changes between
wearers and boards — the sensor frame's orientation, amplitude, the IMU's range, timing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from tinyhar.board.boards import Board
from tinyhar.data.units import TRAINING_UNITS
from tinyhar.errors import TinyharError
from tinyhar.run.records import Channel

AXES = ("x", "y", "z")


@dataclass(frozen=True)
class Augment:
    """Each option off at 0 / None. Ranges are in training units (m/s², deg/s)."""

    rotate_deg: float = 0.0  # rotation of the sensor frame: angle uniform in ±rotate_deg
    scale: float = 0.0  # amplitude: one factor per window and sensor kind in 1 ± scale
    time_jitter: float = 0.0  # time stretch: 1 ± time_jitter about the window's centre
    clip_acc: float | None = None  # clip the accelerometer at ± this (the board's range)
    clip_gyro: float | None = None  # clip the gyroscope at ± this
    clip_board: str | None = None  # the board the clip range was read from

    def __post_init__(self) -> None:
        if not 0 <= self.rotate_deg <= 180 or not 0 <= self.scale < 1:
            raise TinyharError("--rotate must be 0..180 degrees and --scale in [0, 1)")
        if not 0 <= self.time_jitter < 0.5:
            raise TinyharError("--time-jitter must be in [0, 0.5)")

    @property
    def active(self) -> bool:
        return bool(self.rotate_deg or self.scale or self.time_jitter or self.clipping)

    @property
    def clipping(self) -> bool:
        return self.clip_acc is not None or self.clip_gyro is not None

    def describe(self) -> str:
        """The active options in words, for the training log."""
        parts = []
        if self.rotate_deg:
            parts.append(f"rotation ±{self.rotate_deg:g}°")
        if self.scale:
            parts.append(f"amplitude ×(1 ± {self.scale:g})")
        if self.time_jitter:
            parts.append(f"time stretch 1 ± {self.time_jitter:g}")
        if self.clip_acc is not None:
            parts.append(f"acc clipped at ±{self.clip_acc:g} m/s²")
        if self.clip_gyro is not None:
            parts.append(f"gyro clipped at ±{self.clip_gyro:g} deg/s")
        text = ", ".join(parts) or "none"
        return f"{text} ({self.clip_board}'s IMU range)" if self.clip_board else text

    def to_json(self) -> dict:
        return asdict(self)


def clip_to_board(aug: Augment, b: Board) -> Augment:
    """`aug` clipping at board `b`'s IMU range (its board file), converted to training units."""
    return replace(
        aug,
        clip_acc=b.imu_range("acc", TRAINING_UNITS["acc"]),
        clip_gyro=b.imu_range("gyro", TRAINING_UNITS["gyro"]),
        clip_board=b.name,
    )


@dataclass(frozen=True)
class SensorGroup:
    """One IMU's channel indices: acc and gyro (x, y, z), either may be missing."""

    acc: tuple[int, int, int] | None
    gyro: tuple[int, int, int] | None


def sensor_groups(channels: Sequence[Channel]) -> list[SensorGroup]:
    """Pair the channels (dataset.json's) into IMUs: the k-th complete acc x,y,z triple with the
    k-th gyro triple, in channel order."""
    triples: dict[str, list[tuple[int, int, int]]] = {"acc": [], "gyro": []}
    open_: dict[str, dict[str, int]] = {"acc": {}, "gyro": {}}
    for i, c in enumerate(channels):
        kind, axis = c.kind, c.axis
        if kind not in triples or axis not in AXES:
            continue
        cur = open_[kind]
        if axis in cur:  # a second x before a z: an incomplete triple, start again
            cur.clear()
        cur[axis] = i
        if len(cur) == 3:
            triples[kind].append((cur["x"], cur["y"], cur["z"]))
            cur.clear()
    n = max(len(triples["acc"]), len(triples["gyro"]))
    return [
        SensorGroup(
            triples["acc"][k] if k < len(triples["acc"]) else None,
            triples["gyro"][k] if k < len(triples["gyro"]) else None,
        )
        for k in range(n)
    ]


def rotations(n: int, max_deg: float, rng: np.random.Generator) -> np.ndarray:
    """n rotation matrices (n, 3, 3): a uniformly random axis, angle uniform in ±max_deg."""
    axis = rng.standard_normal((n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg, n))
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k -= k.transpose(0, 2, 1)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)  # Rodrigues


def time_stretch(x: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Each window resampled at c + (t - c)·f (c its centre), linearly interpolated as the
    firmware resamples; samples beyond the ends take the end values."""
    n = x.shape[1]
    t = np.arange(n, dtype=np.float64)
    c = (n - 1) / 2
    src = np.clip(c + (t[None, :] - c) * factors[:, None], 0, n - 1)  # (windows, n)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = (src - lo)[:, :, None]
    rows = np.arange(len(x))[:, None]
    return x[rows, lo] * (1 - frac) + x[rows, hi] * frac


def augment(
    x: np.ndarray, groups: Sequence[SensorGroup], aug: Augment, rng: np.random.Generator
) -> np.ndarray:
    """A new augmented copy of raw windows x (windows, time, channels); shapes and order kept.

    Order: time stretch, rotation (acc and gyro of one IMU by the same matrix), amplitude
    scaling, clipping at the board's range (the board clips what it measures)."""
    out = np.array(x, dtype=np.float64, copy=True)
    n = len(out)
    if aug.time_jitter:
        out = time_stretch(out, rng.uniform(1 - aug.time_jitter, 1 + aug.time_jitter, n))
    for g in groups:
        if aug.rotate_deg:
            r = rotations(n, aug.rotate_deg, rng)
            for idx in (g.acc, g.gyro):
                if idx is not None:
                    out[:, :, list(idx)] = np.einsum("nij,ntj->nti", r, out[:, :, list(idx)])
        if aug.scale:
            for idx in (g.acc, g.gyro):
                if idx is not None:
                    f = rng.uniform(1 - aug.scale, 1 + aug.scale, n)
                    out[:, :, list(idx)] *= f[:, None, None]
        for idx, limit in ((g.acc, aug.clip_acc), (g.gyro, aug.clip_gyro)):
            if idx is not None and limit is not None:
                out[:, :, list(idx)] = np.clip(out[:, :, list(idx)], -limit, limit)
    return out.astype(x.dtype, copy=False)
