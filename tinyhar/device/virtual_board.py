"""The board in software: the firmware's C core on a pseudo-terminal, TFLM as its model, a replayed
recording as its IMU, and optional faults on the wire (drop, corrupt, delay, reset)."""

from __future__ import annotations

import os
import select
import signal
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyhar.board.boards import Board
from tinyhar.board.preprocess import to_board_units
from tinyhar.crc import format_crc32
from tinyhar.data.dataset import load_dataset
from tinyhar.deploy.footprint import firmware_arena
from tinyhar.device.core_lib import VIRTUAL_FIRMWARE, CoreConfig, CoreDevice, core_config_from_run
from tinyhar.errors import TinyharError
from tinyhar.lite.reference import TflmReference
from tinyhar.log import Log, inf
from tinyhar.run import folder as runs
from tinyhar.run.records import DatasetContract

WRITE_WAIT = 1.0  # seconds a write waits for a reader before the bytes are dropped


@dataclass(frozen=True)
class Faults:
    """Faults injected on the wire; rates are per byte, in both directions."""

    drop: float = 0.0
    corrupt: float = 0.0
    delay_ms: float = 0.0
    reset_after: int = 0  # reset the device once, while it handles request number N (0: never)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "corrupt"):
            rate = getattr(self, name)
            if not 0.0 <= rate < 1.0:
                raise TinyharError(f"--{name} {rate}: give a fraction of bytes in [0, 1)")
        if self.delay_ms < 0 or self.reset_after < 0:
            raise TinyharError("--delay and --reset-after must not be negative")

    def describe(self) -> str:
        parts = [f"drop {self.drop:g}"] * bool(self.drop) + [f"corrupt {self.corrupt:g}"] * bool(
            self.corrupt
        )
        parts += [f"delay {self.delay_ms:g} ms"] * bool(self.delay_ms)
        parts += [f"reset after {self.reset_after} requests"] * bool(self.reset_after)
        return ", ".join(parts) or "none"


class _Mangler:
    """Drops and corrupts bytes at the configured rates. Seeded, with one random stream per
    decision, so the bytes hit depend only on their position, not on how reads are chunked."""

    def __init__(self, faults: Faults, direction: int) -> None:
        self.faults = faults
        streams = (np.random.default_rng([faults.seed, direction, k]) for k in range(3))
        self._hit, self._flip, self._drop = streams
        self.dropped = self.corrupted = 0

    def __call__(self, data: bytes) -> bytes:
        f = self.faults
        if not data or not (f.drop or f.corrupt):
            return data
        arr = np.frombuffer(data, dtype=np.uint8).copy()
        if f.corrupt:
            hit = self._hit.random(arr.size) < f.corrupt
            flips = (1 + self._flip.random(arr.size) * 255).astype(np.uint8)  # never 0: a change
            arr[hit] ^= flips[hit]
            self.corrupted += int(hit.sum())
        if f.drop:
            keep = self._drop.random(arr.size) >= f.drop
            self.dropped += int(arr.size - keep.sum())
            arr = arr[keep]
        return arr.tobytes()


# --- what the board carries ----------------------------------------------------------------


def stream_from_windows(x: np.ndarray, stride: int) -> np.ndarray:
    """The recording behind overlapping windows: consecutive windows that overlap by
    `window - stride` samples are joined, others are concatenated whole."""
    x = np.asarray(x, dtype=np.float32)
    window = x.shape[1]
    overlap = window - stride
    parts = [x[0]]
    for prev, cur in zip(x[:-1], x[1:], strict=True):
        if 0 < overlap < window and np.array_equal(cur[:overlap], prev[stride:]):
            parts.append(cur[overlap:])
        else:
            parts.append(cur)
    return np.concatenate(parts).astype(np.float32)


