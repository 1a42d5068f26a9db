"""A noisy serial line for tests: a proxy between a pty the host opens and a device's port that
corrupts and drops bytes at seeded rates, both ways, independently of the device's own faults."""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Direction:
    """Counts of one direction's bytes."""

    passed: int = 0
    corrupted: int = 0
    dropped: int = 0


@dataclass
class NoisyLine:
    """`with NoisyLine(device_port, corrupt=1e-4, drop=1e-4) as line:` verify `line.port`."""

    device_port: str
    corrupt: float = 0.0  # probability that a byte is replaced by another
    drop: float = 0.0  # probability that a byte is lost
    seed: int = 0
    to_device: Direction = field(default_factory=Direction)
    to_host: Direction = field(default_factory=Direction)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def __enter__(self) -> NoisyLine:
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open so the pty stays up between the host's opens
        self._device = os.open(self.device_port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self._device)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="noisy-line", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._device):
            os.close(fd)

    def mangle(self, data: bytes, counts: Direction) -> bytes:
        """`data` as the line delivers it: some bytes changed, some lost."""
        buf = np.frombuffer(data, dtype=np.uint8).copy()
        roll = self._rng.random(len(buf))
        flip = roll < self.corrupt
        buf[flip] ^= self._rng.integers(1, 256, int(flip.sum()), dtype=np.uint8)
        keep = roll >= self.corrupt + self.drop
        keep |= flip
        counts.corrupted += int(flip.sum())
        counts.dropped += int(len(buf) - keep.sum())
        counts.passed += int(keep.sum())
        return buf[keep].tobytes()

    def _pump(self) -> None:
        ends = {
            self._master: (self._device, self.to_device),
            self._device: (self._master, self.to_host),
        }
        while not self._stop.is_set():
            ready, _, _ = select.select(list(ends), [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # the host closed its side (EIO on a pty): wait for it again
                    time.sleep(0.01)
                    continue
                out, counts = ends[fd]
                if data:
                    os.write(out, self.mangle(data, counts))
