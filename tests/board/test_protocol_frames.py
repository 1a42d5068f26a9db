"""Frame layer: COBS, CRC-32, encode/decode round trips and a fuzzed streaming decoder."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyhar.board import protocol as P


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x00\x00", b"\x11\x22\x00\x33", bytes(range(1, 255)), bytes(range(1, 256)),
     bytes(range(256)) * 3, b"\x01" * 254 + b"\x00" + b"\x02" * 300],
)  # fmt: skip
def test_cobs_round_trip_and_no_zero_inside(data: bytes) -> None:
    enc = P.cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert P.cobs_decode(enc) == data


def test_frame_layout_is_the_documented_one() -> None:
    enc = P.encode_frame(P.MsgType.INFER, 7, b"\x01\x00\x02")
    assert enc.endswith(b"\x00") and enc.count(0) == 1
    raw = P.cobs_decode(enc[:-1])
    assert raw[:5] == bytes([P.PROTOCOL_VERSION, 0x03, 7, 3, 0])
    assert raw[5:8] == b"\x01\x00\x02"
    assert struct.unpack("<I", raw[8:])[0] == zlib.crc32(raw[:8])
    assert P.decode_frame(enc) == P.Frame(0x03, 7, b"\x01\x00\x02")


def test_decode_frame_names_each_defect() -> None:
    good = P.cobs_decode(P.encode_frame(1, 2, b"abc")[:-1])
    with pytest.raises(P.ProtocolError, match="CRC"):
        P.decode_frame(P.cobs_encode(good[:-1] + bytes([good[-1] ^ 1])))
    with pytest.raises(P.ProtocolError, match="shorter"):
        P.decode_frame(P.cobs_encode(b"\x01\x02"))
    body = bytes([P.PROTOCOL_VERSION + 1, 1, 2, 3, 0]) + b"abc"
    with pytest.raises(P.ProtocolError, match=f"version {P.PROTOCOL_VERSION + 1}"):
        P.decode_frame(P.cobs_encode(body + struct.pack("<I", zlib.crc32(body))))
    body = bytes([P.PROTOCOL_VERSION, 1, 2, 9, 0]) + b"abc"
    with pytest.raises(P.ProtocolError, match="length field 9"):
        P.decode_frame(P.cobs_encode(body + struct.pack("<I", zlib.crc32(body))))
    with pytest.raises(P.ProtocolError, match="COBS"):
        P.decode_frame(b"\x05\x01")


def test_decoder_recovers_frames_split_anywhere_and_counts_garbage() -> None:
    frames = [P.encode_frame(t, s, bytes([s]) * s) for t, s in [(1, 0), (0x83, 5), (0xE0, 255)]]
    stream = b"\x13\x37garbage\x00" + frames[0] + b"\xff\xfe" + b"\x00" + frames[1] + frames[2]
    for step in (1, 2, 7, len(stream)):
        dec = P.FrameDecoder()
        got = []
        for i in range(0, len(stream), step):
            got += dec.feed(stream[i : i + step])
        assert [(f.type, f.seq) for f in got] == [(1, 0), (0x83, 5), (0xE0, 255)]
        assert dec.frames == 3 and dec.bad_frames == 2


def test_decoder_drops_oversized_frames_and_resumes() -> None:
    dec = P.FrameDecoder(max_payload=16)
    big = P.encode_frame(1, 1, b"x" * 100)
    small = P.encode_frame(1, 2, b"y")
    assert [f.seq for f in dec.feed(big + small)] == [2]
    assert dec.bad_frames == 1 and dec.dropped_bytes >= 100


frames_st = st.builds(
    P.encode_frame,
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=300),
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    dec = P.FrameDecoder()
    for f in dec.feed(data):
        assert P.decode_frame(P.encode_frame(f.type, f.seq, f.payload)) == f


@settings(max_examples=300, deadline=None)
@given(frames_st, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_fuzz_mutated_frames_never_raise(frame: bytes, edits) -> None:
    data = bytearray(frame)
    for pos, val in edits:
        if data:
            data[pos % len(data)] = val
    dec = P.FrameDecoder()
    got = dec.feed(bytes(data))
    assert dec.frames == len(got)
    if bytes(data) == frame:
        assert len(got) == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=40), frames_st), min_size=1, max_size=6))
def test_fuzz_valid_frames_in_noise_are_recovered(parts) -> None:
    # noise then a delimiter isolates each frame: every valid frame must come back, in order
    stream = b"".join(noise + b"\x00" + frame for noise, frame in parts)
    got = P.FrameDecoder().feed(stream)
    expected = [P.decode_frame(frame) for _, frame in parts]
    assert [g for g in got if g in expected] == expected
