"""`tinyhar verify`: send a run's test windows to the device and compare its outputs with TFLM's.

Model mode sends the int8 windows Python's preprocessing makes; raw mode (`--raw`) sends the raw
samples in the board's units, so the device's own unit conversion, normalisation and quantization
are compared with Python's bit for bit as well.
"""

from __future__ import annotations

import io
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tinyhar.board import protocol as P
from tinyhar.board.boards import resolve_board
from tinyhar.board.preprocess import (
    PreprocessConfig,
    normalise,
    quantize,
    quantize_window,
    to_board_units,
)
from tinyhar.board.tflm_library import interpreter_bounds, load_library
from tinyhar.crc import crc32, format_crc32
from tinyhar.deploy import board_reference
from tinyhar.deploy.board_reference import interpreter_violations
from tinyhar.device.link import DeviceError, DeviceStateLost, Link, LinkStats
from tinyhar.device.profile import NO_PROFILER, ProfileCollector, format_profile
from tinyhar.errors import TinyharError
from tinyhar.files import (
    atomic_path,
    atomic_write_bytes,
    put_json_line,
)
from tinyhar.lite.arena import host_arena_bytes
from tinyhar.lite.reference import TfliteReference, TflmReference
from tinyhar.lite.tflite_inspect import inspect_tflite
from tinyhar.log import Log, inf
from tinyhar.run import folder as runs
from tinyhar.run.records import BuildReport, DatasetContract, QuantizeReport, VerifyReport

WINDOW_RESTARTS = 3  # times one raw window is sent again after the device lost its samples


@dataclass
class VerifyOptions:
    port: str
    run: Path | None = None
    windows: int | None = None
    raw: bool = False
    board: str | None = None
    min_agreement: float = 1.0
    max_lsb: int | None = None  # None: 0 against an exact reference, else 1 (with the reason)
    libraries: Path | None = None  # Arduino libraries folder for the board-library reference
    timeout: float = 1.0
    retries: int = 3
    progress: bool = True
    trace: bool = False  # hex dump of every frame on stderr
    resume: bool = False  # continue the interrupted run of this mode from its last window
    profile: bool = False  # read the firmware's per-op counts after every window


@dataclass
class RunModel:
    """What verify needs from the run folder."""

    run: Path
    model_bytes: bytes
    crc32: int
    dataset: DatasetContract
    quantize: QuantizeReport
    x: np.ndarray  # (n, window, C) float32 training units
    y: np.ndarray  # (n,) class indices


def load_run_model(run: Path | None, windows: int | None) -> RunModel:
    run = runs.require_run(run, runs.QUANTIZE_JSON, "tinyhar quantize")
    runs.check_run(run, runs.METRICS_JSON, runs.QUANTIZE_JSON)
    for name in (runs.INT8_MODEL, runs.DATASET_JSON, runs.WINDOWS_NPZ):
        if not (run / name).is_file():
            raise TinyharError(f"{run} has no {name}: run `tinyhar train` and `tinyhar quantize`")
    model = (run / runs.INT8_MODEL).read_bytes()
    inspect_tflite(model)  # a corrupt model is one line now, not a traceback after the device
    with np.load(run / runs.WINDOWS_NPZ) as npz:
        x, y = npz["x_test"], npz["y_test"]
    if len(x) == 0:
        raise TinyharError(f"{run} has no test windows to send: retrain with a test split")
    n = len(x) if windows is None else min(windows, len(x))
    return RunModel(
        run,
        model,
        crc32(model),
        DatasetContract.load(run),
        QuantizeReport.load(run),
        x[:n].astype(np.float32),
        y[:n].astype(np.int64),
    )


def check_device(info: P.DeviceInfo, rm: RunModel, port: str) -> None:
    """Refuse a device that does not carry the run's model, in one line."""

    if not info.has_model:
        raise TinyharError(
            f"the device on {port} cannot run its model: {info.runner_problem()}; rebuild "
            "(`tinyhar build`) and flash"
            if info.runner_status not in (0, 255)
            else f"the device on {port} has no model: build and flash this run first"
        )
    if info.model_crc32 != rm.crc32:
        raise TinyharError(
            f"model mismatch: the device on {port} carries model CRC-32 "
            f"{format_crc32(info.model_crc32)}, run {rm.run} has {format_crc32(rm.crc32)}: flash "
            "this run's firmware (tinyhar build, tinyhar flash) or pass the run the device was "
            "built from with --run"
        )
    mi = inspect_tflite(rm.model_bytes)
    problems = []
    for what, dev, host in (
        ("input", info.input, mi.inputs[0]),
        ("output", info.output, mi.outputs[0]),
    ):
        if tuple(dev.shape) != tuple(host.shape) or dev.dtype_name != host.dtype:
            problems.append(
                f"{what} {dev.dtype_name}{list(dev.shape)} vs {host.dtype}{list(host.shape)}"
            )
        elif dev.zero_point != host.zero_point or not np.isclose(dev.scale, host.scale, rtol=1e-6):
            problems.append(
                f"{what} quantization {dev.scale:g}/{dev.zero_point} vs "
                f"{host.scale:g}/{host.zero_point}"
            )
    ds = rm.dataset
    if info.window != ds.window or info.channels != len(ds.channels):
        problems.append(f"window {info.window}x{info.channels} vs {ds.window}x{len(ds.channels)}")
    if problems:
        raise TinyharError(
            f"the device on {port} does not match run {rm.run} ({'; '.join(problems)}): "
            "rebuild and flash the firmware from this run"
        )


