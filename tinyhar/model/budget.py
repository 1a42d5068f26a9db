"""Size the `tiny` model to a flash and RAM budget by converting to int8 and measuring the arena."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinyhar.errors import TinyharError
from tinyhar.files import atomic_write_json
from tinyhar.lite import convert
from tinyhar.lite.arena import measure_arena
from tinyhar.lite.convert import to_int8_tflite
from tinyhar.lite.tflite_inspect import inspect_tflite
from tinyhar.model import architectures
from tinyhar.model.architectures import TINY_WIDTHS, build_model
from tinyhar.resources import cache_dir

_CACHE: dict[str, tuple[int, int]] = {}
_PARAMS: dict[str, int] = {}
PARAMS_NOTE = (
    "constant elements of the int8 model (weights, biases, shape constants); batch norm is not "
    "folded into the layer before it (a ReLU sits between): 2 constants per channel (MUL, ADD), "
    "except where the converter folds it into the next dense layer (paper's head)"
)


def _sizing_cache(kind: str = "tiny") -> Path:
    """The disk cache of measured sizes; its name changes with the code that decides them."""
    code = hashlib.sha256()
    for module in (architectures, convert):
        code.update(Path(module.__file__).read_bytes())
    return cache_dir() / "budget" / f"{kind}-{code.hexdigest()[:16]}.json"


def _untrained_int8(arch: str, input_shape: tuple[int, int], n_classes: int, **size) -> bytes:
    """An untrained `arch`, every weight jittered, converted to int8 on random windows.

    Fresh zero/one biases are deduplicated by the converter; trained ones are not: the jitter
    makes the flatbuffer as large as a trained model's."""
    from tinyhar.lite.keras_env import keras  # lazy: TensorFlow takes seconds to import

    keras.utils.set_random_seed(0)
    model = build_model(arch, input_shape, n_classes, **size)
    rng = np.random.default_rng(int(size.get("width", 0)))
    model.set_weights([w + rng.normal(0, 0.01, w.shape) for w in model.get_weights()])
    rep = np.random.default_rng(0).standard_normal((64, *input_shape)).astype(np.float32)
    data = to_int8_tflite(model, rep)
    keras.backend.clear_session()
    return data


def _params_key(arch: str, input_shape: tuple[int, int], n_classes: int, size: dict) -> str:
    return f"{arch}{tuple(input_shape)}x{int(n_classes)}@{sorted(size.items())}"


def _remember_params(key: str, params: int) -> None:
    _PARAMS[key] = int(params)
    path = _sizing_cache("params")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {**_read_sizes(path), key: [int(params)]})
    except OSError:
        pass  # a read-only cache costs time, not correctness


def int8_params(arch: str, input_shape: tuple[int, int], n_classes: int, **size) -> int:
    """The parameter count the int8 model of `arch` has (`PARAMS_NOTE`), as `tinyhar quantize`
    reports it: measured on a conversion, cached in memory and on disk."""
    key = _params_key(arch, input_shape, n_classes, size)
    if key not in _PARAMS:
        known = _read_sizes(_sizing_cache("params")).get(key)
        if known:
            _PARAMS[key] = int(known[0])
    if key not in _PARAMS:
        data = _untrained_int8(arch, input_shape, n_classes, **size)
        _remember_params(key, inspect_tflite(data).params)
    return _PARAMS[key]


def _read_sizes(path: Path) -> dict[str, list[int]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def measure_tiny(input_shape: tuple[int, int], n_classes: int, width: int) -> tuple[int, int]:
    """(int8 flatbuffer bytes, TFLM arena bytes) of an untrained, calibrated `tiny` of `width`.

    Cached per (shape, classes, width) in memory and on disk, so later trainings need not
    convert and measure again.
    """
    key = f"{tuple(input_shape)}x{int(n_classes)}@{int(width)}"
    path = _sizing_cache()
    if key not in _CACHE:
        known = _read_sizes(path).get(key)
        if known:
            _CACHE[key] = (int(known[0]), int(known[1]))
    if key not in _CACHE:
        data = _untrained_int8("tiny", input_shape, n_classes, width=width)
        _CACHE[key] = (len(data), measure_arena(data))
        _remember_params(
            _params_key("tiny", input_shape, n_classes, {"width": width}),
            inspect_tflite(data).params,
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, {**_read_sizes(path), key: list(_CACHE[key])})
        except OSError:
            pass  # a read-only cache costs time, not correctness
    return _CACHE[key]


def fit_tiny_to_budget(
    input_shape: tuple[int, int],
    n_classes: int,
    max_model_kb: float = 64,
    max_arena_kb: float = 32,
    widths: tuple[int, ...] = TINY_WIDTHS,
    log: Callable[[str], None] | None = None,
) -> tuple[dict, int, int]:
    """The largest `tiny` width whose int8 model and arena fit: (size params, model bytes, arena).

    Size grows with width, so the ladder is bisected after checking its smallest rung.
    """
    max_model, max_arena = max_model_kb * 1024, max_arena_kb * 1024

    def check(width: int) -> tuple[bool, int, int]:
        model_bytes, arena = measure_tiny(input_shape, n_classes, width)
        ok = model_bytes <= max_model and arena <= max_arena
        if log:
            log(
                f"budget: tiny width {width}: int8 model {model_bytes / 1024:.1f} KB, "
                f"arena {arena / 1024:.1f} KB -> {'fits' if ok else 'too big'}"
            )
        return ok, model_bytes, arena

    widths = tuple(sorted(widths))
    ok, model_bytes, arena = check(widths[0])
    if not ok:
        raise TinyharError(
            f"even the smallest tiny model (width {widths[0]}: int8 {model_bytes / 1024:.1f} KB, "
            f"arena {arena / 1024:.1f} KB) exceeds --max-model-kb {max_model_kb:g} / "
            f"--max-arena-kb {max_arena_kb:g}: raise the budget"
        )
    best = (widths[0], model_bytes, arena)
    lo, hi = 1, len(widths) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        ok, model_bytes, arena = check(widths[mid])
        if ok:
            best = (widths[mid], model_bytes, arena)
            lo = mid + 1
        else:
            hi = mid - 1
    width, model_bytes, arena = best
    return {"width": width}, model_bytes, arena
