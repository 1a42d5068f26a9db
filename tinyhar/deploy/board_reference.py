"""The board's own code as the host reference: the generated runner, tinyhar's kernels and the
board's TFLM library (with its CMSIS-NN kernels) compiled for the host and called through ctypes.

Built from the same sources the board compiles, it gives the board's outputs byte for byte; the
Python TFLM interpreter, a newer TFLM, becomes a second opinion (`tensor_differences`).
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tflite_micro.python.tflite_micro import runtime

from tinyhar.board.boards import Board
from tinyhar.board.tflm_library import (
    DEFINES,
    include_dirs,
    load_library,
    sources_for_ops,
    tflm_source,
)
from tinyhar.crc import crc32
from tinyhar.deploy import codegen, native_build
from tinyhar.deploy.firmware import DEFAULT_SKETCH, firmware_context, kernel_plan
from tinyhar.deploy.firmware_config import spec_from_dataset
from tinyhar.deploy.m4f_image import emulator_dir
from tinyhar.deploy.native_build import HOST, OWN_WARNINGS
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_path
from tinyhar.lite.arena import debug_arena_bytes, host_arena_bytes
from tinyhar.lite.tflite_inspect import debug_model, inspect_tflite
from tinyhar.log import Log
from tinyhar.resources import templates_dir
from tinyhar.run.firmware import FirmwareTree
from tinyhar.run.records import BuildReport, DatasetContract

HOST_DIR = "host"  # firmware_templates/host: what the host build adds (logging and clock)
# Arduino.h and Wire.h declarations portable to the host come from the emulator's layer.
# The library's Arduino glue: replaced on the host by firmware_templates/host/tinyhar_host.cpp.
_ARDUINO_ONLY = {"system_setup.cpp", "utility_arduino.cpp"}
BOARD_LAYER = "tinyhar_board.cpp"  # Serial and the IMU: the host drives the core itself


@dataclass
class BuiltReference:
    """A shared library built from one generated firmware library."""

    path: Path
    library_dir: Path


def build_reference(
    library_dir: Path, tflm_src: Path, ops: list[str], log: Log | None = None
) -> BuiltReference:
    """Compile the generated `tinyhar_model` library's runner and kernels with the TFLM library
    for the host; the .so is cached by the sources' content."""
    src = Path(library_dir) / "src"
    own = sorted(p for p in src.glob("*.cpp") if p.name != BOARD_LAYER)
    own.append(templates_dir() / HOST_DIR / "tinyhar_host.cpp")
    includes = [src, emulator_dir(), *include_dirs(tflm_src)]
    own_includes = [src, emulator_dir()]
    lib_sources = [p for p in sources_for_ops(tflm_src, ops) if p.name not in _ARDUINO_ONLY]
    lib_objs = native_build.compile_sources(
        HOST, lib_sources, includes[1:], DEFINES, ("-w",), what="TFLM library sources", log=log
    )  # without the firmware's own src/: the objects are shared by every run
    digest = hashlib.sha256()
    for p in own:
        digest.update(p.read_bytes())
    for p in sorted(src.glob("*.h")):
        digest.update(p.read_bytes())
    digest.update(repr((DEFINES, OWN_WARNINGS, [o.name for o in lib_objs])).encode())
    out_dir = native_build.objects_cache() / "reference" / digest.hexdigest()[:24]
    so = out_dir / "tinyhar_reference.so"
    if so.is_file():
        return BuiltReference(so, Path(library_dir))
    own_objs = native_build.compile_sources(
        HOST,
        own,
        own_includes,
        (*DEFINES, "TINYHAR_HOST_REFERENCE", "TINYHAR_PROFILE=0"),
        OWN_WARNINGS,
        out_dir=out_dir / "obj",
        what="tinyhar firmware sources",
        system_includes=include_dirs(tflm_src),
    )
    # a name of this process's own: two processes building the same digest each link their own
    # file and rename it into place (the same bytes), never writing into the other's
    tmp = so.with_name(f".{so.stem}.{os.getpid()}.{threading.get_ident()}.tmp.so")
    try:
        native_build.link(HOST, [*own_objs, *lib_objs], tmp)
        tmp.replace(so)
    finally:
        tmp.unlink(missing_ok=True)
    return BuiltReference(so, Path(library_dir))


_current: dict[str, int] = {}  # shared library -> token of the BoardReference its runner holds
_tokens = itertools.count(1)


