"""`tinyhar monitor`: the board's live predictions from its IMU, one line each, rolling view."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinyhar.board import protocol as P
from tinyhar.crc import format_crc32
from tinyhar.device.link import Link
from tinyhar.errors import TinyharError
from tinyhar.run import folder as runs
from tinyhar.run.records import DatasetContract

BAR = 10  # characters of the confidence bar


@dataclass
class MonitorOptions:
    port: str
    run: Path | None = None
    last: int = 10
    count: int | None = None
    seconds: float | None = None
    timeout: float = 1.0
    retries: int = 3
    trace: bool = False  # hex dump of every frame on stderr


def confidence(p: P.Prediction, info: P.DeviceInfo) -> float:
    """The top class's probability (0..1) from its int8 output."""
    scale, zp = info.output.scale, info.output.zero_point
    return min(1.0, max(0.0, (p.confidence - zp) * scale)) if scale > 0 else 0.0


def format_prediction(
    p: P.Prediction, info: P.DeviceInfo, labels: list[str], recent: deque[int], lost: int
) -> str:
    """One line: time on the device's sample clock, counter, label, confidence, latency, and the
    most frequent label among the last predictions."""
    conf = confidence(p, info)
    label = labels[p.class_index] if p.class_index < len(labels) else f"class {p.class_index}"
    filled = round(conf * BAR)
    top, k = Counter(recent).most_common(1)[0]
    top_label = labels[top] if top < len(labels) else f"class {top}"
    t = p.sample_counter / info.rate_hz if info.rate_hz else 0.0
    return (
        f"{t:8.1f}s  #{p.sample_counter:<7d} {label:<26.26s} {conf * 100:5.1f}% "
        f"{'#' * filled}{'.' * (BAR - filled)}  {p.latency_us / 1000:7.2f} ms  "
        f"last {len(recent)}: {top_label} {k}/{len(recent)}" + (f"  ({lost} lost)" if lost else "")
    )


def _labels(link: Link, run: Path | None, n: int) -> list[str]:
    labels = link.labels()
    if len(labels) >= n:
        return labels
    try:
        run_dir = runs.require_run(run, runs.DATASET_JSON)
        names = list(DatasetContract.load(run_dir).labels)
    except TinyharError:
        names = []
    return names if len(names) >= n else [f"class {i}" for i in range(n)]


@dataclass
class _Tally:
    """The predictions shown so far, those lost on the way, and the recent classes."""

    recent: deque[int]
    shown: int = 0
    lost: int = 0
    prev: int | None = None  # the last prediction's sample counter

    def add(self, p: P.Prediction, stride: int) -> None:
        if self.prev is not None and p.sample_counter > self.prev + stride:
            self.lost += (p.sample_counter - self.prev) // stride - 1
        self.prev = p.sample_counter
        self.recent.append(p.class_index)
        self.shown += 1


def run_monitor(opts: MonitorOptions, out: Callable[[str], None] = print) -> int:
    """Stream predictions until --count/--seconds or Ctrl-C; stops the stream; returns the count."""
    with Link(opts.port, timeout=opts.timeout, retries=opts.retries, trace=opts.trace) as link:
        info, labels = _start_stream(link, opts, out)
        tally = _Tally(deque(maxlen=opts.last))
        try:
            _show_predictions(link, info, labels, opts, tally, out)
        except KeyboardInterrupt:
            pass
        finally:
            _stop_stream(link)
        lost = f", {tally.lost} lost" if tally.lost else ""
        out(f"stopped the stream after {tally.shown} predictions{lost}")
        return tally.shown


def _start_stream(
    link: Link, opts: MonitorOptions, out: Callable[[str], None]
) -> tuple[P.DeviceInfo, list[str]]:
    """HELLO, the labels, a fresh window and STREAM_START; (device info, labels)."""
    info = link.hello()
    if not info.has_model:
        raise TinyharError(f"the device on {opts.port} has no model: build and flash one first")
    labels = _labels(link, opts.run, info.n_classes)
    link.reset_buffer()  # the first prediction comes after one fresh window of IMU samples
    link.stream_start()
    out(
        f"monitoring {info.board} on {opts.port} (model CRC-32 {format_crc32(info.model_crc32)}): "
        f"a prediction every {info.stride} samples at {info.rate_hz:g} Hz; Ctrl-C stops"
    )
    return info, labels


def _stop_stream(link: Link) -> None:
    try:
        link.stream_stop()
    except TinyharError:
        pass


def _show_predictions(
    link: Link,
    info: P.DeviceInfo,
    labels: list[str],
    opts: MonitorOptions,
    tally: _Tally,
    out: Callable[[str], None],
) -> None:
    """Read and print predictions until --count or --seconds; no prediction for a whole wait
    (without --seconds) is an error."""
    stop_at = time.monotonic() + opts.seconds if opts.seconds else None
    # the first prediction needs a full window; then one per stride
    wait = max(3.0, 2.0 * info.window / max(info.rate_hz, 1e-3)) + opts.timeout
    while not _done(opts, tally, stop_at):
        step = wait if stop_at is None else max(0.05, min(wait, stop_at - time.monotonic()))
        got = False
        for p in link.read_predictions(step):
            got = True
            tally.add(p, info.stride)
            out(format_prediction(p, info, labels, tally.recent, tally.lost))
            if _done(opts, tally, stop_at):
                break
        if not got and stop_at is None:
            raise TinyharError(
                f"no prediction from {opts.port} for {step:.0f} s after STREAM_START: is "
                "the IMU working? (monitor needs the firmware's IMU stream)"
            )


def _done(opts: MonitorOptions, tally: _Tally, stop_at: float | None) -> bool:
    """--count predictions shown, or --seconds over."""
    if opts.count is not None and tally.shown >= opts.count:
        return True
    return stop_at is not None and time.monotonic() >= stop_at
