"""The UNIDIRECTIONAL_SEQUENCE_LSTM op alone on the emulated Cortex-M4F: tinyhar's kernel against
the Arduino TFLM library's (Chirale_TensorFLowLite), for the LSTM of `tiny` at width 64 and 12.

Each LSTM (50 timesteps, width inputs, width units, random weights, calibrated on normal inputs) is
converted to int8 by tinyhar's converter, and tests/c/lstm_harness.cpp runs it through the
library's interpreter on QEMU mps2-an386 under -icount shift=0 (one instruction = 1 ns): SysTick
at 25 MHz times the op's invoke, 40 instructions a tick. The library is compiled with the
toolchain's firmware flags (-Os); tinyhar's kernel asks for -O2 itself. Prints instructions per
inference and per multiply-add, the arena each interpreter allocates next to the Python TFLM
interpreter's, and how many output bytes differ from the Python interpreter's.

    python benchmarks/lstm_kernel.py [--widths 64,12] [--steps 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from lstm_models import (  # noqa: E402  (tests/ on the path first)
    LIBRARY_KERNEL,
    RUN_OK,
    LstmSpec,
    M4Case,
    build_m4_harness,
    calibrated_inputs,
    lstm_model,
    lstm_node,
    run_m4_harness,
    tflm_sequences,
)

from tinyhar.board.tflm_library import libraries_dir  # noqa: E402
from tinyhar.deploy.native_build import CORTEX_M4F  # noqa: E402
from tinyhar.lite.arena import measure_arena  # noqa: E402

CHIRALE = "Chirale_TensorFLowLite"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="64,12", help="LSTM widths (inputs = units)")
    ap.add_argument("--steps", type=int, default=50, help="timesteps (tiny: 100 samples pooled)")
    ap.add_argument("--runs", type=int, default=3, help="inferences per kernel and width")
    args = ap.parse_args()
    src = libraries_dir() / CHIRALE / "src"
    if not src.is_dir():
        log(f"error: {CHIRALE} is not in {libraries_dir()} (set TINYHAR_ARDUINO_LIBRARIES)")
        return 1
    widths = [int(w) for w in args.widths.split(",")]
    cases, rows = [], []
    for width in widths:
        spec = LstmSpec(args.steps, width, width, seed=width, kernel_std=0.15, recurrent_std=0.15)
        log(f"converting the width-{width} LSTM")
        model = lstm_model(spec)
        x = calibrated_inputs(model, spec, args.runs, seed=1)
        macs = args.steps * 4 * width * (width + width)
        for kernel, flags in (("tinyhar", 0), ("library", LIBRARY_KERNEL)):
            cases.append(M4Case(model, x, flags))
            rows.append((width, kernel, macs, model, x))
    with tempfile.TemporaryDirectory(prefix="tinyhar-lstm-bench-") as tmp:
        log("building the harness for the Cortex-M4F")
        elf = build_m4_harness(src, Path(tmp), cases)
        log("running it on QEMU")
        results = run_m4_harness(elf, cases)
    print(
        f"UNIDIRECTIONAL_SEQUENCE_LSTM on the emulated Cortex-M4F, {args.steps} timesteps, "
        f"mean of {args.runs} inferences"
    )
    print(f"toolchain: {CORTEX_M4F.cxx} {' '.join(CORTEX_M4F.common)}")
    print(
        f"{'width':>5} {'kernel':<8} {'cell':>6} {'MAC':>9} {'instructions':>13} {'per MAC':>8} "
        f"{'arena B':>8} {'python B':>9} {'bytes off':>9}"
    )
    python_arena: dict[int, int] = {}
    for (width, kernel, macs, model, x), res in zip(rows, results, strict=True):
        if res.rc != RUN_OK:
            print(f"{width:>5} {kernel:<8} failed (lstm_run returned {res.rc})")
            continue
        if width not in python_arena:
            python_arena[width] = measure_arena(model)
        per_run = res.instructions / args.runs
        off = int(np.count_nonzero(res.outputs != tflm_sequences(model, x)))
        power = lstm_node(model).cell_power
        print(
            f"{width:>5} {kernel:<8} {f'2^{power}':>6} {macs:>9,} {per_run:>13,.0f} "
            f"{per_run / macs:>8.2f} {res.arena_used:>8} {python_arena[width]:>9} "
            f"{off:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
