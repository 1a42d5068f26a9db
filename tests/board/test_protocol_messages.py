"""Message layer: every message packs and unpacks to itself; short payloads are refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tinyhar.board import protocol as P


def _info() -> P.DeviceInfo:
    return P.DeviceInfo(
        protocol_version=1, streaming=True, has_model=True, model_crc32=0xDEADBEEF,
        arena_bytes=12345, window=100, stride=50, channels=6, n_classes=12, rate_hz=50.0,
        max_payload=1632, samples_total=77, input=P.TensorSpec(9, (1, 100, 6), 0.25, -3),
        output=P.TensorSpec(9, (1, 12), 0.00390625, -128), core_version="1.0.0",
        firmware_version="0.1.0+abc", board="nano33ble",
    )  # fmt: skip


def test_info_round_trip() -> None:
    info = _info()
    assert P.unpack_info(P.pack_info(info)) == info
    assert info.input.dtype_name == "int8"


def test_info_carries_the_device_kind() -> None:
    for kind in P.DeviceKind:
        info = dataclasses.replace(_info(), device_kind=kind)
        assert P.unpack_info(P.pack_info(info)).device_kind is kind
    payload = bytearray(P.pack_info(_info()))
    payload[-1] = 7  # the last byte: no such kind
    with pytest.raises(P.ProtocolError, match="unknown device kind 7"):
        P.unpack_info(bytes(payload))


def test_result_round_trip_with_and_without_window() -> None:
    out = np.arange(-6, 6, dtype=np.int8)
    win = np.arange(600, dtype=np.int64).astype(np.int8)
    for w in (None, win):
        r = P.unpack_result(P.pack_result(P.Result(1234, 99, out, w)))
        assert (r.latency_us, r.samples_total, r.top_class) == (1234, 99, 11)
        np.testing.assert_array_equal(r.output, out)
        assert (r.window is None) == (w is None)
        if w is not None:
            np.testing.assert_array_equal(r.window, win)


def test_small_messages_round_trip() -> None:
    page = P.LabelsPage(13, 2, ["Walking", "Jump front & back", ""])
    assert P.unpack_labels(P.pack_labels(page)) == page
    st = P.Status(10**6, 100, True)
    assert P.unpack_status(P.pack_status(st)) == st
    pr = P.Prediction(4, -17, 8700, 123456)
    assert P.unpack_prediction(P.pack_prediction(pr)) == pr
    er = P.ErrorReply(P.ErrorCode.WINDOW_NOT_FULL, P.MsgType.INFER_RAW, 42)
    assert P.unpack_error(P.pack_error(er)) == er
    assert "fewer samples than one window" in er.describe() and "detail 42" in er.describe()
    wr = P.unpack_window_reply(P.pack_window_reply(P.WindowReply(5, 3, np.array([1, -1], np.int8))))
    assert (wr.samples_total, wr.offset, wr.window.tolist()) == (5, 3, [1, -1])
    assert P.unpack_loaded(P.pack_loaded(P.Loaded(600))) == P.Loaded(600)
    st = P.Status(7, 3, False, recording=True)
    assert P.unpack_status(P.pack_status(st)) == st and P.pack_status(st)[6] == 0x02
    rec = P.RecordedSamples(40, np.arange(12, dtype=np.float32).reshape(2, 6))
    back = P.unpack_recording(P.pack_recording(rec))
    assert back.first == 40 and np.array_equal(back.samples, rec.samples)


def test_pieces_of_a_window_carry_their_offset() -> None:
    assert P.pack_piece(512, b"\x01\x02") == b"\x00\x02\x01\x02"  # u16 LE offset, then bytes
    assert P.pack_get_window(256, 256) == b"\x00\x01\x00\x01"


def test_samples_chunks_respect_the_payload_limit_and_keep_order() -> None:
    x = np.random.default_rng(1).normal(size=(250, 12)).astype(np.float32)
    chunks = P.samples_chunks(x, max_payload=1632)
    assert all(len(c) <= 1632 and len(c) % 48 == 0 for c in chunks)
    back = np.concatenate([P.unpack_samples(c, 12) for c in chunks])
    np.testing.assert_array_equal(back, x)
    with pytest.raises(P.ProtocolError):
        P.unpack_samples(b"\x00" * 47, 12)


@pytest.mark.parametrize(
    "unpack", [P.unpack_info, P.unpack_result, P.unpack_status, P.unpack_prediction,
               P.unpack_error, P.unpack_labels, P.unpack_window_reply, P.unpack_loaded,
               P.unpack_recording],
)  # fmt: skip
def test_truncated_payloads_raise_protocol_error(unpack) -> None:
    full = {
        P.unpack_info: P.pack_info(_info()),
        P.unpack_result: P.pack_result(P.Result(1, 2, np.zeros(3, np.int8), np.ones(4, np.int8))),
        P.unpack_status: P.pack_status(P.Status(1, 2, False)),
        P.unpack_prediction: P.pack_prediction(P.Prediction(1, 2, 3, 4)),
        P.unpack_error: P.pack_error(P.ErrorReply(1, 2, 3)),
        P.unpack_labels: P.pack_labels(P.LabelsPage(2, 0, ["ab", "cd"])),
        P.unpack_window_reply: P.pack_window_reply(P.WindowReply(1, 0, np.ones(5, np.int8))),
        P.unpack_loaded: P.pack_loaded(P.Loaded(3)),
        P.unpack_recording: P.pack_recording(P.RecordedSamples(1, np.ones((2, 3), np.float32))),
    }[unpack]
    unpack(full)
    for cut in range(len(full)):
        with pytest.raises(P.ProtocolError):
            unpack(full[:cut])


def test_parse_message_dispatches_on_type() -> None:
    frame = P.Frame(P.MsgType.SAMPLES | P.REPLY, 3, P.pack_status(P.Status(5, 5, False)))
    assert P.parse_message(frame) == P.Status(5, 5, False)
    with pytest.raises(P.ProtocolError, match="unexpected frame type 0x42"):
        P.parse_message(P.Frame(0x42, 0, b""))
