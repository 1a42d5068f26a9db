"""`tiny` and `paper` on REAL data (UCI HAPT, ../shared/data/hapt), with a subject split.

Imports HAPT as `tinyhar data import` does (six basic activities, transitions and unlabelled rows
dropped), trains each model with tinyhar's own training code (the default subject split within the
21 subjects unless --train/--val/--test-subjects say otherwise), converts it with `tinyhar
quantize`'s code and runs the int8 model in the TFLM interpreter on the test subjects, and in
the Nano 33 BLE's own Arduino TFLM library built for the host (from --libraries). Prints accuracy,
macro-F1, int8 accuracy and macro-F1, model and arena bytes, params, training time; with
--seeds, one row per seed and their mean, sd and min.

    python benchmarks/real_data.py [--arch tiny,paper] [--epochs N] [train options] [--out DIR]
    python benchmarks/real_data.py --arch tiny --seeds 0-4 --size width=12,pool=4,attention=pool
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from recorded import stamp

from tinyhar.board.boards import default_board, load_board
from tinyhar.data.dataset import load_dataset
from tinyhar.data.importer import ImportOptions, import_dataset
from tinyhar.deploy.quantize import load_run_inputs, normalise, quantize_run, tflm_outputs
from tinyhar.errors import TinyharError
from tinyhar.files import read_json
from tinyhar.model.architectures import parse_size
from tinyhar.model.augment import Augment, clip_to_board
from tinyhar.model.config import DEFAULT_EPOCHS
from tinyhar.model.metrics import classification_metrics
from tinyhar.model.selection import DEFAULT_METRIC, DEFAULT_MIN_EPOCHS, SelectionRule
from tinyhar.model.train import TrainConfig, prepare, train
from tinyhar.run import folder as runs

HAPT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "hapt"
LIBRARIES_DIR = Path(__file__).resolve().parents[2] / "shared" / "arduino" / "libraries"
DEFAULT_OUT = Path(tempfile.gettempdir()) / "tinyhar_real_data"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _ids(text: str | None) -> list[int] | None:
    return [int(v) for v in text.split(",")] if text else None


def _seeds(text: str) -> list[int]:
    """--seeds: "5" (seeds 0-4), "0-4" or "0,2,7"."""
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-"))
            return list(range(lo, hi + 1))
        if "," in text:
            return [int(v) for v in text.split(",")]
        return list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a count, a range 0-4 or 0,2,7") from None


def _size(text: str) -> dict:
    """--size: key=value pairs for build_tiny, as `tinyhar train --size` takes them."""
    try:
        return parse_size(text)
    except TinyharError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="tiny,paper", help="comma separated (default tiny,paper)")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--seeds",
        type=_seeds,
        default=None,
        help="train each seed: a count (5: 0-4), a range 0-4, or 0,2,7",
    )
    ap.add_argument(
        "--size",
        type=_size,
        default=None,
        help="tiny's shape as build_tiny's options, e.g. width=12,pool=4,norm=bn_relu,"
        "attention=pool,stats=mad (default: sized to the default budget)",
    )
    ap.add_argument("--select", default=DEFAULT_METRIC)
    ap.add_argument("--min-epochs", type=int, default=DEFAULT_MIN_EPOCHS)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--rotate", type=float, default=0.0)
    ap.add_argument("--scale", type=float, default=0.0)
    ap.add_argument("--time-jitter", type=float, default=0.0)
    ap.add_argument("--clip-board", default=None)
    ap.add_argument("--train-stride", type=int, default=None, help="(default: tinyhar's)")
    ap.add_argument("--lr-schedule", default="cosine", choices=["cosine", "constant"])
    ap.add_argument("--warmup-epochs", type=int, default=0)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--teachers", default="", help="run folders, comma separated: distil from them")
    ap.add_argument("--distill", type=float, default=0.5, help="the teachers' share of targets")
    ap.add_argument("--distill-temperature", type=float, default=2.0)
    for s in ("train", "val", "test"):
        ap.add_argument(f"--{s}-subjects", default=None, help="e.g. 1,3,5 (default split if unset)")
    ap.add_argument("--hapt", type=Path, default=HAPT_DIR, help="the HAPT CSV folder")
    ap.add_argument(
        "--libraries",
        type=Path,
        default=LIBRARIES_DIR,
        help="Arduino libraries folder holding the board's TFLM library",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"work folder ({DEFAULT_OUT})")
    ap.add_argument("--tag", default="", help="a name for this configuration in the JSON report")
    return ap.parse_args(argv)


def config(args: argparse.Namespace, arch: str, data: Path, run: Path) -> TrainConfig:
    """The TrainConfig `tinyhar train` would build from the same options."""
    aug = Augment(rotate_deg=args.rotate, scale=args.scale, time_jitter=args.time_jitter)
    if args.clip_board:
        aug = clip_to_board(aug, load_board(args.clip_board))
    return TrainConfig(
        data=data,
        arch=arch,
        run=run,
        epochs=args.epochs,
        seed=args.seed,
        select=SelectionRule(args.select, args.min_epochs, args.patience),
        augment=aug,
        lr_schedule=args.lr_schedule,
        warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing,
        teachers=[Path(p) for p in args.teachers.split(",") if p],
        distill=args.distill,
        distill_temperature=args.distill_temperature,
        size=args.size if arch == "tiny" else None,
        **({} if args.train_stride is None else {"train_stride": args.train_stride}),
        train_subjects=_ids(args.train_subjects),
        val_subjects=_ids(args.val_subjects),
        test_subjects=_ids(args.test_subjects),
    )


def int8_scores(run: Path, libraries: Path, cfg: TrainConfig) -> dict:
    """quantize the run (`tinyhar quantize`'s code), then int8 macro-F1 from the TFLM outputs on
    the test windows, and int8 accuracy and macro-F1 on the validation windows."""
    q = quantize_run(run, log=log, board=default_board(), libraries=libraries)
    ds, arr = load_run_inputs(run)
    inp = q.input
    int8 = (run / runs.INT8_MODEL).read_bytes()
    labels = list(ds.labels)

    def scores(x_raw: np.ndarray, y: np.ndarray) -> dict:
        x = normalise(x_raw, np.asarray(ds.mean), np.asarray(ds.std))
        _, out = tflm_outputs(int8, q.arena_bytes, x, inp.scale, inp.zero_point)
        pred = out.reshape(len(out), -1).argmax(axis=1)
        return classification_metrics(np.asarray(y), pred, labels)

    val = prepare(cfg, load_dataset(cfg.data), warn=lambda _: None).split.val
    return {
        "report": q,
        "scores": scores(arr["x_test"], arr["y_test"]),
        "val": scores(val.x, val.y),
    }


def bench(args: argparse.Namespace, arch: str, data: Path, seed: int | None = None) -> dict:
    """Train `arch` (with `seed`, else --seed), quantize it and score it; one result dict."""
    args = argparse.Namespace(**{**vars(args), "seed": args.seed if seed is None else seed})
    run = args.out / (f"run-{arch}" if seed is None else f"run-{arch}-seed{seed}")
    shutil.rmtree(run, ignore_errors=True)
    cfg = config(args, arch, data, run)
    result = train(cfg, log=log)
    m = result.metrics
    hist = read_json(run / runs.HISTORY_JSON)
    q = int8_scores(run, args.libraries, cfg)
    rep, s8 = q["report"], q["scores"]
    board = rep.board_int8 or {}
    return {
        "arch": arch,
        "seed": args.seed,
        "size": m.size,
        "split": m.split,
        "counts": m.counts,
        "params": m.params,
        "selection": m.selection,
        "augment": m.augment,
        "lr_schedule": m.lr_schedule,
        "warmup_epochs": m.warmup_epochs,
        "label_smoothing": m.label_smoothing,
        "distillation": m.distillation,
        "epochs": args.epochs,
        "stride": result.dataset.stride,
        "train_stride": result.dataset.train_stride,
        "epochs_run": m.epochs_run,
        "best_epoch": m.best_epoch,
        "val_accuracy": hist["val_accuracy"][m.best_epoch - 1],
        "val_macro_f1": hist["val_macro_f1"][m.best_epoch - 1],
        "int8_val_accuracy": q["val"]["accuracy"],
        "int8_val_macro_f1": q["val"]["macro_f1"],
        "accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "int8_accuracy": rep.int8_accuracy,
        "int8_macro_f1": s8["macro_f1"],
        "int8_accuracy_board_library": board.get("accuracy"),
        "board_library": board.get("library") or f"unavailable: {board.get('unavailable')}",
        "board_agreement_with_tflm": board.get("top1_agreement_with_python_tflm"),
        "model_bytes": rep.model_bytes,
        "arena_bytes": rep.arena_bytes,
        "macs": rep.macs,
        "ops": rep.op_counts,
        "train_seconds": m.train_seconds,
        "epoch_seconds": hist["epoch_seconds"],
        "confusion_int8": s8["confusion"],
        "labels": m.labels,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    data = args.out / "data"
    if not (data / "dataset.toml").is_file():
        log(f"importing {args.hapt} into {data}")
        opts = ImportOptions(gyro_unit="rad/s", drop=["*_TO_*"], name="hapt")
        import_dataset(args.hapt, data, opts, log=log)
    archs = args.arch.split(",")
    if args.seeds:
        results = [bench(args, arch, data, seed) for arch in archs for seed in args.seeds]
    else:
        results = [bench(args, arch, data) for arch in archs]

    first = results[0]
    split = first["split"]
    print()
    print(f"benchmarks/real_data.py, {stamp()}")
    print("REAL data: UCI HAPT (waist smartphone, 50 Hz; not synthetic), six basic activities")
    print(
        f"split (by subject, within HAPT's 21): train {_join(split['train'])}; "
        f"val {_join(split['val'])}; TEST {_join(split['test'])}"
    )
    seeds = f"seeds {_join(args.seeds)}" if args.seeds else f"seed {args.seed}"
    print(
        f"selection: {first['selection']['rule']}; augmentation: "
        f"{_aug_text(first['augment'])}; learning rate {_lr_text(args)}; {seeds}"
    )
    print(
        f"windows: training every {first['train_stride']} samples, validation and test "
        f"every {first['stride']}"
    )
    if args.seeds:
        for arch in archs:
            print_seeds([r for r in results if r["arch"] == arch])
    else:
        print_table(results)
    for r in results:
        agree = r["board_agreement_with_tflm"]
        same = "" if agree is None else f"; top-1 agreement with the TFLM interpreter {agree:.4f}"
        seed = f", seed {r['seed']}" if args.seeds else ""
        print(
            f"board ({r['arch']}{seed}): nano33ble, {r['board_library']} built for the host{same}"
        )
    print(f"total {time.monotonic() - t_start:.0f} s; runs in {args.out}")
    report = {
        "recorded": stamp(),
        "tag": args.tag,
        "seed": args.seed,
        "seeds": args.seeds,
        "results": results,
    }
    name = f"real_data{'-' + args.tag if args.tag else ''}.json"
    (args.out / name).write_text(json.dumps(report, indent=2))
    return 0


TABLE_ROWS = (
    ("params (int8 model)", "params", "{:d}"),
    ("epochs run / kept", None, ""),
    ("val accuracy (kept epoch)", "val_accuracy", "{:.4f}"),
    ("val macro-F1 (kept epoch)", "val_macro_f1", "{:.4f}"),
    ("val accuracy (int8, TFLM)", "int8_val_accuracy", "{:.4f}"),
    ("test accuracy (float)", "accuracy", "{:.4f}"),
    ("test macro-F1 (float)", "macro_f1", "{:.4f}"),
    ("test accuracy (int8, TFLM)", "int8_accuracy", "{:.4f}"),
    ("test macro-F1 (int8, TFLM)", "int8_macro_f1", "{:.4f}"),
    ("test accuracy (int8, board)", "int8_accuracy_board_library", "{:.4f}"),
    ("int8 model bytes", "model_bytes", "{:d}"),
    ("TFLM arena bytes", "arena_bytes", "{:d}"),
    ("MACs per window", "macs", "{:d}"),
    ("training seconds", "train_seconds", "{:.1f}"),
)


def print_table(results: list[dict]) -> None:
    """One column per model: the single-seed table."""
    rows = [("", *[r["arch"] for r in results])]
    for label, key, fmt in TABLE_ROWS:
        if key is None:
            rows.append((label, *[f"{r['epochs_run']} / {r['best_epoch']}" for r in results]))
        else:
            rows.append((label, *[_cell(fmt, r[key]) for r in results]))
    _print_rows(rows)


SEED_COLUMNS = (  # header, key, format, summarised (mean, sd, min)
    ("epochs", None, "", False),
    ("val acc", "val_accuracy", "{:.4f}", True),
    ("val F1", "val_macro_f1", "{:.4f}", True),
    ("val int8", "int8_val_accuracy", "{:.4f}", True),
    ("test float", "accuracy", "{:.4f}", True),
    ("test int8", "int8_accuracy", "{:.4f}", True),
    ("int8 F1", "int8_macro_f1", "{:.4f}", True),
    ("int8 board", "int8_accuracy_board_library", "{:.4f}", True),
    ("train s", "train_seconds", "{:.0f}", False),
)


def print_seeds(results: list[dict]) -> None:
    """One row per seed of one model, then the mean, sd (sample) and min of each score."""
    r0 = results[0]
    size = ", ".join(f"{k}={v}" for k, v in (r0["size"] or {}).items()) or "paper"
    print(
        f"\n{r0['arch']} ({size}): {r0['params']} params, int8 model {r0['model_bytes']} B, "
        f"arena {r0['arena_bytes']} B, {r0['macs']} MACs per window"
    )
    rows = [("seed", *[c[0] for c in SEED_COLUMNS])]
    for r in results:
        cells = [
            f"{r['epochs_run']} / {r['best_epoch']}" if key is None else _cell(fmt, r[key])
            for _, key, fmt, _ in SEED_COLUMNS
        ]
        rows.append((str(r["seed"]), *cells))
    for name, fn in (("mean", np.mean), ("sd", _sd), ("min", np.min)):
        cells = []
        for _, key, fmt, summarised in SEED_COLUMNS:
            values = [r[key] for r in results] if summarised else []
            ok = values and all(v is not None for v in values)
            cells.append(fmt.format(float(fn(values))) if ok else "")
        rows.append((name, *cells))
    _print_rows(rows)


def _sd(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _print_rows(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        cells = [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        print("  " + "  ".join([r[0].ljust(widths[0]), *cells]))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _cell(fmt: str, value: object) -> str:
    return "n/a" if value is None else fmt.format(value)


def _join(ids: list[int]) -> str:
    return ",".join(map(str, ids))


def _lr_text(args: argparse.Namespace) -> str:
    warm = f" after {args.warmup_epochs} warm-up epochs" if args.warmup_epochs else ""
    smooth = f"; label smoothing {args.label_smoothing:g}" if args.label_smoothing else ""
    n = len([p for p in args.teachers.split(",") if p])
    teach = (
        (
            f"; distilled from {n} teacher run(s), {args.distill:g} of the targets at "
            f"temperature {args.distill_temperature:g}"
        )
        if n
        else ""
    )
    return f"{args.lr_schedule}{warm}{smooth}{teach}"


def _aug_text(aug: dict) -> str:
    on = [f"{k} {v}" for k, v in aug.items() if v and k not in ("clip_acc", "clip_gyro")]
    return ", ".join(on) if on else "none"


if __name__ == "__main__":
    sys.exit(main())
