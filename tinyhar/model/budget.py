"""Size the `tiny` model to a flash, RAM and latency budget: convert an untrained model to int8 and
measure its bytes, its arena and (on the emulated board) its instructions per inference."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyhar.board.boards import DEFAULT_BOARD
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_write_json
from tinyhar.lite import convert
from tinyhar.lite.arena import measure_arena
from tinyhar.lite.convert import to_int8_tflite
from tinyhar.lite.tflite_inspect import inspect_tflite
from tinyhar.model import architectures
from tinyhar.model.architectures import TINY_WIDTHS, build_model
from tinyhar.resources import cache_dir, templates_dir

# (input shape, classes, shape options, board) -> instructions per inference of an untrained tiny
InstructionCounter = Callable[[tuple[int, int], int, dict, str], int]
BUDGET_BOARD = DEFAULT_BOARD  # whose emulated firmware counts the instructions of `train`'s budget

_CACHE: dict[str, tuple[int, int]] = {}
_PARAMS: dict[str, int] = {}
PARAMS_NOTE = (
    "constant elements of the int8 model (weights, biases, shape constants); batch norm is not "
    "folded into the layer before it (a ReLU sits between): 2 constants per channel (MUL, ADD), "
    "except where the converter folds it into the next dense layer (paper's head)"
)


def sizing_cache(kind: str = "tiny") -> Path:
    """The disk cache of measured sizes; its name changes with the code that decides them (for
    instructions also the firmware's templates and kernels)."""
    code = hashlib.sha256()
    files = [Path(architectures.__file__), Path(convert.__file__)]
    if kind == "instructions":
        files += sorted(p for p in templates_dir().rglob("*") if p.is_file())
    for path in files:
        code.update(path.read_bytes())
    return cache_dir() / "budget" / f"{kind}-{code.hexdigest()[:16]}.json"


def untrained_int8(arch: str, input_shape: tuple[int, int], n_classes: int, **size) -> bytes:
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
    path = sizing_cache("params")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {**read_sizes(path), key: [int(params)]})
    except OSError:
        pass  # a read-only cache costs time, not correctness


def int8_params(arch: str, input_shape: tuple[int, int], n_classes: int, **size) -> int:
    """The parameter count the int8 model of `arch` has (`PARAMS_NOTE`), as `tinyhar quantize`
    reports it: measured on a conversion, cached in memory and on disk."""
    key = _params_key(arch, input_shape, n_classes, size)
    if key not in _PARAMS:
        known = read_sizes(sizing_cache("params")).get(key)
        if known:
            _PARAMS[key] = int(known[0])
    if key not in _PARAMS:
        data = untrained_int8(arch, input_shape, n_classes, **size)
        _remember_params(key, inspect_tflite(data).params)
    return _PARAMS[key]


def read_sizes(path: Path) -> dict[str, list[int]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def size_key(input_shape: tuple[int, int], n_classes: int, size: dict) -> str:
    return f"{tuple(input_shape)}x{int(n_classes)}@{json.dumps(size, sort_keys=True)}"


def remember(path: Path, key: str, values: list[int]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {**read_sizes(path), key: values})
    except OSError:
        pass  # a read-only cache costs time, not correctness


def measure_tiny(
    input_shape: tuple[int, int], n_classes: int, width: int, **shape
) -> tuple[int, int]:
    """(int8 flatbuffer bytes, TFLM arena bytes) of an untrained, calibrated `tiny` of `width`
    (and build_tiny's other options `shape`; the default shape's where not given).

    Cached per (input shape, classes, size) in memory and on disk, so later trainings need not
    convert and measure again.
    """
    size = {**shape, "width": int(width)}
    key = size_key(input_shape, n_classes, size)
    path = sizing_cache()
    if key not in _CACHE:
        known = read_sizes(path).get(key)
        if known:
            _CACHE[key] = (int(known[0]), int(known[1]))
    if key not in _CACHE:
        data = untrained_int8("tiny", input_shape, n_classes, **size)
        _CACHE[key] = (len(data), measure_arena(data))
        _remember_params(
            _params_key("tiny", input_shape, n_classes, size), inspect_tflite(data).params
        )
        remember(path, key, list(_CACHE[key]))
    return _CACHE[key]


@dataclass(frozen=True)
class Budget:
    """What a `tiny` may take: int8 model KB, arena KB and (None: any) instructions per
    inference on `board`'s emulated firmware."""

    max_model_kb: float = 64
    max_arena_kb: float = 32
    max_instructions: int | None = None
    board: str = BUDGET_BOARD

    def describe(self) -> str:
        text = f"--max-model-kb {self.max_model_kb:g} / --max-arena-kb {self.max_arena_kb:g}"
        if self.max_instructions is not None:
            text += f" / --max-instructions {self.max_instructions}"
        return text


@dataclass
class Fit:
    """The width a budget allows and the figures measured for it."""

    size: dict
    model_bytes: int
    arena_bytes: int
    instructions: int | None = None


def fit_tiny_to_budget(
    input_shape: tuple[int, int],
    n_classes: int,
    budget: Budget = Budget(),  # noqa: B008 (frozen)
    widths: tuple[int, ...] = TINY_WIDTHS,
    log: Callable[[str], None] | None = None,
    shape: dict | None = None,
    count_instructions: InstructionCounter | None = None,
) -> Fit:
    """The largest `tiny` width (other options as `shape`) whose int8 model, arena and, when the
    budget bounds them, instructions (`count_instructions`) fit. Bytes and instructions grow
    with width, so the ladder is bisected after checking its smallest rung; instructions are
    counted only for a width whose bytes fit."""
    shape = {k: v for k, v in (shape or {}).items() if k != "width"}
    if budget.max_instructions is not None and count_instructions is None:
        raise TinyharError(
            f"--max-instructions counts on the emulated {budget.board}, which "
            "this command does not run: use `tinyhar train`"
        )
    max_model, max_arena = budget.max_model_kb * 1024, budget.max_arena_kb * 1024

    def check(width: int) -> tuple[bool, Fit]:
        model_bytes, arena = measure_tiny(input_shape, n_classes, width, **shape)
        fit = Fit({**shape, "width": width}, model_bytes, arena)
        ok = model_bytes <= max_model and arena <= max_arena
        text = f"int8 model {model_bytes / 1024:.1f} KB, arena {arena / 1024:.1f} KB"
        if ok and budget.max_instructions is not None and count_instructions is not None:
            fit.instructions = count_instructions(input_shape, n_classes, fit.size, budget.board)
            ok = fit.instructions <= budget.max_instructions
            text += f", {fit.instructions:,} instructions"
        if log:
            log(f"budget: tiny width {width}: {text} -> {'fits' if ok else 'too big'}")
        return ok, fit

    widths = tuple(sorted(widths))
    ok, best = check(widths[0])
    if not ok:
        counted = f", {best.instructions:,} instructions" if best.instructions else ""
        raise TinyharError(
            f"even the smallest tiny model (width {widths[0]}: int8 "
            f"{best.model_bytes / 1024:.1f} KB, arena {best.arena_bytes / 1024:.1f} KB"
            f"{counted}) exceeds {budget.describe()}: raise the budget"
        )
    lo, hi = 1, len(widths) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        ok, fit = check(widths[mid])
        if ok:
            best, lo = fit, mid + 1
        else:
            hi = mid - 1
    return best
