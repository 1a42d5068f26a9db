"""`tiny` and `paper` on REAL data (UCI HAPT, ../shared/data/hapt), with a subject split.

Imports HAPT as `tinyhar data import` does (six basic activities, transitions and unlabelled rows
dropped), trains each model with tinyhar's own training code (the default subject split within the
21 subjects unless --train/--val/--test-subjects say otherwise), converts it with `tinyhar
quantize`'s code and runs the int8 model in the TFLM interpreter on the test subjects, and in
the Nano 33 BLE's own Arduino TFLM library built for the host (from --libraries). Prints accuracy,
macro-F1, int8 accuracy and macro-F1, model and arena bytes, params, training time.

    python benchmarks/real_data.py [--arch tiny,paper] [--epochs N] [train options] [--out DIR]
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

from tinyhar import runs
from tinyhar.data.importer import ImportOptions, import_dataset
from tinyhar.deploy.quantize import load_run_inputs, normalise, quantize_run, tflm_outputs
from tinyhar.files import read_json
from tinyhar.model.augment import Augment, clip_to_board
from tinyhar.model.metrics import classification_metrics
from tinyhar.model.selection import DEFAULT_METRIC, DEFAULT_MIN_EPOCHS, SelectionRule
from tinyhar.model.train import DEFAULT_EPOCHS, TrainConfig, train

HAPT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "hapt"
LIBRARIES_DIR = Path(__file__).resolve().parents[2] / "shared" / "arduino" / "libraries"
DEFAULT_OUT = Path(tempfile.gettempdir()) / "tinyhar_real_data"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _ids(text: str | None) -> list[int] | None:
    return [int(v) for v in text.split(",")] if text else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="tiny,paper", help="comma separated (default tiny,paper)")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--select", default=DEFAULT_METRIC)
    ap.add_argument("--min-epochs", type=int, default=DEFAULT_MIN_EPOCHS)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--rotate", type=float, default=0.0)
    ap.add_argument("--scale", type=float, default=0.0)
    ap.add_argument("--time-jitter", type=float, default=0.0)
    ap.add_argument("--clip-board", default=None)
    ap.add_argument("--train-stride", type=int, default=None, help="(default: tinyhar's)")
    ap.add_argument("--lr-schedule", default="cosine", choices=["cosine", "constant"])
    for s in ("train", "val", "test"):
        ap.add_argument(f"--{s}-subjects", default=None, help="e.g. 1,3,5 (default split if unset)")
    ap.add_argument("--hapt", type=Path, default=HAPT_DIR, help="the HAPT CSV folder")
    ap.add_argument("--libraries", type=Path, default=LIBRARIES_DIR,
                    help="Arduino libraries folder holding the board's TFLM library")  # fmt: skip
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"work folder ({DEFAULT_OUT})")
    ap.add_argument("--tag", default="", help="a name for this configuration in the JSON report")
    return ap.parse_args(argv)


def config(args: argparse.Namespace, arch: str, data: Path, run: Path) -> TrainConfig:
    """The TrainConfig `tinyhar train` would build from the same options."""
    aug = Augment(rotate_deg=args.rotate, scale=args.scale, time_jitter=args.time_jitter)
    if args.clip_board:
        aug = clip_to_board(aug, args.clip_board)
    return TrainConfig(
        data=data,
        arch=arch,
        run=run,
        epochs=args.epochs,
        seed=args.seed,
        select=SelectionRule(args.select, args.min_epochs, args.patience),
        augment=aug,
        lr_schedule=args.lr_schedule,
        **({} if args.train_stride is None else {"train_stride": args.train_stride}),
        train_subjects=_ids(args.train_subjects),
        val_subjects=_ids(args.val_subjects),
        test_subjects=_ids(args.test_subjects),
    )


def int8_scores(run: Path, libraries: Path) -> dict:
    """quantize the run (`tinyhar quantize`'s code), then int8 macro-F1 from the TFLM outputs."""
    q = quantize_run(run, log=log, board="nano33ble", libraries=libraries)
    ds, arr = load_run_inputs(run)
    x = normalise(arr["x_test"], ds["_mean"], ds["_std"])
    inp = q.input
    int8 = (run / runs.INT8_MODEL).read_bytes()
    _, out = tflm_outputs(int8, q.arena_bytes, x, inp["scale"], inp["zero_point"])
    pred = out.reshape(len(out), -1).argmax(axis=1)
    scores = classification_metrics(np.asarray(arr["y_test"]), pred, list(ds["labels"]))
    return {"report": q, "scores": scores}


def bench(args: argparse.Namespace, arch: str, data: Path) -> dict:
    run = args.out / f"run-{arch}"
    shutil.rmtree(run, ignore_errors=True)
    result = train(config(args, arch, data, run), log=log)
    m = result.metrics
    hist = read_json(run / runs.HISTORY_JSON)
    q = int8_scores(run, args.libraries)
    rep, s8 = q["report"], q["scores"]
    board = rep.board_int8 or {}
    return {
        "arch": arch,
        "split": m.split,
        "counts": m.counts,
        "params": m.params,
        "selection": m.selection,
        "augment": m.augment,
        "lr_schedule": m.lr_schedule,
        "stride": result.dataset["stride"],
        "train_stride": result.dataset["train_stride"],
        "epochs_run": m.epochs_run,
        "best_epoch": m.best_epoch,
        "val_accuracy": hist["val_accuracy"][m.best_epoch - 1],
        "val_macro_f1": hist["val_macro_f1"][m.best_epoch - 1],
        "accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "int8_accuracy": rep.int8_accuracy,
        "int8_macro_f1": s8["macro_f1"],
        "int8_accuracy_board_library": board.get("accuracy"),
        "board_library": board.get("library") or f"unavailable: {board.get('unavailable')}",
        "board_agreement_with_tflm": board.get("top1_agreement_with_python_tflm"),
        "model_bytes": rep.model_bytes,
        "arena_bytes": rep.arena_bytes,
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
    results = [bench(args, arch, data) for arch in args.arch.split(",")]

    split = results[0]["split"]
    print()
    print("REAL data: UCI HAPT (waist smartphone, 50 Hz; not synthetic), six basic activities")
    print(f"split (by subject, within HAPT's 21): train {_join(split['train'])}; "
          f"val {_join(split['val'])}; TEST {_join(split['test'])}")  # fmt: skip
    print(f"selection: {results[0]['selection']['rule']}; augmentation: "
          f"{_aug_text(results[0]['augment'])}; learning rate {args.lr_schedule}; "
          f"seed {args.seed}")  # fmt: skip
    print(f"windows: training every {results[0]['train_stride']} samples, validation and test "
          f"every {results[0]['stride']}")  # fmt: skip
    rows = [("", *[r["arch"] for r in results])]
    for label, key, fmt in (
        ("params (int8 model)", "params", "{:d}"),
        ("epochs run / kept", None, ""),
        ("val accuracy (kept epoch)", "val_accuracy", "{:.4f}"),
        ("val macro-F1 (kept epoch)", "val_macro_f1", "{:.4f}"),
        ("test accuracy (float)", "accuracy", "{:.4f}"),
        ("test macro-F1 (float)", "macro_f1", "{:.4f}"),
        ("test accuracy (int8, TFLM)", "int8_accuracy", "{:.4f}"),
        ("test macro-F1 (int8, TFLM)", "int8_macro_f1", "{:.4f}"),
        ("test accuracy (int8, board)", "int8_accuracy_board_library", "{:.4f}"),
        ("int8 model bytes", "model_bytes", "{:d}"),
        ("TFLM arena bytes", "arena_bytes", "{:d}"),
        ("training seconds", "train_seconds", "{:.1f}"),
    ):
        if key is None:
            rows.append((label, *[f"{r['epochs_run']} / {r['best_epoch']}" for r in results]))
        else:
            rows.append((label, *[_cell(fmt, r[key]) for r in results]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        cells = [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        print("  " + "  ".join([r[0].ljust(widths[0]), *cells]))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))
    for r in results:
        agree = r["board_agreement_with_tflm"]
        same = "" if agree is None else f"; top-1 agreement with the TFLM interpreter {agree:.4f}"
        print(f"board ({r['arch']}): nano33ble, {r['board_library']} built for the host{same}")
    print(f"total {time.monotonic() - t_start:.0f} s; runs in {args.out}")
    report = {"tag": args.tag, "seed": args.seed, "results": results}
    name = f"real_data{'-' + args.tag if args.tag else ''}.json"
    (args.out / name).write_text(json.dumps(report, indent=2))
    return 0


def _cell(fmt: str, value: object) -> str:
    return "n/a" if value is None else fmt.format(value)


def _join(ids: list[int]) -> str:
    return ",".join(map(str, ids))


def _aug_text(aug: dict) -> str:
    on = [f"{k} {v}" for k, v in aug.items() if v and k not in ("clip_acc", "clip_gyro")]
    return ", ".join(on) if on else "none"


if __name__ == "__main__":
    sys.exit(main())
