"""What the firmware needs to know about a model: window, channels, units, axes, quantization.

Built from a run folder (dataset.json + the int8 model) or, for a model of the user's own, from
options, a side file `<model>.json` and what the .tflite itself says; every value records where it
came from so the build can say which values were assumed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyhar.board.boards import AXES, Board
from tinyhar.board.preprocess import channel_map, inv_std
from tinyhar.data.classes import class_name_problem, shown
from tinyhar.data.mhealth import RATE_HZ
from tinyhar.errors import TinyharError
from tinyhar.lite.tflite_inspect import ModelInfo, TensorInfo
from tinyhar.run.records import DatasetContract

TRAINING_UNITS = {"acc": "m/s^2", "gyro": "deg/s"}
# int8 transport of a float model's window: normalised values within +-4 (x 1/32 steps).
FLOAT_INPUT_SCALE = 1.0 / 32.0
# int8 transport of a float model's output: probabilities after SOFTMAX, otherwise scores in +-8.
FLOAT_SOFTMAX_SCALE, FLOAT_SOFTMAX_ZP = 1.0 / 256.0, -128
FLOAT_SCORE_SCALE = 1.0 / 16.0


@dataclass(frozen=True)
class ChannelSpec:
    """One model input channel in the training frame."""

    name: str
    kind: str  # "acc" | "gyro"
    axis: str  # "x" | "y" | "z"
    unit: str  # training unit
    mean: float = 0.0
    std: float = 1.0


@dataclass
class ModelSpec:
    """The model-side facts of a firmware build, with the origin of each value."""

    window: int
    stride: int
    rate_hz: float
    channels: list[ChannelSpec]
    labels: list[str]
    input_scale: float  # of the int8 window the core builds
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    synthetic: bool = False
    origin: dict[str, str] = field(default_factory=dict)


def spec_from_dataset(dataset: DatasetContract, info: ModelInfo) -> ModelSpec:
    """A run's model: everything from dataset.json and the int8 model's quantization."""
    spec = ModelSpec(
        window=dataset.window,
        stride=dataset.stride,
        rate_hz=dataset.rate_hz,
        channels=[
            ChannelSpec(c.name, c.kind, c.axis, c.unit, m, s)
            for c, m, s in zip(dataset.channels, dataset.mean, dataset.std, strict=True)
        ],
        labels=list(dataset.labels),
        input_scale=0.0,
        input_zero_point=0,
        output_scale=0.0,
        output_zero_point=0,
        synthetic=dataset.synthetic,
        origin={
            k: DatasetContract.FILE
            for k in ("window", "stride", "rate_hz", "channels", "labels", "mean", "std")
        },
    )
    _set_quantization(spec, info)
    check_spec(spec, info)
    return spec


def read_side_file(model_path: Path) -> tuple[dict[str, Any], Path | None]:
    """The optional side file `<model>.json` next to a .tflite (labels, window, channels, ...)."""
    side = model_path.with_suffix(".json")
    if not side.is_file():
        return {}, None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise TinyharError(
            f"side file {side} is not readable JSON ({e}): fix or remove it"
        ) from None
    if not isinstance(data, dict):
        raise TinyharError(f"side file {side} must hold a JSON object")
    return data, side


def spec_for_model(
    info: ModelInfo, options: dict[str, Any], side: dict[str, Any], side_name: str = "side file"
) -> ModelSpec:
    """A model of the user's own: options beat the side file, which beats what the model says,
    which beats defaults. `origin` tells which one each value came from."""
    origin: dict[str, str] = {}

    def pick(key: str, derived: Any = None, derived_from: str = "", default: Any = None) -> Any:
        if options.get(key) is not None:
            origin[key] = "option"
            return options[key]
        if side.get(key) is not None:
            origin[key] = side_name
            return side[key]
        if derived is not None:
            origin[key] = derived_from
            return derived
        origin[key] = "default (assumed)"
        return default

    inp, out = _single_io(info)
    dims = [d for d in inp.shape]
    if dims and dims[0] == 1 and len(dims) > 1:
        dims = dims[1:]
    d_window = dims[0] if dims else None
    d_channels = math.prod(dims[1:]) if len(dims) > 1 else 1
    n_classes = math.prod(out.shape) if out.shape else 1

    window = _whole(
        pick("window", d_window, f"model input shape {list(inp.shape)}"), "window", origin
    )
    chan_arg = pick("channels", d_channels, f"model input shape {list(inp.shape)}")
    channels = _channel_list(chan_arg, origin.get("channels", ""))
    labels = _labels(pick("labels", None, "", [f"class{i}" for i in range(n_classes)]), origin)
    mean = pick("mean", None, "", [0.0] * len(channels))
    std = pick("std", None, "", [1.0] * len(channels))
    mean = _per_channel(mean, len(channels), "mean", origin)
    std = _per_channel(std, len(channels), "std", origin)
    if any(s <= 0 for s in std):
        raise TinyharError(f"std must be > 0 for every channel, got {std} ({origin['std']})")
    rate = _number(pick("rate_hz", None, "", RATE_HZ), "rate_hz", origin)
    stride = _whole(pick("stride", None, "", max(1, window // 2)), "stride", origin)
    spec = ModelSpec(
        window=window,
        stride=stride,
        rate_hz=rate,
        channels=[
            ChannelSpec(c.name, c.kind, c.axis, c.unit, m, s)
            for c, m, s in zip(channels, mean, std, strict=True)
        ],
        labels=[str(x) for x in labels],
        input_scale=0.0,
        input_zero_point=0,
        output_scale=0.0,
        output_zero_point=0,
        origin=origin,
    )
    _set_quantization(spec, info, options, side, side_name)
    check_spec(spec, info)
    return spec


def _single_io(info: ModelInfo) -> tuple[TensorInfo, TensorInfo]:
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise TinyharError(
            f"the model has {len(info.inputs)} inputs and {len(info.outputs)} outputs: "
            "the firmware runs models with one input window and one output vector"
        )
    for t in (info.inputs[0], info.outputs[0]):
        if t.dtype not in ("int8", "float32"):
            raise TinyharError(
                f"tensor {t.name!r} is {t.dtype}: the firmware takes int8 or float32"
            )
    return info.inputs[0], info.outputs[0]


def _set_quantization(
    spec: ModelSpec,
    info: ModelInfo,
    options: dict | None = None,
    side: dict | None = None,
    side_name: str = "side file",
) -> None:
    options, side = options or {}, side or {}
    inp, out = _single_io(info)
    if inp.dtype == "int8":
        spec.input_scale, spec.input_zero_point = inp.scale, inp.zero_point
        spec.origin["input_scale"] = "model"
    else:
        scale, src = _given("input_scale", options, side, side_name)
        spec.input_scale = _number(
            FLOAT_INPUT_SCALE if scale is None else scale, "input_scale", {"input_scale": src}
        )
        spec.origin["input_scale"] = (
            src or "default (assumed): float input sent as int8 in steps of 1/32"
        )
    out_scale, out_src = _given("output_scale", options, side, side_name)
    if out.dtype == "int8":
        spec.output_scale, spec.output_zero_point = out.scale, out.zero_point
        spec.origin["output_scale"] = "model"
    elif out_scale is not None:
        zero_point, zp_src = _given("output_zero_point", options, side, side_name)
        spec.output_scale = _number(out_scale, "output_scale", {"output_scale": out_src})
        spec.origin["output_scale"] = out_src
        spec.output_zero_point = _whole(
            0 if zero_point is None else zero_point,
            "output_zero_point",
            {"output_zero_point": zp_src},
        )
        spec.origin["output_zero_point"] = zp_src or "default (assumed): 0"
    elif "SOFTMAX" in info.ops:
        spec.output_scale, spec.output_zero_point = FLOAT_SOFTMAX_SCALE, FLOAT_SOFTMAX_ZP
        spec.origin["output_scale"] = "default (assumed): float probabilities sent as int8 in 1/256"
    else:
        spec.output_scale, spec.output_zero_point = FLOAT_SCORE_SCALE, 0
        spec.origin["output_scale"] = "default (assumed): float scores sent as int8 in 1/16"
    if not spec.input_scale > 0 or not spec.output_scale > 0:
        raise TinyharError("the model's input/output quantization scale is 0: convert it again")


def _given(key: str, options: dict, side: dict, side_name: str) -> tuple[Any, str]:
    """(value, origin) of a value the option or else the side file gives (0 is a value given),
    or (None, "") when neither does."""
    if options.get(key) is not None:
        return options[key], "option"
    if side.get(key) is not None:
        return side[key], side_name
    return None, ""


def _from(key: str, origin: dict[str, str]) -> str:
    """Where a value came from, for the one line refusing it: `--window` or the side file."""
    where = origin.get(key, "")
    return f"--{key.replace('_', '-')}" if where == "option" else f"{key} in {where or 'the input'}"


def _number(value: Any, key: str, origin: dict[str, str]) -> float:
    """A finite number, or one line naming where the value came from."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise TinyharError(f"{_from(key, origin)}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise TinyharError(f"{_from(key, origin)}: {value!r} is not a finite number")
    return number


