"""Read a .tflite flatbuffer: ops, I/O tensors with quantization, parameter and MAC counts.

Uses the schema that ships with the `tflite-micro` package, so it needs no TensorFlow import.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinyhar.errors import TinyharError

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}

# Builtin op name -> the MicroMutableOpResolver method that registers it, from TFLM's
# tensorflow/lite/micro/micro_mutable_op_resolver.h (2025 version).
_RESOLVER_METHODS = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
    # Custom ops TFLM registers under a name (they appear in `ops` under that name).
    "CIRCULAR_BUFFER": "AddCircularBuffer",
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
}

# Ops TFLM can run but that make a model unfit for a microcontroller build of this project.
FORBIDDEN_OPS = ("WHILE",)


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor: shape, element type and (per-tensor) quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8" | "float32" | ...
    scale: float  # 0.0 when not quantized
    zero_point: int


@dataclass(frozen=True)
class ModelInfo:
    """What a .tflite model holds. MACs count FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D,
    TRANSPOSE_CONV, BATCH_MATMUL and UNIDIRECTIONAL_SEQUENCE_LSTM; elementwise ops count 0."""

    ops: list[str]  # distinct op names in order of first use
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    macs: int
    params: int  # elements of all constant tensors (weights, biases, small shape constants)
    op_counts: dict[str, int] = field(default_factory=dict)
    stateful: bool = False  # variable tensors (e.g. LSTM state): reset between windows
    subgraphs: int = 1
    size_bytes: int = 0


def resolver_method(op_name: str) -> str:
    """The MicroMutableOpResolver method registering `op_name`; TinyharError if TFLM lacks it."""
    try:
        return _RESOLVER_METHODS[op_name]
    except KeyError:
        raise TinyharError(
            f"op {op_name} is not in TensorFlow Lite Micro's op resolver: "
            "change the model so it converts to TFLM builtin ops"
        ) from None


def unsupported_ops(ops: list[str]) -> list[str]:
    """The ops in `ops` that TFLM's MicroMutableOpResolver cannot register."""
    return [op for op in ops if op not in _RESOLVER_METHODS]


def check_tflm_ops(ops: list[str]) -> None:
    """Raise one TinyharError naming every op TFLM lacks (Flex/custom ops included)."""
    missing = unsupported_ops(ops)
    if missing:
        raise TinyharError(
            f"op(s) {', '.join(missing)} not available in TensorFlow Lite Micro: "
            "change the model so it converts to TFLM builtin ops"
        )


def parse_model(model_bytes: bytes) -> schema.ModelT:
    """The flatbuffer as schema objects; TinyharError when it is not a TFLite model."""
    data = bytes(model_bytes)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TinyharError("not a TFLite flatbuffer (no TFL3 identifier): pass a .tflite file")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))
    except Exception as e:  # a truncated or corrupt flatbuffer fails in many ways
        raise TinyharError(
            f"corrupt TFLite flatbuffer ({type(e).__name__}): re-export it"
        ) from None
    problem = _structure_problem(model)
    if problem:
        raise TinyharError(f"corrupt TFLite model: {problem}: re-export it")
    return model


def _structure_problem(model: schema.ModelT) -> str | None:
    """What makes the model's indices inconsistent (an operator's opcode or a tensor index out of
    range, a tensor's buffer missing), or a model without operators; None when it holds."""
    codes = len(model.operatorCodes or [])
    buffers = len(model.buffers or [])
    graphs = model.subgraphs or []
    if not graphs:
        return "it has no subgraph"
    if not any(g.operators for g in graphs):
        return "it has no operators (its output is its input)"
    for s, graph in enumerate(graphs):
        tensors = graph.tensors or []
        n = len(tensors)
        for what, indices in (("input", graph.inputs), ("output", graph.outputs)):
            bad = [int(i) for i in (indices if indices is not None else []) if not 0 <= i < n]
            if bad or indices is None or not len(indices):
                return f"subgraph {s} names {what} tensor {bad[0] if bad else 'none'} of {n}"
        for k, op in enumerate(graph.operators or []):
            if not 0 <= op.opcodeIndex < codes:
                return f"operator {k} of subgraph {s} uses opcode {op.opcodeIndex} of {codes}"
            for what, indices in (("input", op.inputs), ("output", op.outputs)):
                bad = [int(i) for i in (indices if indices is not None else []) if not -1 <= i < n]
                if bad:
                    return f"operator {k} of subgraph {s} names {what} tensor {bad[0]} of {n}"
        for t, tensor in enumerate(tensors):
            if not 0 <= tensor.buffer < max(buffers, 1):
                return f"tensor {t} of subgraph {s} uses buffer {tensor.buffer} of {buffers}"
    return None


