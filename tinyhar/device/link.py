"""The host side of the serial link: requests with timeouts, bounded retries and resynchronisation.

Every failure ends in one `TinyharError` line: a port that cannot be opened, a device that does not
answer, answers with an error, or disappears mid-run.
"""

from __future__ import annotations

import dataclasses
import errno
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
import serial

from tinyhar.board import protocol as P
from tinyhar.errors import TinyharError

DEFAULT_TIMEOUT = 1.0  # seconds per attempt, plus transfer time
DEFAULT_RETRIES = 3
DEFAULT_BAUD = 115200  # ignored by USB CDC and ptys; used to estimate transfer time
POLL = 0.02  # seconds one read waits at most, so deadlines are kept to this resolution
TRACE_WIDTH = 32  # bytes per line of a --trace hex dump
RESUMES = 3  # times one window's pieces are resumed where the device says it lost them
_UNREAD = "the device could not read the request"  # its ERROR with seq 0xFF: send again at once
_GARBLED = "a reply that does not parse"
_CORRUPTED = "a corrupted frame"  # bad CRC or broken COBS: most likely the reply, send again
FAST_ATTEMPTS = 64  # attempts that end at once in corruption, before a request gives up
# A line on which most frames arrive corrupted is given up on across requests too: when LINE_BAD of
# the last LINE_ATTEMPTS attempts ended in corruption. A line that corrupts or drops 1 byte in 100
# each way spoils about 94 % of 265-byte frames, one of 1 in 1,000 about 45 %.
LINE_ATTEMPTS = 100
LINE_BAD = 90
# Once a request type has been answered, a first attempt waits WAIT_FACTOR times its slowest recent
# reply (at least WAIT_FLOOR) rather than the whole timeout: a frame whose delimiter the line lost
# is then resent after tens of milliseconds, not a second (benchmarks/verify_noise.py). Each
# further silent attempt waits twice as long, and the last one the whole timeout.
WAIT_FLOOR = 0.05
WAIT_FACTOR = 4.0
WAIT_HISTORY = 32  # replies per request type that the wait is judged on


class LinkError(TinyharError):
    """The link failed: no reply after the retries, or the port went away."""


class DeviceError(TinyharError):
    """The device answered a request with an ERROR frame."""

    def __init__(self, request: str, reply: P.ErrorReply) -> None:
        super().__init__(f"{request}: {reply.describe()}")
        self.reply = reply


@dataclasses.dataclass
class LinkStats:
    """What crossed the wire, for reports and benchmarks."""

    bytes_sent: int = 0
    bytes_received: int = 0
    requests: int = 0
    retries: int = 0


def open_error(port: str, exc: BaseException) -> TinyharError:
    """One line for a port that cannot be opened, with what to do about it."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or "No such file" in text:
        return LinkError(
            f"serial port {port} does not exist: connect the board and pass its port "
            "(ls /dev/ttyACM* /dev/ttyUSB*), or start a virtual board with `tinyhar sim`"
        )
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return LinkError(
            f"no permission to open {port}: add yourself to the dialout group "
            "(sudo usermod -aG dialout $USER) and log in again"
        )
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in text.lower():
        return LinkError(
            f"serial port {port} is busy: close the program holding it (serial monitor, "
            "another tinyhar) and try again"
        )
    return LinkError(f"cannot open serial port {port}: {text.splitlines()[0] if text else exc}")


@dataclasses.dataclass
class _Evidence:
    """What a request's failed attempts saw, for the one line that says why."""

    problem: str  # the last problem seen: "no reply", _UNREAD or _GARBLED
    unreadable: int  # frames that arrived but did not decode (bad CRC, broken COBS)
    received: int  # bytes that arrived meanwhile
    took: list[float]  # seconds each attempt really took
    frames: dict[str, int] = dataclasses.field(default_factory=dict)  # whole frames, by kind
    error: P.ErrorReply | None = None  # the last ERROR frame that did not answer this request


