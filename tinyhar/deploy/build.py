"""`tinyhar build`: check the model against the board, render, compile, write build.json."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyhar import __version__, runs
from tinyhar.deploy import arduino, codegen
from tinyhar.deploy.boards import Board, load_board
from tinyhar.deploy.crc import crc32
from tinyhar.deploy.firmware_config import (
    DTYPE_CODES,
    ModelSpec,
    channel_layout,
    read_side_file,
    spec_for_model,
    spec_from_dataset,
)
from tinyhar.deploy.m4f_image import EMULATED_SUFFIX
from tinyhar.deploy.tflm_library import KernelPlan, load_library, plan_kernels
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_write_json, read_json
from tinyhar.resources import templates_dir

DEFAULT_SKETCH = "tinyhar_har"
DEFAULT_MARGIN = "25%"
ARENA_ALIGN = 16
MIN_MARGIN = 1024  # a percentage margin is at least this many bytes
SYNTH_DATA_DIR = Path("data/synth")  # where a first build without data makes synthetic data

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class BuildOptions:
    """What `tinyhar build` accepts."""

    board: str = "nano33ble"
    run: Path | None = None
    model: Path | None = None
    out: Path | None = None  # for --model: where firmware/ and build.json go (default: beside it)
    sketch_name: str = DEFAULT_SKETCH
    arena_margin: str = DEFAULT_MARGIN
    install: bool = True
    require_compile: bool = False
    stream_at_boot: bool = False
    tflm_library: str | None = None  # another TFLM library the board supports
    libraries: Path | None = None  # Arduino libraries folder (for the Cortex-M4F link map)
    measure: bool = True  # link for the Cortex-M4F to measure flash and RAM where possible
    model_options: dict[str, Any] = field(default_factory=dict)  # labels, window, channels, ...


def margin_bytes(spec: str, measured: int) -> int:
    """The arena margin: "2048" bytes, "2KB", or "25%" of the measured arena (at least 1 KB)."""
    text = str(spec).strip().lower().replace(" ", "")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(%|kb|k|b)?", text)
    if not m:
        raise TinyharError(f"--arena-margin {spec!r}: give bytes (2048), kilobytes (2KB) or 25%")
    value, unit = float(m.group(1)), m.group(2) or "b"
    if unit == "%":
        return max(MIN_MARGIN, int(-(-measured * value // 100)))
    return int(value * 1024) if unit in ("kb", "k") else int(value)


def align(n: int, k: int = ARENA_ALIGN) -> int:
    return -(-n // k) * k


def check_budget(board: Board, model_bytes: int, arena_bytes: int) -> None:
    """Refuse a model whose flatbuffer or arena exceeds the board's budget, in one line."""
    over = []
    for what, size, budget, kind in (
        ("model", model_bytes, board.model_flash_bytes, "model flash"),
        ("arena", arena_bytes, board.arena_ram_bytes, "arena RAM"),
    ):
        if size > budget:
            over.append(
                f"{what} {size / 1024:.1f} KB is {(size - budget) / 1024:.1f} KB over the "
                f"{budget / 1024:.0f} KB {kind} budget"
            )
    if over:
        raise TinyharError(
            f"does not fit {board.name}: {'; '.join(over)}: train a smaller model "
            "(e.g. `tinyhar train --arch tiny`) or pick a bigger board"
        )


def check_ops(ops: list[str]) -> None:
    """One line naming any op that no TFLM has or that makes a model unfit for a board."""
    from tinyhar.deploy.tflite_inspect import FORBIDDEN_OPS, check_tflm_ops

    check_tflm_ops(ops)
    bad = [op for op in ops if op in FORBIDDEN_OPS]
    if bad:
        raise TinyharError(
            f"op {', '.join(bad)} makes the model unfit for the firmware (TFLM runs it very slowly "
            "or not at all): convert with tf_keras (TF_USE_LEGACY_KERAS=1) and a static batch"
        )


