"""`tinyhar build`: check the model against the board, render, compile, write build.json."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tinyhar.board.boards import Board, default_board
from tinyhar.board.tflm_library import KernelPlan
from tinyhar.crc import crc32, format_crc32
from tinyhar.data.classes import case_duplicates, shown
from tinyhar.data.synth import synthesize
from tinyhar.deploy import arduino, codegen
from tinyhar.deploy.codegen import check_sketch_name
from tinyhar.deploy.firmware import (
    DEFAULT_SKETCH,
    check_ops,
    config_record,
    firmware_context,
    kernel_plan,
)
from tinyhar.deploy.firmware_config import (
    ModelSpec,
    read_side_file,
    spec_for_model,
    spec_from_dataset,
)
from tinyhar.deploy.footprint import (
    check_budget,
    check_footprint,
    estimate_footprint,
    footprint_lines,
    measure_footprint,
    measured_arena,
)
from tinyhar.errors import TinyharError
from tinyhar.lite.arena import DEFAULT_MARGIN, firmware_arena_bytes, margin_bytes
from tinyhar.lite.tflite_inspect import ModelInfo, inspect_tflite
from tinyhar.log import NORMAL, Log, inf, verbosity
from tinyhar.run import folder as runs
from tinyhar.run.firmware import FirmwareTree
from tinyhar.run.records import BuildReport, DatasetContract, QuantizeReport

SYNTH_DATA_DIR = Path("data/synth")  # where a first build without data makes synthetic data


@dataclass
class BuildOptions:
    """What `tinyhar build` accepts."""

    board: Board = field(default_factory=default_board)
    run: Path | None = None
    model: Path | None = None
    out: Path | None = None  # for --model: where firmware/ and build.json go (default: beside it)
    sketch_name: str = DEFAULT_SKETCH
    arena_margin: str = DEFAULT_MARGIN
    install: bool = True
    require_compile: bool = False
    stream_at_boot: bool = False
    profile: bool = False  # the runner counts each op's cycles for `tinyhar verify --profile`
    tflm_library: str | None = None  # another TFLM library the board supports
    kernels: str = "tinyhar"  # whose kernel runs an op both have (tflm_library.KERNEL_CHOICES)
    libraries: Path | None = None  # Arduino libraries folder (for the Cortex-M4F link map)
    measure: bool = True  # link for the Cortex-M4F to measure flash and RAM where possible
    train_if_missing: bool = False  # no run at all: train one with the defaults first
    model_options: dict[str, Any] = field(default_factory=dict)  # labels, window, channels, ...


# --- where the model comes from --------------------------------------------------------------


@dataclass
class Source:
    """The model to build and where its firmware and build.json go."""

    model: bytes
    model_path: Path
    out_dir: Path  # the run folder (or the --out folder of a model of one's own)
    spec: ModelSpec
    info: ModelInfo
    arena_measured: int
    arena_origin: str
    run: Path | None


def _run_source(run: Path | None, train_if_missing: bool, log: Log) -> Path:
    """The run to build: the given one, else the latest, else (when asked) a fresh training run."""
    if run is not None:
        return runs.require_run(run)  # metrics.json: a finished training
    latest = runs.latest_run()
    if latest is not None:
        log(f"build: using the latest run {latest}")
        return latest
    if not train_if_missing:
        raise TinyharError(
            f"no run found under {runs.RUNS_ROOT}/: {runs.MAKE_A_RUN}; or pass "
            "--train-if-missing to train one with the defaults now (minutes)"
        )
    return _train_default(log)


def _train_default(log: Log) -> Path:
    """No run yet: train one with the defaults (on synthetic data when nothing was downloaded)."""
    from tinyhar.model.train import TrainConfig, resolve_data, train  # lazy: TensorFlow

    try:
        data = resolve_data(None)
        log(f"build: no run found; training one with the defaults on {data} first")
    except TinyharError:
        data = SYNTH_DATA_DIR
        log(
            "build: no run and no downloaded MHEALTH found: TRAINING ON SYNTHETIC DATA "
            f"(in {data}); the firmware is a demo, not a real activity recogniser. "
            "Run `tinyhar data download` and `tinyhar train` for the real thing."
        )
        if not data.is_dir():
            synthesize(data)
    return train(TrainConfig(data=data), log=log).run


def _quantized(run: Path, log: Log) -> tuple[bytes, QuantizeReport | None]:
    path = run / runs.INT8_MODEL
    if not path.is_file():
        log(f"build: {run} has no {runs.INT8_MODEL}; running `tinyhar quantize --run {run}` first")

        from tinyhar.deploy.quantize import quantize_run  # lazy: TensorFlow

        runs.require_run(run, needs=runs.KERAS_MODEL)
        quantize_run(run, log=log)
    return path.read_bytes(), QuantizeReport.load_if_present(run)


def resolve_source(opts: BuildOptions, log: Log) -> Source:
    """The model a build is for: a run's (quantized first if need be) or a .tflite file."""
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
        arena, origin = measured_arena(model, None, log)
        out = Path(opts.out) if opts.out is not None else path.parent
        return Source(model, path, out, spec, info, arena, origin, None)
    run = _run_source(opts.run, opts.train_if_missing, log)
    runs.check_record(run, runs.METRICS_JSON)
    model, quantize = _quantized(run, log)
    runs.check_record(run, runs.QUANTIZE_JSON)  # the int8 model is from this model.keras
    info = inspect_tflite(model)
    check_ops(list(info.ops))
    spec = spec_from_dataset(DatasetContract.load(run), info)
    arena, origin = measured_arena(model, quantize, log)
    return Source(model, run / runs.INT8_MODEL, run, spec, info, arena, origin, run)


