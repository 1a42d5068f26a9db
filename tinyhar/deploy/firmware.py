"""What goes into the firmware: the ops it must run, their kernels, the template context."""

from __future__ import annotations

from typing import Any

from tinyhar import __version__
from tinyhar.board import protocol
from tinyhar.board.boards import Board
from tinyhar.board.tflm_library import KernelPlan, load_library, plan_kernels
from tinyhar.crc import crc32
from tinyhar.deploy import codegen
from tinyhar.deploy.firmware_config import ModelSpec, channel_layout
from tinyhar.errors import TinyharError
from tinyhar.lite.arena import align
from tinyhar.lite.tflite_inspect import (
    FORBIDDEN_OPS,
    check_tflm_ops,
    op_input_types,
    per_channel_fc_layers,
)

DEFAULT_SKETCH = "tinyhar_har"


def check_ops(ops: list[str]) -> None:
    """One line naming any op that no TFLM has or that makes a model unfit for a board."""

    check_tflm_ops(ops)
    bad = [op for op in ops if op in FORBIDDEN_OPS]
    if bad:
        raise TinyharError(
            f"op {', '.join(bad)} makes the model unfit for the firmware (TFLM runs it very slowly "
            "or not at all): convert with tf_keras (TF_USE_LEGACY_KERAS=1) and a static batch"
        )


def kernel_plan(board: Board, model: bytes, ops: list[str], prefer: str = "tinyhar") -> KernelPlan:
    """Which kernel runs each op on this board's TFLM library (`prefer`: whose kernel where both
    have one, see tflm_library.KERNEL_CHOICES); refuses what it cannot run."""

    lib = load_library(board.tflm.name)
    not_int8 = frozenset(op for op, types in op_input_types(model).items() if types != {"int8"})
    plan = plan_kernels(ops, lib, prefer, not_int8)
    per_channel = per_channel_fc_layers(model) if "FULLY_CONNECTED" in ops else 0
    if per_channel and not lib.fc_per_channel:
        raise TinyharError(
            f"{per_channel} FULLY_CONNECTED layer(s) have per-channel weights, which "
            f"{lib.title}'s FC kernel computes wrongly (it reads one scale): re-quantize "
            "(`tinyhar quantize --run RUN`) or convert with per-tensor dense weights "
            "(converter._experimental_disable_per_channel_quantization_for_dense_layers = True)"
        )
    return plan


def firmware_context(
    board: Board,
    spec: ModelSpec,
    info: Any,
    model: bytes,
    model_source: str,
    sketch_name: str,
    arena_measured: int,
    arena_margin: int,
    plan: KernelPlan,
    stream_at_boot: bool = False,
    profile: bool = False,
) -> dict[str, Any]:
    """Everything the templates use; also what build.json records as the firmware config."""
    board.check_rate(spec.rate_hz)
    layout = channel_layout(spec, board)
    inp, out = info.inputs[0], info.outputs[0]
    period = 1e6 / spec.rate_hz
    if abs(period - round(period)) > 1e-6:
        raise TinyharError(f"rate {spec.rate_hz} Hz has no whole-microsecond period: use e.g. 50")
    return {
        "firmware_version": __version__,
        "protocol_version": protocol.PROTOCOL_VERSION,
        "tinyhar_version": __version__,
        "board": board,
        "sketch_name": sketch_name,
        "model_source": model_source,
        "model_len": len(model),
        "model_crc32": crc32(model),
        "model_array": codegen.c_array(model),
        "ops": list(info.ops),
        "library_methods": plan.library_methods,
        "own_kernels": {op: k.source for op, k in plan.own_kernels.items()},
        "own_parsers": {op: k.parser for op, k in plan.own_kernels.items()},
        "stateful": bool(info.stateful),
        "arena_measured": arena_measured,
        "arena_margin": arena_margin,
        "arena_bytes": align(arena_measured + arena_margin),
        "window": spec.window,
        "stride": spec.stride,
        "rate_hz": spec.rate_hz,
        "sample_period_us": int(round(period)),
        "channels": layout,
        "imu_slots": [ch["imu_slot"] for ch in layout],
        "n_classes": len(spec.labels),
        "labels": spec.labels,
        "input": _tensor(inp, spec.input_scale, spec.input_zero_point),
        "output": _tensor(out, spec.output_scale, spec.output_zero_point),
        "stream_at_boot": stream_at_boot,
        "profile": profile,
        "n_nodes": sum(info.op_counts.values()),
    }


def _tensor(t: Any, scale: float, zero_point: int) -> dict[str, Any]:
    return {
        "name": t.name,
        "shape": [int(d) for d in t.shape],
        "dtype": t.dtype,
        "dtype_code": protocol.DTYPE_CODES[t.dtype],
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def config_record(ctx: dict[str, Any]) -> dict[str, Any]:
    """The firmware configuration as build.json records it (what the device's HELLO reports)."""
    keys = ("window", "stride", "rate_hz", "n_classes", "labels", "input", "output", "imu_slots")
    rec = {k: ctx[k] for k in keys}
    rec["channels"] = [
        {
            k: ch[k]
            for k in (
                "name",
                "kind",
                "axis",
                "unit",
                "imu_slot",
                "axis_src",
                "axis_sign",
                "unit_factor",
                "mean",
                "std",
                "inv_std",
            )
        }
        for ch in ctx["channels"]
    ]
    rec["stateful"] = ctx["stateful"]
    rec["protocol_version"] = ctx["protocol_version"]
    rec["firmware_version"] = ctx["firmware_version"]
    return rec
