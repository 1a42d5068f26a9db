"""Time `tinyhar build` without training, on a pre-made run.

    python benchmarks/build_time.py [--run R] [--arch tiny|paper] [--board nano33ble] [--repeat 3]

Without --run it makes one (untrained weights: the build does not care) in a temporary folder with
model.keras, dataset.json and windows.npz, then times three cases of `tinyhar build`:
  quantize+build   no model_int8.tflite yet: runs `tinyhar quantize` first (convert, evaluate,
                   measure the arena), then renders;
  measure+build    int8 model present, no quantize.json: measures the arena, then renders;
  render only      int8 model and quantize.json present: checks and renders.
Compiling is not timed (arduino-cli is not installed here; `compiled` in the output says so).
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
from tinyhar.deploy.build import BuildOptions, build_firmware


def make_run(root: Path, arch: str) -> Path:
    """A run as `tinyhar train` leaves it, with untrained weights of `arch`."""
    from tinyhar.data.mhealth import channels
    from tinyhar.model.architectures import build_model
    from tinyhar.model.dataset_spec import class_names

    chans = channels("arm")
    labels = class_names(False)
    model = build_model(arch, (100, len(chans)), len(labels))
    run = root / f"bench-{arch}"
    run.mkdir(parents=True)
    model.save(run / runs.KERAS_MODEL)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 100, len(chans))).astype(np.float32)
    np.savez(
        run / runs.WINDOWS_NPZ,
        x_test=x[:60],
        y_test=rng.integers(0, len(labels), 60),
        subject_test=np.zeros(60, np.int64),
        x_rep=x[60:],
    )
    dataset = {
        "synthetic": True,
        "source": "benchmark (random windows)",
        "sensors": "arm",
        "channels": [
            {"name": c.name, "column": c.column, "unit": c.unit, "kind": c.kind, "axis": c.axis}
            for c in chans
        ],
        "window": 100,
        "stride": 50,
        "rate_hz": 50,
        "include_null": False,
        "labels": labels,
        "label_ids": list(range(1, len(labels) + 1)),
        "normalization": {"mean": [0.0] * len(chans), "std": [1.0] * len(chans)},
    }
    (run / runs.DATASET_JSON).write_text(json.dumps(dataset))
    (run / runs.METRICS_JSON).write_text(json.dumps({"synthetic": True}))
    return run


def timed_build(run: Path, board: str, quiet: bool = True) -> tuple[float, dict]:
    log = (lambda _msg: None) if quiet else print
    t0 = time.perf_counter()
    record = build_firmware(BuildOptions(board=board, run=run), log=log)
    return time.perf_counter() - t0, record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="a trained run (copied, not changed)")
    ap.add_argument("--arch", default="tiny", choices=("tiny", "paper"))
    ap.add_argument("--board", default="nano33ble")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="tinyhar-build-bench-") as tmp:
        root = Path(tmp)
        if args.run is not None:
            base = root / "run"
            shutil.copytree(args.run, base)
        else:
            print(f"making a pre-made {args.arch} run (untrained weights) ...", file=sys.stderr)
            base = make_run(root, args.arch)
        (base / runs.BUILD_JSON).unlink(missing_ok=True)
        shutil.rmtree(base / runs.FIRMWARE_DIR, ignore_errors=True)
        rows = []
        if not (base / runs.INT8_MODEL).exists():
            seconds, rec = timed_build(base, args.board)
            rows.append(("quantize+build", [seconds], rec))
        quantize_json = base / runs.QUANTIZE_JSON
        hidden = base / "quantize.json.hidden"
        if quantize_json.exists():
            quantize_json.rename(hidden)
        t = [timed_build(base, args.board) for _ in range(args.repeat)]
        rows.append(("measure+build", [s for s, _ in t], t[-1][1]))
        if hidden.exists():
            hidden.rename(quantize_json)
            t = [timed_build(base, args.board) for _ in range(args.repeat)]
            rows.append(("render only", [s for s, _ in t], t[-1][1]))

    rec = rows[-1][2]
    print(
        f"tinyhar build --board {args.board}: model {rec['model_bytes']} B, arena "
        f"{rec['arena_bytes']} B, {len(rec['ops'])} ops, compiled={rec['compiled']}"
    )
    print(f"{'case':<16} {'runs':>4} {'best s':>8} {'mean s':>8}")
    for name, secs, _ in rows:
        print(f"{name:<16} {len(secs):>4} {min(secs):>8.2f} {sum(secs) / len(secs):>8.2f}")


if __name__ == "__main__":
    main()
