"""`tinyhar monitor`: the board's live predictions from its IMU, one line each, rolling view."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinyhar import runs
from tinyhar.board import protocol as P
from tinyhar.device.link import Link
from tinyhar.errors import TinyharError
from tinyhar.files import read_json

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
        names = list(read_json(run_dir / runs.DATASET_JSON).get("labels", []))
    except TinyharError:
        names = []
    return names if len(names) >= n else [f"class {i}" for i in range(n)]


def run_monitor(opts: MonitorOptions, out: Callable[[str], None] = print) -> int:
    """Stream predictions until --count/--seconds or Ctrl-C; stops the stream; returns the count."""
    with Link(opts.port, timeout=opts.timeout, retries=opts.retries, trace=opts.trace) as link:
        info = link.hello()
        if not info.has_model:
            raise TinyharError(f"the device on {opts.port} has no model: build and flash one first")
        labels = _labels(link, opts.run, info.n_classes)
        link.reset_buffer()  # the first prediction comes after one fresh window of IMU samples
        link.stream_start()
        out(
            f"monitoring {info.board} on {opts.port} (model CRC-32 0x{info.model_crc32:08x}): "
            f"a prediction every {info.stride} samples at {info.rate_hz:g} Hz; Ctrl-C stops"
        )
        recent: deque[int] = deque(maxlen=opts.last)
        shown, lost, prev = 0, 0, None
        stop_at = time.monotonic() + opts.seconds if opts.seconds else None
        # the first prediction needs a full window; then one per stride
        wait = max(3.0, 2.0 * info.window / max(info.rate_hz, 1e-3)) + opts.timeout
        try:
            while opts.count is None or shown < opts.count:
                if stop_at is not None and time.monotonic() >= stop_at:
                    break
                step = wait if stop_at is None else max(0.05, min(wait, stop_at - time.monotonic()))
                got = False
                for p in link.read_predictions(step):
                    got = True
                    if prev is not None and p.sample_counter > prev + info.stride:
                        lost += (p.sample_counter - prev) // info.stride - 1
                    prev = p.sample_counter
                    recent.append(p.class_index)
                    out(format_prediction(p, info, labels, recent, lost))
                    shown += 1
                    if opts.count is not None and shown >= opts.count:
                        break
                    if stop_at is not None and time.monotonic() >= stop_at:
                        break
                if not got and stop_at is None:
                    raise TinyharError(
                        f"no prediction from {opts.port} for {step:.0f} s after STREAM_START: is "
                        "the IMU working? (monitor needs the firmware's IMU stream)"
                    )
        except KeyboardInterrupt:
            pass
        finally:
            try:
                link.stream_stop()
            except TinyharError:
                pass
        out(f"stopped the stream after {shown} predictions" + (f", {lost} lost" if lost else ""))
        return shown