class BoardReference:
    """Runs flatbuffers with the board's kernels on the host: one window at a time, state reset.
    A `lite.reference.Reference`."""

    def __init__(
        self, built: BuiltReference, model: bytes, arena_bytes: int, library: str = ""
    ) -> None:
        self.built = built
        self.name = f"{library or 'the board library'} built for the host (the board's code)"
        self.built_from = (
            f"{built.library_dir}/src and the TFLM library, compiled into {built.path}"
        )
        self.n_classes = int(np.prod(inspect_tflite(model).outputs[0].shape))
        self._token = next(_tokens)  # not id(): ids are reused once an object is collected
        self._lib = ctypes.CDLL(str(built.path))
        self._lib.tinyhar_host_start.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        self._lib.tinyhar_host_invoke.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self._lib.tinyhar_host_outputs.restype = ctypes.c_size_t
        self._lib.tinyhar_host_output.restype = ctypes.c_size_t
        self._lib.tinyhar_host_output.argtypes = [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
        # the interpreter keeps pointers into both buffers: hold them as long as this object
        self._model = ctypes.create_string_buffer(bytes(model), len(model) + 16)
        self._model_ptr = _aligned(self._model, len(model))
        self._arena = ctypes.create_string_buffer(arena_bytes + 16)
        self._arena_ptr = ctypes.addressof(self._arena) + (-ctypes.addressof(self._arena) % 16)
        self._arena_bytes = arena_bytes
        self._start()

    def _start(self) -> None:
        # the runner holds one interpreter per process: (re)start it on this object's model
        rc = self._lib.tinyhar_host_start(self._model_ptr, self._arena_ptr, self._arena_bytes)
        if rc != 0:
            raise TinyharError(
                f"the board's TFLM cannot start the model on the host (runner code {rc}): "
                "rebuild the firmware (`tinyhar build`)"
            )
        _current[str(self.built.path)] = self._token

    def run(self, window: np.ndarray) -> list[bytes]:
        """Every output tensor's bytes for one input window (any dtype, as the model takes it)."""
        if _current.get(str(self.built.path)) != self._token:
            self._start()
        data = np.ascontiguousarray(window)
        if self._lib.tinyhar_host_invoke(data.ctypes.data, data.nbytes) != 0:
            raise TinyharError("the board's TFLM failed to run a window on the host")
        outs = []
        for i in range(self._lib.tinyhar_host_outputs()):
            size = self._lib.tinyhar_host_output(i, None, 0)
            buf = ctypes.create_string_buffer(size)
            self._lib.tinyhar_host_output(i, buf, size)
            outs.append(buf.raw)
        return outs

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """int8 scores (n, classes) for int8 windows (n, ...), through the firmware's own
        tinyhar_runner_infer (float-I/O models: its dequantize and requantize too)."""
        q, n_classes = np.asarray(windows).reshape(len(windows), -1), self.n_classes
        if _current.get(str(self.built.path)) != self._token:
            self._start()
        fn = self._lib.tinyhar_runner_infer
        fn.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
        ]
        out = np.zeros((len(q), n_classes), dtype=np.int8)
        for i, w in enumerate(np.ascontiguousarray(q, dtype=np.int8)):
            rc = fn(w.ctypes.data, w.size, out[i].ctypes.data, n_classes, None)
            if rc != 0:
                raise TinyharError(f"the board's runner failed on the host (code {rc})")
        return out


def _aligned(buf: ctypes.Array, n: int) -> int:
    """The address of a 16-byte aligned copy of buf's first n bytes inside buf (TFLM wants
    aligned flatbuffers); buf has 16 spare bytes."""
    base = ctypes.addressof(buf)
    off = -base % 16
    ctypes.memmove(base + off, bytes(buf.raw[:n]), n)
    return base + off


def for_build(
    build: BuildReport,
    model: bytes,
    libraries: Path | None,
    log: Log | None = None,
    run: Path | None = None,
) -> tuple[BoardReference | None, str]:
    """The board reference for the build.json in `run`, or (None, why not) when it cannot be
    built."""

    try:
        lib = load_library(build.library_name)
        if run is None:
            return None, "no run folder to find the firmware in"
        library_dir = FirmwareTree.of_build(run, build).library_dir
        if not (library_dir / "src").is_dir():
            return None, f"the firmware library {library_dir} is gone: run `tinyhar build`"
        tflm_src = tflm_source(lib, libraries)
        ops = [op for op, who in build.kernels.items() if who != "tinyhar"]
        built = build_reference(library_dir, tflm_src, ops, log)
        title = build.library_title
        arena = host_arena_bytes(build.arena_bytes)
        return BoardReference(built, model, arena, title), ""
    except TinyharError as e:
        return None, str(e)