def kernel_plan(board: Board, model: bytes, ops: list[str]) -> KernelPlan:
    """Which kernel runs each op on this board's TFLM library; refuses what it cannot run."""
    from tinyhar.deploy.tflite_inspect import per_channel_fc_layers

    lib = load_library(board.tflm.name)
    plan = plan_kernels(ops, lib)
    per_channel = per_channel_fc_layers(model) if "FULLY_CONNECTED" in ops else 0
    if per_channel and not lib.fc_per_channel:
        raise TinyharError(
            f"{per_channel} FULLY_CONNECTED layer(s) have per-channel weights, which "
            f"{lib.title}'s FC kernel computes wrongly (it reads one scale): re-quantize "
            "(`tinyhar quantize --run RUN`) or convert with per-tensor dense weights "
            "(converter._experimental_disable_per_channel_quantization_for_dense_layers = True)"
        )
    return plan


def protocol_version() -> int:
    """TINYHAR_PROTOCOL_VERSION from the core header the sketch gets."""
    text = (templates_dir() / "tinyhar_core.h").read_text(encoding="utf-8")
    m = re.search(r"#define\s+TINYHAR_PROTOCOL_VERSION\s+(\d+)", text)
    if not m:
        raise TinyharError("tinyhar_core.h defines no TINYHAR_PROTOCOL_VERSION: reinstall tinyhar")
    return int(m.group(1))


def firmware_context(
    board: Board,
    spec: ModelSpec,
    info: Any,
    model: bytes,
    model_source: str,
    sketch_name: str,
    arena_measured: int,
    arena_margin: int,
    plan: KernelPlan,
    stream_at_boot: bool = False,
) -> dict[str, Any]:
    """Everything the templates use; also what build.json records as the firmware config."""
    layout = channel_layout(spec, board)
    inp, out = info.inputs[0], info.outputs[0]
    period = 1e6 / spec.rate_hz
    if abs(period - round(period)) > 1e-6:
        raise TinyharError(f"rate {spec.rate_hz} Hz has no whole-microsecond period: use e.g. 50")
    return {
        "EMULATED_SUFFIX": EMULATED_SUFFIX,
        "firmware_version": __version__,
        "protocol_version": protocol_version(),
        "tinyhar_version": __version__,
        "board": board,
        "sketch_name": sketch_name,
        "model_source": model_source,
        "model_len": len(model),
        "model_crc32": crc32(model),
        "model_array": codegen.c_array(model),
        "ops": list(info.ops),
        "library_methods": plan.library_methods,
        "own_kernels": plan.own_kernels,
        "own_parsers": {op: _parser_name(op) for op in plan.own_kernels},
        "stateful": bool(info.stateful),
        "arena_measured": arena_measured,
        "arena_margin": arena_margin,
        "arena_bytes": align(arena_measured + arena_margin),
        "window": spec.window,
        "stride": spec.stride,
        "rate_hz": spec.rate_hz,
        "sample_period_us": int(round(period)),
        "channels": layout,
        "imu_slots": [ch["imu_slot"] for ch in layout],
        "n_classes": len(spec.labels),
        "labels": spec.labels,
        "input": _tensor(inp, spec.input_scale, spec.input_zero_point),
        "output": _tensor(out, spec.output_scale, spec.output_zero_point),
        "stream_at_boot": stream_at_boot,
    }


def _parser_name(op: str) -> str:
    """TFLM's options parser for a builtin op: BATCH_MATMUL -> ParseBatchMatMul's suffix."""
    return {"BATCH_MATMUL": "BatchMatMul"}.get(op) or "".join(
        w.capitalize() for w in op.split("_")
    )


