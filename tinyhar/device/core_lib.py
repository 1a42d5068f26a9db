"""The firmware's C core on the host: built as a shared library (cached) and driven via ctypes.

`CoreDevice` is the device side of the protocol exactly as the board runs it: bytes in through
`tinyhar_rx`, bytes out through the write callback, inference through a Python callable.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyhar.board.boards import Board
from tinyhar.board.preprocess import PreprocessConfig
from tinyhar.board.protocol import DTYPE_CODES, DeviceKind, TensorSpec
from tinyhar.crc import crc32
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_path
from tinyhar.lite.tflite_inspect import inspect_tflite
from tinyhar.resources import templates_dir
from tinyhar.run.folder import INT8_MODEL
from tinyhar.run.records import DatasetContract, QuantizeReport, TensorQuantization

VIRTUAL_FIRMWARE = "sim"  # the firmware version a virtual board (`tinyhar sim`) reports
CORE_C = "tinyhar_core.c"
CORE_H = "tinyhar_core.h"
MAX_DIMS = 6
MAX_OUTPUT = 64
DEFAULT_MAX_WINDOW = 128
DEFAULT_MAX_CHANNELS = 12
WARN_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]

InferHook = Callable[[np.ndarray], np.ndarray]


def find_c_compiler() -> str:
    """The host C compiler: $CC, else cc, gcc or clang on PATH."""
    for name in [os.environ.get("CC", ""), "cc", "gcc", "clang"]:
        if name and shutil.which(name.split()[0]):
            return name
    raise TinyharError("no C compiler found: install gcc (apt install gcc) or set CC")


def cache_root() -> Path:
    """~/.cache/tinyhar (or $XDG_CACHE_HOME/tinyhar)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinyhar"


def core_sources() -> list[Path]:
    """The core's C source and header as shipped in the package."""
    return [templates_dir() / CORE_C, templates_dir() / CORE_H]


def build_core_library(
    max_window: int = DEFAULT_MAX_WINDOW, max_channels: int = DEFAULT_MAX_CHANNELS
) -> Path:
    """Compile the core as a shared library, cached per (sources, compiler, flags); its path."""
    cc = find_c_compiler()
    flags = [
        *WARN_FLAGS,
        "-O2",
        "-fPIC",
        "-shared",
        f"-DTINYHAR_MAX_WINDOW={max_window}",
        f"-DTINYHAR_MAX_CHANNELS={max_channels}",
    ]
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    digest = hashlib.sha256()
    for src in core_sources():
        digest.update(src.read_bytes())
    digest.update("\0".join([cc, version.splitlines()[0] if version else "", *flags]).encode())
    out_dir = cache_root() / "core" / digest.hexdigest()[:16]
    lib = out_dir / ("libtinyhar_core.dylib" if sys.platform == "darwin" else "libtinyhar_core.so")
    if lib.is_file():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(lib) as tmp:
        cmd = [
            *cc.split(),
            *flags,
            "-I",
            str(templates_dir()),
            "-o",
            str(tmp),
            str(templates_dir() / CORE_C),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["no output"])[0]
            raise TinyharError(f"compiling the firmware core with {cc} failed: {first}")
    return lib


# --- ctypes mirror of tinyhar_core.h --------------------------------------------------------

WRITE_FN = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t, ctypes.c_void_p)
INFER_FN = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.POINTER(ctypes.c_int8),
    ctypes.c_size_t,
    ctypes.POINTER(ctypes.c_int8),
    ctypes.c_size_t,
    ctypes.c_void_p,
)
MICROS_FN = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p)


class Platform(ctypes.Structure):
    _fields_ = [
        ("write", WRITE_FN),
        ("infer", INFER_FN),
        ("micros", MICROS_FN),
        ("ctx", ctypes.c_void_p),
    ]