class Link:
    """A request/reply session with a tinyhar device on a serial port."""

    def __init__(
        self,
        port: str,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        baudrate: int = DEFAULT_BAUD,
        trace: bool | Callable[[str], None] = False,
    ) -> None:
        """`trace`: True prints a hex dump of every frame sent and received on stderr (--trace);
        a callable gets each dump's text instead."""
        if timeout <= 0:
            raise TinyharError(f"--timeout {timeout}: give a positive number of seconds")
        if retries < 0:
            raise TinyharError(f"--retries {retries}: give 0 or more")
        self.port, self.timeout, self.retries, self.baudrate = port, timeout, retries, baudrate
        self._trace = _stderr_line if trace is True else trace or None
        self._t0 = time.monotonic()
        try:
            self._ser = serial.Serial(
                port,
                baudrate=baudrate,
                timeout=POLL,
                write_timeout=timeout + 1.0,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as e:
            raise open_error(port, e) from None
        self.decoder = P.FrameDecoder()
        self.stats = LinkStats()
        self.info: P.DeviceInfo | None = None
        self.predictions: deque[P.Prediction] = deque(maxlen=4096)
        self.recorded: deque[P.RecordedSamples] = deque()  # RECORDING frames not yet read
        self._seq = random.randrange(255)  # a fresh session does not reuse a stale reply's seq
        self._pending: deque[P.Frame] = deque()
        self._reply_times: dict[int, deque[float]] = {}
        self._spoiled: deque[bool] = deque(maxlen=LINE_ATTEMPTS)  # attempts ended in corruption
        # whole frames that answered no request: ERRORs, replies of another seq, PREDICTIONs and
        # RECORDINGs; a request that gets no reply says which came instead
        self._unmatched = {"error": 0, "stale": 0, "unsolicited": 0}
        self._last_error: P.ErrorReply | None = None
        try:
            self._ser.reset_input_buffer()
            self._write(b"\x00")  # flush a half-received frame in the device
        except (serial.SerialException, OSError) as e:
            self.close()
            raise open_error(port, e) from None
        except TinyharError:
            self.close()
            raise

    # --- plumbing --------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self._ser.close()
        except (serial.SerialException, OSError):
            pass

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _gone(self, what: str, exc: BaseException) -> LinkError:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return LinkError(
            f"the device on {self.port} went away during {what} ({detail}): check the cable "
            "and that the board (or `tinyhar sim`) is still running, then try again"
        )

    def _write(self, data: bytes, what: str = "opening") -> None:
        try:
            self._ser.write(data)
            self._ser.flush()
        except serial.SerialTimeoutException:
            raise LinkError(
                f"writing to {self.port} timed out during {what}: the device does not read; "
                "reset the board and try again"
            ) from None
        except (serial.SerialException, OSError) as e:
            raise self._gone(what, e) from None
        self.stats.bytes_sent += len(data)

    def _read_frames(self, deadline: float, what: str) -> list[P.Frame]:
        """Frames arriving before `deadline` (may be empty on timeout)."""
        if deadline <= time.monotonic():
            return []
        try:
            data = self._ser.read(self._ser.in_waiting or 1)  # returns at the first byte or POLL
        except (serial.SerialException, OSError) as e:
            raise self._gone(what, e) from None
        self.stats.bytes_received += len(data)
        if self._trace is None:
            return self.decoder.feed(data)
        bad, dropped = self.decoder.bad_frames, self.decoder.dropped_bytes
        frames = self.decoder.feed(data)
        for f in frames:
            self._trace_frame("<<", f.type, f.seq, f.payload)
        if self.decoder.bad_frames > bad:
            self._trace(
                f"TRACE {self._since()} << {self.decoder.bad_frames - bad} unreadable frame(s), "
                f"{self.decoder.dropped_bytes - dropped} bytes dropped"
            )
        return frames

    def _since(self) -> str:
        return f"+{time.monotonic() - self._t0:.3f}s"

    def _trace_frame(self, direction: str, msg_type: int, seq: int, payload: bytes) -> None:
        """One frame's dump: direction, time, type name, seq, payload length, then the decoded
        frame's bytes (header, payload, CRC-32; before COBS), TRACE_WIDTH bytes a line."""
        if self._trace is None:
            return
        raw = P.frame_bytes(msg_type, seq, payload)
        rows = [raw[i : i + TRACE_WIDTH].hex(" ") for i in range(0, len(raw), TRACE_WIDTH)]
        head = (
            f"TRACE {self._since()} {direction} {P.type_name(msg_type)} seq {seq} "
            f"len {len(payload)}: "
        )
        self._trace(head + "\n    ".join(rows))

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) % 255  # 0..254; 0xFF is the device's "unreadable frame"
        return self._seq

    def transfer_time(self, n_bytes: int) -> float:
        """Seconds `n_bytes` take at the nominal baud rate (10 bits per byte)."""
        return n_bytes * 10.0 / self.baudrate

    # --- requests --------------------------------------------------------------------------

    def request(self, msg_type: int, payload: bytes = b""):
        """Send one request and return the parsed reply; retries with the same seq (every request
        is idempotent) on silence, and at once on an unreadable-frame ERROR or a corrupted reply.

        Silent attempts are limited by `retries`; the first waits a few times the slowest recent
        reply of its type, each further one twice as long, the last the whole timeout. Corrupted
        attempts cost milliseconds and may repeat up to FAST_ATTEMPTS, so a noisy line completes
        and a dead one stops in bounded time. Raises DeviceError, LinkError."""
        name = P.MsgType(msg_type).name
        seq = self.next_seq()
        frame = P.encode_frame(msg_type, seq, payload)
        transfer = self.transfer_time(len(frame) + 64 + P.MAX_PAYLOAD)
        problem = "no reply"
        self.stats.requests += 1
        bad, received = self.decoder.bad_frames, self.stats.bytes_received
        took: list[float] = []
        other, unmatched = self.decoder.other_version_frames, dict(self._unmatched)
        self._last_error = None
        silent = 0
        first = time.monotonic()
        while silent <= self.retries and len(took) < FAST_ATTEMPTS:
            if took:
                self.stats.retries += 1
                self.decoder.reset()
            start = time.monotonic()
            self._send(frame, msg_type, seq, payload, name)
            wait = self._wait(msg_type, silent)
            reply, seen = self._await_reply(msg_type, seq, start + wait + transfer, name)
            if self.decoder.other_version_frames > other:
                raise self._other_version(name)
            if reply is not None:
                # from the first attempt: a late reply to an earlier attempt is not taken as fast
                self._reply_times.setdefault(msg_type, deque(maxlen=WAIT_HISTORY)).append(
                    time.monotonic() - first
                )
                self._spoiled.append(False)
                return reply
            took.append(time.monotonic() - start)
            silent += seen is None
            problem = seen or problem
            self._spoiled.append(seen is not None)
            if sum(self._spoiled) >= LINE_BAD:
                break
        evidence = _Evidence(
            problem,
            self.decoder.bad_frames - bad,
            self.stats.bytes_received - received,
            took,
            {k: self._unmatched[k] - unmatched[k] for k in unmatched},
            self._last_error,
        )
        raise self._failed(name, evidence)

    def _other_version(self, name: str) -> LinkError:
        """A whole frame of another protocol version came back: the board's firmware was made by
        another tinyhar; no cable or retry fixes that."""
        version = self.decoder.other_version
        return LinkError(
            f"{name} to {self.port}: this board runs firmware of protocol {version}, this tinyhar "
            f"speaks protocol {P.PROTOCOL_VERSION}: rebuild and flash it (`tinyhar build`, "
            "`tinyhar flash`)"
        )

    def _wait(self, msg_type: int, silent: int) -> float:
        """Seconds an attempt waits for its reply, after `silent` attempts that got none."""
        seen = self._reply_times.get(msg_type)
        if not seen or silent >= self.retries:
            return self.timeout
        return min(self.timeout, max(WAIT_FLOOR, WAIT_FACTOR * max(seen)) * 2**silent)

    def _send(self, frame: bytes, msg_type: int, seq: int, payload: bytes, name: str) -> None:
        """Write one encoded request frame and a second delimiter (and trace it): a line that
        corrupts or drops one delimiter still ends the frame, so the device answers (at worst
        that it could not read it) instead of waiting for the next frame in silence."""
        self._trace_frame(">>", msg_type, seq, payload)
        self._write(frame + b"\x00", name)

    def _await_reply(self, msg_type: int, seq: int, deadline: float, name: str):
        """Read until the reply to request `seq` arrives, a frame arrives corrupted or the device
        says it could not read a request (send again), or `deadline` passes. Returns (reply or
        None, the problem seen or None for silence); raises DeviceError when the device answers
        `seq` with an ERROR."""
        bad = self.decoder.bad_frames
        while True:
            frames = self._read_frames(deadline, name)
            if not frames and time.monotonic() >= deadline:
                return None, None
            problem = None
            for f in frames:  # the whole batch: a reply after an unreadable-frame ERROR counts
                reply, seen = self._match(f, msg_type | P.REPLY, seq, name)
                if reply is not None:
                    return reply, None
                problem = seen or problem
            if problem is None and self.decoder.bad_frames > bad:
                problem = _CORRUPTED
            if problem is not None:
                return None, problem

    def _match(self, f: P.Frame, want: int, seq: int, name: str):
        """What one incoming frame means for request `seq`: (its parsed reply, None), (None, a
        problem: _UNREAD or _GARBLED), or (None, None) for frames of no concern (stale replies;
        predictions and recorded samples, which are kept). Raises DeviceError on the device's
        ERROR for `seq`."""
        if f.type in (P.MsgType.PREDICTION, P.MsgType.RECORDING):
            self._keep(f)
            self._unmatched["unsolicited"] += 1
            return None, None
        if f.type == P.MsgType.ERROR and f.seq == P.SEQ_UNKNOWN:
            return None, _UNREAD
        if f.type == P.MsgType.ERROR:
            error = _parse(f, name)
            if error is not None and f.seq == seq:
                raise DeviceError(f"{name} failed", error)
            self._unmatched["error"] += 1  # for another request, or unreadable
            self._last_error = error or self._last_error
            return None, None
        if f.seq != seq:
            self._unmatched["stale"] += 1  # a reply to an earlier request, or a wrong seq
            return None, None
        if f.type == want:
            reply = _parse(f, name)
            return (reply, None) if reply is not None else (None, _GARBLED)
        return None, None

    def _failed(self, name: str, ev: _Evidence) -> LinkError:
        """The one line for a request that got no usable reply after every attempt: what came
        back (frames that answer no request, corrupted frames, bytes that are no frames, or
        nothing) and how long each took."""
        tries = len(ev.took)
        whole = sum(ev.frames.values())
        if whole > ev.unreadable and ev.problem != _UNREAD:  # frames came, just not the reply
            what, hint = _unmatched_frames(ev)
            if ev.unreadable:
                what += f" (and {ev.unreadable} corrupted)"
        elif ev.problem in (_UNREAD, _GARBLED, _CORRUPTED) or ev.unreadable:
            seen = []
            if ev.unreadable:
                seen.append(
                    f"{ev.unreadable} corrupted frame{'s' * (ev.unreadable != 1)} came back"
                )
            if ev.problem == _UNREAD:
                seen.append("the device received the request corrupted")
            what = "; ".join(seen) or "replies came back corrupted"
            hint = "the line corrupts data: try another cable, USB port or hub"
        elif ev.received:
            what = f"{ev.received} bytes came back but no frame"
            hint = "check that the board runs tinyhar firmware (and the baud rate of a UART)"
        else:
            what = "nothing came back"
            hint = (
                "check that the board runs tinyhar firmware and the port is right, or raise "
                "--timeout/--retries"
            )
        low, high = min(ev.took), max(ev.took)
        each = f"{low:.2f} s" if high - low < 0.01 else f"{low:.2f}-{high:.2f} s"
        spoiled = sum(self._spoiled)
        if spoiled >= LINE_BAD:
            what += f"; {spoiled} of the line's last {len(self._spoiled)} attempts were spoiled"
        return LinkError(
            f"{name} to {self.port} failed after {tries} attempt{'s' * (tries > 1)} of {each} "
            f"({what}): {hint}"
        )

    def _keep(self, f: P.Frame) -> None:
        """Keep an unsolicited PREDICTION or RECORDING frame for its reader."""
        m = _parse(f, P.type_name(f.type))
        if isinstance(m, P.Prediction):
            self.predictions.append(m)
        elif isinstance(m, P.RecordedSamples):
            self.recorded.append(m)

    # --- messages --------------------------------------------------------------------------

    def hello(self) -> P.DeviceInfo:
        """HELLO: the device's versions, model CRC, shapes and quantization."""
        info = self.request(P.MsgType.HELLO)
        if info.protocol_version != P.PROTOCOL_VERSION:
            raise TinyharError(
                f"the device on {self.port} speaks protocol {info.protocol_version}, this tinyhar "
                f"speaks {P.PROTOCOL_VERSION}: rebuild and flash the firmware with this tinyhar"
            )
        self.info = info
        return info

    def labels(self) -> list[str]:
        """The label names the firmware carries (empty when it carries none)."""
        out: list[str] = []
        while True:
            page = self.request(P.MsgType.LABELS, P.pack_labels_request(len(out)))
            out += page.labels
            if page.total == 0 or len(out) >= page.total or not page.labels:
                return out[: page.total]

    def profile(self) -> tuple[int, list[int]]:
        """The per-node counts of the device's last inference and their unit (P.ProfileUnit);
        (NONE, []) when its firmware has no profiler."""
        counts: list[int] = []
        while True:
            page = self.request(P.MsgType.PROFILE, P.pack_profile_request(len(counts)))
            if page.unit == P.ProfileUnit.NONE or page.nodes == 0:
                return page.unit, []
            counts += page.counts
            if len(counts) >= page.nodes or not page.counts:
                return page.unit, counts[: page.nodes]

    def _chunk(self) -> int:
        """Most payload bytes of window or samples per frame: P.CHUNK, within the device's limit."""
        return min(P.CHUNK, (self.info.max_payload if self.info else P.MAX_PAYLOAD) - 8)

    def infer(self, window: np.ndarray) -> P.Result:
        """INFER on a ready int8 window, sent in acknowledged pieces (LOAD ..., then INFER with the
        last); resumed where the device says it holds the window up to, if it lost pieces."""
        data, size, offset, resumes = P.window_bytes(window), self._chunk(), 0, 0
        while True:
            try:
                while len(data) - offset > size:
                    self.request(P.MsgType.LOAD, P.pack_piece(offset, data[offset : offset + size]))
                    offset += size
                return self.request(P.MsgType.INFER, P.pack_piece(offset, data[offset:]))
            except DeviceError as e:
                if e.reply.code != P.ErrorCode.WINDOW_NOT_FULL or resumes == RESUMES:
                    raise
                offset, resumes = min(offset, e.reply.detail), resumes + 1

    def reset_buffer(self) -> P.Status:
        return self.request(P.MsgType.RESET_BUFFER)

    def send_samples(self, samples: np.ndarray, expect_total: int = 0) -> P.Status:
        """SAMPLES in acknowledged chunks of at most P.CHUNK bytes (and the device's limit); checks
        the device's sample count (from `expect_total`) after each, DeviceStateLost otherwise."""
        if len(samples) == 0:
            raise ValueError("send_samples needs at least one sample")
        status = None
        total = expect_total
        samples = np.asarray(samples, dtype=np.float32)
        for chunk in P.samples_chunks(samples, self._chunk()):
            status = self.request(P.MsgType.SAMPLES, chunk)
            total += len(chunk) // (4 * samples.shape[1])
            if status.samples_total != total:
                raise DeviceStateLost(
                    f"the device on {self.port} holds {status.samples_total} samples where "
                    f"{total} were sent"
                )
        assert status is not None  # at least one chunk
        return status

    def infer_raw(self, n_window: int) -> P.Result:
        """INFER_RAW on the device's samples, with the int8 window (`n_window` bytes) it computed:
        in the RESULT when it fits one piece, else read back with GET_WINDOW in pieces."""
        size = self._chunk()
        result = self.request(P.MsgType.INFER_RAW, P.pack_infer_raw(n_window <= size))
        if result.window is not None:
            return result
        window = np.empty(n_window, np.int8)
        for offset in range(0, n_window, size):
            w = self.request(P.MsgType.GET_WINDOW, P.pack_get_window(offset, size))
            if w.samples_total != result.samples_total:
                raise DeviceStateLost(
                    f"the device's samples changed from {result.samples_total} to "
                    f"{w.samples_total} while its window was read"
                )
            if w.offset != offset or w.window.size != min(size, n_window - offset):
                raise TinyharError(
                    f"GET_WINDOW at {offset} returned {w.window.size} bytes at {w.offset}: "
                    "the firmware and this tinyhar disagree on the protocol; rebuild and flash it"
                )
            window[offset : offset + w.window.size] = w.window
        return dataclasses.replace(result, window=window)

    def stream_start(self) -> P.Status:
        return self.request(P.MsgType.STREAM_START)

    def stream_stop(self) -> P.Status:
        return self.request(P.MsgType.STREAM_STOP)

    def record_start(self) -> P.Status:
        return self.request(P.MsgType.RECORD_START)

    def record_stop(self) -> P.Status:
        """RECORD_STOP: the device sends its last RECORDING frame, then the STATUS."""
        return self.request(P.MsgType.RECORD_STOP)

    def read_predictions(self, timeout: float) -> Iterator[P.Prediction]:
        """PREDICTION frames as they arrive, until `timeout` seconds pass without one."""
        return self._unsolicited(self.predictions, timeout, "streaming")

    def read_recorded(self, timeout: float) -> Iterator[P.RecordedSamples]:
        """RECORDING frames as they arrive, until `timeout` seconds pass without one."""
        return self._unsolicited(self.recorded, timeout, "recording")

    def _unsolicited(self, queue: deque, timeout: float, what: str) -> Iterator:
        while True:
            while queue:
                yield queue.popleft()
            deadline = time.monotonic() + timeout
            while not queue and time.monotonic() < deadline:
                for f in self._read_frames(deadline, what):
                    if f.type == P.MsgType.ERROR:
                        error = _parse(f, "PREDICTION")
                        if error is not None and error.request_type == P.MsgType.PREDICTION:
                            raise DeviceError("streaming inference failed", error)
                    else:
                        self._keep(f)
            if not queue:
                return


