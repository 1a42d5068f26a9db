"""The canonical preprocessing, bit-identical to `tinyhar_preprocess()` in the firmware core.

board sample (board units and axes) -> training units: v[c] = axis_sign[c] * raw[axis_src[c]] *
unit_factor[c] -> normalise: n = (v - mean[c]) * inv_std[c] -> quantize: q = clamp(rint(n *
(1 / input_scale)) + zero_point, -128, 127). Every step in float32 with no fused multiply-add;
rint rounds half to even; NaN maps to the zero point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from tinyhar.board.boards import AXES, Board
from tinyhar.data.windows import STD_FLOOR
from tinyhar.errors import TinyharError
from tinyhar.run.records import DatasetContract, TensorQuantization

# Slots of the raw sample the IMU library reads: acc x, y, z, then gyro x, y, z.
_KIND_SLOT = {"acc": 0, "gyro": 3}


@dataclass(frozen=True)
class ChannelMap:
    """How training channel c is made from the board's IMU, in the firmware and on the host."""

    imu_slot: int  # the library reading (0-2 acc x, y, z; 3-5 gyro) in raw slot c
    axis_src: int  # the raw slot training channel c is taken from
    axis_sign: int  # +1 or -1
    unit_factor: float  # library unit -> training unit


def channel_map(channels: Sequence[tuple[str, str, str]], board: Board) -> list[ChannelMap]:
    """Per training channel (kind, axis, unit): which IMU reading fills raw slot c and how the
    raw sample maps to the training frame.

    Raw slot c holds the library's reading of the channel's own kind and axis; training axis a
    comes from library axis `board.imu.axis_src[a]` with `axis_sign[a]`, found in the nearest slot
    of the same kind. When no slot holds it (a model without all three axes), slot c itself holds
    the needed library axis."""
    own = [_KIND_SLOT[kind] + AXES.index(axis) for kind, axis, _ in channels]
    wanted = [
        (
            _KIND_SLOT[kind] + board.imu.axis_src[AXES.index(axis)],
            board.imu.axis_sign[AXES.index(axis)],
        )
        for kind, axis, _ in channels
    ]
    if all(w in own for w, _ in wanted):
        slots = own
        srcs = [_nearest_slot(own, w, c) for c, (w, _) in enumerate(wanted)]
    else:  # some library axis has no slot of its own: each slot holds what its channel needs
        slots = [w for w, _ in wanted]
        srcs = list(range(len(channels)))
    return [
        ChannelMap(slot, src, sign, board.unit_factor(kind, unit))
        for slot, src, (_, sign), (kind, _, unit) in zip(slots, srcs, wanted, channels, strict=True)
    ]


def _nearest_slot(slots: Sequence[int], wanted: int, near: int) -> int:
    """The index of the slot holding `wanted` nearest to `near` (the lower on a tie)."""
    return min((j for j, s in enumerate(slots) if s == wanted), key=lambda j: (abs(j - near), j))


def inv_std(std: ArrayLike) -> np.ndarray:
    """1/std as the firmware holds it: a float32 division of float32 values, std floored."""
    return np.float32(1.0) / np.maximum(np.asarray(std, np.float32), np.float32(STD_FLOOR))


