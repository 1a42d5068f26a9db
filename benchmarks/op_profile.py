"""Where one inference spends its instructions on the board: a per-op profile of the firmware on
the emulated Cortex-M4F (QEMU mps2-an386 -icount; compiled with the Nano 33 BLE core's own flags:
-Os, gnu++14, softfp), read with TFLM's profiler over the serial protocol (PROFILE).

For each model it builds the firmware with tinyhar's own kernels and with the TFLM library's
(`--kernels`), runs `--windows` seeded random int8 windows and prints the instructions per
inference, the per-op table and the largest difference from the Python TFLM interpreter's outputs.
Instruction counts do not depend on the weights, so the default models are untrained copies of
`tiny` (the default shape), the former default `tiny` at width 64 and at width 12 (the search's
smallest) and `paper`, on HAPT's shape (100 x 6, 6 classes); `--run R` profiles a trained run.

    python benchmarks/op_profile.py [--models tiny,tiny-w64,tiny-w12,paper] [--run R ...]
        [--kernels tinyhar,library] [--windows 20] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinyhar.deploy.build import BuildOptions
from tinyhar.device.emulator import measure_instructions
from tinyhar.device.profile import format_profile

# tiny's shape before the default became the cheap one (docs/model.md), at width 64 and 12
FORMER_TINY = {
    "filters": None,
    "stride": 1,
    "pool": 2,
    "norm": "relu_bn",
    "attention": "dot",
    "stats": "none",
    "means": "mean",
}
MODELS = {
    "tiny": ("tiny", {}),
    "tiny-w64": ("tiny", FORMER_TINY | {"width": 64}),
    "tiny-w12": ("tiny", FORMER_TINY | {"width": 12}),
    "paper": ("paper", {}),
}
SHAPE, CLASSES = (100, 6), 6
LABELS = ",".join(f"class{k}" for k in range(CLASSES))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def untrained_int8(arch: str, size: dict) -> bytes:
    """`arch` at `size`, weights jittered as a trained model's are, converted to int8."""
    from tinyhar.lite.convert import to_int8_tflite
    from tinyhar.lite.keras_env import keras
    from tinyhar.model.architectures import build_model

    keras.utils.set_random_seed(0)
    model = build_model(arch, SHAPE, CLASSES, **size)
    rng = np.random.default_rng(0)
    model.set_weights([w + rng.normal(0, 0.05, w.shape) for w in model.get_weights()])
    rep = rng.standard_normal((64, *SHAPE)).astype(np.float32)
    return to_int8_tflite(model, rep)


def build_options(name: str, work: Path, kernels: str) -> BuildOptions:
    """What to build: a run folder given by path, or a default model written as a .tflite."""
    if Path(name).is_dir():
        return BuildOptions(run=Path(name), kernels=kernels)
    arch, size = MODELS[name]
    model = work / name / "model_int8.tflite"
    if not model.is_file():
        model.parent.mkdir(parents=True, exist_ok=True)
        model.write_bytes(untrained_int8(arch, size))
    opts = {"labels": LABELS, "channels": str(SHAPE[1])}
    return BuildOptions(
        model=model, out=model.parent / kernels, kernels=kernels, model_options=opts
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models",
        default="tiny,tiny-w64,tiny-w12,paper",
        help=f"comma separated, of {', '.join(MODELS)}",
    )
    ap.add_argument("--run", action="append", default=[], help="a trained run (repeatable)")
    ap.add_argument(
        "--kernels", default="tinyhar,library", help="comma separated, of tinyhar and library"
    )
    ap.add_argument("--windows", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m] + args.run
    unknown = [m for m in names if m not in MODELS and not Path(m).is_dir()]
    if unknown:
        ap.error(f"unknown model {unknown[0]!r}: one of {', '.join(MODELS)}, or --run DIR")
    figures: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="tinyhar_op_profile_") as tmp:
        for name in names:
            for kernels in args.kernels.split(","):
                log(f"op_profile: {name} with {kernels} kernels")
                opts = build_options(name, Path(tmp), kernels)
                m = measure_instructions(opts, args.windows, log=log, profile=True)
                figures.setdefault(name, {})[kernels] = m
                print(
                    f"\n== {name}, {kernels} kernels: {m['instructions']:,} instructions per "
                    f"inference (max {m['python_tflm_max_lsb']} LSB from the Python TFLM "
                    f"interpreter over {args.windows} windows); firmware flash "
                    f"{m['flash_bytes']:,} B, RAM {m['ram_bytes']:,} B"
                )
                print("\n".join(format_profile(m["profile"], m["instructions"])), flush=True)
    print("\nmodel            kernels   instructions   max LSB vs Python TFLM")
    for name, by_kernels in figures.items():
        for kernels, m in by_kernels.items():
            print(
                f"{Path(name).name:<16} {kernels:<9} {m['instructions']:>12,}   "
                f"{m['python_tflm_max_lsb']}"
            )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