# --- the build -------------------------------------------------------------------------------


def build_firmware(opts: BuildOptions, log: Log = inf) -> BuildReport:
    """Check, render, compile (where arduino-cli is), write build.json; returns its content."""
    t0 = time.monotonic()
    board = opts.board.with_tflm(opts.tflm_library)
    check_sketch_name(opts.sketch_name)
    src = resolve_source(opts, log)
    for warning in label_warnings(src.spec.labels):
        log(f"build: warning: {warning}")
    margin = margin_bytes(opts.arena_margin, src.arena_measured)
    check_budget(board, len(src.model), firmware_arena_bytes(src.arena_measured, opts.arena_margin))
    plan = kernel_plan(board, src.model, list(src.info.ops), opts.kernels)
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
        opts.profile,
    )
    # the firmware is about to change: an earlier build.json no longer describes it
    BuildReport.path(src.out_dir).unlink(missing_ok=True)
    rendered = _render(board, src, ctx, plan, opts.sketch_name, log)
    footprint = _footprint(board, rendered, plan, opts, len(src.model), ctx["arena_bytes"], log)
    report = _report(board, src, ctx, plan, rendered, footprint, opts.sketch_name)
    failure: TinyharError | None = None
    try:
        report = _compile(board, rendered, opts, report, log)
    except TinyharError as e:
        failure = e
    report = replace(report, seconds=round(time.monotonic() - t0, 2))
    report.save(src.out_dir)
    if failure is not None:
        raise failure
    return report


def label_warnings(labels: list[str]) -> list[str]:
    """Labels given more than once, or differing only in case: the firmware would report classes
    the user cannot tell apart."""
    out = [
        f"label {shown(name)} is given {labels.count(name)} times: those outputs cannot be told "
        "apart by name"
        for name in dict.fromkeys(labels)
        if labels.count(name) > 1
    ]
    out += [
        f"labels {shown(a)} and {shown(b)} differ only in case"
        for a, b in case_duplicates(list(dict.fromkeys(labels)))
    ]
    return out


def _render(
    board: Board, src: Source, ctx: dict[str, Any], plan: KernelPlan, sketch: str, log: Log
) -> codegen.Rendered:
    out = codegen.render_firmware(ctx, FirmwareTree(src.out_dir, board.name, sketch))
    own = f", {', '.join(plan.own_kernels)} from tinyhar" if plan.own_kernels else ""
    log(
        f"build: rendered {out.library_dir} ({len(src.model)} B model, arena "
        f"{ctx['arena_bytes']} B = {src.arena_measured} {src.arena_origin} + "
        f"{ctx['arena_margin']} margin, {len(src.info.ops)} ops: {len(plan.library_methods)} "
        f"from {board.tflm.name} {board.tflm.version}{own})"
    )
    if out.sketch_kept:
        ino = out.sketch_dir / (sketch + ".ino")
        log(
            f"build: kept your changed sketch {ino}; the regenerated one is "
            f"{out.library_dir / 'examples' / sketch}"
        )
        if codegen.BOARD_LAYER_CALL not in ino.read_text(encoding="utf-8", errors="replace"):
            log(
                f"build: warning: {ino} predates the board layer in the tinyhar_model library: "
                "it keeps its own copy of the resampler, which library updates do not reach; "
                f"move your changes onto the regenerated sketch"
            )
    return out