@dataclass(frozen=True, eq=False)
class PreprocessConfig:
    unit_factor: np.ndarray  # float32 (C,)
    axis_src: np.ndarray  # int (C,) index into the raw board sample
    axis_sign: np.ndarray  # int8 (C,) +1 or -1
    mean: np.ndarray  # float32 (C,)
    inv_std: np.ndarray  # float32 (C,)
    input_scale: float  # a float32 value
    input_zero_point: int

    def __post_init__(self) -> None:
        c = len(self.unit_factor)
        set_ = object.__setattr__
        set_(self, "unit_factor", np.asarray(self.unit_factor, dtype=np.float32).reshape(c))
        set_(self, "axis_src", np.asarray(self.axis_src, dtype=np.int64).reshape(c))
        set_(self, "axis_sign", np.asarray(self.axis_sign, dtype=np.int8).reshape(c))
        set_(self, "mean", np.asarray(self.mean, dtype=np.float32).reshape(c))
        set_(self, "inv_std", np.asarray(self.inv_std, dtype=np.float32).reshape(c))
        set_(self, "input_scale", float(np.float32(self.input_scale)))
        set_(self, "input_zero_point", int(self.input_zero_point))
        if not np.all(np.isin(self.axis_sign, (-1, 1))):
            raise TinyharError("axis signs must be +1 or -1; fix the board's axis_map")
        if np.any(self.axis_src < 0) or np.any(self.axis_src >= c):
            raise TinyharError(f"axis sources must lie in 0..{c - 1}; fix the board's axis_map")
        if not self.input_scale > 0:
            raise TinyharError(f"input scale {self.input_scale} is not positive; re-quantize")

    @property
    def channels(self) -> int:
        return len(self.unit_factor)

    @property
    def inv_input_scale(self) -> np.float32:
        """1 / input_scale rounded to float32, as the device computes it."""
        return np.float32(1.0) / np.float32(self.input_scale)

    @classmethod
    def from_run(
        cls, dataset: DatasetContract, model_input: TensorQuantization, board: Board | None
    ) -> PreprocessConfig:
        """From a run's dataset.json and its int8 model's input, for a board's IMU (None:
        windows that are already in training units and axes, as model-mode verify sends them)."""
        scale, zp = model_input.scale, model_input.zero_point
        mean, std = dataset.mean, dataset.std
        if board is None:
            return cls.in_training_frame(mean, std, scale, zp)
        maps = channel_map([(c.kind, c.axis, c.unit) for c in dataset.channels], board)
        return cls(
            unit_factor=np.array([m.unit_factor for m in maps]),
            axis_src=np.array([m.axis_src for m in maps]),
            axis_sign=np.array([m.axis_sign for m in maps]),
            mean=np.asarray(mean, dtype=np.float32),
            inv_std=inv_std(std),
            input_scale=scale,
            input_zero_point=zp,
        )

    @classmethod
    def in_training_frame(
        cls, mean: ArrayLike, std: ArrayLike, scale: float = 1.0, zero_point: int = 0
    ) -> PreprocessConfig:
        """The device's preprocessing for windows already in training units and axes."""
        c = np.size(mean)
        return cls(
            unit_factor=np.ones(c, np.float32),
            axis_src=np.arange(c),
            axis_sign=np.ones(c, np.int8),
            mean=np.asarray(mean, np.float32),
            inv_std=inv_std(std),
            input_scale=scale,
            input_zero_point=zero_point,
        )


def to_training_units(raw: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Board samples (n, C) -> training units (n, C) float32."""
    raw = np.asarray(raw, dtype=np.float32)
    v = raw[:, cfg.axis_src] * cfg.unit_factor
    return np.where(cfg.axis_sign < 0, -v, v).astype(np.float32)


def to_board_units(training: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Training-unit samples (n, C) -> what the board's IMU library would report (n, C) float32."""
    training = np.asarray(training, dtype=np.float32)
    v = training / cfg.unit_factor
    v = np.where(cfg.axis_sign < 0, -v, v).astype(np.float32)
    out = np.empty_like(v)
    out[:, cfg.axis_src] = v
    return out


def normalise(v: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Training units (n, C) -> normalised float32."""
    return ((np.asarray(v, dtype=np.float32) - cfg.mean) * cfg.inv_std).astype(np.float32)


def quantize(n: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Normalised float32 -> int8 with the model's input quantization."""
    x = np.asarray(n, dtype=np.float32) * cfg.inv_input_scale
    x = np.where(np.isnan(x), np.float32(0), x)
    x = np.clip(x, np.float32(-1024), np.float32(1024))
    q = np.rint(x).astype(np.int32) + cfg.input_zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def quantize_window(raw: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Raw board samples (window, C) float32 -> the int8 window the device feeds its model."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 2 or raw.shape[1] != cfg.channels:
        raise TinyharError(f"raw window of shape {raw.shape}, expected (n, {cfg.channels})")
    with np.errstate(invalid="ignore", over="ignore"):
        return quantize(normalise(to_training_units(raw, cfg), cfg), cfg)
