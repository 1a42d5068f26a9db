"""The firmware core built for the host and driven through core_lib with a Python model hook."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from tinyhar.board import protocol as P
from tinyhar.board.preprocess import PreprocessConfig, quantize_window
from tinyhar.device.core_lib import CoreConfig, CoreDevice, build_core_library
from tinyhar.errors import TinyharError

WINDOW, CH, NCLS = 20, 6, 5


def _config(**kw) -> CoreConfig:
    pre = PreprocessConfig(
        unit_factor=[9.80665] * 3 + [1.0] * 3,
        axis_src=[1, 0, 2, 3, 4, 5],
        axis_sign=[-1, -1, 1, 1, 1, 1],
        mean=[0.5, -9.8, 0.1, 1.0, -2.0, 0.0],
        inv_std=[0.25, 0.3, 0.2, 0.01, 0.02, 0.015],
        input_scale=0.03125,
        input_zero_point=-5,
    )
    args = dict(
        window=WINDOW, stride=8, rate_hz=50.0, preprocess=pre,
        input=P.TensorSpec(9, (1, WINDOW, CH), 0.03125, -5),
        output=P.TensorSpec(9, (1, NCLS), 1 / 256, -128),
        model_crc32=0x1234ABCD, arena_bytes=9000, board_name="testboard",
        firmware_version="9.9.9", labels=[f"activity {i}" for i in range(NCLS)],
    )  # fmt: skip
    args.update(kw)
    return CoreConfig(**args)


def _model(window: np.ndarray) -> np.ndarray:
    """A deterministic stand-in model: outputs depend on the window's bytes."""
    w = window.astype(np.int32)
    return np.array([(w[i::NCLS].sum() % 255) - 127 for i in range(NCLS)], dtype=np.int8)


class Host:
    def __init__(self, dev: CoreDevice) -> None:
        self.dev, self.dec, self.seq = dev, P.FrameDecoder(), 0

    def send_raw(self, data: bytes) -> list[P.Frame]:
        return self.dec.feed(self.dev.feed(data))

    def request(self, msg_type: int, payload: bytes = b""):
        self.seq = (self.seq + 1) % 255
        frames = self.send_raw(P.encode_frame(msg_type, self.seq, payload))
        assert len(frames) == 1 and frames[0].seq == self.seq
        assert frames[0].type in (msg_type | P.REPLY, P.MsgType.ERROR)
        return P.parse_message(frames[0])


@pytest.fixture
def host() -> Host:
    return Host(CoreDevice(_config(), _model, micros=_fake_clock()))


def _fake_clock():
    t = [0]

    def micros() -> int:
        t[0] += 250  # each reading 250 us later: a measured latency of 250
        return t[0]

    return micros


def test_library_is_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lib = build_core_library()
    assert lib.is_file() and tmp_path / "tinyhar" / "core" in lib.parents
    mtime = lib.stat().st_mtime_ns
    assert build_core_library() == lib and lib.stat().st_mtime_ns == mtime


def test_hello_reports_the_configuration(host: Host) -> None:
    info = host.request(P.MsgType.HELLO)
    assert isinstance(info, P.DeviceInfo)
    assert (info.model_crc32, info.arena_bytes, info.board) == (0x1234ABCD, 9000, "testboard")
    assert (info.window, info.stride, info.channels, info.n_classes) == (WINDOW, 8, CH, NCLS)
    assert info.input == P.TensorSpec(9, (1, WINDOW, CH), 0.03125, -5)
    assert info.output.shape == (1, NCLS) and info.output.zero_point == -128
    assert info.firmware_version == "9.9.9" and info.has_model
    assert info.protocol_version == P.PROTOCOL_VERSION
    assert (info.runner_status, info.arena_used) == (0, 0)  # no runner reported its start-up
    assert info.device_kind == P.DeviceKind.VIRTUAL  # the core on the host says what it is
    page = host.request(P.MsgType.LABELS, P.pack_labels_request(0))
    assert page.total == NCLS and page.labels == [f"activity {i}" for i in range(NCLS)]
    page = host.request(P.MsgType.LABELS, P.pack_labels_request(3))
    assert page.first == 3 and page.labels == ["activity 3", "activity 4"]


