"""Time `tinyhar build` without training, on a pre-made run.

    python benchmarks/build_time.py [--run R] [--arch tiny|paper] [--board nano33ble] [--repeat 3]

Without --run it makes one (untrained weights: the build does not care) in a temporary folder with
model.keras, dataset.json and windows.npz, then times three cases of `tinyhar build`:
  quantize+build   no model_int8.tflite yet: runs `tinyhar quantize` first (convert, evaluate,
                   measure the arena), then renders;
  measure+build    int8 model present, no quantize.json: measures the arena, then renders;
  render only      int8 model and quantize.json present: checks and renders;
and, where arm-none-eabi-g++ and the Arduino libraries are (--libraries, default
../shared/arduino/libraries), the build that links the firmware for the Cortex-M4F to measure
flash and RAM:
  link M4F, cold   an empty object cache: the TFLM library is compiled for the model's ops;
  link M4F, warm   the cache filled: only tinyhar's files are compiled.
arduino-cli's compile is not timed (it is not installed here; `compiled` in the output says so).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinyhar.board.boards import load_board
from tinyhar.deploy.build import BuildOptions, build_firmware
from tinyhar.run import folder as runs
from tinyhar.run.firmware import FIRMWARE_DIR
from tinyhar.run.records import DatasetContract


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
    DatasetContract.from_json(dataset, run / runs.DATASET_JSON).save(run)
    (run / runs.METRICS_JSON).write_text(json.dumps({"synthetic": True}))
    return run


def timed_build(
    run: Path, board: str, libraries: Path | None = None, quiet: bool = True
) -> tuple[float, dict]:
    """Seconds and build.json of one build; it links for the M4F only when `libraries` is given."""
    log = (lambda _msg: None) if quiet else print
    opts = BuildOptions(
        board=load_board(board), run=run, libraries=libraries, measure=libraries is not None
    )
    t0 = time.perf_counter()
    record = build_firmware(opts, log=log).to_json()
    return time.perf_counter() - t0, record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="a trained run (copied, not changed)")
    ap.add_argument("--arch", default="tiny", choices=("tiny", "paper"))
    ap.add_argument("--board", default="nano33ble")
    ap.add_argument("--repeat", type=int, default=3)
    shared = Path(__file__).resolve().parents[2] / "shared" / "arduino" / "libraries"
    ap.add_argument(
        "--libraries",
        type=Path,
        default=shared if shared.is_dir() else None,
        help="Arduino libraries with the TFLM port (M4F link cases)",
    )
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
        shutil.rmtree(base / FIRMWARE_DIR, ignore_errors=True)
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
        if args.libraries is not None and shutil.which("arm-none-eabi-g++"):
            old = os.environ.get("TINYHAR_CACHE")
            os.environ["TINYHAR_CACHE"] = str(root / "empty-cache")
            try:
                cold = timed_build(base, args.board, args.libraries)
                rows.append(("link M4F, cold", [cold[0]], cold[1]))
                t = [timed_build(base, args.board, args.libraries) for _ in range(args.repeat)]
                rows.append(("link M4F, warm", [s for s, _ in t], t[-1][1]))
            finally:
                if old is None:
                    os.environ.pop("TINYHAR_CACHE")
                else:
                    os.environ["TINYHAR_CACHE"] = old

    rec = rows[-1][2]
    print(
        f"tinyhar build --board {args.board}: model {rec['model_bytes']} B, arena "
        f"{rec['arena_bytes']} B, {len(rec['ops'])} ops, compiled={rec['compiled']}"
    )
    print(f"{'case':<16} {'runs':>4} {'best s':>8} {'mean s':>8}")
    for name, secs, _ in rows:
        print(f"{name:<16} {len(secs):>4} {min(secs):>8.2f} {sum(secs) / len(secs):>8.2f}")
    fp = rec["footprint"]
    kind = "measured (M4F link map)" if fp["measured"] else "ESTIMATE"
    print(f"footprint {kind}: flash {fp['flash']} B, RAM {fp['ram']} B")


if __name__ == "__main__":
    main()