def _whole(value: Any, key: str, origin: dict[str, str]) -> int:
    """A whole number, or one line naming where the value came from."""
    number = _number(value, key, origin)
    if not number.is_integer():
        raise TinyharError(f"{_from(key, origin)}: {value!r} is not a whole number")
    return int(number)


def _labels(value: Any, origin: dict[str, str]) -> list[str]:
    """Class names from a comma-separated string or a list of strings."""
    if isinstance(value, str):
        value = [s.strip() for s in value.split(",") if s.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        what = f"{_from('labels', origin)}: {value!r}"[:200]
        raise TinyharError(f"{what} is not a list of class names")
    return [str(v) for v in value]


def _per_channel(value: Any, n: int, name: str, origin: dict[str, str]) -> list[float]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value] * n
    if not isinstance(value, list):
        what = f"{_from(name, origin)}: {value!r}"[:200]
        raise TinyharError(f"{what} is not a list of numbers")
    value = [_number(v, name, origin) for v in value]
    if len(value) == 1:
        value = value * n
    if len(value) != n:
        raise TinyharError(f"{name} has {len(value)} values for {n} channels: give one or {n}")
    return value


def _channel_list(arg: Any, where: str = "") -> list[ChannelSpec]:
    """Channels from a count (3: acc, 6: acc+gyro, 12: two acc+gyro sets) or names like acc_x."""
    if isinstance(arg, str) and arg.strip().isdigit():
        arg = int(arg)
    if not isinstance(arg, int | str | list) or isinstance(arg, bool):
        what = f"channels in {where or 'the input'}: {arg!r}"[:200]
        raise TinyharError(f"{what} is not a count or a list of channels")
    if isinstance(arg, int):
        defaults = {3: ["acc"], 6: ["acc", "gyro"], 12: ["acc", "gyro", "acc", "gyro"]}
        if arg not in defaults:
            raise TinyharError(
                f"{arg} input channels: name them with --channels acc_x,acc_y,...,gyro_z "
                "(an IMU gives acc_x/y/z and gyro_x/y/z)"
            )
        arg = [f"{k}_{a}" for k in defaults[arg] for a in AXES]
    if isinstance(arg, str):
        arg = [s.strip() for s in arg.split(",") if s.strip()]
    chans = []
    for item in arg:
        if isinstance(item, dict):
            kind, axis = item.get("kind"), item.get("axis")
            name = str(item.get("name", f"{kind}_{axis}"))
            unit = str(item.get("unit") or TRAINING_UNITS.get(str(kind), ""))
        else:
            name = str(item)
            kind, _, axis = name.partition("_")
            unit = TRAINING_UNITS.get(kind, "")
        if kind not in TRAINING_UNITS or axis not in AXES:
            raise TinyharError(f"channel {item!r}: name it acc_x|y|z or gyro_x|y|z")
        chans.append(ChannelSpec(name, kind, axis, unit))
    return chans