def replay_training_units(run: Path, replay: Path | None = None) -> np.ndarray:
    """The IMU's recording in training units (n, C): the run's test windows joined back into
    recordings, or the model's channels (rows of its classes) of a dataset folder or MHEALTH-format
    file of the dataset the run was trained on."""
    dataset = DatasetContract.load(run)
    if replay is None:
        with np.load(run / runs.WINDOWS_NPZ) as npz:
            x = npz["x_test"]
        if len(x) == 0:
            raise TinyharError(f"{run} has no test windows to replay: pass --replay FILE")
        return stream_from_windows(x, dataset.stride)

    data = load_dataset(replay)
    has = {c.column: c.name for c in data.channels}
    for ch in dataset.channels:
        if has.get(ch.column) != ch.name:
            raise TinyharError(
                f"--replay {replay} has no channel {ch.name} where {run} reads it (column "
                f"{ch.column}): replay recordings of the dataset the run was trained on"
            )
    cols = [ch.column for ch in dataset.channels]
    keep_ids = set(dataset.label_ids) or None
    parts = []
    for rec in data.recordings:
        rows = rec.signals[:, cols]
        if keep_ids is not None:
            rows = rows[np.isin(rec.labels, list(keep_ids))]
        parts.append(rows)
    stream = np.concatenate(parts) if parts else np.zeros((0, len(cols)), np.float32)
    if len(stream) < dataset.window:
        raise TinyharError(
            f"{replay} holds {len(stream)} samples of the model's activities, fewer than one "
            f"window ({dataset.window}): pass a longer recording"
        )
    return stream.astype(np.float32)


@dataclass
class BoardImage:
    """What a virtual board carries: its core configuration, model and arena, and IMU replay."""

    config: CoreConfig
    model_bytes: bytes
    arena_bytes: int
    replay: np.ndarray  # (n, C) float32 in the board's units and axes


def board_image(
    board: Board,
    run: Path,
    model: Path | None = None,
    replay: Path | None = None,
    log: Log = inf,
) -> BoardImage:
    """Everything the firmware built for `run` on `board` would hold (or with another model)."""
    run = runs.require_run(run, runs.QUANTIZE_JSON, "tinyhar quantize")
    runs.check_run(run, runs.METRICS_JSON, runs.QUANTIZE_JSON)
    spec = board
    if model is not None:
        try:
            model_bytes = Path(model).read_bytes()
        except OSError as e:
            raise TinyharError(f"cannot read --model {model}: {e.strerror}") from None
    else:
        model_bytes = (run / runs.INT8_MODEL).read_bytes()
    config = core_config_from_run(run, spec, model_bytes, firmware_version=VIRTUAL_FIRMWARE)
    spec.check_rate(config.rate_hz)
    arena = firmware_arena(run, model_bytes, spec.name, log)
    config.arena_bytes = arena
    stream = replay_training_units(run, replay)
    return BoardImage(config, model_bytes, arena, to_board_units(stream, config.preprocess))


def tflm_hook(model_bytes: bytes, arena_bytes: int, input_shape: tuple[int, ...]):
    """The inference hook: the TFLM interpreter with the firmware's arena."""

    ref = TflmReference(model_bytes, arena_bytes)
    shape = (1, *input_shape[1:])

    def infer(window: np.ndarray) -> np.ndarray:
        return ref.predict(np.asarray(window, dtype=np.int8).reshape(shape))[0].reshape(-1)

    return infer


# --- the board on a pty --------------------------------------------------------------------


