"""Leave-one-subject-out: one model per held-out subject, trained in parallel on Ray; the mean and
sd of accuracy and macro-F1, a per-subject table and the pooled confusion matrix."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinyhar.data.dataset import load_dataset
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_write_bytes, atomic_write_json
from tinyhar.log import inf
from tinyhar.model import plots
from tinyhar.model.budget import InstructionCounter
from tinyhar.model.train import TrainConfig, resolve_data, sensors_of, train
from tinyhar.parallel.ray_env import describe, plan, ray_session
from tinyhar.parallel.tasks import Outcome, run_tasks
from tinyhar.run import folder as runs


@dataclass
class LosoOptions:
    """`tinyhar train --split loso --folds ...`: the training of every fold and where it runs."""

    train: TrainConfig
    folds: str = "all"  # "all" or subject ids "1,3,5"
    workers: int | None = None  # trainings at once (default: the cores)
    address: str | None = None  # a Ray cluster (default: RAY_ADDRESS, else a local Ray)
    progress: bool = True
    count_instructions: InstructionCounter | None = None  # for train.max_instructions


@dataclass
class LosoResult:
    run: Path
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def parse_folds(text: str, present: Sequence[int]) -> list[int]:
    """Subjects to hold out: "all" or ids like "1,3,5", each one the data has."""
    if text.strip().lower() == "all":
        return sorted(present)
    try:
        chosen = sorted({int(v) for v in text.replace(" ", "").split(",") if v})
    except ValueError:
        raise TinyharError(f"--folds {text}: give all or subject ids like 1,3,5") from None
    missing = [s for s in chosen if s not in present]
    if not chosen or missing:
        raise TinyharError(
            f"--folds {text}: subject(s) {','.join(map(str, missing)) or 'none'} not in the data; "
            f"it has {','.join(map(str, present))}"
        )
    return chosen


def fold_config(cfg: TrainConfig, subject: int, run: Path) -> TrainConfig:
    """The training of the fold that holds `subject` out, into its folder under `run`."""
    return replace(cfg, split="loso", test_subjects=[subject], run=runs.fold_dir(run, subject))


def train_fold(cfg: TrainConfig, count: InstructionCounter | None = None) -> dict[str, Any]:
    """One fold (in a Ray worker): train it quietly; its metrics.json content."""
    return train(cfg, log=lambda _line: None, count_instructions=count).metrics.to_json()


def summarize(metrics: dict[int, dict[str, Any]], errors: dict[int, str]) -> dict[str, Any]:
    """loso.json's content from each finished fold's metrics and each failed fold's error."""
    labels: list[str] = []
    for m in metrics.values():
        labels += [n for n in m["labels"] if n not in labels]
    pooled = np.zeros((len(labels), len(labels)), np.int64)
    for m in metrics.values():
        idx = [labels.index(n) for n in m["labels"]]
        pooled[np.ix_(idx, idx)] += np.asarray(m["confusion"], np.int64)
    folds = [
        {
            "subject": s,
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "test_windows": m["counts"]["test"],
            "val_subjects": m["split"].get("val_subjects"),
            "epochs_run": m["epochs_run"],
        }
        for s, m in sorted(metrics.items())
    ]
    total = int(pooled.sum())
    return {
        "kind": "leave-one-subject-out",
        "folds": folds,
        "failed": [{"subject": s, "error": e} for s, e in sorted(errors.items())],
        "accuracy": _spread([f["accuracy"] for f in folds]),
        "macro_f1": _spread([f["macro_f1"] for f in folds]),
        "pooled_accuracy": float(np.trace(pooled) / total) if total else 0.0,
        "labels": labels,
        "confusion": pooled.tolist(),
    }


def _spread(values: list[float]) -> dict[str, float]:
    """Mean, sample sd (n - 1), min and max over the folds."""
    a = np.asarray(values, np.float64)
    if a.size == 0:
        return {"mean": 0.0, "sd": 0.0, "min": 0.0, "max": 0.0, "n": 0}
    sd = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {
        "mean": float(a.mean()),
        "sd": sd,
        "min": float(a.min()),
        "max": float(a.max()),
        "n": int(a.size),
    }


