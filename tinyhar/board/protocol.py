"""The serial protocol's host side: COBS frames with CRC-32, and every message's byte layout.

Mirrors `firmware_templates/tinyhar_core.c`; the byte-by-byte description is `docs/protocol.md`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from tinyhar.crc import crc32
from tinyhar.errors import TinyharError

PROTOCOL_VERSION = 5
HEADER_BYTES = 5  # version u8, type u8, seq u8, length u16
CRC_BYTES = 4
FRAME_OVERHEAD = HEADER_BYTES + CRC_BYTES
# The default device maximum (128 x 12 window + 64 outputs + 32); a device reports its own in HELLO.
MAX_PAYLOAD = 128 * 12 + 64 + 32
SEQ_UNKNOWN = 0xFF  # seq of an ERROR answering a frame too broken to read
REPLY = 0x80
INFER_RAW_WITH_WINDOW = 0x01
# Most payload bytes of window or samples a host puts in one frame: a 600-byte window rarely crosses
# a line that corrupts 1 byte in 1,000 whole, so it travels in pieces, each acknowledged and resent
# alone (benchmarks/verify_noise.py).
CHUNK = 256


class MsgType(IntEnum):
    HELLO = 0x01
    LABELS = 0x02
    INFER = 0x03
    SAMPLES = 0x04
    INFER_RAW = 0x05
    GET_WINDOW = 0x06
    RESET_BUFFER = 0x07
    STREAM_START = 0x08
    STREAM_STOP = 0x09
    LOAD = 0x0A
    RECORD_START = 0x0B
    RECORD_STOP = 0x0C
    PROFILE = 0x0D
    PREDICTION = 0xA0
    RECORDING = 0xA1
    ERROR = 0xE0


class ErrorCode(IntEnum):
    BAD_CRC = 1
    BAD_FRAME = 2
    TOO_LONG = 3
    BAD_VERSION = 4
    BAD_LENGTH = 5
    UNKNOWN_TYPE = 6
    WINDOW_NOT_FULL = 7
    INFER_FAILED = 8
    BAD_STATE = 9
    BAD_ARG = 10
    BAD_CONFIG = 11


ERROR_TEXT = {
    ErrorCode.BAD_CRC: "the device received a frame with a bad CRC",
    ErrorCode.BAD_FRAME: "the device received a malformed frame",
    ErrorCode.TOO_LONG: "the device received a frame longer than it accepts",
    ErrorCode.BAD_VERSION: "the device speaks another protocol version",
    ErrorCode.BAD_LENGTH: "the device rejected the payload length",
    ErrorCode.UNKNOWN_TYPE: "the device does not know this request",
    ErrorCode.WINDOW_NOT_FULL: "the device holds fewer samples than one window",
    ErrorCode.INFER_FAILED: "inference failed on the device",
    ErrorCode.BAD_STATE: "the device has no model to run",
    ErrorCode.BAD_ARG: "the device rejected an argument",
    ErrorCode.BAD_CONFIG: "the device's configuration is invalid",
}

# TFLite TensorType codes used in the dtype fields.
DTYPE_NAMES = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    7: "int16",
    9: "int8",
}
DTYPE_CODES = {name: code for code, name in DTYPE_NAMES.items()}


class ProtocolError(TinyharError):
    """A frame or payload that does not follow the protocol."""


class OtherVersionError(ProtocolError):
    """A whole frame (its CRC holds) of another protocol version: firmware of another tinyhar."""

    def __init__(self, version: int) -> None:
        super().__init__(f"protocol version {version}, expected {PROTOCOL_VERSION}")
        self.version = version


# --- frames --------------------------------------------------------------------------------


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode `data` (no delimiter added)."""
    out = bytearray([0])
    code_pos, code = 0, 1
    for b in data:
        if b == 0:
            out[code_pos] = code
            code_pos, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_pos] = code
                code_pos, code = len(out), 1
                out.append(0)
    out[code_pos] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Decode one COBS block sequence (no delimiter); raises ProtocolError when malformed."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == 0 or i + code - 1 > n:
            raise ProtocolError("malformed COBS data")
        block = data[i : i + code - 1]
        if 0 in block:
            raise ProtocolError("malformed COBS data")
        out += block
        i += code - 1
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes


