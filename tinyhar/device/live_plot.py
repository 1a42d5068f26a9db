"""A live plot of IMU samples as they arrive (`tinyhar record`), where a display exists."""

from __future__ import annotations

import os
import time

import numpy as np

SPAN_S = 10.0  # seconds shown
REDRAW_S = 0.25  # at most this often


class LivePlot:
    """The last SPAN_S seconds of each column, accelerometer above, gyroscope below."""

    def __init__(self, names: list[str], rate_hz: float, show: bool = True) -> None:
        import matplotlib.pyplot as plt  # lazy: matplotlib, only when plotting

        self._plt, self._show, self.rate_hz = plt, show, rate_hz
        self.data = np.zeros((0, len(names)), np.float32)
        self.fig, axes = plt.subplots(2, 1, sharex=True, figsize=(9, 5))
        self.lines = []
        for name in names:
            ax = axes[0] if name.startswith("acc") else axes[1]
            (line,) = ax.plot([], [], label=name, lw=0.8)
            self.lines.append(line)
        for ax, what in zip(axes, ("accelerometer", "gyroscope"), strict=True):
            ax.set_ylabel(what)
            ax.legend(loc="upper left", fontsize="small")
        axes[1].set_xlabel("seconds ago")
        self._drawn = 0.0
        if show:
            plt.ion()
            plt.show(block=False)

    @classmethod
    def if_display(cls, names: list[str], rate_hz: float) -> LivePlot | None:
        """A shown plot when a display and an interactive matplotlib backend exist, else None."""
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return None
        import matplotlib  # lazy: matplotlib, only when plotting

        if matplotlib.get_backend().lower() in ("agg", "pdf", "svg", "ps", "cairo", "template"):
            return None
        try:
            return cls(names, rate_hz)
        except Exception:  # noqa: BLE001 - a display that cannot open must not stop a recording
            return None

    def add(self, samples: np.ndarray) -> None:
        """Append samples (n, columns); redraw at most every REDRAW_S seconds."""
        keep = int(SPAN_S * self.rate_hz)
        self.data = np.concatenate([self.data, np.asarray(samples, np.float32)])[-keep:]
        t = (np.arange(len(self.data)) - len(self.data)) / self.rate_hz
        for line, column in zip(self.lines, self.data.T, strict=True):
            line.set_data(t, column)
        for ax in self.fig.axes:
            ax.relim()
            ax.autoscale_view()
        if self._show and time.monotonic() - self._drawn > REDRAW_S:
            self.fig.canvas.draw_idle()
            self.fig.canvas.flush_events()
            self._drawn = time.monotonic()

    def close(self) -> None:
        self._plt.close(self.fig)
