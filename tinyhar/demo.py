"""`tinyhar demo`: the whole job offline on synthetic data, up to a verified virtual board."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyhar.board.boards import Board, default_board
from tinyhar.data.synth import SUBJECTS, synthesize
from tinyhar.deploy.build import BuildOptions, build_firmware
from tinyhar.deploy.quantize import quantize_run
from tinyhar.device.verify import VerifyOptions, VerifyReport, verify_device
from tinyhar.device.virtual_board import Faults, VirtualBoard, board_image
from tinyhar.files import atomic_write_json
from tinyhar.log import Log, inf
from tinyhar.model.config import DEFAULT_EPOCHS
from tinyhar.model.train import TrainConfig, train
from tinyhar.run import folder as runs


@dataclass
class DemoOptions:
    """What `tinyhar demo` accepts."""

    out: Path = runs.DEMO_DIR
    board: Board = field(default_factory=default_board)
    subjects: int = SUBJECTS
    epochs: int = DEFAULT_EPOCHS
    seed: int = TrainConfig.seed  # training's default, also the data's
    windows: int | None = None
    libraries: Path | None = None  # Arduino libraries folder (the board's TFLM library)


@contextlib.contextmanager
def virtual_board(board: Board, run: Path, log: Log = inf) -> Iterator[str]:
    """A virtual board for `run` served from a background thread; yields its pty path."""

    vb = VirtualBoard(board_image(board, run, log=log), Faults(), log=log)
    server = threading.Thread(target=vb.serve, name="virtual-board", daemon=True)
    server.start()
    try:
        yield vb.path
    finally:
        vb.stop()
        server.join(timeout=5)
        vb.close()


def run_demo(opts: DemoOptions, log: Log = inf) -> dict[str, Any]:
    """Synthesise, train tiny/arm, quantize, build, verify (model and raw mode); the figures."""

    run = Path(opts.out)
    seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def step(name: str, what: str) -> Iterator[None]:
        log(f"\n== demo {len(seconds) + 1}/5: {what}")
        t0 = time.perf_counter()
        yield
        seconds[name] = round(time.perf_counter() - t0, 1)

    with step("data", f"SYNTHETIC data in the MHEALTH format ({opts.subjects} subjects)"):
        data = synthesize(run / "data", subjects=opts.subjects, seed=opts.seed)

    with step("train", "train the tiny model on the arm sensors"):
        cfg = TrainConfig(
            data=data, sensors="arm", arch="tiny", run=run, epochs=opts.epochs, seed=opts.seed
        )
        trained = train(cfg, log=log)

    with step("quantize", "int8 model; float, TFLM and TFLite accuracy; measured arena"):
        quant = quantize_run(run, log=log, board=opts.board, libraries=opts.libraries)

    with step("build", f"firmware for {opts.board.name}"):
        bopts = BuildOptions(board=opts.board, run=run, libraries=opts.libraries)
        built = build_firmware(bopts, log=log)

    reports = {}
    with step("verify", f"virtual {opts.board.name} on a pseudo-terminal, verified over it"):
        with virtual_board(opts.board, run, log=log) as port:
            for mode in ("model", "raw"):
                vopts = VerifyOptions(
                    port=port,
                    run=run,
                    windows=opts.windows,
                    raw=mode == "raw",
                    libraries=opts.libraries,
                )
                reports[mode] = verify_device(vopts, log=log)

    m = trained.metrics
    summary = {
        "run": str(run),
        "synthetic": True,
        "board": built.board,
        "params": m.params,
        "accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "float_accuracy": quant.float_accuracy,
        "int8_accuracy": quant.int8_accuracy,
        "model_bytes": quant.model_bytes,
        "arena_bytes": quant.arena_bytes,
        "firmware_arena_bytes": built.arena_bytes,
        "flash_budget": built.flash_budget,
        "ram_budget": built.ram_budget,
        "compiled": built.compiled,
        "sketch_dir": built.sketch_dir,
        "verify": {mode: _verify_figures(r) for mode, r in reports.items()},
        "seconds": seconds,
        "passed": all(r.passed for r in reports.values()),
    }
    atomic_write_json(run / runs.DEMO_JSON, summary)
    return summary


def _verify_figures(r: VerifyReport) -> dict[str, Any]:
    keys = (
        "passed",
        "windows",
        "top1_agreement",
        "max_abs_diff_lsb",
        "mean_abs_diff_lsb",
        "device_accuracy",
        "host_accuracy",
        "latency_us",
        "windows_per_second",
        "preprocess_mismatch_windows",
        "reference",
    )
    figures = r.to_json()
    return {k: figures[k] for k in keys if k in figures}


def format_summary(s: dict[str, Any]) -> str:
    """The closing table of `tinyhar demo`."""
    v = s["verify"]
    lines = [
        "",
        f"tinyhar demo: {'PASSED' if s['passed'] else 'FAILED'}  — on SYNTHETIC data: the "
        "accuracy below says nothing about real MHEALTH accuracy",
        f"  model              tiny / arm, {s['params']} params; test accuracy "
        f"{s['accuracy']:.3f}, macro-F1 {s['macro_f1']:.3f} (float {s['float_accuracy']:.3f}, int8 "
        f"{s['int8_accuracy']:.3f})",
        f"  int8 model         {s['model_bytes']} B ({s['model_bytes'] / 1024:.1f} KB)",
        f"  TFLM arena         {s['arena_bytes']} B measured, {s['firmware_arena_bytes']} B in "
        "the firmware",
        f"  firmware           {s['board']}: {s['sketch_dir']}"
        + ("" if s["compiled"] else " (sources; compile them with arduino-cli)"),
    ]
    for mode in ("model", "raw"):
        r = v[mode]
        lat = r["latency_us"]
        lines.append(
            f"  verify {mode:<5}       {'passed' if r['passed'] else 'FAILED'}: {r['windows']} "
            f"windows, top-1 agreement {r['top1_agreement']:.4f}, max {r['max_abs_diff_lsb']} "
            f"LSB, virtual-board latency median {lat['median']:.0f} us, "
            f"{r['windows_per_second']} windows/s"
        )
    ref = v["model"].get("reference") or {}
    if ref.get("proves"):
        lines.append(f"  verify reference   {ref['name']}: agreement checks {ref['proves']}")
    secs = ", ".join(f"{k} {t:g}" for k, t in s["seconds"].items())
    lines += [
        f"  seconds            {secs}",
        f"  everything is in {s['run']}/ ({runs.DEMO_JSON}, {runs.METRICS_JSON}, "
        f"{runs.QUANTIZE_JSON}, {runs.BUILD_JSON}, {runs.verify_json('model')}, "
        f"{runs.verify_json('raw')}, {runs.VERIFY_HISTORY}, plots)",
        "  next: `tinyhar data download` and `tinyhar train` for the real data; "
        "`tinyhar sim` + `tinyhar verify --port` by hand",
    ]
    return "\n".join(lines)