def _footprint(
    board: Board,
    rendered: codegen.Rendered,
    plan: KernelPlan,
    opts: BuildOptions,
    model_bytes: int,
    arena_bytes: int,
    log: Log,
) -> dict[str, Any]:
    """Measured from the Cortex-M4F link map where possible, else estimated; checked to fit."""
    footprint = {"measured": False, "why": "--no-measure"}
    if opts.measure:
        footprint = measure_footprint(board, rendered, plan, opts.sketch_name, opts.libraries, log)
    if not footprint["measured"]:
        why = footprint["why"]
        footprint = {**estimate_footprint(model_bytes, arena_bytes, opts.kernels), "why": why}
        log(f"build: flash and RAM are estimates: no Cortex-M4F link ({why})")
    check_footprint(board, footprint)
    return footprint


def _report(
    board: Board,
    src: Source,
    ctx: dict[str, Any],
    plan: KernelPlan,
    rendered: codegen.Rendered,
    footprint: dict[str, Any],
    sketch: str,
) -> BuildReport:
    return BuildReport(
        board=board.name,
        fqbn=board.fqbn,
        model=str(src.model_path),
        model_bytes=len(src.model),
        arena_bytes=ctx["arena_bytes"],
        arena_measured=src.arena_measured,
        arena_margin=ctx["arena_margin"],
        model_crc32=crc32(src.model),
        ops=list(src.info.ops),
        tflm_library={"name": board.tflm.name, "version": board.tflm.version},
        kernels={
            **{op: board.tflm.name for op in plan.library_methods},
            **{op: "tinyhar" for op in plan.own_kernels},
        },
        resolver_methods=list(plan.library_methods.values()),
        footprint=footprint,
        flash_budget=board.model_flash_bytes,
        ram_budget=board.arena_ram_bytes,
        sketch_flash_max=board.sketch_flash_bytes,
        sketch_ram_max=board.sketch_ram_bytes,
        sketch_dir=str(rendered.sketch_dir),
        sketch_kept=rendered.sketch_kept,
        library_dir=str(rendered.library_dir),
        sketch_name=sketch,
        synthetic=src.spec.synthetic,
        origin=src.spec.origin,
        config=config_record(ctx),
        made_from={
            os.path.relpath(src.model_path, src.out_dir): runs.digest_of(src.model),
        },
    )


def _compile(
    board: Board, rendered: codegen.Rendered, opts: BuildOptions, report: BuildReport, log: Log
) -> BuildReport:
    """Compile with arduino-cli where it is installed; the report with the sizes it reports."""
    cli = arduino.find_cli()
    if cli is None:
        msg = f"arduino-cli not found: sources generated but not compiled; {arduino.INSTALL_HINT}"
        log(f"build: {msg}")
        if opts.require_compile:
            raise TinyharError(f"--require-compile: {msg}")
        return report
    if opts.install:
        arduino.ensure_installed(cli, board, log)
    build_dir = rendered.tree.build_dir
    log(f"build: arduino-cli compile --fqbn {board.fqbn} {rendered.sketch_dir}")
    res = arduino.compile_sketch(
        cli, board, rendered.sketch_dir, build_dir, rendered.library_dir.parent
    )
    log(
        f"build: compiled: flash {_use(res.flash_used, res.flash_max)}, "
        f"RAM {_use(res.ram_used, res.ram_max)}"
    )
    return replace(
        report,
        compiled=True,
        flash_used=res.flash_used,
        ram_used=res.ram_used,
        flash_max=res.flash_max,
        ram_max=res.ram_max,
        build_dir=str(build_dir),
    )


def _use(used: int | None, most: int | None) -> str:
    if used is None:
        return "not reported"
    return f"{used} B" + (f" of {most} B ({100 * used / most:.0f}%)" if most else "")


def format_summary(r: BuildReport) -> str:
    """What `tinyhar build` prints at the end."""
    lines = [
        f"board        {r.board} ({r.fqbn})",
        f"model        {r.model_bytes} B, CRC-32 {format_crc32(r.model_crc32)}, "
        f"ops {', '.join(r.ops)}",
        f"arena        {r.arena_bytes} B ({r.arena_measured} measured + {r.arena_margin} margin)",
        f"board budget model flash {r.flash_budget} B, arena RAM {r.ram_budget} B",
        # the log said why the figures are estimates, unless -q kept it quiet: once, not twice
        *footprint_lines(r.footprint, why_above=verbosity() >= NORMAL),
        f"sketch       {r.sketch_dir}",
    ]
    if r.compiled:
        lines.append(
            f"compiled     flash {_use(r.flash_used, r.flash_max)}, "
            f"RAM {_use(r.ram_used, r.ram_max)}"
        )
    else:
        lines.append("compiled     no (arduino-cli not found; sources are ready to compile)")
    if r.synthetic:
        lines.append(
            "WARNING      the model was trained on SYNTHETIC data: a demo, not a real recogniser"
        )
    return "\n".join(lines)
