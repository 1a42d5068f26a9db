"""`--trace`: a hex dump of every frame sent and received, on stderr, against a real pty."""

from __future__ import annotations

import re
import struct
import zlib

from helpers.commands import tinyhar

from tinyhar.board import protocol as P
from tinyhar.device.link import TRACE_WIDTH, Link
from tinyhar.files import read_json

# TRACE +0.012s >> HELLO seq 7 len 0: 02 01 07 00 00 ...
HEAD = re.compile(
    r"^TRACE \+(\d+\.\d{3})s (>>|<<) (\w+) seq (\d+) len (\d+): ((?:[0-9a-f]{2} ?)+)$"
)
MORE = re.compile(r"^    ((?:[0-9a-f]{2} ?)+)$")


def _dumps(stderr: str) -> list[tuple[str, str, int, int, bytes, int]]:
    """(direction, type name, seq, len, frame bytes, lines) of every frame dump in `stderr`."""
    out: list = []
    for line in stderr.splitlines():
        if m := HEAD.match(line):
            out.append([m[2], m[3], int(m[4]), int(m[5]), bytes.fromhex(m[6]), 1])
        elif (m := MORE.match(line)) and out:
            out[-1][4] += bytes.fromhex(m[1])
            out[-1][5] += 1
    return [tuple(d) for d in out]


def _check_frame(raw: bytes, msg_type: int, seq: int, length: int) -> bytes:
    """The dumped bytes are the decoded frame: header, payload, CRC-32 (zlib's). Its payload."""
    assert raw[:5] == struct.pack("<BBBH", P.PROTOCOL_VERSION, msg_type, seq, length)
    assert len(raw) == 5 + length + 4
    assert struct.unpack("<I", raw[-4:])[0] == zlib.crc32(raw[:-4])
    return raw[5:-4]


def test_monitor_trace_dumps_the_hello_request_and_reply(tiny_run, clean_sim) -> None:
    proc = tinyhar(
        "monitor", "--port", clean_sim.port, "--seconds", "0.5", "--trace", timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "TRACE" not in proc.stdout  # predictions stay on stdout, the dump on stderr
    dumps = _dumps(proc.stderr)
    (sent, name, seq, n, raw, lines) = dumps[0]
    assert (sent, name, n, lines) == (">>", "HELLO", 0, 1)
    head = bytes([P.PROTOCOL_VERSION, 0x01, seq, 0, 0])  # version, HELLO, seq, length 0 (LE)
    assert raw == head + struct.pack("<I", zlib.crc32(head))

    got, name, rseq, n, raw, lines = dumps[1]
    assert (got, name, rseq) == ("<<", "HELLO_REPLY", seq)
    info = P.unpack_info(_check_frame(raw, P.MsgType.HELLO | P.REPLY, seq, n))
    quant = read_json(tiny_run / "quantize.json")
    assert info.board == "nano33ble" and info.model_crc32 == int(quant["model_crc32"], 16)
    assert lines == -(-len(raw) // TRACE_WIDTH) > 1  # wrapped at 32 bytes a line

    # then LABELS, RESET_BUFFER, STREAM_START ... STREAM_STOP, each answered with the same seq
    names = [(d[0], d[1]) for d in dumps]
    for req in ("LABELS", "RESET_BUFFER", "STREAM_START", "STREAM_STOP"):
        i = names.index((">>", req))
        reply = next(d for d in dumps[i + 1 :] if d[1] == req + "_REPLY")
        assert reply[2] == dumps[i][2]


def test_trace_callback_sees_frames_in_order(clean_sim) -> None:
    seen: list[str] = []
    with Link(clean_sim.port, trace=seen.append) as link:
        link.hello()
        link.reset_buffer()
    heads = [HEAD.match(t.splitlines()[0]) for t in seen]
    assert [(m[2], m[3]) for m in heads] == [
        (">>", "HELLO"), ("<<", "HELLO_REPLY"),
        (">>", "RESET_BUFFER"), ("<<", "RESET_BUFFER_REPLY"),
    ]  # fmt: skip
    times = [float(m[1]) for m in heads]
    assert times == sorted(times)


def test_verify_trace_dumps_the_hello_exchange(tiny_run, clean_sim) -> None:
    proc = tinyhar(
        "verify", "--port", clean_sim.port, "--run", tiny_run, "--windows", "2", "--trace",
        "--min-agreement", "0", timeout=300, check=False,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr and proc.returncode in (0, 1), proc.stderr
    dumps = _dumps(proc.stderr)
    (_, name, seq, n, raw, _), reply = dumps[0], dumps[1]
    assert (name, n) == ("HELLO", 0) and _check_frame(raw, P.MsgType.HELLO, seq, 0) == b""
    assert reply[:3] == ("<<", "HELLO_REPLY", seq)
    payload = _check_frame(reply[4], P.MsgType.HELLO | P.REPLY, seq, reply[3])
    assert P.unpack_info(payload).board == "nano33ble"
    assert sum(d[1] == "INFER" for d in dumps) == 2  # the two windows, in model mode
