"""`tinyhar evaluate`: score a trained run, float and int8 (the Python TFLM interpreter and, where
it can be built for the host, the board's own TFLM library), on another dataset or other subjects.

Channels are matched by name, else by kind and axis; both datasets are already in training units
(their manifests say how), so only a difference of training units would need a factor. Classes are
matched by name."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyhar.board.boards import Board, default_board
from tinyhar.data.dataset import Channel, Dataset, load_dataset
from tinyhar.data.units import UNIT_FACTORS
from tinyhar.data.windows import make_windows
from tinyhar.deploy.board_reference import for_board
from tinyhar.deploy.quantize import library_title, normalise, tflm_outputs, top1
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_write_bytes, atomic_write_json
from tinyhar.lite.keras_file import load_keras
from tinyhar.log import inf, wrn
from tinyhar.model import plots
from tinyhar.model.metrics import classification_metrics
from tinyhar.run import folder as runs
from tinyhar.run.records import DatasetContract, QuantizeReport


@dataclass
class Evaluation:
    """What evaluate.json holds."""

    run: str
    data: str
    dataset: str
    synthetic: bool
    subjects: list[int]
    windows: int
    channels: dict[str, str]  # run channel -> data channel
    labels: list[str]
    not_in_model: list[str]  # data classes the run does not know (their windows are left out)
    not_in_data: list[str]  # run classes without windows in the data
    seen_in_training: list[int]  # evaluated subjects the run trained or validated on
    float: dict[str, Any]
    int8: dict[str, Any]  # scores, or {"unavailable": why}
    seconds: builtins.float  # `float` is a field of this class
    board_int8: dict[str, Any] | None = None  # with the board's TFLM library, or {"unavailable"}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_run(
    run: Path | None,
    data_path: Path,
    subjects: Sequence[int] | None = None,
    log: Callable[[str], None] = inf,
    warn: Callable[[str], None] = wrn,
    sensors: str | None = None,
    board: Board | None = None,
    libraries: Path | None = None,
) -> Evaluation:
    """Score `run` on the dataset at `data_path` (only `subjects` if given; MHEALTH's `sensors`
    for a run from another dataset), int8 also with `board`'s TFLM library where it can be built
    (`libraries`: the Arduino libraries folder); write R/evaluate.json and
    R/evaluate_confusion.png."""
    t0 = time.monotonic()
    run = runs.require_run(run, needs=runs.KERAS_MODEL)
    runs.check_run(run, runs.METRICS_JSON, runs.QUANTIZE_JSON)
    spec = DatasetContract.load(run)
    data = load_dataset(data_path)
    log(f"evaluate: {run} on {data.source}")
    recs = _recordings(data, subjects)
    columns, mapping, factors = match_channels(spec.channels, data, data_path, sensors)
    lut, not_in_model, not_in_data = match_labels(spec.labels, data)
    if not_in_model:
        warn(
            f"{data.name} class(es) {', '.join(not_in_model)} are not classes of the run: "
            "their windows are left out"
        )
    w = make_windows(recs, columns, spec.window, spec.stride)
    y = lut[w.y]
    keep = y >= 0
    if not keep.any():
        raise TinyharError(
            f"{data_path}: no windows of the run's classes ({', '.join(spec.labels)})"
        )
    x, y = w.x[keep] * factors, y[keep]
    present = set(np.unique(y).tolist())
    not_in_data += [
        n for i, n in enumerate(spec.labels) if i not in present and n not in not_in_data
    ]
    if not_in_data:
        warn(
            f"class(es) {', '.join(not_in_data)} of the run have no windows here: their scores "
            "are empty"
        )
    chosen = sorted({r.subject for r in recs})
    seen = _seen_in_training(spec, data, chosen)
    if seen:
        warn(
            f"subject(s) {', '.join(map(str, seen))} trained or validated this run: their scores "
            "are optimistic (pass --subjects with the test subjects)"
        )

    xn = normalise(x, np.asarray(spec.mean), np.asarray(spec.std))
    log(f"evaluate: float model on {len(y)} windows")
    model = load_keras(run / runs.KERAS_MODEL)
    float_scores = classification_metrics(
        y, top1(model.predict(xn, batch_size=256, verbose=0)), spec.labels
    )
    int8_scores, board_scores = _int8_scores(
        run, xn, y, spec, board or default_board(), libraries, log
    )
    ev = Evaluation(
        run=str(run),
        data=data.source,
        dataset=data.name,
        synthetic=data.synthetic,
        subjects=chosen,
        windows=int(len(y)),
        channels=mapping,
        labels=list(spec.labels),
        not_in_model=not_in_model,
        not_in_data=not_in_data,
        seen_in_training=seen,
        float=float_scores,
        int8=int8_scores,
        seconds=round(time.monotonic() - t0, 1),
        board_int8=board_scores,
    )
    shown = int8_scores if "accuracy" in int8_scores else float_scores
    which = "int8 (TFLM)" if shown is int8_scores else "float"
    png = plots.confusion_png(
        shown["confusion"],
        spec.labels,
        f"{run.name} on {data.name}{' (SYNTHETIC)' if data.synthetic else ''}, subjects "
        f"{_ids(chosen)}: {which} accuracy {shown['accuracy']:.3f}, "
        f"macro-F1 {shown['macro_f1']:.3f}",
    )
    atomic_write_bytes(run / runs.EVALUATE_PNG, png)
    atomic_write_json(run / runs.EVALUATE_JSON, ev.to_json())
    return ev


def _recordings(data: Dataset, subjects: Sequence[int] | None) -> list:
    present = sorted({r.subject for r in data.recordings})
    if subjects is None:
        return data.recordings
    missing = sorted(set(subjects) - set(present))
    if missing:
        raise TinyharError(
            f"--subjects {_ids(missing)} not in {data.name} (subjects present: {_ids(present)})"
        )
    return [r for r in data.recordings if r.subject in set(subjects)]


def match_channels(
    run_channels: Sequence[Channel], data: Dataset, where: Path, sensors: str | None = None
) -> tuple[list[int], dict[str, str], np.ndarray]:
    """(data column of each run channel, run name -> data name, factor of each channel into the
    run's unit): by name, else by kind and axis among the data's model channels (MHEALTH:
    `sensors`, arm by default); a missing or ambiguous channel stops."""
    columns, mapping, factors = [], {}, []
    candidates = data.model_channels(sensors)
    for ch in run_channels:
        same_name = [c for c in data.channels if c.name == ch.name]
        hits = same_name or [c for c in candidates if (c.kind, c.axis) == (ch.kind, ch.axis)]
        if len(hits) != 1:
            found = ", ".join(c.name for c in hits) or "none"
            raise TinyharError(
                f"{where}: the run's channel {ch.name} ({ch.kind} {ch.axis}) matches "
                f"{found} of {data.name}; a run takes one {ch.kind} {ch.axis} channel"
            )
        c: Channel = hits[0]
        factor = UNIT_FACTORS.get((c.unit, ch.unit))
        if factor is None:
            raise TinyharError(
                f"{where}: no conversion from {c.unit} ({c.name}) to the run's "
                f"{ch.unit} ({ch.name})"
            )
        columns.append(c.column)
        mapping[ch.name] = c.name
        factors.append(factor)
    return columns, mapping, np.asarray(factors, np.float32)


def match_labels(
    run_labels: Sequence[str], data: Dataset
) -> tuple[np.ndarray, list[str], list[str]]:
    """(run class index of each data label code, -1 if none; data classes the run lacks; run
    classes the data lacks), matching names without regard to case."""
    index = {name.lower(): i for i, name in enumerate(run_labels)}
    lut = np.full(len(data.labels), -1, np.int64)
    not_in_model = []
    for code, name in enumerate(data.labels):
        if name.lower() in index:
            lut[code] = index[name.lower()]
        elif code != data.null_code:
            not_in_model.append(name)
    known = {n.lower() for n in data.labels}
    not_in_data = [n for n in run_labels if n.lower() not in known]
    if (lut < 0).all():
        raise TinyharError(
            f"{data.name} shares no class with the run: its classes are "
            f"{', '.join(data.labels)}; the run's {', '.join(run_labels)}"
        )
    return lut, not_in_model, not_in_data


def _seen_in_training(spec: DatasetContract, data: Dataset, subjects: list[int]) -> list[int]:
    if spec.dataset != data.name or spec.source != data.source:
        return []
    return sorted(set(subjects) & spec.fitted_subjects)


def _int8_scores(
    run: Path,
    x: np.ndarray,
    y: np.ndarray,
    spec: DatasetContract,
    board: Board,
    libraries: Path | None,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """int8 scores with the Python TFLM interpreter, and with the board's own TFLM library built
    for the host (or why not); ({"unavailable": why}, None) when the run is not quantized."""
    q = QuantizeReport.load_if_present(run)
    if not (run / runs.INT8_MODEL).is_file() or q is None:
        return {"unavailable": f"no {runs.INT8_MODEL}: run `tinyhar quantize --run {run}`"}, None
    model, labels = (run / runs.INT8_MODEL).read_bytes(), spec.labels
    log(f"evaluate: int8 model (TFLM interpreter) on {len(y)} windows")
    xq, out = tflm_outputs(model, q.arena_bytes, x, q.input.scale, q.input.zero_point)
    log(f"evaluate: int8 model with {board.name}'s TFLM library built for the host")
    ref, why = for_board(model, spec, board, q.arena_bytes, libraries, log)
    if ref is None:
        log(f"evaluate: note: no board-library scores ({why})")
        return classification_metrics(y, top1(out), labels), {
            "board": board.name,
            "unavailable": why,
        }
    on_board = ref.predict(xq)
    board_scores = {
        "board": board.name,
        "library": library_title(board),
        **classification_metrics(y, top1(on_board), labels),
    }
    return classification_metrics(y, top1(out), labels), board_scores


def _ids(ids: Sequence[int]) -> str:
    return ",".join(map(str, ids))


def format_evaluation(ev: Evaluation) -> str:
    """The lines `tinyhar evaluate` prints."""
    synth = " (SYNTHETIC data: says nothing about real accuracy)" if ev.synthetic else ""
    lines = [
        f"evaluated {ev.run} on {ev.dataset}{synth}, subjects {_ids(ev.subjects)}: "
        f"{ev.windows} windows"
    ]
    lines.append(
        f"  float accuracy {ev.float['accuracy']:.4f}, macro-F1 {ev.float['macro_f1']:.4f}"
    )
    if "accuracy" in ev.int8:
        lines.append(
            f"  int8 accuracy {ev.int8['accuracy']:.4f}, macro-F1 {ev.int8['macro_f1']:.4f}"
            " (TFLM interpreter)"
        )
    else:
        lines.append(f"  int8: not scored ({ev.int8['unavailable']})")
    on_board = ev.board_int8 or {}
    if "accuracy" in on_board:
        lines.append(
            f"  int8 accuracy {on_board['accuracy']:.4f}, macro-F1 {on_board['macro_f1']:.4f}"
            f" ({on_board['board']}'s {on_board['library']} built for the host)"
        )
    elif on_board:
        lines.append(
            f"  int8 with {on_board['board']}'s TFLM: not scored ({on_board['unavailable']})"
        )
    lines.append(f"  wrote {runs.EVALUATE_JSON} and {runs.EVALUATE_PNG} in {ev.run}")
    return "\n".join(lines)
