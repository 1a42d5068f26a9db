"""The run folder: one place for everything a run produces, so later commands need no flags."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from tinyhar.errors import TinyharError
from tinyhar.files import read_json

RUNS_ROOT = Path("runs")
DEMO_DIR = RUNS_ROOT / "demo"  # the run folder of `tinyhar demo`

# File names inside a run folder; every module uses these, none spells them again.
KERAS_MODEL = "model.keras"
DATASET_JSON = "dataset.json"
WINDOWS_NPZ = "windows.npz"
METRICS_JSON = "metrics.json"
HISTORY_JSON = "history.json"
CONFUSION_PNG = "confusion.png"
HISTORY_PNG = "history.png"
INT8_MODEL = "model_int8.tflite"
QUANTIZE_JSON = "quantize.json"
BUILD_JSON = "build.json"
VERIFY_MODES = ("model", "raw")  # each verify mode keeps its own report: verify_<mode>.json/.png
VERIFY_HISTORY = "verify_history.jsonl"  # one line per verify run, passed or failed
DEMO_JSON = "demo.json"
EVALUATE_JSON = "evaluate.json"  # the last `tinyhar evaluate` of the run
EVALUATE_PNG = "evaluate_confusion.png"
LOSO_JSON = "loso.json"  # `train --split loso --folds`: the folds' summary and pooled confusion
LOSO_PNG = "loso_confusion.png"
FOLDS_DIR = "folds"  # one run folder per held-out subject: folds/subject<K>/
SEARCH_JSON = "search.json"  # `tinyhar search`: every trial, the Pareto front and the best
SEARCH_PNG = "search_pareto.png"
TRIALS_DIR = "trials"  # one run folder per search trial: trials/<trial>/
TUNE_DIR = "tune"  # Ray Tune's experiment folder (a search resumes from it)


def fold_dir(run: Path, subject: int) -> Path:
    """The run folder of the fold that holds `subject` out: R/folds/subject<K>."""
    return run / FOLDS_DIR / f"subject{int(subject):02d}"


def verify_json(mode: str) -> str:
    """The report of the last verify run in `mode` that compared windows: verify_<mode>.json."""
    return f"verify_{_verify_mode(mode)}.json"


def verify_png(mode: str) -> str:
    """The plot of the same run as verify_json(mode): verify_<mode>.png."""
    return f"verify_{_verify_mode(mode)}.png"


def verify_resume(mode: str) -> str:
    """What an interrupted verify run in `mode` answered, for `verify --resume`."""
    return f"verify_{_verify_mode(mode)}.resume.npz"


def _verify_mode(mode: str) -> str:
    if mode not in VERIFY_MODES:
        raise ValueError(f"verify mode {mode!r} is not one of {VERIFY_MODES}")
    return mode


def new_run_dir(arch: str, sensors: str, root: Path = RUNS_ROOT) -> Path:
    """A fresh run folder name under `root`, e.g. runs/20261128-101500-tiny-arm."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{stamp}-{arch}-{sensors}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{arch}-{sensors}-{n}"
    return path


def latest_run(root: Path = RUNS_ROOT) -> Path | None:
    """The most recently trained run under `root`, or None when there is none."""
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if p.is_dir() and (p / METRICS_JSON).is_file()]
    return max(runs, key=lambda p: (p / METRICS_JSON).stat().st_mtime, default=None)


MAKE_A_RUN = (
    "make one with `tinyhar demo`, or with `tinyhar data synth --out data/synth` and "
    "`tinyhar train --data data/synth`"
)


