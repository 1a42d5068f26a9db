"""The serial link's failure modes: each ends in a recovered run or one line, never a hang."""

from __future__ import annotations

import errno
import os
import re
import select
import signal
import subprocess
import threading
import time
import tty

import numpy as np
import pytest
import serial
from helpers.boards import sim_board
from helpers.commands import TINYHAR, one_error_line, tinyhar, verify_history

from tinyhar.board import protocol as P
from tinyhar.board.boards import load_board
from tinyhar.device.link import Link, LinkError, open_error
from tinyhar.device.virtual_board import VirtualBoard, board_image
from tinyhar.files import read_json
from tinyhar.run.records import QuantizeReport


class _GarbagePty:
    """A pty whose other end answers every byte with random bytes (a device talking nonsense)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._rng = np.random.default_rng(7)
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                try:
                    os.read(self.master, 4096)
                except OSError:
                    pass
            os.write(self.master, self._rng.integers(0, 256, 64, dtype=np.uint8).tobytes())

    def close(self) -> None:
        self._stop.set()
        self._t.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


def test_a_device_answering_garbage_ends_in_one_line_quickly(tiny_run) -> None:
    dev = _GarbagePty()
    try:
        t0 = time.monotonic()
        proc = tinyhar(
            "verify", "--port", dev.path, "--run", tiny_run, "--timeout", "0.3", "--retries", "2",
            check=False, timeout=60,
        )  # fmt: skip
        seconds = time.monotonic() - t0
    finally:
        dev.close()
    assert proc.returncode == 2 and seconds < 20
    line = one_error_line(proc.stderr)
    # garbage is read as corrupted frames: resent at once, until 3 attempts ended in silence
    assert re.search(r"HELLO .* failed after \d+ attempts .*corrupted frames came back", line), line


def test_garbage_between_replies_is_skipped_by_resynchronising(tiny_run) -> None:
    """A real virtual board whose every write is preceded by noise (no delimiters) and a broken
    frame: the link still gets every reply, and counts what it dropped."""
    vb = VirtualBoard(board_image(load_board("nano33ble"), tiny_run))
    write = vb._write
    noise = bytes(range(1, 200)) + b"\x00" + bytes([7] * 30) + b"\x00"

    vb._write = lambda data: write(noise + data)  # type: ignore[method-assign]
    server = threading.Thread(target=vb.serve, daemon=True)
    server.start()
    try:
        with Link(vb.path, timeout=1.0, retries=0) as link:
            info = link.hello()
            assert info.board == "nano33ble"
            window = np.zeros(info.window * info.channels, dtype=np.int8)
            results = [link.infer(window) for _ in range(5)]
            assert all(r.output.size == info.n_classes for r in results)
            assert len({r.output.tobytes() for r in results}) == 1
            assert link.decoder.bad_frames >= 6 and link.decoder.dropped_bytes > 6 * 200
            assert link.stats.retries == 0
    finally:
        vb.stop()
        server.join(timeout=3)
        vb.close()


def test_device_gone_mid_run_is_one_line(tiny_run) -> None:
    with sim_board(tiny_run, "--delay", "40") as sim:
        ver = subprocess.Popen(
            [*TINYHAR, "verify", "--port", sim.port, "--run", str(tiny_run), "--raw"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        # wait for the hello, then pull the plug on the board
        line = ""
        while "matches the run" not in line and time.monotonic() < deadline:
            line = ver.stderr.readline()
        assert "matches the run" in line
        time.sleep(0.5)
        sim.proc.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        _, err = ver.communicate(timeout=30)
        assert time.monotonic() - t0 < 10
    assert ver.returncode == 2
    assert "went away" in one_error_line(err)
    line = verify_history(tiny_run)[-1]
    assert line["mode"] == "raw" and line["passed"] is False and "went away" in line["error"]
    if line["windows"]:  # windows compared before the plug was pulled: their report, marked
        report = read_json(tiny_run / "verify_raw.json")
        assert report["run_id"] == line["run_id"] and report["complete"] is False
        assert report["windows"] == line["windows"] and "went away" in report["error"]


def test_a_busy_port_is_one_line(tiny_run, clean_sim) -> None:
    holder = serial.Serial(clean_sim.port, exclusive=True)
    try:
        proc = tinyhar("verify", "--port", clean_sim.port, "--run", tiny_run, check=False)
    finally:
        holder.close()
    assert proc.returncode == 2
    assert "busy" in one_error_line(proc.stderr)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.EACCES, ["no permission", "dialout"]),
        (errno.ENOENT, ["does not exist"]),
        (errno.EBUSY, ["busy"]),
    ],
)
def test_open_errors_say_what_to_do(code: int, words: list[str]) -> None:
    # the exception pyserial raises when open() fails
    exc = serial.SerialException(code, f"could not open port /dev/ttyACM0: [Errno {code}] ...")
    msg = str(open_error("/dev/ttyACM0", exc))
    assert "\n" not in msg and "/dev/ttyACM0" in msg
    assert all(w in msg for w in words)


def test_stale_replies_and_predictions_do_not_answer_a_request(tiny_run) -> None:
    """Frames for other seqs (late replies) and PREDICTIONs are skipped; the right reply wins."""
    vb = VirtualBoard(board_image(load_board("nano33ble"), tiny_run))
    write = vb._write

    def with_stale(data: bytes) -> None:
        stale = P.encode_frame(P.MsgType.HELLO | P.REPLY, 254, b"\x01" * 40)
        pred = P.encode_frame(P.MsgType.PREDICTION, 3, P.pack_prediction(P.Prediction(2, 5, 9, 7)))
        write(stale + pred + data)

    vb._write = with_stale  # type: ignore[method-assign]
    server = threading.Thread(target=vb.serve, daemon=True)
    server.start()
    try:
        with Link(vb.path, timeout=1.0, retries=0) as link:
            link._seq = 0  # the next request uses seq 1, never the stale 254
            assert link.hello().model_crc32 == QuantizeReport.load(tiny_run).model_crc32
            assert link.predictions and link.predictions[0].sample_counter == 7
    finally:
        vb.stop()
        server.join(timeout=3)
        vb.close()


def test_no_reply_after_retries_is_a_link_error(tiny_run) -> None:
    with sim_board(tiny_run, "--delay", "3000") as sim:
        t0 = time.monotonic()
        with Link(sim.port, timeout=0.2, retries=2) as link, pytest.raises(LinkError) as e:
            link.hello()
        assert time.monotonic() - t0 < 5
    assert "HELLO" in str(e.value) and "3 attempts" in str(e.value)


def test_a_reply_whose_delimiter_is_lost_is_asked_again_without_waiting_the_timeout(
    tiny_run,
) -> None:
    """Once HELLO has been answered, an attempt waits a few times its slowest reply, not the whole
    --timeout: a frame that lost both its delimiters costs tens of milliseconds; later attempts
    wait longer."""
    vb = VirtualBoard(board_image(load_board("nano33ble"), tiny_run))
    write = vb._write
    replies = []

    def lose_second_reply_s_delimiters(data: bytes) -> None:
        replies.append(data)
        assert data.endswith(b"\x00\x00")  # each frame ends with two delimiters: lose both
        write(data.rstrip(b"\x00") if len(replies) == 2 else data)  # the 2nd reply never ends

    vb._write = lose_second_reply_s_delimiters  # type: ignore[method-assign]
    server = threading.Thread(target=vb.serve, daemon=True)
    server.start()
    try:
        with Link(vb.path, timeout=5.0, retries=3) as link:
            first = link.hello()
            t0 = time.monotonic()
            assert link.hello() == first
            took = time.monotonic() - t0
            assert link.stats.retries == 1 and len(replies) == 3
            waits = [link._wait(P.MsgType.HELLO, silent) for silent in range(4)]
            never_answered = link._wait(P.MsgType.INFER, 0)
    finally:
        vb.stop()
        server.join(timeout=3)
        vb.close()
    assert took < 2.5, f"the lost delimiter cost {took:.2f} s of a 5 s timeout"
    assert waits[0] < waits[1] < waits[2] < waits[3] == 5.0
    assert never_answered == 5.0