def config_struct(max_channels: int) -> type[ctypes.Structure]:
    """The ctypes type of tinyhar_config_t for a given TINYHAR_MAX_CHANNELS."""
    ch = max_channels
    return type(
        f"TinyharConfig{ch}",
        (ctypes.Structure,),
        {
            "_fields_": [
                ("window", ctypes.c_uint16),
                ("stride", ctypes.c_uint16),
                ("channels", ctypes.c_uint16),
                ("n_classes", ctypes.c_uint16),
                ("rate_hz", ctypes.c_float),
                ("unit_factor", ctypes.c_float * ch),
                ("axis_src", ctypes.c_uint8 * ch),
                ("axis_sign", ctypes.c_int8 * ch),
                ("mean", ctypes.c_float * ch),
                ("inv_std", ctypes.c_float * ch),
                ("input_scale", ctypes.c_float),
                ("input_zero_point", ctypes.c_int32),
                ("output_scale", ctypes.c_float),
                ("output_zero_point", ctypes.c_int32),
                ("input_dtype", ctypes.c_uint8),
                ("output_dtype", ctypes.c_uint8),
                ("input_ndims", ctypes.c_uint8),
                ("output_ndims", ctypes.c_uint8),
                ("input_dims", ctypes.c_uint32 * MAX_DIMS),
                ("output_dims", ctypes.c_uint32 * MAX_DIMS),
                ("model_crc32", ctypes.c_uint32),
                ("arena_bytes", ctypes.c_uint32),
                ("board_name", ctypes.c_char_p),
                ("firmware_version", ctypes.c_char_p),
                ("labels", ctypes.POINTER(ctypes.c_char_p)),
                ("device_kind", ctypes.c_uint8),
            ]
        },
    )


_LIBS: dict[Path, ctypes.CDLL] = {}


def load_core(max_window: int = DEFAULT_MAX_WINDOW, max_channels: int = DEFAULT_MAX_CHANNELS):
    """The loaded core library with argument types declared (built first if needed)."""
    path = build_core_library(max_window, max_channels)
    if path not in _LIBS:
        lib = ctypes.CDLL(str(path))
        vp, sz, u8p = ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint8)
        lib.tinyhar_init.argtypes = [vp, vp, ctypes.POINTER(Platform)]
        lib.tinyhar_init.restype = ctypes.c_int
        lib.tinyhar_rx.argtypes = [vp, u8p, sz]
        lib.tinyhar_rx.restype = None
        lib.tinyhar_push_sample.argtypes = [vp, ctypes.POINTER(ctypes.c_float)]
        lib.tinyhar_push_sample.restype = None
        lib.tinyhar_set_streaming.argtypes = [vp, ctypes.c_int]
        lib.tinyhar_set_streaming.restype = None
        lib.tinyhar_is_streaming.argtypes = [vp]
        lib.tinyhar_is_streaming.restype = ctypes.c_int
        lib.tinyhar_is_recording.argtypes = [vp]
        lib.tinyhar_is_recording.restype = ctypes.c_int
        lib.tinyhar_preprocess.argtypes = [
            vp,
            ctypes.POINTER(ctypes.c_float),
            sz,
            ctypes.POINTER(ctypes.c_int8),
        ]
        lib.tinyhar_preprocess.restype = None
        lib.tinyhar_crc32.argtypes = [ctypes.c_uint32, u8p, sz]
        lib.tinyhar_crc32.restype = ctypes.c_uint32
        lib.tinyhar_frame_encode.argtypes = [ctypes.c_uint8, ctypes.c_uint8, u8p, sz, u8p, sz]
        lib.tinyhar_frame_encode.restype = sz
        lib.tinyhar_sizeof_config.restype = sz
        lib.tinyhar_sizeof_dev.restype = sz
        if lib.tinyhar_sizeof_config() != ctypes.sizeof(config_struct(max_channels)):
            raise TinyharError("the core's config struct does not match core_lib's mirror")
        _LIBS[path] = lib
    return _LIBS[path]


# --- configuration ------------------------------------------------------------------------