def require_run(run: Path | None, needs: str = METRICS_JSON, hint: str = "tinyhar train") -> Path:
    """The given run (or the latest one), checked to hold `needs`; a one-line error otherwise.

    `hint` is the command that makes `needs`; the error names it with the run's `--run`."""
    if run is None:
        run = latest_run()
        if run is None:
            raise TinyharError(f"no run found under {RUNS_ROOT}/: {MAKE_A_RUN}")
    run = Path(run)
    if not run.is_dir():
        raise TinyharError(
            f"run folder {run} does not exist: pass --run with a folder under {RUNS_ROOT}/, "
            f"or {MAKE_A_RUN}"
        )
    if not (run / needs).exists():
        command = hint if hint == "tinyhar train" else f"{hint} --run {run}"
        raise TinyharError(f"{run} has no {needs}: run `{command}` first")
    return run


# --- which files belong together ------------------------------------------------------------
# A record (metrics.json, quantize.json, build.json) holds the SHA-256 of the files it was made
# from (MADE_FROM) and of the files its command wrote beside it (OUTPUTS), so a reader refuses a
# run whose files come from different commands (a crash, a copy, a retrain half done).
MADE_FROM = "made_from"
OUTPUTS = "outputs"
# What makes each record again, for the one line that refuses a mismatch.
REDO = {
    DATASET_JSON: ("train the run again", "tinyhar train --run {run} ..."),
    METRICS_JSON: ("train the run again", "tinyhar train --run {run} ..."),
    QUANTIZE_JSON: ("quantize again", "tinyhar quantize --run {run}"),
    BUILD_JSON: ("build again", "tinyhar build --run {run}"),
    **{
        verify_json(mode): (
            "verify again",
            "tinyhar verify --port PORT --run {run}" + (" --raw" if mode == "raw" else ""),
        )
        for mode in VERIFY_MODES
    },
}


def digest(path: Path) -> str:
    """`sha256:<hex>` of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


def digest_of(data: bytes) -> str:
    """`sha256:<hex>` of bytes in memory (what `digest` gives for a file holding them)."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def digests(run: Path, names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """{name: digest} of files in `run` (a name may also be an absolute path)."""
    return {name: digest(Path(run) / name) for name in names}


def read_record(run: Path, record: str) -> dict[str, Any]:
    """The parsed JSON of `record` (a file in `run`); one line that names what makes it again
    when it is missing, unreadable or not a table."""
    path, redo = Path(run) / record, redo_hint(Path(run), record)
    if not path.is_file():
        raise TinyharError(f"{path.parent} has no {path.name}: {redo}")
    try:
        content = read_json(path)
    except (OSError, ValueError) as e:
        raise TinyharError(f"{path} is unreadable ({e}): {redo}") from None
    if not isinstance(content, dict):
        raise TinyharError(f"{path} is not a record of tinyhar: {redo}")
    return content


def check_record(run: Path, record: str) -> None:
    """Refuse in one line when `record` (a file in `run`) names a file it was made from or wrote
    whose bytes are not those in the run now, or that is gone. A record from before tinyhar kept
    digests is taken as it is."""
    run = Path(run)
    if not (run / record).is_file():
        return
    content = read_record(run, record)
    for key, verb in ((MADE_FROM, "is from another"), (OUTPUTS, "does not describe this")):
        files = content.get(key) or {}
        if not isinstance(files, dict):
            raise TinyharError(f"{run / record}: {key} is not a table: {redo_hint(run, record)}")
        for name, want in files.items():
            path = run / name
            if not path.is_file():
                raise TinyharError(
                    f"{run}: {name} is missing but {record} was made with it: "
                    f"{redo_hint(run, record)}"
                )
            if digest(path) != want:
                raise TinyharError(f"{run}: {record} {verb} {name}: {redo_hint(run, record)}")


def check_run(run: Path, *records: str) -> None:
    """check_record for each of `records` present in `run` (default: all three, in the order
    their commands run), so the first mismatch named is the earliest command to redo."""
    for record in records or (METRICS_JSON, QUANTIZE_JSON, BUILD_JSON):
        check_record(run, record)


def redo_hint(run: Path, record: str) -> str:
    verb, command = REDO.get(record, ("make it again", ""))
    return f"{verb} (`{command.format(run=run)}`)" if command else verb