def _tensor(t: Any, scale: float, zero_point: int) -> dict[str, Any]:
    return {
        "name": t.name,
        "shape": [int(d) for d in t.shape],
        "dtype": t.dtype,
        "dtype_code": DTYPE_CODES[t.dtype],
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def config_record(ctx: dict[str, Any]) -> dict[str, Any]:
    """The firmware configuration as build.json records it (what the device's HELLO reports)."""
    keys = ("window", "stride", "rate_hz", "n_classes", "labels", "input", "output", "imu_slots")
    rec = {k: ctx[k] for k in keys}
    rec["channels"] = [
        {
            k: ch[k]
            for k in (
                "name",
                "kind",
                "axis",
                "unit",
                "imu_slot",
                "axis_src",
                "axis_sign",
                "unit_factor",
                "mean",
                "std",
                "inv_std",
            )
        }
        for ch in ctx["channels"]
    ]
    rec["stateful"] = ctx["stateful"]
    rec["protocol_version"] = ctx["protocol_version"]
    rec["firmware_version"] = ctx["firmware_version"]
    return rec


# --- flash and RAM ---------------------------------------------------------------------------

# Without the Cortex-M4F toolchain: TFLM with a handful of kernels and tinyhar's code (flash), and
# tinyhar's core buffers (RAM), as measured on the link maps of the tiny and paper models.
EST_TFLM_FLASH = 100 * 1024
EST_TINYHAR_RAM = 8 * 1024


def measure_footprint(
    board: Board, rendered: codegen.Rendered, plan: KernelPlan, opts: BuildOptions, log: Log
) -> dict[str, Any]:
    """Flash and RAM of this firmware from its Cortex-M4F link map (all but the Arduino core);
    estimates, labelled so, where the toolchain or the libraries are missing."""
    from tinyhar.deploy.m4f_image import build_emulated_firmware
    from tinyhar.deploy.tflm_library import libraries_dir, library_src

    why = "--no-measure"
    if board.cpu != "Cortex-M4F":
        why = f"the link map is measured for Cortex-M4F boards, {board.name} has a {board.cpu}"
    elif opts.measure:
        try:
            tflm_src = library_src(libraries_dir(opts.libraries), load_library(board.tflm.name))
            image = build_emulated_firmware(
                [rendered.library_dir / "src", rendered.sketch_dir], tflm_src,
                list(plan.library_methods), rendered.library_dir.parents[1] / "m4f",
                log, name=opts.sketch_name,
            )  # fmt: skip
        except TinyharError as e:
            why = str(e)
        else:
            fp = image.footprint
            groups = {g: {"flash": fp[g]["flash"], "ram": fp[g]["ram"]} for g in fp if g in (
                "model", "arena", "tflm", "tinyhar", "runtime", "arduino")}  # fmt: skip
            return {
                "measured": True,
                "source": f"Cortex-M4F link map ({image.map_file}); the Arduino core not included",
                "flash": fp["total"]["flash"] - fp["arduino"]["flash"],
                "ram": fp["total"]["ram"] - fp["arduino"]["ram"],
                "groups": groups,
            }
    return {"measured": False, "why": why}


def estimate_footprint(model_bytes: int, arena_bytes: int) -> dict[str, Any]:
    return {
        "measured": False,
        "source": "estimate (no Cortex-M4F link): model + arena + typical TFLM and tinyhar sizes",
        "flash": model_bytes + EST_TFLM_FLASH,
        "ram": arena_bytes + EST_TINYHAR_RAM,
    }


def check_footprint(board: Board, fp: dict[str, Any]) -> None:
    """With the Arduino core's share added, the firmware must fit the sketch limits."""
    over = []
    for what, used, core, most in (
        ("flash", fp["flash"], board.core_flash_bytes, board.sketch_flash_bytes),
        ("RAM", fp["ram"], board.core_ram_bytes, board.sketch_ram_bytes),
    ):
        if used + core > most:
            over.append(f"{what} {(used + core) / 1024:.0f} KB of {most / 1024:.0f} KB")
    if over:
        kind = "measured" if fp["measured"] else "estimated"
        raise TinyharError(
            f"does not fit {board.name} ({kind}, with {board.core_flash_bytes // 1024} KB flash "
            f"and {board.core_ram_bytes // 1024} KB RAM for the Arduino core): {'; '.join(over)}: "
            "train a smaller model or pick a bigger board"
        )


# --- where the model comes from --------------------------------------------------------------


@dataclass
class Source:
    """The model to build and where its firmware and build.json go."""

    model: bytes
    model_path: Path
    out_dir: Path  # the run folder (or the --out folder of a model of one's own)
    spec: ModelSpec
    info: Any
    arena_measured: int
    arena_origin: str
    run: Path | None


def _run_source(run: Path | None, log: Log) -> Path:
    """The run to build: the given one, else the latest, else a fresh default training run."""
    if run is not None:
        return runs.require_run(run, needs=runs.DATASET_JSON)
    latest = runs.latest_run()
    if latest is not None:
        log(f"build: using the latest run {latest}")
        return latest
    return _train_default(log)


def _train_default(log: Log) -> Path:
    """No run yet: train one with the defaults (on synthetic data when nothing was downloaded)."""
    from tinyhar.model.train import TrainConfig, resolve_data, train

    try:
        data = resolve_data(None)
        log(f"build: no run found; training one with the defaults on {data} first")
    except TinyharError:
        from tinyhar.data.synth import synthesize

        data = SYNTH_DATA_DIR
        log(
            "build: no run and no downloaded MHEALTH found: TRAINING ON SYNTHETIC DATA "
            f"(in {data}); the firmware is a demo, not a real activity recogniser. "
            "Run `tinyhar data download` and `tinyhar train` for the real thing."
        )
        if not data.is_dir():
            synthesize(data)
    return train(TrainConfig(data=data), log=log).run


def _quantized(run: Path, log: Log) -> tuple[bytes, dict[str, Any] | None]:
    path = run / runs.INT8_MODEL
    if not path.is_file():
        log(f"build: {run} has no {runs.INT8_MODEL}; running `tinyhar quantize --run {run}` first")
        from tinyhar.deploy.quantize import quantize_run

        runs.require_run(run, needs=runs.KERAS_MODEL)
        quantize_run(run, log=log)
    q = run / runs.QUANTIZE_JSON
    return path.read_bytes(), (read_json(q) if q.is_file() else None)


def _arena(model: bytes, quantize: dict[str, Any] | None, log: Log) -> tuple[int, str]:
    """The measured arena: quantize.json's when it belongs to these bytes, else measured now."""
    if quantize and quantize.get("arena_bytes"):
        crc = quantize.get("model_crc32_int", quantize.get("model_crc32"))
        if isinstance(crc, str):
            crc = int(crc, 16)
        if crc == crc32(model):
            return int(quantize["arena_bytes"]), "quantize.json"
    from tinyhar.deploy.arena import measure_arena

    log("build: measuring the model's TFLM arena (bisection)")
    return measure_arena(model), "measured now"


def resolve_source(opts: BuildOptions, log: Log) -> Source:
    from tinyhar.deploy.tflite_inspect import inspect_tflite

    if opts.model is not None and opts.run is not None:
        raise TinyharError("give --run or --model, not both")
    if opts.model is not None:
        path = Path(opts.model)
        if not path.is_file():
            raise TinyharError(f"--model {path} not found: pass a .tflite file")
        model = path.read_bytes()
        info = inspect_tflite(model)
        check_ops(list(info.ops))
        side, side_path = read_side_file(path)
        spec = spec_for_model(info, opts.model_options, side, str(side_path or "side file"))
        for key, origin in spec.origin.items():
            log(f"build: {key:<13} from {origin}")
        arena, origin = _arena(model, None, log)
        out = Path(opts.out) if opts.out is not None else path.parent
        return Source(model, path, out, spec, info, arena, origin, None)
    run = _run_source(opts.run, log)
    model, quantize = _quantized(run, log)
    info = inspect_tflite(model)
    check_ops(list(info.ops))
    spec = spec_from_dataset(read_json(run / runs.DATASET_JSON), info)
    arena, origin = _arena(model, quantize, log)
    return Source(model, run / runs.INT8_MODEL, run, spec, info, arena, origin, run)


# --- the build -------------------------------------------------------------------------------


def build_firmware(opts: BuildOptions, log: Log = _stderr) -> dict[str, Any]:
    """Check, render, compile (where arduino-cli is), write build.json; returns its content."""
    t0 = time.monotonic()
    board = load_board(opts.board).with_tflm(opts.tflm_library)
    if not re.fullmatch(r"[A-Za-z0-9_]+", opts.sketch_name):
        raise TinyharError(
            f"--sketch-name {opts.sketch_name!r}: use letters, digits and _ (arduino-cli needs it)"
        )
    src = resolve_source(opts, log)
    margin = margin_bytes(opts.arena_margin, src.arena_measured)
    arena_total = align(src.arena_measured + margin)
    check_budget(board, len(src.model), arena_total)
    plan = kernel_plan(board, src.model, list(src.info.ops))
    if len(src.spec.channels) > 6:
        log(
            f"build: note: {len(src.spec.channels)} channels from the board's single IMU: "
            "every acc/gyro group is fed the same readings"
        )

    ctx = firmware_context(
        board,
        src.spec,
        src.info,
        src.model,
        src.model_path.name,
        opts.sketch_name,
        src.arena_measured,
        margin,
        plan,
        opts.stream_at_boot,
    )
    board_dir = src.out_dir / runs.FIRMWARE_DIR / board.name
    out = codegen.render_firmware(ctx, board_dir, opts.sketch_name)
    sketch_dir = out.sketch_dir
    own = f", {', '.join(plan.own_kernels)} from tinyhar" if plan.own_kernels else ""
    log(
        f"build: rendered {out.library_dir} ({len(src.model)} B model, arena {arena_total} B = "
        f"{src.arena_measured} {src.arena_origin} + {margin} margin, {len(src.info.ops)} ops: "
        f"{len(plan.library_methods)} from {board.tflm.name} {board.tflm.version}{own})"
    )
    if out.sketch_kept:
        log(
            f"build: kept your changed sketch {sketch_dir / (opts.sketch_name + '.ino')}; the "
            f"regenerated one is {out.library_dir / 'examples' / opts.sketch_name}"
        )
    footprint = measure_footprint(board, out, plan, opts, log)
    if not footprint["measured"]:
        why = footprint["why"]
        footprint = estimate_footprint(len(src.model), arena_total)
        footprint["why"] = why
        log(f"build: flash and RAM are estimates: no Cortex-M4F link ({why})")
    check_footprint(board, footprint)

    record: dict[str, Any] = {
        "board": board.name,
        "fqbn": board.fqbn,
        "model": str(src.model_path),
        "model_bytes": len(src.model),
        "arena_bytes": arena_total,
        "arena_measured": src.arena_measured,
        "arena_margin": margin,
        "model_crc32": f"0x{crc32(src.model):08x}",
        "model_crc32_int": crc32(src.model),
        "ops": list(src.info.ops),
        "tflm_library": {"name": board.tflm.name, "version": board.tflm.version},
        "kernels": {
            **{op: board.tflm.name for op in plan.library_methods},
            **{op: "tinyhar" for op in plan.own_kernels},
        },
        "resolver_methods": list(plan.library_methods.values()),
        "footprint": footprint,
        "flash_budget": board.model_flash_bytes,
        "ram_budget": board.arena_ram_bytes,
        "sketch_flash_max": board.sketch_flash_bytes,
        "sketch_ram_max": board.sketch_ram_bytes,
        "compiled": False,
        "flash_used": None,
        "ram_used": None,
        "sketch_dir": str(sketch_dir),
        "sketch_kept": out.sketch_kept,
        "library_dir": str(out.library_dir),
        "sketch_name": opts.sketch_name,
        "build_dir": None,
        "synthetic": src.spec.synthetic,
        "origin": src.spec.origin,
        "config": config_record(ctx),
        "tinyhar_version": __version__,
    }

    cli = arduino.find_cli()
    failure: TinyharError | None = None
    if cli is None:
        msg = f"arduino-cli not found: sources generated but not compiled; {arduino.INSTALL_HINT}"
        log(f"build: {msg}")
        if opts.require_compile:
            failure = TinyharError(f"--require-compile: {msg}")
    else:
        try:
            if opts.install:
                arduino.ensure_installed(cli, board, log)
            build_dir = sketch_dir / "build"
            log(f"build: arduino-cli compile --fqbn {board.fqbn} {sketch_dir}")
            res = arduino.compile_sketch(cli, board, sketch_dir, build_dir, out.library_dir.parent)
            record.update(
                compiled=True,
                flash_used=res.flash_used,
                ram_used=res.ram_used,
                flash_max=res.flash_max,
                ram_max=res.ram_max,
                build_dir=str(build_dir),
            )
            log(
                f"build: compiled: flash {_use(res.flash_used, res.flash_max)}, "
                f"RAM {_use(res.ram_used, res.ram_max)}"
            )
        except TinyharError as e:
            failure = e
    record["seconds"] = round(time.monotonic() - t0, 2)
    atomic_write_json(src.out_dir / runs.BUILD_JSON, record)
    if failure is not None:
        raise failure
    return record


def footprint_lines(fp: dict[str, Any]) -> list[str]:
    """The firmware's flash and RAM, measured (per part) or estimated, for the build summary."""
    if not fp["measured"]:
        return [f"footprint    ESTIMATE flash {fp['flash']} B, RAM {fp['ram']} B ({fp['why']})"]
    names = {"model": "model", "arena": "arena", "tflm": "TFLM + kernels", "tinyhar": "tinyhar",
             "runtime": "libc/libgcc"}  # fmt: skip
    parts = ", ".join(
        f"{names[g]} {fp['groups'][g]['flash']}/{fp['groups'][g]['ram']}" for g in names
    )
    return [
        f"footprint    measured flash {fp['flash']} B, RAM {fp['ram']} B (Cortex-M4F link map, "
        "without the Arduino core)",
        f"             flash/RAM B: {parts}",
    ]


def _use(used: int | None, most: int | None) -> str:
    if used is None:
        return "not reported"
    return f"{used} B" + (f" of {most} B ({100 * used / most:.0f}%)" if most else "")


def format_summary(record: dict[str, Any]) -> str:
    """What `tinyhar build` prints at the end."""
    lines = [
        f"board        {record['board']} ({record['fqbn']})",
        f"model        {record['model_bytes']} B, CRC-32 {record['model_crc32']}, "
        f"ops {', '.join(record['ops'])}",
        f"arena        {record['arena_bytes']} B ({record['arena_measured']} measured + "
        f"{record['arena_margin']} margin)",
        f"budget       model flash {record['flash_budget']} B, arena RAM {record['ram_budget']} B",
        *footprint_lines(record["footprint"]),
        f"sketch       {record['sketch_dir']}",
    ]
    if record["compiled"]:
        lines.append(
            f"compiled     flash {_use(record['flash_used'], record.get('flash_max'))}, "
            f"RAM {_use(record['ram_used'], record.get('ram_max'))}"
        )
    else:
        lines.append("compiled     no (arduino-cli not found; sources are ready to compile)")
    if record.get("synthetic"):
        lines.append(
            "WARNING      the model was trained on SYNTHETIC data: a demo, not a real recogniser"
        )
    return "\n".join(lines)