def _unmatched_frames(ev: _Evidence) -> tuple[str, str]:
    """(what came back, what to do) when whole frames came back but none answered the request:
    ERROR frames, replies with another sequence number, or a flood of PREDICTIONs."""
    f = ev.frames
    seen = []
    if f.get("error"):
        code = f" ({ev.error.describe()})" if ev.error is not None else ""
        seen.append(
            f"{f['error']} ERROR frame{'s' * (f['error'] != 1)} that answer no request "
            f"of this tinyhar{code}"
        )
    if f.get("stale"):
        seen.append(
            f"{f['stale']} repl{'ies' if f['stale'] != 1 else 'y'} with another sequence number"
        )
    if f.get("unsolicited"):
        seen.append(
            f"{f['unsolicited']} PREDICTION/RECORDING frame"
            f"{'s' * (f['unsolicited'] != 1)} and no reply"
        )
    what = "; ".join(seen) + " came back"
    if f.get("error"):
        hint = "the firmware refuses this tinyhar's requests: reset the board, or rebuild and flash"
    elif f.get("stale"):
        hint = "another program may be talking to the board: close it and reset the board"
    else:
        hint = "the board streams but does not answer: reset it, or rebuild and flash"
    return what, hint


class DeviceStateLost(LinkError):
    """The device forgot state the host gave it (it reset or lost a request)."""


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _parse(frame: P.Frame, name: str):
    """The frame's message, or None when its payload does not parse (treated as garbage)."""
    try:
        return P.parse_message(frame)
    except P.ProtocolError:
        return None
    except Exception:  # noqa: BLE001 - a malformed payload must never crash the host
        return None