class VirtualBoard:
    """The core behind a pseudo-terminal; `serve()` runs until `stop()`."""

    def __init__(
        self, image: BoardImage, faults: Faults = Faults(), speed: float = 1.0, log: Log = inf
    ) -> None:
        if speed <= 0:
            raise TinyharError(f"--speed {speed}: give a positive factor")
        self.image, self.faults, self.speed, self.log = image, faults, speed, log
        self._in_fault, self._out_fault = _Mangler(faults, 0), _Mangler(faults, 1)
        self._infer = tflm_hook(image.model_bytes, image.arena_bytes, image.config.input.shape)
        self.device = self._new_device()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._imu_on = False  # the device streams or records: its IMU replays
        self._replay_pos = 0
        self.requests = 0
        self.resets = 0
        self._in_frame = False
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)

    def _new_device(self) -> CoreDevice:
        return CoreDevice(self.image.config, self._infer)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    # output: follow the device's streaming and recording, apply faults, write to the pty
    def _emit(self, data: bytes, reply: bool) -> None:
        if not data:
            return
        self._follow_imu(self.device.streaming or self.device.recording)
        if reply and self.faults.delay_ms:
            time.sleep(self.faults.delay_ms / 1000.0)
        self._write(self._out_fault(data))

    def _follow_imu(self, on: bool) -> None:
        if on and not self._imu_on:
            self._replay_pos = 0  # each stream or recording replays from the start
        self._imu_on = on

    def _write(self, data: bytes) -> None:
        deadline = time.monotonic() + WRITE_WAIT
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                n = os.write(self.master, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # nobody reads: the bytes are lost, as on a USB port without a host
                select.select([], [self.master], [], 0.05)
            except OSError:
                return

    def _receive(self, data: bytes) -> None:
        data = self._in_fault(data)
        f = self.faults
        with self._lock:
            ends = self._frame_ends(data)
            due = f.reset_after - self.requests
            if f.reset_after and not self.resets and 0 < due <= len(ends):
                cut = ends[due - 1]  # the device resets before it answers this request
                self._emit(self.device.feed(data[:cut]), reply=True)
                self._reset()
                self.requests += len(ends)
                self._emit(self.device.feed(data[cut + 1 :]), reply=True)
                return
            self.requests += len(ends)
            self._emit(self.device.feed(data), reply=True)

    def _frame_ends(self, data: bytes) -> list[int]:
        """Offsets of the delimiters that end a (non-empty) frame."""
        ends = []
        for i, b in enumerate(data):
            if b == 0:
                if self._in_frame:
                    ends.append(i)
                self._in_frame = False
            else:
                self._in_frame = True
        return ends

    def _reset(self) -> None:
        self.resets += 1
        self.log(f"sim: reset (fault injection) while handling request {self.faults.reset_after}")
        self.device = self._new_device()
        self._imu_on = False

    def _imu(self) -> None:
        """Push replayed samples at the training rate (times speed) while streaming or recording."""
        period = 1.0 / (self.image.config.rate_hz * self.speed)
        samples = self.image.replay
        next_t = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if not self._imu_on:
                next_t = now
                time.sleep(0.005)
                continue
            if now < next_t:
                time.sleep(min(next_t - now, 0.05))
                continue
            with self._lock:
                if self._imu_on:
                    out = self.device.push_sample(samples[self._replay_pos % len(samples)])
                    self._replay_pos += 1
                    self._emit(out, reply=False)
            next_t += period

    def serve(self) -> None:
        """Answer the host until stop() (or SIGINT/SIGTERM in the caller)."""
        imu = threading.Thread(target=self._imu, name="imu", daemon=True)
        imu.start()
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self.master], [], [], 0.1)
                if not ready:
                    continue
                try:
                    data = os.read(self.master, 65536)
                except BlockingIOError:
                    continue
                except OSError:  # no slave open right now (Linux: EIO); wait for the next host
                    time.sleep(0.05)
                    continue
                self._receive(data)
                for e in self.device.hook_errors:
                    self.log(f"sim: inference hook failed: {e}")
                self.device.hook_errors.clear()
        finally:
            self._stop.set()
            imu.join(timeout=1.0)

    def summary(self) -> str:
        i, o = self._in_fault, self._out_fault
        return (
            f"sim: {self.requests} requests, {self.device.inferences} inferences since the last "
            f"reset, {self.resets} resets; faults in: {i.dropped} dropped, {i.corrupted} corrupted "
            f"bytes; out: {o.dropped} dropped, {o.corrupted} corrupted"
        )


def run_sim(
    board: Board,
    run: Path | None,
    faults: Faults,
    model: Path | None = None,
    replay: Path | None = None,
    speed: float = 1.0,
    link: Path | None = None,
    announce: Callable[[str], None] = print,
    log: Log = inf,
) -> None:
    """Start a virtual board and serve until interrupted; announces the pty path once ready."""

    image = board_image(
        board, runs.require_run(run, runs.QUANTIZE_JSON, "tinyhar quantize"), model, replay, log
    )
    vb = VirtualBoard(image, faults, speed, log)
    made_link = False
    try:
        if link is not None:
            link = Path(link)
            if link.is_symlink():
                link.unlink()
            elif link.exists():
                raise TinyharError(f"--link {link} exists and is not a symlink: pick another path")
            link.symlink_to(vb.path)
            made_link = True
        cfg = image.config

        def _term(_sig, _frm) -> None:
            vb.stop()

        signal.signal(signal.SIGTERM, _term)  # before the path is out: a caller may stop us at once
        log(
            f"sim: virtual {cfg.board_name} on {vb.path}"
            + (f" (link {link})" if made_link else "")
            + f": model CRC-32 {format_crc32(cfg.model_crc32)}, arena {image.arena_bytes} B, "
            f"window {cfg.window}x{cfg.channels} at {cfg.rate_hz:g} Hz, IMU replay of "
            f"{len(image.replay)} samples, faults: {faults.describe()}"
        )
        port = link if made_link else vb.path
        log(f"sim: verify with: tinyhar verify --port {port}; Ctrl-C stops")
        announce(vb.path)
        try:
            vb.serve()
        except KeyboardInterrupt:
            pass
        log(vb.summary())
    finally:
        vb.close()
        if made_link and link is not None and link.is_symlink():
            link.unlink()
