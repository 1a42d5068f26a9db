"""What a request that gets no reply names: a board whose firmware speaks another protocol version
('rebuild and flash', at once), ERROR frames, replies with another sequence number, a flood of
predictions; each FAKE board here is a thread on a pty answering every request one wrong way."""

from __future__ import annotations

import os
import select
import struct
import threading
import time
import tty
from collections.abc import Callable

import pytest
from helpers.commands import one_error_line, tinyhar

from tinyhar.board import protocol as P
from tinyhar.crc import crc32
from tinyhar.device.link import Link, LinkError

INFO = P.DeviceInfo(
    protocol_version=3, streaming=False, has_model=True, model_crc32=0x12345678,
    arena_bytes=20000, window=100, stride=50, channels=6, n_classes=4, rate_hz=50.0,
    max_payload=700, samples_total=0, input=P.TensorSpec(9, (1, 100, 6), 0.05, 3),
    output=P.TensorSpec(9, (1, 4), 1 / 256, -128), core_version="3", firmware_version="0.0.9",
    board="nano33ble",
)  # fmt: skip


def frame_of_version(version: int, msg_type: int, seq: int, payload: bytes) -> bytes:
    """A whole frame, CRC correct, in protocol `version`'s header."""
    body = struct.pack("<BBBH", version, msg_type, seq, len(payload)) + payload
    return P.cobs_encode(body + struct.pack("<I", crc32(body))) + b"\x00"


class FakeBoard:
    """A FAKE device on a pty: `answer(frame)` gives the bytes it sends back for each request
    frame it reads; `chatter()` (if given) bytes it sends every 10 ms on its own."""

    def __init__(self, answer: Callable[[P.Frame], bytes],
                 chatter: Callable[[], bytes] | None = None) -> None:  # fmt: skip
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.answer, self.chatter = answer, chatter
        self.requests = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        decoder = P.FrameDecoder()
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.01)
            if r:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    return
                for f in decoder.feed(data):
                    self.requests += 1
                    os.write(self.master, self.answer(f))
            if self.chatter is not None:
                os.write(self.master, self.chatter())

    def close(self) -> None:
        self._stop.set()
        self._t.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)

    def __enter__(self) -> FakeBoard:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def old_firmware(f: P.Frame) -> bytes:
    """Protocol 3 firmware: a correct INFO, in a version-3 frame."""
    return frame_of_version(3, f.type | P.REPLY, f.seq, P.pack_info(INFO))


def errors_only(f: P.Frame) -> bytes:
    error = P.ErrorReply(P.ErrorCode.BAD_STATE, f.type, 0)
    return P.encode_frame(P.MsgType.ERROR, (f.seq + 7) % 255, P.pack_error(error))


def wrong_seq(f: P.Frame) -> bytes:
    return P.encode_frame(f.type | P.REPLY, (f.seq + 1) % 255, P.pack_info(INFO))


def silent(f: P.Frame) -> bytes:
    return b""


def predictions() -> bytes:
    return P.encode_frame(P.MsgType.PREDICTION, 0, P.pack_prediction(P.Prediction(1, 50, 900, 1)))


def test_a_board_of_another_protocol_version_is_told_to_rebuild_and_flash_at_once():
    with FakeBoard(old_firmware) as dev, Link(dev.path, timeout=0.5, retries=3) as link:
        t0 = time.monotonic()
        with pytest.raises(LinkError) as e:
            link.hello()
        assert time.monotonic() - t0 < 0.5 and dev.requests == 1  # no retries: it cannot help
    msg = str(e.value)
    assert "this board runs firmware of protocol 3" in msg and "rebuild and flash" in msg
    assert f"this tinyhar speaks protocol {P.PROTOCOL_VERSION}" in msg
    assert "corrupt" not in msg and "cable" not in msg and "\n" not in msg


def test_the_command_line_says_rebuild_and_flash_in_one_line():
    with FakeBoard(old_firmware) as dev:
        proc = tinyhar("monitor", "--port", dev.path, "--count", "1", check=False, timeout=60)
    assert proc.returncode == 2
    assert "this board runs firmware of protocol 3" in one_error_line(proc.stderr)


@pytest.mark.parametrize(
    ("answer", "chatter", "said"),
    [
        (errors_only, None, ["ERROR frames that answer no request", "has no model to run",
                             "the firmware refuses this tinyhar's requests"]),
        (wrong_seq, None, ["replies with another sequence number came back",
                           "another program may be talking to the board"]),
        (silent, predictions, ["PREDICTION/RECORDING frames and no reply came back",
                               "the board streams but does not answer"]),
    ],
    ids=["errors", "wrong-seq", "prediction-flood"],
)  # fmt: skip
def test_frames_that_answer_no_request_are_named(answer, chatter, said):
    with FakeBoard(answer, chatter) as dev, Link(dev.path, timeout=0.2, retries=1) as link:
        with pytest.raises(LinkError) as e:
            link.hello()
    msg = str(e.value)
    assert "bytes came back but no frame" not in msg and "\n" not in msg
    for text in said:
        assert text in msg, msg
