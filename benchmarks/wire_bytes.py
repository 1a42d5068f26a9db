"""Bytes on the serial wire per window, measured through the firmware core built for the host.

For each sensor set (arm: 6 channels, both: 12) and request kind it sends one window's requests
to a `CoreDevice` (the real tinyhar_core.c) and counts the encoded bytes in each direction:

- int8:        the ready int8 window in pieces of at most P.CHUNK bytes: LOAD -> LOADED for all
               but the last, INFER -> RESULT with the last (verify)
- raw:         SAMPLES (window x channels float32, in P.CHUNK chunks) -> STATUS each,
               then INFER_RAW -> RESULT
- raw+window:  as raw, then the device's int8 window read back with GET_WINDOW in P.CHUNK
               pieces (verify --raw; a window of one piece comes in the RESULT instead)

    python benchmarks/wire_bytes.py [--window 100] [--classes 12]
"""

from __future__ import annotations

import argparse

import numpy as np

from tinyhar.board import protocol as P
from tinyhar.board.preprocess import PreprocessConfig
from tinyhar.device.core_lib import CoreConfig, CoreDevice


def _device(window: int, channels: int, classes: int) -> CoreDevice:
    pre = PreprocessConfig(
        unit_factor=[9.80665] * channels,
        axis_src=list(range(channels)),
        axis_sign=[1] * channels,
        mean=[0.0] * channels,
        inv_std=[0.1] * channels,
        input_scale=0.05,
        input_zero_point=0,
    )
    cfg = CoreConfig(
        window=window,
        stride=window // 2,
        rate_hz=50.0,
        preprocess=pre,
        input=P.TensorSpec(9, (1, window, channels), 0.05, 0),
        output=P.TensorSpec(9, (1, classes), 1 / 256, -128),
    )
    rng = np.random.default_rng(0)
    return CoreDevice(cfg, lambda w: rng.integers(-128, 128, classes).astype(np.int8))


def measure(window: int, channels: int, classes: int) -> dict[str, tuple[int, int, int]]:
    """{kind: (host->device bytes, device->host bytes, frames sent)} for one window."""
    rng = np.random.default_rng(1)
    dev = _device(window, channels, classes)
    int8 = rng.integers(-128, 128, window * channels).astype(np.int8)
    raw = rng.normal(0, 1, (window, channels)).astype(np.float32)
    results: dict[str, tuple[int, int, int]] = {}

    def send(frames: list[bytes]) -> tuple[int, int, int]:
        up = down = 0
        for f in frames:
            up += len(f)
            down += len(dev.feed(f))
        return up, down, len(frames)

    def framed(payloads: list[tuple[int, bytes]]) -> list[bytes]:
        # as the host sends them: each frame and a second delimiter (docs/protocol.md, Frames)
        return [P.encode_frame(t, i % 255, pl) + b"\x00" for i, (t, pl) in enumerate(payloads)]

    data, n = int8.tobytes(), P.CHUNK
    loads = [(P.MsgType.LOAD, P.pack_piece(o, data[o : o + n])) for o in range(0, len(data) - n, n)]
    last = n * len(loads)
    results["int8"] = send(framed(loads + [(P.MsgType.INFER, P.pack_piece(last, data[last:]))]))
    samples = [(P.MsgType.SAMPLES, c) for c in P.samples_chunks(raw, P.CHUNK)]
    fits = len(data) <= n
    for kind, with_window in (("raw", False), ("raw+window", True)):
        reqs = [(P.MsgType.RESET_BUFFER, b"")] + samples
        reqs.append((P.MsgType.INFER_RAW, P.pack_infer_raw(with_window and fits)))
        if with_window and not fits:
            offsets = range(0, len(data), n)
            reqs += [(P.MsgType.GET_WINDOW, P.pack_get_window(o, n)) for o in offsets]
        results[kind] = send(framed(reqs))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--classes", type=int, default=12)
    args = ap.parse_args()
    print(f"window {args.window} samples, {args.classes} classes, pieces of {P.CHUNK} B")
    print(
        f"{'sensors':8} {'request':11} {'frames':>6} {'host->dev':>10} {'dev->host':>10} "
        f"{'total':>7} {'ms @115200':>10}"
    )
    for sensors, channels in (("arm", 6), ("both", 12)):
        for kind, (up, down, frames) in measure(args.window, channels, args.classes).items():
            total = up + down
            ms = total * 10 / 115200 * 1000  # 10 bits per byte on a UART
            print(f"{sensors:8} {kind:11} {frames:>6} {up:>10} {down:>10} {total:>7} {ms:>10.1f}")


if __name__ == "__main__":
    main()