def inspect_tflite(model_bytes: bytes) -> ModelInfo:
    """Ops, I/O tensors, MACs and parameter count of a .tflite model."""
    model = parse_model(model_bytes)
    if not model.subgraphs:
        raise TinyharError("TFLite model has no subgraph: re-export it")
    ops: list[str] = []
    counts: dict[str, int] = {}
    macs = 0
    params = 0
    stateful = False
    for graph in model.subgraphs:
        tensors = graph.tensors or []
        for op in graph.operators or []:
            name = _op_name(model.operatorCodes[op.opcodeIndex])
            if name not in counts:
                ops.append(name)
            counts[name] = counts.get(name, 0) + 1
            macs += _op_macs(name, op, tensors)
        for t in tensors:
            stateful |= bool(t.isVariable)
            buf = (
                model.buffers[t.buffer] if model.buffers and t.buffer < len(model.buffers) else None
            )
            if buf is not None and (
                (buf.data is not None and len(buf.data)) or getattr(buf, "size", 0)
            ):
                params += _elements(t)
    main = model.subgraphs[0]
    return ModelInfo(
        ops=ops,
        inputs=[_tensor_info(main.tensors[i]) for i in main.inputs],
        outputs=[_tensor_info(main.tensors[i]) for i in main.outputs],
        macs=int(macs),
        params=int(params),
        op_counts=counts,
        stateful=stateful,
        subgraphs=len(model.subgraphs),
        size_bytes=len(model_bytes),
    )


def per_channel_fc_layers(model_bytes: bytes) -> int:
    """How many FULLY_CONNECTED ops have weights quantized per output channel (several scales)."""
    model = parse_model(model_bytes)
    n = 0
    for graph in model.subgraphs or []:
        for op in graph.operators or []:
            if _op_name(model.operatorCodes[op.opcodeIndex]) != "FULLY_CONNECTED":
                continue
            q = graph.tensors[op.inputs[1]].quantization
            n += int(q is not None and q.scale is not None and len(q.scale) > 1)
    return n


def _op_name(opcode: schema.OperatorCodeT) -> str:
    code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
    if code == schema.BuiltinOperator.CUSTOM:
        custom = opcode.customCode
        return custom.decode() if isinstance(custom, bytes) else str(custom)
    return _OP_NAMES.get(code, f"BUILTIN_{code}")


def _shape(t: schema.TensorT) -> tuple[int, ...]:
    return tuple(int(d) for d in (t.shape if t.shape is not None else ()))


def _elements(t: schema.TensorT) -> int:
    return int(np.prod(_shape(t), dtype=np.int64))


def _tensor_info(t: schema.TensorT) -> TensorInfo:
    q = t.quantization
    scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else 0.0
    zp = (
        int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else 0
    )
    name = t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")
    return TensorInfo(name, _shape(t), _TYPE_NAMES.get(t.type, f"type{t.type}"), scale, zp)


def _op_macs(name: str, op: schema.OperatorT, tensors: list[schema.TensorT]) -> int:
    """Multiply-accumulates of one op (weighted ops only)."""

    def shape(k: int) -> tuple[int, ...]:
        idx = int(op.inputs[k]) if k < len(op.inputs) else -1
        return _shape(tensors[idx]) if idx >= 0 else ()

    out = _elements(tensors[int(op.outputs[0])]) if len(op.outputs) else 0
    if name == "FULLY_CONNECTED":
        return out * shape(1)[-1]
    if name == "CONV_2D":
        return out * int(np.prod(shape(1)[1:]))
    if name == "DEPTHWISE_CONV_2D":
        w = shape(1)
        return out * w[1] * w[2]
    if name == "TRANSPOSE_CONV":
        w = shape(1)
        return int(np.prod(shape(2))) * int(np.prod(w[:3]))
    if name == "BATCH_MATMUL":
        lhs = shape(0)
        adj_x = bool(getattr(op.builtinOptions, "adjX", False))
        return out * (lhs[-2] if adj_x else lhs[-1])
    if name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        x = shape(0)
        steps_x_batch = x[0] * x[1] if len(x) == 3 else (x[0] if x else 1)  # batch × steps
        # input->gate weights (inputs 1-4), recurrent weights (5-8), projection (16)
        weights = sum(int(np.prod(shape(k))) for k in (1, 2, 3, 4, 5, 6, 7, 8, 16) if shape(k))
        return steps_x_batch * weights
    return 0


