"""The canonical preprocessing, bit-identical to `tinyhar_preprocess()` in the firmware core.

board sample (board units and axes) -> training units: v[c] = axis_sign[c] * raw[axis_src[c]] *
unit_factor[c] -> normalise: n = (v - mean[c]) * inv_std[c] -> quantise: q = clamp(rint(n *
(1 / input_scale)) + zero_point, -128, 127). Every step in float32 with no fused multiply-add;
rint rounds half to even; NaN maps to the zero point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tinyhar.errors import TinyharError

# factor from a board unit to a training unit
UNIT_FACTORS: dict[tuple[str, str], float] = {
    ("g", "m/s^2"): 9.80665,
    ("m/s^2", "m/s^2"): 1.0,
    ("deg/s", "deg/s"): 1.0,
    ("rad/s", "deg/s"): 180.0 / math.pi,
}
_AXES = "xyz"
_MIN_STD = 1e-6


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
            raise TinyharError(f"input scale {self.input_scale} is not positive; re-quantise")

    @property
    def channels(self) -> int:
        return len(self.unit_factor)

    @property
    def inv_input_scale(self) -> np.float32:
        """1 / input_scale rounded to float32, as the device computes it."""
        return np.float32(1.0) / np.float32(self.input_scale)

    @classmethod
    def from_run(
        cls, dataset_json: Mapping, quantize_json: Mapping, board: Mapping
    ) -> PreprocessConfig:
        """From a run's dataset.json and quantize.json and a board file (parsed TOML)."""
        scale, zp = input_quantization(quantize_json)
        try:
            channels = dataset_json["channels"]
            mean, std = (dataset_json["normalization"][k] for k in ("mean", "std"))
        except (KeyError, TypeError) as e:
            raise TinyharError(f"dataset.json lacks {e}; re-run tinyhar train") from None
        src, sign, factor = board_mapping(channels, board)
        std = np.maximum(np.asarray(std, dtype=np.float32), np.float32(_MIN_STD))
        return cls(
            unit_factor=factor,
            axis_src=src,
            axis_sign=sign,
            mean=np.asarray(mean, dtype=np.float32),
            inv_std=np.float32(1.0) / std,
            input_scale=scale,
            input_zero_point=zp,
        )


def input_quantization(quantize_json: Mapping) -> tuple[float, int]:
    """(scale, zero_point) of the model input from quantize.json."""
    q = quantize_json
    for key in ("input", "input_quantization"):
        if isinstance(q.get(key), Mapping) and "scale" in q[key]:
            return float(q[key]["scale"]), int(q[key]["zero_point"])
    if "input_scale" in q:
        return float(q["input_scale"]), int(q["input_zero_point"])
    raise TinyharError("quantize.json lacks the input scale and zero point; run tinyhar quantize")


def board_mapping(
    channels: Sequence[Mapping], board: Mapping
) -> tuple[list[int], list[int], list[float]]:
    """(axis_src, axis_sign, unit_factor) per training channel for a board.

    The raw board sample has the training layout (same kinds, groups of x, y, z) in the IMU
    library's axes and units; the board's `[imu.axis_map]` says which library axis (and sign)
    is each training axis, `[imu] acc_unit / gyro_unit` the library's units.
    """
    imu = board.get("imu", {})
    axis_map = imu.get("axis_map", {"x": "+x", "y": "+y", "z": "+z"})
    src, sign, factor = [], [], []
    for c, ch in enumerate(channels):
        axis, kind, unit = ch["axis"], ch["kind"], ch["unit"]
        start = c - _AXES.index(axis)
        group = channels[start : start + 3] if start >= 0 else []
        if [g["axis"] for g in group] != list(_AXES) or {g["kind"] for g in group} != {kind}:
            raise TinyharError(f"channel {ch['name']} is not in an x, y, z group of its kind")
        spec = str(axis_map.get(axis, "+" + axis)).strip()
        neg = spec.startswith("-")
        letter = spec.lstrip("+-")
        if letter not in _AXES:
            raise TinyharError(f"axis_map entry {axis} = {spec!r} is not one of +x, -x, ..., -z")
        src.append(start + _AXES.index(letter))
        sign.append(-1 if neg else 1)
        board_unit = imu.get(f"{kind}_unit", unit)
        if (board_unit, unit) not in UNIT_FACTORS:
            raise TinyharError(f"cannot convert the board's {board_unit} to {unit} for {kind}")
        factor.append(UNIT_FACTORS[(board_unit, unit)])
    return src, sign, factor


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
    """Normalised float32 -> int8 with the model's input quantisation."""
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