@dataclass
class CoreConfig:
    """Everything tinyhar_config_t holds, in Python terms."""

    window: int
    stride: int
    rate_hz: float
    preprocess: PreprocessConfig
    input: TensorSpec
    output: TensorSpec
    model_crc32: int = 0
    arena_bytes: int = 0
    board_name: str = "virtual"
    firmware_version: str = "host"
    labels: list[str] | None = None
    n_classes: int = field(default=0)
    device_kind: DeviceKind = DeviceKind.VIRTUAL  # the core on the host

    def __post_init__(self) -> None:
        if not self.n_classes:
            self.n_classes = int(np.prod(self.output.shape)) if self.output.shape else 0

    @property
    def channels(self) -> int:
        return self.preprocess.channels


def core_config_from_run(
    run_dir: Path,
    board: Board,
    model_bytes: bytes | None = None,
    firmware_version: str = VIRTUAL_FIRMWARE,
) -> CoreConfig:
    """The configuration the firmware built from run R for `board` carries.

    `model_bytes` defaults to the run's int8 model; passing another model makes a device that
    carries it (its CRC-32 and tensors), with the run's preprocessing.
    """

    run_dir = Path(run_dir)
    if model_bytes is None:
        model_bytes = (run_dir / INT8_MODEL).read_bytes()
    dataset = DatasetContract.load(run_dir)
    quantized = QuantizeReport.load_if_present(run_dir)
    info = inspect_tflite(model_bytes)
    tin, tout = info.inputs[0], info.outputs[0]
    pre = PreprocessConfig.from_run(dataset, TensorQuantization.of(tin), board)
    return CoreConfig(
        window=dataset.window,
        stride=dataset.stride,
        rate_hz=dataset.rate_hz,
        preprocess=pre,
        input=TensorSpec(
            DTYPE_CODES.get(tin.dtype, 9), tuple(tin.shape), tin.scale, tin.zero_point
        ),
        output=TensorSpec(
            DTYPE_CODES.get(tout.dtype, 9), tuple(tout.shape), tout.scale, tout.zero_point
        ),
        model_crc32=crc32(model_bytes),
        arena_bytes=quantized.arena_bytes if quantized is not None else 0,
        board_name=board.name,
        firmware_version=firmware_version,
        labels=list(dataset.labels),
    )


def _fill_config(
    cfg: CoreConfig, struct_type: type[ctypes.Structure], keep: list
) -> ctypes.Structure:
    c = struct_type()
    p = cfg.preprocess
    n = cfg.channels
    c.window, c.stride, c.channels, c.n_classes = cfg.window, cfg.stride, n, cfg.n_classes
    c.rate_hz = cfg.rate_hz
    for i in range(n):
        c.unit_factor[i] = float(p.unit_factor[i])
        c.axis_src[i] = int(p.axis_src[i])
        c.axis_sign[i] = int(p.axis_sign[i])
        c.mean[i] = float(p.mean[i])
        c.inv_std[i] = float(p.inv_std[i])
    c.input_scale, c.input_zero_point = p.input_scale, p.input_zero_point
    c.output_scale, c.output_zero_point = cfg.output.scale, cfg.output.zero_point
    c.input_dtype, c.output_dtype = cfg.input.dtype, cfg.output.dtype
    for spec, nd, dims in (
        (cfg.input, "input_ndims", c.input_dims),
        (cfg.output, "output_ndims", c.output_dims),
    ):
        if len(spec.shape) > MAX_DIMS:
            raise TinyharError(f"tensor of rank {len(spec.shape)} exceeds the core's {MAX_DIMS}")
        setattr(c, nd, len(spec.shape))
        for i, d in enumerate(spec.shape):
            dims[i] = int(d)
    c.model_crc32, c.arena_bytes = cfg.model_crc32, cfg.arena_bytes
    board, fw = cfg.board_name.encode(), cfg.firmware_version.encode()
    keep += [board, fw]
    c.board_name, c.firmware_version = board, fw
    c.device_kind = int(cfg.device_kind)
    if cfg.labels:
        arr = (ctypes.c_char_p * len(cfg.labels))(*[s.encode() for s in cfg.labels])
        keep.append(arr)
        c.labels = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))
    return c


# --- the device ---------------------------------------------------------------------------