def test_infer_runs_the_hook_on_the_window_sent(host: Host) -> None:
    win = np.random.default_rng(3).integers(-128, 128, WINDOW * CH).astype(np.int8)
    res = host.request(P.MsgType.INFER, P.pack_piece(0, win.tobytes()))
    assert isinstance(res, P.Result)
    np.testing.assert_array_equal(res.output, _model(win))
    assert res.latency_us == 250 and res.window is None


def test_a_window_sent_in_pieces_is_the_window(host: Host) -> None:
    """LOAD pieces in order (a repeated one is harmless), then INFER with the last; a piece past
    what the device holds is refused with how much it holds, so the host resumes from there."""
    win = np.random.default_rng(8).integers(-128, 128, WINDOW * CH).astype(np.int8)
    data = win.tobytes()
    assert host.request(P.MsgType.LOAD, P.pack_piece(0, data[:50])) == P.Loaded(50)
    assert host.request(P.MsgType.LOAD, P.pack_piece(0, data[:50])) == P.Loaded(50)
    err = host.request(P.MsgType.LOAD, P.pack_piece(60, data[60:100]))
    assert (err.code, err.detail) == (P.ErrorCode.WINDOW_NOT_FULL, 50)
    assert host.request(P.MsgType.LOAD, P.pack_piece(50, data[50:100])) == P.Loaded(100)
    err = host.request(P.MsgType.INFER, P.pack_piece(100, data[100:110]))  # does not end it
    assert (err.code, err.detail) == (P.ErrorCode.BAD_LENGTH, WINDOW * CH)
    res = host.request(P.MsgType.INFER, P.pack_piece(100, data[100:]))
    np.testing.assert_array_equal(res.output, _model(win))
    # the INFER is idempotent: asked again, the same answer
    again = host.request(P.MsgType.INFER, P.pack_piece(100, data[100:]))
    np.testing.assert_array_equal(again.output, res.output)
    # a window computed from raw samples replaces the host's: its pieces must come again
    host.request(P.MsgType.SAMPLES, P.pack_samples(np.zeros((WINDOW, CH), np.float32)))
    host.request(P.MsgType.INFER_RAW, P.pack_infer_raw(False))
    err = host.request(P.MsgType.INFER, P.pack_piece(100, data[100:]))
    assert (err.code, err.detail) == (P.ErrorCode.WINDOW_NOT_FULL, 0)


def test_raw_samples_are_preprocessed_like_python(host: Host) -> None:
    rng = np.random.default_rng(4)
    raw = rng.normal(0, 2, size=(WINDOW + 13, CH)).astype(np.float32)
    st = host.request(P.MsgType.RESET_BUFFER)
    assert st == P.Status(0, 0, False)
    for i, chunk in enumerate(P.samples_chunks(raw, max_payload=7 * CH * 4)):
        st = host.request(P.MsgType.SAMPLES, chunk)
        assert st.samples_total == min((i + 1) * 7, len(raw))
    assert st.fill == WINDOW
    res = host.request(P.MsgType.INFER_RAW, P.pack_infer_raw(True))
    expected = quantize_window(raw[-WINDOW:], host.dev.config.preprocess).reshape(-1)
    np.testing.assert_array_equal(res.window, expected)
    np.testing.assert_array_equal(res.output, _model(expected))
    assert res.samples_total == len(raw)
    got = host.request(P.MsgType.GET_WINDOW, P.pack_get_window(0, 0xFFFF))
    assert (got.offset, got.samples_total) == (0, len(raw))
    np.testing.assert_array_equal(got.window, expected)
    got = host.request(P.MsgType.GET_WINDOW, P.pack_get_window(30, 17))
    assert got.offset == 30
    np.testing.assert_array_equal(got.window, expected[30:47])
    assert host.request(P.MsgType.GET_WINDOW, P.pack_get_window(WINDOW * CH, 5)).window.size == 0
    err = host.request(P.MsgType.GET_WINDOW, P.pack_get_window(WINDOW * CH + 1, 5))
    assert (err.code, err.detail) == (P.ErrorCode.BAD_ARG, WINDOW * CH + 1)


def test_a_retried_samples_frame_is_not_appended_twice(host: Host) -> None:
    chunk = P.pack_samples(np.ones((3, CH), np.float32))
    frame = P.encode_frame(P.MsgType.SAMPLES, 42, chunk)
    first = P.parse_message(host.send_raw(frame)[0])
    again = P.parse_message(host.send_raw(frame)[0])
    assert first.samples_total == again.samples_total == 3
    other = P.encode_frame(P.MsgType.SAMPLES, 43, chunk)
    assert P.parse_message(host.send_raw(other)[0]).samples_total == 6