def type_name(msg_type: int) -> str:
    """A message type's name for traces: HELLO, HELLO_REPLY, PREDICTION, ERROR, or 0x42."""
    if msg_type in MsgType.__members__.values():
        return MsgType(msg_type).name
    if msg_type & REPLY and (msg_type & ~REPLY) in MsgType.__members__.values():
        return MsgType(msg_type & ~REPLY).name + "_REPLY"
    return f"0x{msg_type:02x}"


def frame_bytes(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    """A decoded frame: header + payload + CRC-32 (what COBS encodes)."""
    if not 0 <= seq <= 0xFF or not 0 <= msg_type <= 0xFF:
        raise ProtocolError(f"type {msg_type} / seq {seq} out of range 0..255")
    if len(payload) > 0xFFFF:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds 65535")
    body = struct.pack("<BBBH", PROTOCOL_VERSION, msg_type, seq, len(payload)) + bytes(payload)
    return body + struct.pack("<I", crc32(body))


def encode_frame(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame on the wire: COBS(header + payload + CRC-32) followed by 0x00."""
    return cobs_encode(frame_bytes(msg_type, seq, payload)) + b"\x00"


def decode_frame(encoded: bytes) -> Frame:
    """Decode one frame (with or without its 0x00); raises ProtocolError naming the defect."""
    if encoded.endswith(b"\x00"):
        encoded = encoded[:-1]
    raw = cobs_decode(encoded)
    if len(raw) < FRAME_OVERHEAD:
        raise ProtocolError(f"frame of {len(raw)} bytes is shorter than {FRAME_OVERHEAD}")
    (crc,) = struct.unpack_from("<I", raw, len(raw) - CRC_BYTES)
    if crc != crc32(raw[:-CRC_BYTES]):
        raise ProtocolError("frame CRC mismatch")
    version, msg_type, seq, length = struct.unpack_from("<BBBH", raw)
    if version != PROTOCOL_VERSION:
        raise OtherVersionError(version)
    if length != len(raw) - FRAME_OVERHEAD:
        raise ProtocolError(f"length field {length} but {len(raw) - FRAME_OVERHEAD} payload bytes")
    return Frame(msg_type, seq, bytes(raw[HEADER_BYTES:-CRC_BYTES]))


class FrameDecoder:
    """Streaming decoder: feed any bytes, get the valid frames; garbage is counted and dropped."""

    def __init__(self, max_payload: int = 0xFFFF) -> None:
        self.max_encoded = FRAME_OVERHEAD + max_payload + (FRAME_OVERHEAD + max_payload) // 254 + 1
        self._buf = bytearray()
        self._overflow = False
        self.frames = 0  # valid frames returned
        self.bad_frames = 0  # delimited chunks that were not valid frames
        self.dropped_bytes = 0  # bytes discarded with bad or oversized frames
        self.other_version_frames = 0  # whole frames (CRC correct) of another protocol version
        self.other_version = 0  # the version the last of them carried

    def feed(self, data: bytes) -> list[Frame]:
        """Consume bytes; return the complete valid frames among them, in order."""
        frames: list[Frame] = []
        for chunk_end in _split_keep(data):
            part, complete = chunk_end
            if not self._overflow:
                self._buf += part
                if len(self._buf) > self.max_encoded:
                    self.dropped_bytes += len(self._buf)
                    self._buf.clear()
                    self._overflow = True
            else:
                self.dropped_bytes += len(part)
            if complete:
                frames.extend(self._finish())
        return frames

    def reset(self) -> None:
        """Forget a partly received frame (e.g. after a timeout)."""
        self.dropped_bytes += len(self._buf)
        self._buf.clear()
        self._overflow = False

    def _finish(self) -> list[Frame]:
        if self._overflow:
            self._overflow = False
            self.bad_frames += 1
            return []
        if not self._buf:
            return []  # back-to-back delimiters
        encoded = bytes(self._buf)
        self._buf.clear()
        try:
            frame = decode_frame(encoded)
        except OtherVersionError as e:
            self.other_version_frames += 1
            self.other_version = e.version
            self.bad_frames += 1
            self.dropped_bytes += len(encoded) + 1
            return []
        except ProtocolError:
            self.bad_frames += 1
            self.dropped_bytes += len(encoded) + 1
            return []
        self.frames += 1
        return [frame]


def _split_keep(data: bytes) -> list[tuple[bytes, bool]]:
    """Split at 0x00: (part, ends_with_delimiter) pairs."""
    parts = bytes(data).split(b"\x00")
    return [(p, i < len(parts) - 1) for i, p in enumerate(parts) if p or i < len(parts) - 1]


# --- messages ------------------------------------------------------------------------------


def _need(payload: bytes, n: int, what: str) -> None:
    if len(payload) < n:
        raise ProtocolError(f"{what} payload of {len(payload)} bytes, expected at least {n}")


@dataclass(frozen=True)
class TensorSpec:
    dtype: int  # TFLite TensorType code
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, f"type{self.dtype}")


class DeviceKind(IntEnum):
    """What answers on the port (HELLO's last byte; tinyhar_core.h's TINYHAR_DEVICE_*)."""

    BOARD = 0  # the firmware on a real board
    VIRTUAL = 1  # `tinyhar sim`: the firmware's C core on the host, the Python interpreter
    EMULATED = 2  # `tinyhar sim --emulate`: the firmware on QEMU's Cortex-M4F


@dataclass(frozen=True)
class DeviceInfo:
    protocol_version: int
    streaming: bool
    has_model: bool
    model_crc32: int
    arena_bytes: int
    window: int
    stride: int
    channels: int
    n_classes: int
    rate_hz: float
    max_payload: int
    samples_total: int
    input: TensorSpec
    output: TensorSpec
    core_version: str
    firmware_version: str
    board: str
    runner_status: int = 0  # RunnerStatus: why a device has no runnable model
    arena_used: int = 0  # arena bytes the device's interpreter uses (0: not reported)
    device_kind: DeviceKind = DeviceKind.BOARD

    def runner_problem(self) -> str:
        """What the runner's start-up code means, for a one-line error."""
        return RUNNER_PROBLEMS.get(self.runner_status, f"runner start-up code {self.runner_status}")


_INFO_HEAD = struct.Struct("<BBIIHHHHfHI")
_INFO_TAIL = struct.Struct("<BIB")  # runner status, arena used, device kind
# tinyhar_runner.h's TINYHAR_RUNNER_* codes
RUNNER_PROBLEMS = {
    0: "the model runs",
    1: "the model's schema version is not the firmware's TFLM's",
    2: "an op of the model could not be registered (resolver)",
    3: "the tensor arena is too small for the model (AllocateTensors failed)",
    4: "the model's input size is not window x channels",
    5: "the model's output size is not the number of classes",
    255: "the model runner was never started",
}


def _pack_tensor(t: TensorSpec) -> bytes:
    return (
        struct.pack("<BB", t.dtype, len(t.shape))
        + struct.pack(f"<{len(t.shape)}I", *t.shape)
        + struct.pack("<fi", t.scale, t.zero_point)
    )


def _unpack_tensor(p: bytes, o: int) -> tuple[TensorSpec, int]:
    _need(p, o + 2, "tensor")
    dtype, ndims = struct.unpack_from("<BB", p, o)
    o += 2
    _need(p, o + 4 * ndims + 8, "tensor")
    shape = struct.unpack_from(f"<{ndims}I", p, o)
    o += 4 * ndims
    scale, zp = struct.unpack_from("<fi", p, o)
    return TensorSpec(dtype, tuple(shape), scale, zp), o + 8


def _pack_str(s: str, limit: int = 255) -> bytes:
    b = s.encode("utf-8")[:limit]
    return bytes([len(b)]) + b


def _unpack_str(p: bytes, o: int) -> tuple[str, int]:
    _need(p, o + 1, "string")
    n = p[o]
    _need(p, o + 1 + n, "string")
    return p[o + 1 : o + 1 + n].decode("utf-8", errors="replace"), o + 1 + n


def pack_info(info: DeviceInfo) -> bytes:
    """HELLO reply payload (what the device sends)."""
    flags = (1 if info.streaming else 0) | (2 if info.has_model else 0)
    head = _INFO_HEAD.pack(
        info.protocol_version,
        flags,
        info.model_crc32,
        info.arena_bytes,
        info.window,
        info.stride,
        info.channels,
        info.n_classes,
        info.rate_hz,
        info.max_payload,
        info.samples_total,
    )
    return (
        head
        + _pack_tensor(info.input)
        + _pack_tensor(info.output)
        + _pack_str(info.core_version, 32)
        + _pack_str(info.firmware_version, 64)
        + _pack_str(info.board, 64)
        + _INFO_TAIL.pack(info.runner_status, info.arena_used, info.device_kind)
    )


def unpack_info(p: bytes) -> DeviceInfo:
    """Parse a HELLO reply payload."""
    _need(p, _INFO_HEAD.size, "HELLO reply")
    ver, flags, crc, arena, window, stride, ch, ncls, rate, maxp, total = _INFO_HEAD.unpack_from(p)
    o = _INFO_HEAD.size
    tin, o = _unpack_tensor(p, o)
    tout, o = _unpack_tensor(p, o)
    core, o = _unpack_str(p, o)
    fw, o = _unpack_str(p, o)
    board, o = _unpack_str(p, o)
    _need(p, o + _INFO_TAIL.size, "HELLO reply")
    status, used, kind = _INFO_TAIL.unpack_from(p, o)
    return DeviceInfo(
        ver,
        bool(flags & 1),
        bool(flags & 2),
        crc,
        arena,
        window,
        stride,
        ch,
        ncls,
        rate,
        maxp,
        total,
        tin,
        tout,
        core,
        fw,
        board,
        status,
        used,
        _device_kind(kind),
    )


def _device_kind(code: int) -> DeviceKind:
    try:
        return DeviceKind(code)
    except ValueError:
        raise ProtocolError(f"HELLO reply: unknown device kind {code}") from None


@dataclass(frozen=True)
class LabelsPage:
    total: int
    first: int
    labels: list[str]


def pack_labels_request(first: int = 0) -> bytes:
    return bytes([first])


def pack_labels(page: LabelsPage) -> bytes:
    return bytes([page.total, page.first, len(page.labels)]) + b"".join(
        _pack_str(s) for s in page.labels
    )


def unpack_labels(p: bytes) -> LabelsPage:
    _need(p, 3, "LABELS reply")
    total, first, count = p[0], p[1], p[2]
    o, labels = 3, []
    for _ in range(count):
        s, o = _unpack_str(p, o)
        labels.append(s)
    return LabelsPage(total, first, labels)


@dataclass(frozen=True)
class Result:
    latency_us: int
    samples_total: int
    output: np.ndarray  # int8 (n_classes,)
    window: np.ndarray | None  # int8 (window*channels,) when requested

    @property
    def top_class(self) -> int:
        return int(np.argmax(self.output))


def window_bytes(window: np.ndarray) -> bytes:
    """An int8 window as the device holds it: row-major (window, channels)."""
    return np.ascontiguousarray(window, dtype=np.int8).tobytes()


def pack_piece(offset: int, data: bytes) -> bytes:
    """LOAD / INFER payload: u16 offset into the int8 window, then that piece of it."""
    return struct.pack("<H", offset) + bytes(data)


@dataclass(frozen=True)
class Loaded:
    loaded: int  # bytes of the window the device holds, contiguous from 0


def pack_loaded(x: Loaded) -> bytes:
    return struct.pack("<H", x.loaded)


def unpack_loaded(p: bytes) -> Loaded:
    _need(p, 2, "LOADED")
    return Loaded(struct.unpack_from("<H", p)[0])


def pack_infer_raw(with_window: bool = False) -> bytes:
    return bytes([INFER_RAW_WITH_WINDOW if with_window else 0])


def pack_result(r: Result) -> bytes:
    out = np.asarray(r.output, dtype=np.int8)
    win = b"" if r.window is None else np.asarray(r.window, dtype=np.int8).tobytes()
    return (
        struct.pack("<IIH", r.latency_us, r.samples_total, out.size)
        + out.tobytes()
        + struct.pack("<H", len(win))
        + win
    )


def unpack_result(p: bytes) -> Result:
    _need(p, 10, "RESULT")
    latency, total, n_out = struct.unpack_from("<IIH", p)
    _need(p, 12 + n_out, "RESULT")
    out = np.frombuffer(p, dtype=np.int8, count=n_out, offset=10).copy()
    (n_win,) = struct.unpack_from("<H", p, 10 + n_out)
    _need(p, 12 + n_out + n_win, "RESULT")
    win = np.frombuffer(p, dtype=np.int8, count=n_win, offset=12 + n_out).copy() if n_win else None
    return Result(latency, total, out, win)


def pack_samples(samples: np.ndarray) -> bytes:
    """SAMPLES payload: (n, channels) float32 little-endian, row-major."""
    return np.ascontiguousarray(samples, dtype="<f4").tobytes()


def samples_chunks(samples: np.ndarray, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """SAMPLES payloads carrying all of `samples` (n, channels), each within `max_payload`."""
    samples = np.asarray(samples, dtype=np.float32)
    per = max(1, max_payload // (4 * samples.shape[1]))
    return [pack_samples(samples[i : i + per]) for i in range(0, len(samples), per)]


def unpack_samples(p: bytes, channels: int) -> np.ndarray:
    if len(p) == 0 or len(p) % (4 * channels):
        raise ProtocolError(f"SAMPLES payload of {len(p)} bytes is not n x {channels} float32")
    return np.frombuffer(p, dtype="<f4").reshape(-1, channels).astype(np.float32)


@dataclass(frozen=True)
class Status:
    samples_total: int
    fill: int
    streaming: bool
    recording: bool = False


_STATUS = struct.Struct("<IHB")
STATUS_STREAMING, STATUS_RECORDING = 0x01, 0x02


def pack_status(s: Status) -> bytes:
    flags = STATUS_STREAMING * s.streaming | STATUS_RECORDING * s.recording
    return _STATUS.pack(s.samples_total, s.fill, flags)


def unpack_status(p: bytes) -> Status:
    _need(p, _STATUS.size, "STATUS")
    total, fill, flags = _STATUS.unpack_from(p)
    return Status(total, fill, bool(flags & STATUS_STREAMING), bool(flags & STATUS_RECORDING))


@dataclass(frozen=True)
class RecordedSamples:
    """A RECORDING frame: raw IMU samples in board units, numbered from RECORD_START."""

    first: int  # index of samples[0] since RECORD_START
    samples: np.ndarray  # float32 (n, channels)


_RECORDING = struct.Struct("<IHB")


def pack_recording(r: RecordedSamples) -> bytes:
    x = np.ascontiguousarray(r.samples, dtype="<f4")
    return _RECORDING.pack(r.first, x.shape[0], x.shape[1]) + x.tobytes()


def unpack_recording(p: bytes) -> RecordedSamples:
    _need(p, _RECORDING.size, "RECORDING")
    first, n, channels = _RECORDING.unpack_from(p)
    _need(p, _RECORDING.size + 4 * n * channels, "RECORDING")
    x = np.frombuffer(p, dtype="<f4", count=n * channels, offset=_RECORDING.size)
    return RecordedSamples(first, x.reshape(n, channels).astype(np.float32))


def pack_get_window(offset: int, count: int) -> bytes:
    """GET_WINDOW payload: u16 offset into the int8 window, u16 bytes wanted."""
    return struct.pack("<HH", offset, count)


@dataclass(frozen=True)
class WindowReply:
    samples_total: int
    offset: int
    window: np.ndarray  # int8: the piece of the (window*channels,) window from `offset`


def pack_window_reply(w: WindowReply) -> bytes:
    data = np.asarray(w.window, dtype=np.int8).tobytes()
    return struct.pack("<IHH", w.samples_total, w.offset, len(data)) + data


def unpack_window_reply(p: bytes) -> WindowReply:
    _need(p, 8, "WINDOW")
    total, offset, n = struct.unpack_from("<IHH", p)
    _need(p, 8 + n, "WINDOW")
    return WindowReply(total, offset, np.frombuffer(p, dtype=np.int8, count=n, offset=8).copy())


@dataclass(frozen=True)
class Prediction:
    class_index: int
    confidence: int  # the top class's int8 output
    latency_us: int
    sample_counter: int


_PREDICTION = struct.Struct("<BbII")


def pack_prediction(p: Prediction) -> bytes:
    return _PREDICTION.pack(p.class_index, p.confidence, p.latency_us, p.sample_counter)


def unpack_prediction(p: bytes) -> Prediction:
    _need(p, _PREDICTION.size, "PREDICTION")
    return Prediction(*_PREDICTION.unpack_from(p))


class ProfileUnit(IntEnum):
    """What a PROFILE page counts: set by the firmware's clock (tinyhar_core.h)."""

    NONE = 0  # no profiler compiled in (`tinyhar build --profile` adds one)
    INSTRUCTIONS = 1  # the emulated board: QEMU -icount, one instruction per ns of virtual time
    CYCLES = 2  # a Cortex-M4/M7's DWT cycle counter
    MICROSECONDS = 3  # micros(), on cores without a cycle counter
    NANOSECONDS = 4  # the host


PROFILE_UNIT_NAMES = {
    ProfileUnit.NONE: "none",
    ProfileUnit.INSTRUCTIONS: "instructions",
    ProfileUnit.CYCLES: "cycles",
    ProfileUnit.MICROSECONDS: "us",
    ProfileUnit.NANOSECONDS: "ns",
}


@dataclass(frozen=True)
class ProfilePage:
    """Per-node counts of the device's last inference, nodes first .. first+len(counts)-1."""

    unit: int  # ProfileUnit
    nodes: int  # nodes the profile holds (0: none yet, or no profiler)
    first: int
    counts: list[int]


_PROFILE_HEAD = struct.Struct("<BHHB")


def pack_profile_request(first: int = 0) -> bytes:
    return struct.pack("<H", first)


def pack_profile(page: ProfilePage) -> bytes:
    head = _PROFILE_HEAD.pack(page.unit, page.nodes, page.first, len(page.counts))
    return head + struct.pack(f"<{len(page.counts)}I", *page.counts)


def unpack_profile(p: bytes) -> ProfilePage:
    _need(p, _PROFILE_HEAD.size, "PROFILE reply")
    unit, nodes, first, count = _PROFILE_HEAD.unpack_from(p)
    _need(p, _PROFILE_HEAD.size + 4 * count, "PROFILE reply")
    counts = list(struct.unpack_from(f"<{count}I", p, _PROFILE_HEAD.size))
    return ProfilePage(unit, nodes, first, counts)


@dataclass(frozen=True)
class ErrorReply:
    code: int
    request_type: int  # 0 when the frame could not be read
    detail: int

    def describe(self) -> str:
        """One line for users."""
        try:
            text = ERROR_TEXT[ErrorCode(self.code)]
        except ValueError:
            text = f"the device reported error {self.code}"
        return f"{text} (code {self.code}, request 0x{self.request_type:02x}, detail {self.detail})"


_ERROR = struct.Struct("<BBI")


def pack_error(e: ErrorReply) -> bytes:
    return _ERROR.pack(e.code, e.request_type, e.detail)


def unpack_error(p: bytes) -> ErrorReply:
    _need(p, _ERROR.size, "ERROR")
    return ErrorReply(*_ERROR.unpack_from(p))


_REPLY_PARSERS = {
    MsgType.HELLO | REPLY: unpack_info,
    MsgType.LABELS | REPLY: unpack_labels,
    MsgType.INFER | REPLY: unpack_result,
    MsgType.INFER_RAW | REPLY: unpack_result,
    MsgType.SAMPLES | REPLY: unpack_status,
    MsgType.GET_WINDOW | REPLY: unpack_window_reply,
    MsgType.LOAD | REPLY: unpack_loaded,
    MsgType.RESET_BUFFER | REPLY: unpack_status,
    MsgType.STREAM_START | REPLY: unpack_status,
    MsgType.STREAM_STOP | REPLY: unpack_status,
    MsgType.PREDICTION: unpack_prediction,
    MsgType.RECORDING: unpack_recording,
    MsgType.RECORD_START | REPLY: unpack_status,
    MsgType.RECORD_STOP | REPLY: unpack_status,
    MsgType.PROFILE | REPLY: unpack_profile,
    MsgType.ERROR: unpack_error,
}


def parse_message(frame: Frame):
    """The message a device frame carries (DeviceInfo, Result, Status, ..., ErrorReply)."""
    parser = _REPLY_PARSERS.get(frame.type)
    if parser is None:
        raise ProtocolError(f"unexpected frame type 0x{frame.type:02x} from the device")
    return parser(frame.payload)