def run_loso(opts: LosoOptions, log: Callable[[str], None] = inf) -> LosoResult:
    """Train every fold on Ray, then write R/loso.json and R/loso_confusion.png atomically."""
    cfg = opts.train
    if cfg.train_subjects or cfg.val_subjects or cfg.test_subjects:
        raise TinyharError(
            "--folds holds out each subject in turn (the next one validates): leave out "
            "--train-subjects, --val-subjects and --test-subjects"
        )
    data_path = resolve_data(cfg.data).resolve()  # workers may run elsewhere
    cfg = replace(cfg, data=data_path)
    data = load_dataset(data_path)
    present = sorted({int(r.subject) for r in data.recordings})
    subjects = parse_folds(opts.folds, present)
    if len(present) < 3:
        raise TinyharError(f"leave-one-subject-out needs 3 subjects or more, not {len(present)}")
    tag = sensors_of(cfg, data) if data.is_mhealth else data.name
    run = Path(cfg.run) if cfg.run is not None else runs.new_run_dir(cfg.arch, f"{tag}-loso")
    if run.exists() and not run.is_dir():
        raise TinyharError(f"--run {run} is a file: pass a folder")
    run = run.resolve()
    cluster = plan(opts.workers, opts.address)
    jobs = [(s, (fold_config(cfg, s, run), opts.count_instructions)) for s in subjects]
    with ray_session(cluster) as ray:
        log(f"{describe(cluster, ray)}; {len(jobs)} folds of {cfg.arch} into {run}")
        outcomes = run_tasks(ray, train_fold, jobs, _fold_line, "folds", opts.progress)
    metrics = {o.key: o.value for o in outcomes if o.error is None}
    errors = {o.key: o.error for o in outcomes if o.error is not None}
    if not metrics:
        s0 = subjects[0]
        raise TinyharError(f"every fold failed (first: subject {s0}: {errors[s0]})")
    first = next(iter(metrics.values()))
    summary = {
        **summarize(metrics, errors),
        "arch": cfg.arch,
        "data": first["data"],
        "synthetic": first["synthetic"],
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "train_stride": first["train_stride"],
        "folds_dir": runs.FOLDS_DIR,
    }
    title = (
        f"LOSO {cfg.arch} on {first['data']}: pooled over {len(metrics)} folds, "
        f"accuracy {summary['accuracy']['mean']:.3f} ± {summary['accuracy']['sd']:.3f}"
    )
    png = plots.confusion_png(summary["confusion"], summary["labels"], title)
    files = [
        atomic_write_bytes(run / runs.LOSO_PNG, png),
        atomic_write_json(run / runs.LOSO_JSON, summary),
    ]
    return LosoResult(run, summary, files)


def _fold_line(o: Outcome) -> str:
    if o.error is not None:
        return f"fold subject {o.key}: FAILED: {o.error}"
    m = o.value
    return (
        f"fold subject {o.key}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} "
        f"({m['counts']['test']} test windows, {m['epochs_run']} epochs, "
        f"{m['train_seconds']:.0f} s)"
    )


def format_loso(result: LosoResult) -> str:
    """The per-subject table, mean ± sd and where the files are."""
    s = result.summary
    rows = [f"{'subject':>7}  {'windows':>7}  {'accuracy':>8}  {'macro-F1':>8}"]
    rows += [
        f"{f['subject']:>7}  {f['test_windows']:>7}  {f['accuracy']:>8.4f}  {f['macro_f1']:>8.4f}"
        for f in s["folds"]
    ]
    rows += [f"{f['subject']:>7}  FAILED: {f['error']}" for f in s["failed"]]
    a, f1 = s["accuracy"], s["macro_f1"]
    rows.append(
        f"LOSO {s['arch']} on {s['data']}: {a['n']} folds, accuracy {a['mean']:.4f} ± "
        f"{a['sd']:.4f}, macro-F1 {f1['mean']:.4f} ± {f1['sd']:.4f} (mean ± sd over folds); "
        f"pooled accuracy {s['pooled_accuracy']:.4f}"
    )
    if s["synthetic"]:
        rows.append("these figures are on SYNTHETIC data: they say nothing about real accuracy")
    rows.append(
        f"run folder: {result.run}  ({', '.join(p.name for p in result.files)}, {runs.FOLDS_DIR}/)"
    )
    return "\n".join(rows)