def check_spec(spec: ModelSpec, info: ModelInfo) -> None:
    """The window and channels must fill the model's input; labels must match its output."""
    inp, out = _single_io(info)
    n_in = math.prod(inp.shape) if inp.shape else 1
    n_out = math.prod(out.shape) if out.shape else 1
    c = len(spec.channels)
    if spec.window * c != n_in:
        raise TinyharError(
            f"window {spec.window} x {c} channels = {spec.window * c} values but the model input "
            f"{list(inp.shape)} takes {n_in}: set --window/--channels to match"
        )
    if len(spec.labels) != n_out:
        raise TinyharError(
            f"{len(spec.labels)} labels for a model with {n_out} outputs: pass {n_out} to --labels"
        )
    check_bounds(spec, n_out)


# What the firmware's types and the protocol carry (tinyhar_core.h: uint16_t window, stride,
# channels and payload length; a LABELS reply counts classes in a byte).
MAX_U16 = 0xFFFF
MAX_CLASSES = 255
MIN_RATE_HZ, MAX_RATE_HZ = 1.0, 10_000.0
FLT_MAX = 3.4028234663852886e38
FLT_MIN = 1.1754943508222875e-38


def check_bounds(spec: ModelSpec, n_out: int) -> None:
    """Every value the firmware carries within what its C types and the protocol hold, each
    refused in one line naming the value and where it came from."""
    o = spec.origin
    payload = spec.window * len(spec.channels) + n_out + 32
    if not 1 <= spec.window <= MAX_U16 or payload > MAX_U16:
        raise TinyharError(
            f"{_from('window', o)}: {spec.window} samples x {len(spec.channels)} channels do not "
            f"fit one frame of the protocol ({MAX_U16} bytes)"
        )
    if not 1 <= spec.stride <= MAX_U16:
        raise TinyharError(f"{_from('stride', o)}: {spec.stride} is not within 1..{MAX_U16}")
    if not MIN_RATE_HZ <= spec.rate_hz <= MAX_RATE_HZ:
        raise TinyharError(
            f"{_from('rate_hz', o)}: {spec.rate_hz:g} Hz is not within "
            f"{MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz"
        )
    if n_out > MAX_CLASSES:
        raise TinyharError(f"the model has {n_out} outputs: the firmware carries {MAX_CLASSES}")
    for i, label in enumerate(spec.labels):
        problem = class_name_problem(label)
        if problem is None and len(label.encode("utf-8")) > 255:
            problem = "is longer than 255 bytes in UTF-8"
        if problem is not None:
            raise TinyharError(f"{_from('labels', o)}: label {i} {shown(label)} {problem}")
    for i, ch in enumerate(spec.channels):
        for what, value in (("mean", ch.mean), ("std", ch.std), ("1/std", 1.0 / ch.std)):
            if not abs(value) <= FLT_MAX or value != 0 and abs(value) < FLT_MIN:
                key = "mean" if what == "mean" else "std"
                raise TinyharError(
                    f"{_from(key, o)}: channel {i} {what} {value:g} is beyond a float32"
                )
    for what, value in (("input_scale", spec.input_scale), ("output_scale", spec.output_scale)):
        if not FLT_MIN <= value <= FLT_MAX:
            raise TinyharError(f"{_from(what, o)}: {value:g} is not a positive float32")
    for what, value in (
        ("input_zero_point", spec.input_zero_point),
        ("output_zero_point", spec.output_zero_point),
    ):
        if not -128 <= value <= 127:
            raise TinyharError(f"{_from(what, o)}: {value} is not an int8 zero point")


def channel_layout(spec: ModelSpec, board: Board) -> list[dict[str, Any]]:
    """Per channel, what the templates and build.json hold: the channel, its IMU slot and mapping
    (`board.preprocess.channel_map`) and its normalisation."""
    maps = channel_map([(ch.kind, ch.axis, ch.unit) for ch in spec.channels], board)
    return [
        {
            "name": ch.name,
            "kind": ch.kind,
            "axis": ch.axis,
            "unit": ch.unit,
            "imu_slot": m.imu_slot,
            "axis_src": m.axis_src,
            "axis_sign": m.axis_sign,
            "unit_factor": m.unit_factor,
            "mean": ch.mean,
            "std": ch.std,
            "inv_std": float(inv_std(ch.std)),
        }
        for ch, m in zip(spec.channels, maps, strict=True)
    ]