@dataclass(frozen=True)
class OpOutput:
    """One operator's output tensor in execution order (for per-op comparisons)."""

    index: int  # operator index in the main subgraph
    op: str
    tensor: int
    name: str
    inputs: tuple[int, ...]  # non-constant input tensors
    output_index: int = 0  # its position among the debug model's outputs


def debug_model(model_bytes: bytes) -> tuple[bytes, list[OpOutput]]:
    """A copy of the model whose main subgraph outputs every operator's output (the real output
    stays output 0), and the list of those operators; for locating where two TFLMs differ."""

    model = parse_model(model_bytes)
    graph = model.subgraphs[0]
    constant = {
        i
        for i, t in enumerate(graph.tensors)
        if t.buffer < len(model.buffers)
        and model.buffers[t.buffer].data is not None
        and len(model.buffers[t.buffer].data)
    }
    variable = {i for i, t in enumerate(graph.tensors) if t.isVariable}
    outs: list[OpOutput] = []
    for k, op in enumerate(graph.operators):
        for t in op.outputs:
            tensor = graph.tensors[t]
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            ins = tuple(int(i) for i in op.inputs if i >= 0 and i not in constant | variable)
            outs.append(
                OpOutput(k, _op_name(model.operatorCodes[op.opcodeIndex]), int(t), name, ins)
            )
    first = list(graph.outputs)
    graph.outputs = first + [o.tensor for o in outs if o.tensor not in first]
    position = {int(t): i for i, t in enumerate(graph.outputs)}
    outs = [replace(o, output_index=position[o.tensor]) for o in outs]
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), outs


@dataclass(frozen=True)
class NodeWork:
    """One operator of the main subgraph, in invoke order, and the work it does."""

    index: int
    op: str
    name: str  # its (first) output tensor's name, e.g. tiny/branch_pool/Mean
    work: int  # MACs for weighted ops, else elements (the larger of its first input and output)
    unit: str  # "MAC" or "element"


def op_input_types(model_bytes: bytes) -> dict[str, set[str]]:
    """Each op of the main subgraph -> the element types of its nodes' first inputs."""
    model = parse_model(model_bytes)
    graph = model.subgraphs[0]
    tensors = graph.tensors or []
    types: dict[str, set[str]] = {}
    for op in graph.operators or []:
        name = _op_name(model.operatorCodes[op.opcodeIndex])
        first = [tensors[int(i)].type for i in op.inputs[:1] if i >= 0]
        types.setdefault(name, set()).update(_TYPE_NAMES.get(t, f"type{t}") for t in first)
    return types


def node_work(model_bytes: bytes) -> list[NodeWork]:
    """Every node of the main subgraph with its MACs (weighted ops) or elements (the rest)."""
    model = parse_model(model_bytes)
    graph = model.subgraphs[0]
    tensors = graph.tensors or []
    nodes = []
    for k, op in enumerate(graph.operators or []):
        name = _op_name(model.operatorCodes[op.opcodeIndex])
        macs = _op_macs(name, op, tensors)
        out = tensors[int(op.outputs[0])] if len(op.outputs) else None
        label = out.name.decode() if out is not None and isinstance(out.name, bytes) else ""
        if macs:
            nodes.append(NodeWork(k, name, label, int(macs), "MAC"))
            continue
        sizes = [_elements(tensors[int(i)]) for i in (*op.inputs[:1], *op.outputs[:1]) if i >= 0]
        nodes.append(NodeWork(k, name, label, max(sizes, default=0), "element"))
    return nodes