def _error(host: Host, data: bytes) -> tuple[P.ErrorReply, int]:
    frames = host.send_raw(data)
    assert len(frames) == 1 and frames[0].type == P.MsgType.ERROR
    return P.unpack_error(frames[0].payload), frames[0].seq


def test_every_broken_request_gets_an_error_with_a_code(host: Host) -> None:
    good = P.encode_frame(P.MsgType.HELLO, 9)
    body = bytearray(P.cobs_decode(good[:-1]))
    body[-1] ^= 0x40
    assert _error(host, P.cobs_encode(bytes(body)) + b"\0") == (P.ErrorReply(1, 0, 0), 0xFF)
    assert _error(host, b"\x01\x02\x03\x00")[0].code == P.ErrorCode.BAD_FRAME
    assert _error(host, b"\x09\x01\x00")[0].code == P.ErrorCode.BAD_FRAME  # truncated COBS
    err, seq = _error(host, b"\x05" * 5000 + b"\x00")
    assert (err.code, seq) == (P.ErrorCode.TOO_LONG, 0xFF)
    err, seq = _error(host, P.encode_frame(0x33, 17))
    assert (err.code, err.request_type, seq) == (P.ErrorCode.UNKNOWN_TYPE, 0x33, 17)
    err, _ = _error(host, P.encode_frame(P.MsgType.INFER, 18, P.pack_piece(0, b"\x01" * 7)))
    assert (err.code, err.detail) == (P.ErrorCode.BAD_LENGTH, WINDOW * CH)
    err, _ = _error(host, P.encode_frame(P.MsgType.INFER, 18, b"\x01"))
    assert (err.code, err.detail) == (P.ErrorCode.BAD_LENGTH, 2)
    err, _ = _error(host, P.encode_frame(P.MsgType.LOAD, 18, P.pack_piece(0, b"")))
    assert (err.code, err.detail) == (P.ErrorCode.BAD_LENGTH, 3)
    err, _ = _error(host, P.encode_frame(P.MsgType.GET_WINDOW, 18))
    assert (err.code, err.detail) == (P.ErrorCode.BAD_LENGTH, 4)
    err, _ = _error(host, P.encode_frame(P.MsgType.SAMPLES, 19, b"\x01" * 7))
    assert (err.code, err.detail) == (P.ErrorCode.BAD_LENGTH, CH * 4)
    err, _ = _error(host, P.encode_frame(P.MsgType.INFER_RAW, 20, b"\x00"))
    assert (err.code, err.detail) == (P.ErrorCode.WINDOW_NOT_FULL, 0)
    err, _ = _error(host, P.encode_frame(P.MsgType.INFER_RAW, 21, b"\x02"))
    assert err.code == P.ErrorCode.BAD_ARG
    err, _ = _error(host, P.encode_frame(P.MsgType.LABELS, 22, b"\x09"))
    assert err.code == P.ErrorCode.BAD_ARG
    # after all that garbage the device still answers normally
    assert isinstance(host.request(P.MsgType.HELLO), P.DeviceInfo)


def test_hook_failure_and_missing_model_are_reported() -> None:
    def broken(_w):
        raise RuntimeError("invoke failed")

    dev = CoreDevice(_config(), broken)
    host = Host(dev)
    err = host.request(P.MsgType.INFER, P.pack_piece(0, bytes(WINDOW * CH)))
    assert err.code == P.ErrorCode.INFER_FAILED and isinstance(dev.hook_errors[0], RuntimeError)
    host = Host(CoreDevice(_config(), None))
    err = host.request(P.MsgType.INFER, P.pack_piece(0, bytes(WINDOW * CH)))
    assert err.code == P.ErrorCode.BAD_STATE
    assert not host.request(P.MsgType.HELLO).has_model


