"""`tinyhar monitor` against `tinyhar sim`: the replayed recording's predictions, a clean stop."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import numpy as np
from helpers.boards import sim_board
from helpers.commands import TINYHAR, tinyhar

from tinyhar.board.boards import load_board
from tinyhar.board.preprocess import PreprocessConfig, quantize_window, to_board_units
from tinyhar.device.link import Link
from tinyhar.device.virtual_board import replay_training_units
from tinyhar.files import read_json
from tinyhar.lite.reference import TflmReference
from tinyhar.run.records import DatasetContract, QuantizeReport

LINE = re.compile(r"^\s*([\d.]+)s\s+#(\d+)\s+(.+?)\s+([\d.]+)% [#.]+\s+([\d.]+) ms\s+last (\d+): ")


def _expected_labels(run, counters: list[int]) -> list[str]:
    """What the board must predict after `k` replayed samples: TFLM on the last window of them."""
    ds, quant = DatasetContract.load(run), QuantizeReport.load(run)
    cfg = PreprocessConfig.from_run(ds, quant.input, load_board("nano33ble"))
    stream = to_board_units(replay_training_units(run), cfg)
    w = ds.window
    q = np.stack([quantize_window(stream[k - w : k], cfg) for k in counters])
    ref = TflmReference((run / "model_int8.tflite").read_bytes(), quant.arena_bytes * 2)
    return [ds.labels[i] for i in ref.predict(q).argmax(axis=1)]


def test_monitor_prints_the_replayed_predictions(tiny_run) -> None:
    with sim_board(tiny_run, "--speed", "5") as sim:
        proc = tinyhar("monitor", "--port", sim.port, "--count", "5", timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [LINE.match(ln) for ln in proc.stdout.splitlines()]
    rows = [m for m in rows if m]
    assert len(rows) == 5, proc.stdout
    counters = [int(m.group(2)) for m in rows]
    stride = read_json(tiny_run / "dataset.json")["stride"]
    assert counters == [100 + stride * i for i in range(5)]  # one per stride after a full window
    assert [m.group(3) for m in rows] == _expected_labels(tiny_run, counters)
    assert all(0.0 <= float(m.group(4)) <= 100.0 for m in rows)
    assert [int(m.group(6)) for m in rows] == [1, 2, 3, 4, 5]  # the rolling view grows
    assert "stopped the stream after 5 predictions" in proc.stdout


def test_monitor_ctrl_c_stops_the_stream_and_exits_0(tiny_run) -> None:
    with sim_board(tiny_run, "--speed", "10") as sim:
        mon = subprocess.Popen(
            [*TINYHAR, "monitor", "--port", sim.port, "--run", str(tiny_run)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen = []
        deadline = time.monotonic() + 30
        while len([s for s in seen if LINE.match(s)]) < 2 and time.monotonic() < deadline:
            seen.append(mon.stdout.readline())
        mon.send_signal(signal.SIGINT)
        out, err = mon.communicate(timeout=15)
        assert mon.returncode == 0, err
        assert "stopped the stream" in out and "Traceback" not in err
        with Link(sim.port) as link:  # the board is no longer streaming
            assert link.hello().streaming is False


def test_monitor_seconds_limit(tiny_run, clean_sim) -> None:
    t0 = time.monotonic()
    proc = tinyhar("monitor", "--port", clean_sim.port, "--seconds", "1.5", check=False)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 < 20
    assert "stopped the stream after 0 predictions" in proc.stdout  # a window takes 2 s at 50 Hz
