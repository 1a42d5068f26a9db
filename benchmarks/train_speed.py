"""Training speed of `tiny` and `paper` on a SYNTHETIC dataset made in a temp folder: seconds per
epoch and in total, plus params, MACs and int8 model bytes of each trained model.

    python benchmarks/train_speed.py                     # 10 subjects, arm, 3 epochs each
    python benchmarks/train_speed.py --subjects 4 --epochs 2 --sensors both
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinyhar.data.mhealth import load_mhealth
from tinyhar.data.synth import synthesize
from tinyhar.data.windows import normalize
from tinyhar.lite.convert import to_int8_tflite
from tinyhar.lite.keras_env import keras
from tinyhar.lite.tflite_inspect import inspect_tflite
from tinyhar.model.selection import SelectionRule
from tinyhar.model.train import TrainConfig, fit, prepare


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench(arch: str, data, args: argparse.Namespace) -> dict:
    cfg = TrainConfig(
        sensors=args.sensors,
        arch=arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        stride=args.stride,
        # run every epoch: this measures speed, not accuracy
        select=SelectionRule(min_epochs=args.epochs, patience=args.epochs + 1),
        seed=0,
    )
    prep = prepare(cfg, data)
    model, history, size, _ = fit(cfg, prep, log=log)
    rep = normalize(prep.split.train.x[:200], prep.mean, prep.std)
    int8 = to_int8_tflite(model, rep)
    info = inspect_tflite(int8)
    epoch_s = history["epoch_seconds"]
    row = {
        "arch": f"{arch}{' w=' + str(size['width']) if size else ''}",
        "windows": len(prep.split.train),
        "first_s": epoch_s[0],
        "epoch_s": float(np.mean(epoch_s[1:] if len(epoch_s) > 1 else epoch_s)),
        "total_s": history["train_seconds"],
        "epochs": len(epoch_s),
        "params": int(model.count_params()),
        "macs": info.macs,
        "int8_bytes": len(int8),
    }
    keras.backend.clear_session()
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--subjects", type=int, default=10)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--sensors", choices=["arm", "ankle", "both"], default="arm")
    p.add_argument("--stride", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--arch", action="append", choices=["tiny", "paper"], default=None)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tinyhar-bench-") as tmp:
        log(f"train_speed: synthesising {a.subjects} subjects")
        data = load_mhealth(synthesize(Path(tmp) / "synth", subjects=a.subjects, seed=0))
        rows = [bench(arch, data, a) for arch in a.arch or ["tiny", "paper"]]
    head = (
        f"{'model':<12} {'train win':>9} {'epochs':>6} {'1st ep s':>8} {'s/epoch':>8} "
        f"{'total s':>8} {'params':>8} {'MACs':>10} {'int8 KB':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['arch']:<12} {r['windows']:>9} {r['epochs']:>6} {r['first_s']:>8.2f} "
            f"{r['epoch_s']:>8.2f} {r['total_s']:>8.1f} {r['params']:>8} {r['macs']:>10} "
            f"{r['int8_bytes'] / 1024:>8.1f}"
        )
    print(
        f"\nSYNTHETIC data ({a.subjects} subjects, {a.sensors}, stride {a.stride}, batch "
        f"{a.batch_size}) on this machine; s/epoch excludes the first epoch (graph tracing); "
        "total is model.fit only (tiny's budget sizing not included)."
    )


if __name__ == "__main__":
    main()