def test_stream_pushes_a_prediction_every_stride(host: Host) -> None:
    assert not host.dev.streaming
    assert host.request(P.MsgType.STREAM_START).streaming and host.dev.streaming
    rng = np.random.default_rng(5)
    raw = rng.normal(size=(WINDOW + 20, CH)).astype(np.float32)
    preds = []
    for i, s in enumerate(raw):
        for f in host.dec.feed(host.dev.push_sample(s)):
            assert f.type == P.MsgType.PREDICTION
            preds.append((i + 1, f.seq, P.unpack_prediction(f.payload)))
    # first when the window is full, then every stride (8) samples
    assert [n for n, _, _ in preds] == [20, 28, 36]
    assert [seq for _, seq, _ in preds] == [0, 1, 2]
    for n, _, p in preds:
        out = _model(quantize_window(raw[n - WINDOW : n], host.dev.config.preprocess).ravel())
        assert p.class_index == int(np.argmax(out)) and p.confidence == out.max()
        assert p.sample_counter == n and p.latency_us == 250
    assert not host.request(P.MsgType.STREAM_STOP).streaming and not host.dev.streaming
    assert host.dev.push_sample(raw[0]) == b""


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(TinyharError, match="rejected the configuration"):
        CoreDevice(_config(stride=0), _model)
    with pytest.raises(TinyharError, match="rejected the configuration"):
        CoreDevice(_config(input=P.TensorSpec(9, (1, 7, CH), 0.03125, -5)), _model)


def test_recording_sends_every_sample_in_numbered_frames(host: Host) -> None:
    """RECORD_START .. RECORD_STOP: each IMU sample goes to the host in board units, in RECORDING
    frames of 240 bytes at most; a retried RECORD_START keeps the count; RECORD_STOP sends what
    waits before its STATUS."""
    st = host.request(P.MsgType.RECORD_START)
    assert st.recording and not st.streaming
    raw = np.random.default_rng(9).normal(0, 3, (23, CH)).astype(np.float32)
    frames = []
    for s in raw[:12]:
        frames += host.dec.feed(host.dev.push_sample(s))
    assert host.request(P.MsgType.RECORD_START).recording  # retried: no restart
    for s in raw[12:]:
        frames += host.dec.feed(host.dev.push_sample(s))
    assert [f.type for f in frames] == [P.MsgType.RECORDING] * 2  # 10 samples of 24 bytes each
    stop = host.send_raw(P.encode_frame(P.MsgType.RECORD_STOP, 77))
    assert [f.type for f in stop] == [P.MsgType.RECORDING, P.MsgType.RECORD_STOP | P.REPLY]
    assert not P.parse_message(stop[1]).recording
    got = [P.parse_message(f) for f in frames + stop[:1]]
    assert [f.seq for f in frames + stop[:1]] == [0, 1, 2]
    assert [(g.first, len(g.samples)) for g in got] == [(0, 10), (10, 10), (20, 3)]
    np.testing.assert_array_equal(np.concatenate([g.samples for g in got]), raw)
    assert host.dev.push_sample(raw[0]) == b""  # stopped: nothing more


class _ProfileStruct(ctypes.Structure):
    _fields_ = [("unit", ctypes.c_uint8), ("nodes", ctypes.c_uint16),
                ("counts", ctypes.POINTER(ctypes.c_uint32))]  # fmt: skip


def test_profile_pages_the_runner_s_per_node_counts(host: Host) -> None:
    """PROFILE answers 'no profiler' until a runner sets its profile, then pages its counts; a
    first node past the profile and a wrong length are refused."""
    lib = host.dev._lib
    lib.tinyhar_set_profile(None)
    assert host.request(P.MsgType.PROFILE, P.pack_profile_request(0)) == P.ProfilePage(
        P.ProfileUnit.NONE, 0, 0, []
    )
    counts = (ctypes.c_uint32 * 300)(*[7 * k + 1 for k in range(300)])
    profile = _ProfileStruct(P.ProfileUnit.INSTRUCTIONS, 300, counts)
    lib.tinyhar_set_profile(ctypes.byref(profile))
    try:
        got: list[int] = []
        while len(got) < 300:
            page = host.request(P.MsgType.PROFILE, P.pack_profile_request(len(got)))
            assert (page.unit, page.nodes, page.first) == (P.ProfileUnit.INSTRUCTIONS, 300,
                                                           len(got))  # fmt: skip
            assert 0 < len(page.counts) <= 255
            got += page.counts
        assert got == [7 * k + 1 for k in range(300)]
        err = host.request(P.MsgType.PROFILE, P.pack_profile_request(301))
        assert isinstance(err, P.ErrorReply) and err.code == P.ErrorCode.BAD_ARG
        assert err.detail == 300
        err = host.request(P.MsgType.PROFILE, b"\x00")
        assert err.code == P.ErrorCode.BAD_LENGTH
    finally:
        lib.tinyhar_set_profile(None)