def reference_outputs(
    model_bytes: bytes, arena: int, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(TFLM outputs, TFLite outputs) for int8 windows q (n, window, C)."""

    tflm = TflmReference(model_bytes, arena).predict(q)
    tflite = TfliteReference(model_bytes).predict(q)
    return tflm.reshape(len(q), -1), tflite.reshape(len(q), -1)


PER_OP_WINDOWS = 64  # windows the per-op comparison of the two TFLMs looks at


# What agreement with each kind of reference proves (the report and `verify --help` say it).
PROVES_BOARD_CODE = (
    "the device computes what the board's own firmware code computes, bit for bit: its TFLM "
    "library's kernels, tinyhar's kernels, the runner, the C core, the preprocessing and the link"
)
PROVES_VIRTUAL = (
    "the serial link, the firmware's C core and its preprocessing; not the board's TFLM kernels "
    "(the virtual board runs this same Python interpreter)"
)
PROVES_INTERPRETER = (
    "the device agrees with a newer TFLM within the threshold; the board's own kernels are not "
    "checked bit for bit (give --libraries, where the board's TFLM library is, for that)"
)


@dataclass
class References:
    """What the device is compared with: the reference, what agreeing with it proves, and second
    opinions."""

    name: str  # what the reference is
    exact: bool  # the device should match it bit for bit
    outputs: np.ndarray  # (n, classes)
    python_tflm: np.ndarray | None  # a second opinion; None when it is the reference itself
    tflite: np.ndarray
    proves: str
    note: str = ""
    per_op: list[dict] | None = None
    # op -> LSB the Python interpreter may differ by where a difference starts: the interpreter is
    # then a gate as well as a second opinion (None: a second opinion only, `gate_note` says why)
    bounds: dict[str, int] | None = None
    gate_note: str = ""


def host_references(
    rm: RunModel, info: P.DeviceInfo, q: np.ndarray, libraries: Path | None, log: Log
) -> References:
    """The device's own code on the host where it can be built, else the Python interpreter.

    A virtual board (`tinyhar sim`, HELLO's device kind VIRTUAL) runs the Python TFLM interpreter
    itself; a firmware runs its TFLM library, compiled for the host from the same sources
    (build.json)."""

    n = len(q)
    arena = host_arena_bytes(max(rm.quantize.arena_bytes, info.arena_bytes))
    log(f"verify: host references on {n} windows")
    python, tflite = reference_outputs(rm.model_bytes, arena, q)
    if info.device_kind == P.DeviceKind.VIRTUAL:
        return References(
            "TFLM Python interpreter, which the virtual board itself runs",
            True,
            python,
            None,
            tflite,
            PROVES_VIRTUAL,
        )
    build = BuildReport.load_if_present(rm.run)
    if build is not None and build.model_crc32 != rm.crc32:
        ref, why = (
            None,
            f"{BuildReport.path(rm.run)} is for another model: run `tinyhar build --run {rm.run}`",
        )
    elif build is not None:
        log("verify: building the board's TFLM library for the host (cached after the first time)")
        ref, why = board_reference.for_build(build, rm.model_bytes, libraries, log, rm.run)
    else:
        ref, why = None, f"{rm.run} has no build.json: run `tinyhar build --run {rm.run}`"
    if ref is None or build is None:
        log(
            f"verify: note: no board-library reference ({why}); comparing with the Python TFLM "
            "interpreter, a newer TFLM whose kernels may differ from the board's by an LSB"
        )
        return References(
            "TFLM Python interpreter (the board's TFLM library is unavailable)",
            False,
            python,
            None,
            tflite,
            PROVES_INTERPRETER,
            note=why,
        )
    outputs = ref.predict(q).reshape(n, -1)
    bounds, gate_note = interpreter_bounds(build.kernels, load_library(build.library_name))
    refs = References(
        f"{build.library_title} built for the host (the board's code)",
        True,
        outputs,
        python,
        tflite,
        PROVES_BOARD_CODE,
        bounds=bounds if not gate_note else None,
        gate_note=gate_note,
    )
    if np.any(python != outputs):
        log("verify: the Python interpreter differs from the board's library: locating the ops")
        refs.per_op = board_reference.tensor_differences(
            ref, rm.model_bytes, q[:PER_OP_WINDOWS], arena
        )
    return refs


def _send_raw_window(link: Link, raw: np.ndarray, window: int) -> tuple[P.Result, int]:
    """RESET_BUFFER, SAMPLES, INFER_RAW with the window; starts over when the device lost state.
    Returns the result and how many times the window was started over."""
    problem = ""
    for restarts in range(WINDOW_RESTARTS + 1):
        try:
            link.reset_buffer()
            link.send_samples(raw, expect_total=0)
            result = link.infer_raw(window)
            if result.samples_total != len(raw) or result.window is None:
                raise DeviceStateLost(
                    f"the device computed on {result.samples_total} samples, not {len(raw)}"
                )
            if result.window.size != window:
                raise TinyharError(
                    f"the device returned a window of {result.window.size} values, not {window}"
                )
            return result, restarts
        except DeviceStateLost as e:
            problem = str(e)
        except DeviceError as e:
            if e.reply.code != P.ErrorCode.WINDOW_NOT_FULL:
                raise
            problem = f"the device lost its samples ({e.reply.describe()})"
        _recheck(link)
    raise TinyharError(
        f"{problem}: the device keeps losing state (resetting?) after {WINDOW_RESTARTS + 1} tries; "
        "check its power and cable"
    )


def _mark_device(link: Link, channels: int) -> int:
    """Model mode: one sample in the device's buffer, so that a reset, which empties it, shows
    in the samples_total of the next RESULT (as raw mode sees it in its STATUS)."""
    link.reset_buffer()
    return link.send_samples(np.zeros((1, channels), np.float32), expect_total=0).samples_total


def _recheck(link: Link) -> None:
    """After a suspected reset: HELLO again and make sure it is still the same device and model."""
    before = link.info
    after = link.hello()
    if before is not None and (after.model_crc32, after.board) != (
        before.model_crc32,
        before.board,
    ):
        raise TinyharError(
            f"the device on {link.port} changed during the run (model CRC-32 "
            f"{format_crc32(before.model_crc32)} -> {format_crc32(after.model_crc32)}, "
            f"board {after.board}): "
            "run verify again"
        )


@dataclass
class DeviceRun:
    """What the device answered for the windows sent."""

    info: P.DeviceInfo
    outputs: np.ndarray  # (n, classes) int8
    windows: np.ndarray  # (n, window) int8 the device computed from raw samples (raw mode)
    latency_us: np.ndarray  # (n,)
    seconds: float = 0.0
    stats: LinkStats | None = None
    resets: int = 0  # device resets recovered by sending a window again
    done: int = 0  # windows the device answered (all n once the run completed)
    profile: ProfileCollector | None = None  # with --profile: the per-op counts of each window

    @classmethod
    def empty(cls, info: P.DeviceInfo, n: int, window: int) -> DeviceRun:
        return cls(
            info,
            np.zeros((n, info.n_classes), dtype=np.int8),
            np.zeros((n, window), dtype=np.int8),
            np.zeros(n, dtype=np.int64),
        )

    def head(self) -> DeviceRun:
        """The windows the device answered."""
        k = self.done
        return DeviceRun(
            self.info,
            self.outputs[:k],
            self.windows[:k],
            self.latency_us[:k],
            self.seconds,
            self.stats,
            self.resets,
            k,
        )


def verify_device(opts: VerifyOptions, log: Log = inf) -> VerifyReport:
    """The whole check; the report. Writes R/verify_<mode>.json and .png when it compared windows
    (all, or some before it failed or was interrupted: then the report says where it stopped);
    a run that compared none leaves them as they were. Every run appends its line to
    R/verify_history.jsonl."""
    rm = load_run_model(opts.run, opts.windows)
    report = VerifyReport(
        passed=False,
        complete=False,
        mode="raw" if opts.raw else "model",
        port=opts.port,
        run=str(rm.run),
        synthetic=rm.dataset.synthetic,
        windows_requested=len(rm.x),
        run_id=uuid.uuid4().hex[:12],
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    wrote: list[bool] = [False]
    # the run's line, before anything is sent: a verify killed on the way leaves it as it is
    report.error = "unfinished: verify stopped without a word (killed, or the machine stopped)"
    append_history(rm, report, False, log)
    report.error = None
    try:
        return _verify(opts, rm, report, log, wrote)
    except BaseException as e:
        report.passed = False
        report.error = str(e) or (
            "interrupted" if isinstance(e, KeyboardInterrupt) else type(e).__name__
        )
        raise
    finally:
        append_history(rm, report, wrote[0], log)


def _verify(
    opts: VerifyOptions, rm: RunModel, report: VerifyReport, log: Log, wrote: list[bool]
) -> VerifyReport:
    failure: BaseException | None = None
    with Link(opts.port, timeout=opts.timeout, retries=opts.retries, trace=opts.trace) as link:
        info = _open_device(link, rm, opts, report, log)
        expected, raws = expected_windows(rm, opts, info)
        dev = DeviceRun.empty(info, len(expected), expected[0].size)
        if opts.profile:
            dev.profile = ProfileCollector(rm.model_bytes, opts.port)
        if opts.resume:
            load_resume(rm, report.mode, dev, log)
        try:
            collect_device_outputs(link, dev, expected, raws, opts.progress, report.mode)
        except (TinyharError, KeyboardInterrupt) as e:
            failure = e
    if failure is not None:
        save_resume(rm, report.mode, dev, log)
        wrote[0] = _write_partial(opts, rm, report, dev, expected, failure, log)
        raise failure
    (rm.run / runs.verify_resume(report.mode)).unlink(missing_ok=True)
    n = len(expected)
    refs = host_references(
        rm, info, expected.reshape(n, *info.input.shape[1:]), opts.libraries, log
    )
    judge(report, dev, expected.reshape(n, -1), refs, rm, opts)
    write_results(rm, report, dev, refs.outputs)
    wrote[0] = True
    return report


def _write_partial(
    opts: VerifyOptions,
    rm: RunModel,
    report: VerifyReport,
    dev: DeviceRun,
    expected: np.ndarray,
    failure: BaseException,
    log: Log,
) -> bool:
    """The figures of a run that stopped after the device answered some windows (not passed,
    not complete, where it stopped), and their report and plot unless the mode's report on disk
    is a passing run, which is kept. False when nothing was written."""
    k, n = dev.done, len(expected)
    if k == 0:
        return False
    report.error = str(failure) or "interrupted"
    report.stopped_at = (
        f"window {k + 1} of {n}" if k < n else f"the check of the device after window {n} of {n}"
    )
    log(f"verify: stopped at {report.stopped_at}; comparing the {k} windows the device answered")
    part = expected[:k]
    keep = _passed_before(rm.run, report.mode)
    try:
        refs = host_references(
            rm, dev.info, part.reshape(k, *dev.info.input.shape[1:]), opts.libraries, log
        )
        judge(report, dev.head(), part.reshape(k, -1), refs, rm, opts, complete=False)
        if not keep:
            write_results(rm, report, dev.head(), refs.outputs)
    except (Exception, KeyboardInterrupt) as e:  # the run's own failure is the one to raise
        log(f"verify: note: no figures for the {k} windows answered: {e!r}")
        return False
    if keep:
        log(
            f"verify: kept the passing {runs.verify_json(report.mode)} and its plot; this run's "
            f"figures are in {runs.VERIFY_HISTORY}"
        )
    log(
        f"verify: continue with `tinyhar verify --port {opts.port} --run {rm.run}"
        f"{' --raw' * opts.raw} --resume`"
    )
    return not keep


def _passed_before(run: Path, mode: str) -> bool:
    """Whether the mode's report on disk is a complete passing run (which a stopped one keeps)."""
    try:
        saved = VerifyReport.load_mode(run, mode)
    except TinyharError:
        return False
    return saved.passed is True and saved.complete is True


def save_resume(rm: RunModel, mode: str, dev: DeviceRun, log: Log) -> None:
    """What the device answered so far, for `--resume` (nothing when it answered nothing)."""
    if dev.done == 0:
        return
    buf = io.BytesIO()
    np.savez(
        buf,
        model_crc32=rm.crc32,
        windows_requested=len(rm.x),
        done=dev.done,
        outputs=dev.outputs[: dev.done],
        windows=dev.windows[: dev.done],
        latency_us=dev.latency_us[: dev.done],
        seconds=dev.seconds,
        resets=dev.resets,
    )
    try:
        atomic_write_bytes(rm.run / runs.verify_resume(mode), buf.getvalue())
    except OSError as e:
        log(f"verify: note: cannot keep the answered windows for --resume: {e}")


def load_resume(rm: RunModel, mode: str, dev: DeviceRun, log: Log) -> None:
    """The windows an interrupted run of this mode, model and window count answered, into
    `dev`; one line when there is none to continue."""
    path = rm.run / runs.verify_resume(mode)
    try:
        with np.load(path) as saved:
            state = {k: saved[k] for k in saved.files}
    except (OSError, ValueError):
        raise TinyharError(
            f"--resume: no interrupted {mode}-mode run to continue in {rm.run}: run verify "
            "without --resume"
        ) from None
    if int(state["model_crc32"]) != rm.crc32 or int(state["windows_requested"]) != len(rm.x):
        raise TinyharError(
            f"--resume: the interrupted run was of another model or window count "
            f"({int(state['windows_requested'])} windows): run verify without --resume"
        )
    k = int(state["done"])
    dev.outputs[:k], dev.windows[:k] = state["outputs"], state["windows"]
    dev.latency_us[:k] = state["latency_us"]
    dev.done, dev.seconds, dev.resets = k, float(state["seconds"]), int(state["resets"])
    log(f"verify: resuming at window {k + 1} of {len(rm.x)}")


def append_history(rm: RunModel, report: VerifyReport, wrote: bool, log: Log) -> None:
    """This run's line in R/verify_history.jsonl (replaced when it is there), passed or
    failed."""
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "started": report.started,
        "run_id": report.run_id,
        "mode": report.mode,
        "port": report.port,
        "passed": report.passed,
        "complete": report.complete,
        "windows": report.windows or 0,
        "windows_requested": report.windows_requested,
        "top1_agreement": report.top1_agreement,
        "max_abs_diff_lsb": report.max_abs_diff_lsb,
        "model_crc32": f"{format_crc32(rm.crc32)}",
        "error": report.error,
        "stopped_at": report.stopped_at,
        "report": runs.verify_json(report.mode) if wrote else None,
    }
    try:
        put_json_line(rm.run / runs.VERIFY_HISTORY, line, key="run_id")
    except OSError as e:
        log(f"verify: note: could not append to {rm.run / runs.VERIFY_HISTORY}: {e}")


def _open_device(
    link: Link, rm: RunModel, opts: VerifyOptions, report: VerifyReport, log: Log
) -> P.DeviceInfo:
    """HELLO; refuse a device that does not carry the run's model; stop a running stream."""
    info = link.hello()
    check_device(info, rm, opts.port)
    report.device = _info_dict(info)
    log(
        f"verify: {info.board} on {opts.port}, firmware {info.firmware_version}, core "
        f"{info.core_version}, model CRC-32 {format_crc32(info.model_crc32)} matches the run"
    )
    if info.streaming:
        link.stream_stop()
    return info


def expected_windows(
    rm: RunModel, opts: VerifyOptions, info: P.DeviceInfo
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """(the int8 windows Python's preprocessing makes, the raw windows in the board's units to
    send in raw mode or None): model mode sends the former, raw mode compares the device's with
    them."""
    if opts.raw:
        cfg = PreprocessConfig.from_run(
            rm.dataset,
            rm.quantize.input,
            resolve_board(opts.board, info.board, f"the device on {opts.port}"),
        )
        raws = [to_board_units(w, cfg) for w in rm.x]
        return np.stack([quantize_window(r, cfg) for r in raws]), raws
    cfg = PreprocessConfig.from_run(rm.dataset, rm.quantize.input, None)
    return np.stack([quantize(normalise(w, cfg), cfg) for w in rm.x]), None


def collect_device_outputs(
    link: Link,
    dev: DeviceRun,
    expected: np.ndarray,
    raws: list[np.ndarray] | None,
    progress: bool,
    mode: str,
) -> DeviceRun:
    """Every window through the device (raw samples when `raws`, else the int8 windows), with a
    progress bar, into `dev` (`dev.done` counts the windows answered, also when a window fails);
    then a HELLO to make sure the same device and model answered to the end."""
    n, window, info, first = len(expected), expected[0].size, dev.info, dev.done
    bar = tqdm(
        total=n,
        initial=first,
        desc=f"verify ({mode})",
        unit="win",
        file=sys.stderr,
        disable=not progress,
        mininterval=0.5,
    )
    dev.stats = link.stats
    t0, before = time.perf_counter(), dev.seconds
    mark = _mark_device(link, info.channels) if raws is None else 0
    try:
        with bar:
            for i in range(first, n):
                if raws is not None:
                    r, restarts = _send_raw_window(link, raws[i], window)
                    dev.resets += restarts
                    dev.windows[i] = r.window
                else:
                    r = link.infer(expected[i])  # a whole window: a restarted device answers
                    if r.samples_total < mark:  # ... but it restarted: its buffer is empty
                        dev.resets += 1
                        _recheck(link)
                        mark = _mark_device(link, info.channels)
                    else:
                        mark = r.samples_total
                if r.output.size != info.n_classes:
                    raise TinyharError(
                        f"the device returned {r.output.size} outputs, not {info.n_classes}"
                    )
                dev.outputs[i], dev.latency_us[i] = r.output, r.latency_us
                if dev.profile is not None:
                    dev.profile.add(*_device_profile(link))
                dev.done = i + 1
                bar.update()
    finally:
        dev.seconds = before + time.perf_counter() - t0
    _recheck(link)  # the same device and model answered to the end
    return dev


def _device_profile(link: Link) -> tuple[int, list[int]]:
    """The device's per-node counts of its last inference (PROFILE)."""
    try:
        return link.profile()
    except DeviceError as e:
        if e.reply.code == P.ErrorCode.UNKNOWN_TYPE:  # firmware older than PROFILE
            raise TinyharError(f"the firmware on {link.port} {NO_PROFILER}") from None
        raise


def judge(
    report: VerifyReport,
    dev: DeviceRun,
    expected: np.ndarray,
    refs: References,
    rm: RunModel,
    opts: VerifyOptions,
    complete: bool = True,
) -> None:
    """The figures (agreement, LSB differences, preprocessing mismatches, the wire) and the
    verdict against the thresholds, into `report`. `expected`: (n, window) Python's int8, for
    the first n windows of the run (all of them when `complete`)."""
    n = len(expected)
    report.set(
        **compare(dev.outputs, refs.outputs, refs.tflite, rm.y[:n], dev.latency_us, dev.seconds)
    )
    report.reference = {
        "name": refs.name,
        "exact": refs.exact,
        "proves": refs.proves,
        "note": refs.note,
    }
    violations: list[dict] = []
    if refs.python_tflm is not None:
        report.python_tflm = second_opinion(refs.python_tflm, refs.outputs, rm.y[:n], refs.per_op)
        if refs.bounds is not None:
            violations = interpreter_violations(refs.per_op or [], refs.bounds)
            report.python_tflm["gate"] = {
                "bounds": {op: b for op, b in refs.bounds.items() if b},
                "violations": violations,
            }
        elif refs.gate_note:
            report.python_tflm["gate"] = {"note": refs.gate_note}
    report.emulated = emulated_timing(dev.info, dev.latency_us)
    profile = dev.profile.result() if dev.profile is not None else None
    report.profile = profile.to_json() if profile is not None else None
    if opts.raw:
        differs = dev.windows != expected
        report.preprocess_mismatch_windows = int(np.any(differs, axis=1).sum())
        report.preprocess_mismatch_values = int(np.sum(differs))
    max_lsb = opts.max_lsb
    if max_lsb is None:
        max_lsb = 0 if refs.exact else 1
    stats = dev.stats
    assert stats is not None  # set when the windows were sent
    report.set(
        complete=complete,
        bytes_sent=stats.bytes_sent,
        bytes_received=stats.bytes_received,
        bytes_per_window=round((stats.bytes_sent + stats.bytes_received) / n, 1),
        retries=stats.retries,
        device_resets_recovered=dev.resets,
        thresholds={
            "min_agreement": opts.min_agreement,
            "max_lsb": max_lsb,
            "why": (
                "given"
                if opts.max_lsb is not None
                else "the virtual board runs this same interpreter: bit-exact"
                if refs.exact and refs.python_tflm is None
                else "the reference is the board's own code: bit-exact"
                if refs.exact
                else "the reference is the Python interpreter, a newer TFLM: its MEAN differs "
                "from the board libraries' by 1 LSB (and its LSTM by more: build the board "
                "reference for an exact check)"
            ),
        },
    )
    report.passed = bool(
        complete
        and report.windows == len(rm.x)
        and (report.top1_agreement or 0.0) >= opts.min_agreement
        and (report.max_abs_diff_lsb or 0) <= max_lsb
        and (report.preprocess_mismatch_windows or 0) == 0
        and not violations
    )


def write_results(rm: RunModel, report: VerifyReport, dev: DeviceRun, host: np.ndarray) -> None:
    """R/verify_<mode>.png, then R/verify_<mode>.json (both carry the report's run_id)."""
    plot_verify(
        rm.run / runs.verify_png(report.mode),
        dev.outputs,
        host,
        dev.latency_us,
        report,
        labels=list(rm.dataset.labels),
    )
    report.save(rm.run)


def compare(
    dev: np.ndarray,
    host: np.ndarray,
    tflite: np.ndarray,
    y: np.ndarray,
    latency_us: np.ndarray,
    seconds: float,
) -> dict[str, Any]:
    """The figures verify reports, from device and host int8 outputs (n, classes)."""
    diff = np.abs(dev.astype(np.int32) - host.astype(np.int32))
    dev_top, host_top, tfl_top = dev.argmax(1), host.argmax(1), tflite.argmax(1)
    n = len(dev)
    return {
        "windows": n,
        "top1_agreement": float(np.mean(dev_top == host_top)),
        "max_abs_diff_lsb": int(diff.max()),
        "mean_abs_diff_lsb": float(diff.mean()),
        "windows_differing": int(np.sum(diff.max(1) > 0)),
        "device_accuracy": float(np.mean(dev_top == y)),
        "host_accuracy": float(np.mean(host_top == y)),
        "tflite_accuracy": float(np.mean(tfl_top == y)),
        "tflite_top1_agreement": float(np.mean(tfl_top == host_top)),
        "tflite_device_top1_agreement": float(np.mean(tfl_top == dev_top)),
        "tflite_max_abs_diff_lsb": int(
            np.abs(tflite.astype(np.int32) - host.astype(np.int32)).max()
        ),
        "latency_us": {
            "min": int(latency_us.min()),
            "median": float(np.median(latency_us)),
            "max": int(latency_us.max()),
        },
        "seconds": round(seconds, 3),
        "windows_per_second": round(n / seconds, 2) if seconds > 0 else None,
    }


CPI_RANGE = (1.0, 1.5)  # cycles per instruction assumed on a Cortex-M4 running from flash


def emulated_timing(info: P.DeviceInfo, latency_us: np.ndarray) -> dict[str, Any] | None:
    """Instructions per inference on the emulated board (-icount shift=0: 1 instruction = 1 ns)
    and the latency they suggest on the real board's MCU: an estimate, stated as a range."""
    if info.device_kind != P.DeviceKind.EMULATED:
        return None

    instructions = float(np.median(latency_us)) * 1000.0
    out: dict[str, Any] = {
        "instructions_per_inference": int(instructions),  # the median
        "instructions": {
            "min": int(latency_us.min()) * 1000,
            "median": int(instructions),
            "max": int(latency_us.max()) * 1000,
        },
        "measured_on": "QEMU mps2-an386 Cortex-M4F, -icount shift=0",
    }
    try:
        board = resolve_board(None, info.board)
    except TinyharError:
        return out
    lo, hi = (instructions * cpi / board.clock_hz * 1000.0 for cpi in CPI_RANGE)
    out["estimated_latency_ms"] = {
        "board": board.name,
        "clock_hz": board.clock_hz,
        "cycles_per_instruction": list(CPI_RANGE),
        "min": round(lo, 2),
        "max": round(hi, 2),
        "note": "an estimate: instructions from the emulator times an assumed CPI range",
    }
    return out


def second_opinion(
    python: np.ndarray, ref: np.ndarray, y: np.ndarray, per_op: list[dict] | None
) -> dict[str, Any]:
    """The Python TFLM interpreter against the reference, with where they part (per op)."""
    diff = np.abs(python.astype(np.int32) - ref.astype(np.int32))
    out: dict[str, Any] = {
        "top1_agreement": float(np.mean(python.argmax(1) == ref.argmax(1))),
        "max_abs_diff_lsb": int(diff.max()),
        "windows_differing": int(np.sum(diff.max(1) > 0)),
        "accuracy": float(np.mean(python.argmax(1) == y)),
    }
    if per_op is not None:
        out["per_op"] = per_op
        out["per_op_windows"] = min(PER_OP_WINDOWS, len(ref))
    return out


def op_summary(second: dict[str, Any]) -> str:
    """'MEAN (tiny/branch_pool/Mean) ±1 LSB in 40 of 64 windows examined' for the nodes where
    the two TFLMs start to differ."""
    parts = []
    for s in second.get("per_op", []):
        if not s["origin"]:
            continue
        lsb = s.get("origin_max_lsb", s["max_lsb"])
        step = f" from time step {s['first_step']}" if s.get("first_step") is not None else ""
        parts.append(
            f"{s['op']} ({s['tensor']}) ±{lsb} LSB{step} in {s['origin']} of "
            f"{second['per_op_windows']} windows examined"
        )
    return "; ".join(parts) if parts else "none"


def _second_opinion_lines(second: dict[str, Any] | None, windows: int) -> list[str]:
    """The Python TFLM interpreter against the reference (none when it is the reference)."""
    if second is None:
        return []
    line = (
        f"  Python TFLM (second opinion) top-1 agreement {second['top1_agreement']:.4f}, max "
        f"{second['max_abs_diff_lsb']} LSB, {second['windows_differing']} of {windows} windows "
        "differ"
    )
    if "per_op" in second:
        line += f"; differences start in: {op_summary(second)}"
    return [line, *filter(None, [gate_line(second)])]


def gate_line(second: dict[str, Any]) -> str | None:
    """The Python interpreter as a gate: what it holds the ops to and what broke it."""
    gate = second.get("gate")
    if gate is None:
        return None
    if "note" in gate:
        return f"  Python TFLM gate             none: {gate['note']}"
    bounds = ", ".join(f"{op} ±{b}" for op, b in gate["bounds"].items())
    held = f"every op 0 LSB{' except ' + bounds if bounds else ''}"
    if not gate["violations"]:
        return f"  Python TFLM gate             passed ({held})"
    worst = "; ".join(
        f"{v['op']} ({v['tensor']}) ±{v['max_lsb']} LSB > {v['bound']}"
        + (f" from time step {v['first_step']}" if v["first_step"] is not None else "")
        for v in gate["violations"]
    )
    return f"  Python TFLM gate             FAILED ({held}): {worst}"


def _info_dict(info: P.DeviceInfo) -> dict[str, Any]:
    def tensor(t: P.TensorSpec) -> dict[str, Any]:
        return {
            "dtype": t.dtype_name,
            "shape": list(t.shape),
            "scale": t.scale,
            "zero_point": t.zero_point,
        }

    return {
        "board": info.board,
        "firmware_version": info.firmware_version,
        "core_version": info.core_version,
        "protocol_version": info.protocol_version,
        "model_crc32": format_crc32(info.model_crc32),
        "arena_bytes": info.arena_bytes,
        "window": info.window,
        "stride": info.stride,
        "channels": info.channels,
        "n_classes": info.n_classes,
        "rate_hz": info.rate_hz,
        "max_payload": info.max_payload,
        "input": tensor(info.input),
        "output": tensor(info.output),
        "runner_status": info.runner_status,
        "arena_used": info.arena_used,
    }


def plot_verify(
    path: Path,
    dev: np.ndarray,
    host: np.ndarray,
    latency_us: np.ndarray,
    report: VerifyReport,
    labels: list[str] | None = None,
) -> None:
    """LSB-difference histogram, per-window top class (device vs the reference, by class name),
    and the device's latency (instructions on the emulated board)."""
    import matplotlib  # lazy: matplotlib takes 0.4 s to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib takes 0.4 s to import

    diff = (dev.astype(np.int32) - host.astype(np.int32)).ravel()
    n_classes = dev.shape[1]
    names = list(labels) if labels and len(labels) == n_classes else None
    fig, ax = plt.subplots(
        1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1, 1.5 if names else 1.2, 1]}
    )
    lim = max(1, int(np.abs(diff).max()))
    ax[0].hist(diff, bins=np.arange(-lim - 0.5, lim + 1.5, 1.0), color="tab:blue")
    ax[0].set(title="device - reference (int8 LSB), all outputs", xlabel="LSB", ylabel="outputs")
    idx = np.arange(len(dev))
    agree = dev.argmax(1) == host.argmax(1)
    ax[1].scatter(
        idx, host.argmax(1), s=18, facecolors="none", edgecolors="gray", label="reference"
    )
    ax[1].scatter(idx[agree], dev.argmax(1)[agree], s=6, color="tab:green", label="device, same")
    ax[1].scatter(
        idx[~agree], dev.argmax(1)[~agree], s=14, color="tab:red", label="device, differs"
    )
    ax[1].set(
        title=f"top class per window (agreement {report.top1_agreement:.3f})",
        xlabel="window",
        ylim=(-0.5, n_classes - 0.5),
    )
    ax[1].set_yticks(range(n_classes))
    if names:
        ax[1].set_yticklabels([_short(n) for n in names], fontsize=7)
    else:
        ax[1].set_ylabel("class")
    # beside the points, not over them
    ax[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.2)
    if report.emulated:
        ax[2].plot(idx, latency_us / 1000.0, ".", ms=3, color="tab:purple")
        ax[2].set(
            title="instructions per inference (emulated Cortex-M4F)",
            xlabel="window",
            ylabel="million instructions",
        )
    else:
        ax[2].plot(idx, latency_us / 1000.0, ".", ms=3, color="tab:purple")
        ax[2].set(title="device latency per inference", xlabel="window", ylabel="ms")
    verdict = "PASSED" if report.passed else "FAILED"
    if not report.complete:
        verdict += (
            f", INCOMPLETE: {report.windows} of {report.windows_requested} windows, stopped at "
            f"{report.stopped_at}"
        )
    synth = " (SYNTHETIC data)" if report.synthetic else ""
    ref = f"\nreference: {report.reference['name']}" if report.reference else ""
    fig.suptitle(f"tinyhar verify, {report.mode} mode: {verdict}{synth}{ref}", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(
            tmp,
            format="png",
            dpi=90,
            metadata={
                "Title": f"tinyhar verify {report.mode}",
                "run_id": report.run_id,
                "started": report.started,
            },
        )
    plt.close(fig)


def _short(name: str, most: int = 18) -> str:
    """A class name short enough for an axis label."""
    return name if len(name) <= most else name[: most - 1] + "…"


def _timing_lines(r: VerifyReport) -> list[str]:
    """Latency as the device measured it; on the emulated board, instructions (its clock counts
    one per ns) and the latency they suggest on the real board, an estimate."""
    emulated, lat = r.emulated, r.latency_us or {}
    if not emulated:
        return [
            f"  device latency (us)          min {lat['min']}, median {lat['median']:.0f}, "
            f"max {lat['max']}"
        ]
    n = emulated.get("instructions") or {"median": emulated["instructions_per_inference"]}
    spread = (
        f"min {n['min']:,}, median {n['median']:,}, max {n['max']:,}"
        if "min" in n
        else (f"median {n['median']:,}")
    )
    lines = [
        f"  instructions per inference   {spread} (emulated Cortex-M4F, counted by QEMU -icount)"
    ]
    est = emulated.get("estimated_latency_ms")
    if est:
        lines.append(
            f"  latency on {est['board']:<17} {est['min']:.0f}-{est['max']:.0f} ms ESTIMATE "
            f"(the median's instructions at {est['clock_hz'] / 1e6:.0f} MHz, "
            f"{est['cycles_per_instruction'][0]:g}-{est['cycles_per_instruction'][1]:g} cycles "
            "per instruction)"
        )
    return lines


def format_report(r: VerifyReport) -> str:
    """The figures a user reads after verify."""
    th, second, ref = r.thresholds or {}, r.python_tflm, r.reference or {}
    proves = ref.get("proves")
    lines = [
        f"verify ({r.mode} mode) against {(r.device or {}).get('board')} on {r.port}: "
        f"{'PASSED' if r.passed else 'FAILED'}" + ("  [SYNTHETIC data]" if r.synthetic else ""),
        f"  windows                      {r.windows}",
        f"  reference                    {ref['name']}",
        *([f"  agreement checks             {proves}"] if proves else []),
        f"  top-1 agreement              {r.top1_agreement:.4f}  (need >= {th['min_agreement']:g})",
        f"  output difference (LSB)      max {r.max_abs_diff_lsb}, mean "
        f"{r.mean_abs_diff_lsb:.4f}  (need max <= {th['max_lsb']}: {th['why']})",
        f"  accuracy device / host       {r.device_accuracy:.4f} / {r.host_accuracy:.4f}",
        *_second_opinion_lines(second, r.windows or 0),
        f"  TFLite (second opinion)      top-1 agreement "
        f"{r.tflite_top1_agreement:.4f}, max {r.tflite_max_abs_diff_lsb} LSB",
        *_timing_lines(r),
        f"  throughput                   {r.windows_per_second} windows/s, "
        f"{r.bytes_per_window} bytes/window on the wire, {r.retries} retries",
    ]
    if r.profile:
        total = r.emulated["instructions_per_inference"] if r.emulated else None
        lines += ["  " + ln for ln in format_profile(r.profile, total)]
    if r.mode == "raw":
        lines.append(
            f"  preprocessing mismatches     {r.preprocess_mismatch_windows} windows "
            f"({r.preprocess_mismatch_values} values) differ from Python's int8"
        )
    lines.append(
        f"  wrote {Path(r.run) / runs.verify_json(r.mode)} and {runs.verify_png(r.mode)}; "
        f"appended to {runs.VERIFY_HISTORY}"
    )
    return "\n".join(lines)