class CoreDevice:
    """One instance of the firmware core; thread-safe, bytes in and bytes out.

    `infer` gets the flat int8 window (window * channels values, row-major) and returns the
    n_classes int8 outputs; raising makes the device answer INFER_FAILED (kept in hook_errors).
    """

    def __init__(
        self,
        config: CoreConfig,
        infer: InferHook | None = None,
        micros: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        max_window = max(DEFAULT_MAX_WINDOW, config.window)
        max_channels = max(DEFAULT_MAX_CHANNELS, config.channels)
        if config.n_classes > MAX_OUTPUT:
            raise TinyharError(f"{config.n_classes} outputs exceed the core's {MAX_OUTPUT}")
        self._lib = load_core(max_window, max_channels)
        self._keep: list = []
        self._cfg = _fill_config(config, config_struct(max_channels), self._keep)
        words = (self._lib.tinyhar_sizeof_dev() + 7) // 8
        self._dev = (ctypes.c_uint64 * words)()
        self._out = bytearray()
        self._lock = threading.RLock()
        self._infer = infer
        self._micros = micros or (lambda: time.perf_counter_ns() // 1000)
        self.hook_errors: list[BaseException] = []
        self.inferences = 0
        self._cb_write = WRITE_FN(self._on_write)
        self._cb_infer = INFER_FN(self._on_infer)
        self._cb_micros = MICROS_FN(self._on_micros)
        plat = Platform()
        plat.write, plat.micros = self._cb_write, self._cb_micros
        if infer is not None:
            plat.infer = self._cb_infer
        self._plat = plat
        rc = self._lib.tinyhar_init(self._dev, ctypes.byref(self._cfg), ctypes.byref(plat))
        if rc != 0:
            raise TinyharError(
                "the firmware core rejected the configuration (window, channels, stride, "
                "classes, tensor shapes or axis map out of range)"
            )

    # callbacks from C
    def _on_write(self, data, n, _ctx) -> None:
        self._out += ctypes.string_at(data, n)

    def _on_infer(self, inp, in_len, out, out_len, _ctx) -> int:
        try:
            window = np.ctypeslib.as_array(inp, shape=(in_len,)).copy()
            assert self._infer is not None  # the callback is registered only with a hook
            result = np.asarray(self._infer(window), dtype=np.int8).reshape(-1)
            if result.size != out_len:
                raise TinyharError(f"inference hook returned {result.size} values, not {out_len}")
            ctypes.memmove(out, result.ctypes.data, out_len)
            self.inferences += 1
            return 0
        except BaseException as e:  # a callback must not unwind through C
            self.hook_errors.append(e)
            return 1

    def _on_micros(self, _ctx) -> int:
        return int(self._micros()) & 0xFFFFFFFF

    def _take(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def feed(self, data: bytes) -> bytes:
        """Bytes from the host into the device; returns the bytes the device sent in response."""
        with self._lock:
            if data:
                buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
                self._lib.tinyhar_rx(self._dev, buf, len(data))
            return self._take()

    def push_sample(self, raw: Sequence[float] | np.ndarray) -> bytes:
        """One IMU sample (board units) into the ring; returns any PREDICTION frame sent."""
        arr = np.ascontiguousarray(raw, dtype=np.float32).reshape(self.config.channels)
        with self._lock:
            self._lib.tinyhar_push_sample(
                self._dev, arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            )
            return self._take()

    def set_streaming(self, on: bool) -> None:
        with self._lock:
            self._lib.tinyhar_set_streaming(self._dev, 1 if on else 0)

    @property
    def streaming(self) -> bool:
        with self._lock:
            return bool(self._lib.tinyhar_is_streaming(self._dev))

    @property
    def recording(self) -> bool:
        with self._lock:
            return bool(self._lib.tinyhar_is_recording(self._dev))

    def preprocess(self, raw: np.ndarray) -> np.ndarray:
        """The core's tinyhar_preprocess on raw samples (n, C) -> int8 (n, C)."""
        arr = np.ascontiguousarray(raw, dtype=np.float32).reshape(-1, self.config.channels)
        out = np.zeros(arr.shape, dtype=np.int8)
        self._lib.tinyhar_preprocess(
            ctypes.byref(self._cfg),
            arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            arr.shape[0],
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )
        return out