def tensor_differences(
    ref: BoardReference, model: bytes, windows: np.ndarray, arena_bytes: int
) -> list[dict]:
    """Per operator, how the Python TFLM interpreter differs from the board's library on the
    same windows: windows differing, the largest difference in LSB, and in how many windows the
    op is where a difference starts (its inputs agree, its output does not), the largest
    difference there and, for a sequence output (batch, time, ...), the first time step."""

    dbg, outs = debug_model(model)
    arena_bytes = debug_arena_bytes(arena_bytes)
    board = BoardReference(ref.built, dbg, arena_bytes)  # the same .so, the debug flatbuffer
    py = runtime.Interpreter.from_bytes(dbg, arena_size=arena_bytes)
    index = {o.tensor: k for k, o in enumerate(outs)}
    stats: list[dict[str, Any]] = [
        {
            "op": o.op,
            "tensor": o.name.split(";")[0],
            "windows_differing": 0,
            "max_lsb": 0,
            "origin": 0,
            "origin_max_lsb": 0,
            "first_step": None,
        }
        for o in outs
    ]
    for w in windows:
        got = board.run(w)
        py.reset()
        py.set_input(w[None], 0)
        py.invoke()
        differs: dict[int, bool] = {}
        diffs: dict[int, np.ndarray | None] = {}
        for k, o in enumerate(outs):
            b = np.asarray(py.get_output(o.output_index))
            a = np.frombuffer(got[o.output_index], dtype=b.dtype)
            if a.size != b.size:
                d, diffs[k] = 255, None
            else:
                delta = np.abs(a.astype(np.float64) - b.ravel().astype(np.float64))
                diffs[k] = delta.reshape(b.shape)
                d = int(np.ceil(np.max(delta))) if delta.size else 0
            differs[o.tensor] = d > 0
            if d:
                stats[k]["windows_differing"] += 1
                stats[k]["max_lsb"] = max(stats[k]["max_lsb"], d)
        for k, o in enumerate(outs):
            upstream = [differs.get(t, False) for t in o.inputs if t in index]
            if differs[o.tensor] and not any(upstream):
                st = stats[k]
                st["origin"] += 1
                diff = diffs[k]
                at_origin = 255 if diff is None else int(np.ceil(diff.max()))
                st["origin_max_lsb"] = max(st["origin_max_lsb"], at_origin)
                if diff is not None and diff.ndim == 3:
                    step = int(np.argmax(diff.max(axis=(0, 2)) > 0))
                    first = st["first_step"]
                    st["first_step"] = step if first is None else min(first, step)
    return stats


def interpreter_violations(per_op: list[dict], bounds: dict[str, int]) -> list[dict]:
    """The ops where a difference from the Python interpreter starts and exceeds the op's bound
    (tflm_library.interpreter_bounds; an op not bounded must match)."""
    return [
        {
            "op": s["op"],
            "tensor": s["tensor"],
            "max_lsb": s["origin_max_lsb"],
            "bound": bounds.get(s["op"], 0),
            "first_step": s["first_step"],
            "windows": s["origin"],
        }
        for s in per_op
        if s["origin"] and s["origin_max_lsb"] > bounds.get(s["op"], 0)
    ]


def for_board(
    model: bytes,
    dataset: DatasetContract,
    board: Board,
    arena_bytes: int,
    libraries: Path | None = None,
    log: Log | None = None,
) -> tuple[BoardReference | None, str]:
    """The board's own TFLM for a model that has no build yet (as `tinyhar quantize` needs it):
    the firmware library rendered into the object cache and built for the host; or (None, why)."""

    try:
        HOST.require()
        tflm_src = tflm_source(load_library(board.tflm.name), libraries)
        info = inspect_tflite(model)
        plan = kernel_plan(board, model, list(info.ops))
        spec = spec_from_dataset(dataset, info)
        ctx = firmware_context(
            board, spec, info, model, "model_int8.tflite", DEFAULT_SKETCH, arena_bytes, 0, plan
        )
        files = codegen.render_library(ctx, DEFAULT_SKETCH)
        library_dir = (
            native_build.objects_cache()
            / "boards"
            / f"{board.name}-{crc32(model):08x}"
            / codegen.LIBRARY_NAME
        )
        with atomic_path(library_dir) as tmp:
            for rel, text in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_text(text, encoding="utf-8")
        built = build_reference(library_dir, tflm_src, list(plan.library_methods), log)
        title = f"{board.tflm.name} {board.tflm.version}"
        return BoardReference(built, model, host_arena_bytes(arena_bytes), title), ""
    except TinyharError as e:
        return None, str(e)
