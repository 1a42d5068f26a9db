"""Model table for `paper` and `tiny`: params, MACs, int8 bytes, measured TFLM arena, host TFLM
time, an nRF52840 (Cortex-M4F, 64 MHz) time estimate, and with --run the float/int8 accuracy.

    python benchmarks/model_table.py                       # untrained paper + budget-sized tiny
    python benchmarks/model_table.py --run runs/A --run runs/B   # trained runs (uses quantize.json)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from tinyhar.deploy.quantize import normalise
from tinyhar.lite.arena import measure_arena
from tinyhar.lite.convert import to_int8_tflite
from tinyhar.lite.keras_env import keras
from tinyhar.lite.tflite_inspect import inspect_tflite
from tinyhar.model.architectures import TINY_SIZE, build_model
from tinyhar.run import folder as runs
from tinyhar.run.records import DatasetContract, QuantizeReport, TrainMetrics

PEAK_CYCLES_PER_MAC = 0.5
PEAK_SOURCE = (
    "Cortex-M4 DSP extension: SMLAD does two 16-bit multiply-accumulates per cycle, which "
    "CMSIS-NN uses for int8 (https://applied-ee.github.io/embedded/docs/edge-ai/tinyml/"
    "cortex-m-inference/; CMSIS-NN, Lai et al. 2018, arXiv:1801.06601)"
)
DEFAULT_CYCLES_PER_MAC = 2.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def host_tflm_ms(data: bytes, arena: int, repeats: int = 10) -> float:
    """Mean milliseconds per inference in the host TFLM interpreter (reference kernels)."""
    from tflite_micro.python.tflite_micro import runtime

    ip = runtime.Interpreter.from_bytes(data, arena_size=arena)
    d = ip.get_input_details(0)
    x = np.zeros(d["shape"], d["dtype"])
    ip.set_input(x, 0)
    ip.invoke()
    t0 = time.perf_counter()
    for _ in range(repeats):
        ip.reset()
        ip.set_input(x, 0)
        ip.invoke()
    return (time.perf_counter() - t0) / repeats * 1000


def measure(model, rep: np.ndarray) -> dict:
    """Convert to int8 and measure what the table shows."""
    data = to_int8_tflite(model, rep)
    info = inspect_tflite(data)
    arena = measure_arena(data)
    return {
        "params_keras": int(model.count_params()),
        "params": info.params,
        "macs": info.macs,
        "model_bytes": len(data),
        "arena_bytes": arena,
        "host_ms": host_tflm_ms(data, arena),
    }


def untrained_rows(window: int, channels: int, classes: int) -> list[dict]:
    """paper as specified and tiny as `tinyhar train` builds it, calibrated on random windows."""
    shape = (window, channels)
    rep = np.random.default_rng(0).standard_normal((64, *shape)).astype(np.float32)
    rows = []
    size = dict(TINY_SIZE)  # the default shape
    for arch, kwargs in (("paper", {}), ("tiny", size)):
        log(f"model_table: converting and measuring {arch} {kwargs or ''}")
        keras.utils.set_random_seed(0)
        row = {"name": f"{arch} (untrained)", "arch": arch, **kwargs}
        row.update(measure(build_model(arch, shape, classes, **kwargs), rep))
        rows.append(row)
        keras.backend.clear_session()
    return rows


def run_row(run: Path) -> dict:
    """Figures of a trained run, from quantize.json when present, else measured here."""
    metrics = TrainMetrics.load(run)
    arch = metrics.arch
    row = {"name": f"{run.name} ({arch})", "arch": arch}
    model = keras.models.load_model(run / runs.KERAS_MODEL, compile=False)
    q = QuantizeReport.load_if_present(run)
    if q is not None:
        data = (run / runs.INT8_MODEL).read_bytes()
        row.update(
            params_keras=int(model.count_params()),
            params=q.params,
            macs=q.macs,
            model_bytes=q.model_bytes,
            arena_bytes=q.arena_bytes,
            host_ms=host_tflm_ms(data, q.arena_bytes),
            float_accuracy=q.float_accuracy,
            int8_accuracy=q.int8_accuracy,
        )
    else:
        log(f"model_table: {run} has no {runs.QUANTIZE_JSON}; converting (accuracy needs quantize)")
        ds = DatasetContract.load(run)
        with np.load(run / runs.WINDOWS_NPZ) as npz:
            rep = normalise(npz["x_rep"], np.asarray(ds.mean), np.asarray(ds.std))
        row.update(measure(model, rep))
        row["float_accuracy"] = metrics.accuracy
    row["synthetic"] = metrics.synthetic
    return row


def _acc(row: dict, key: str) -> str:
    v = row.get(key)
    return f"{v:.4f}" if isinstance(v, int | float) else "-"


def table(rows: list[dict], cycles_per_mac: float, clock_mhz: float) -> str:
    head = (
        f"{'model':<28} {'params':>8} {'MACs':>10} {'int8 KB':>8} {'arena KB':>9} "
        f"{'host ms':>8} {'nRF ms':>7} {'>= ms':>6} {'float acc':>9} {'int8 acc':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        est = r["macs"] * cycles_per_mac / (clock_mhz * 1e3)
        floor = r["macs"] * PEAK_CYCLES_PER_MAC / (clock_mhz * 1e3)

        lines.append(
            f"{r['name'][:28]:<28} {r['params_keras']:>8} {r['macs']:>10} "
            f"{r['model_bytes'] / 1024:>8.1f} {r['arena_bytes'] / 1024:>9.1f} "
            f"{r['host_ms']:>8.2f} {est:>7.1f} {floor:>6.1f} {_acc(r, 'float_accuracy'):>9} "
            f"{_acc(r, 'int8_accuracy'):>9}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", type=Path, action="append", default=[], help="trained run folder")
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--channels", type=int, default=6, help="6 = arm or ankle, 12 = both")
    p.add_argument("--classes", type=int, default=12, help="12 activities, 13 with null")
    p.add_argument("--clock-mhz", type=float, default=64.0, help="nRF52840: 64 MHz")
    p.add_argument("--cycles-per-mac", type=float, default=DEFAULT_CYCLES_PER_MAC)
    a = p.parse_args(argv)
    t0 = time.monotonic()
    if a.run:
        rows = [run_row(r) for r in a.run]
    else:
        rows = untrained_rows(a.window, a.channels, a.classes)
    print(table(rows, a.cycles_per_mac, a.clock_mhz))
    print()
    print(
        f"params: Keras count; MACs: FULLY_CONNECTED, CONV_2D, BATCH_MATMUL and the fused LSTM "
        f"(4 gates x (input + units) x units x steps), elementwise ops not counted.\n"
        f"arena: smallest TFLM arena that allocates and invokes (bisection, 16-byte resolution).\n"
        f"host ms: TFLM Python interpreter (reference kernels) on this machine.\n"
        f"nRF ms: MACs x {a.cycles_per_mac:g} cycles/MAC at {a.clock_mhz:g} MHz. The "
        f"{a.cycles_per_mac:g} cycles/MAC is an ASSUMPTION, not a measurement: 4x the SMLAD peak "
        f"for loads, requantization, elementwise ops (LSTM gates, softmax) and kernels without a "
        f"CMSIS-NN version.\n"
        f">= ms: lower bound at the peak of {PEAK_CYCLES_PER_MAC:g} cycles/MAC; source: "
        f"{PEAK_SOURCE}.\n"
        f"Measure on the board before relying on either."
    )
    synth = [r["name"] for r in rows if r.get("synthetic")]
    if synth:
        print(f"accuracy of {', '.join(synth)} is on SYNTHETIC data.")
    print(f"({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
