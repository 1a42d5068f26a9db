"""Write the malformed models of the corpus (tests/corpus/models/) from the small HAR model of
tests/helpers/fw_models.py: `python tests/corpus/make_models.py`. Each is a real model mutated in
one way; the tests read the files, so they need no TensorFlow."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import flatbuffers
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fw_models import har_int8_model  # noqa: E402


def _pack(model: schema.ModelT) -> bytes:
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _model() -> schema.ModelT:
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(har_int8_model()), 0))


def bad_opcode_index() -> bytes:
    """The second operator names opcode 200 of a model that has a dozen."""
    m = _model()
    m.subgraphs[0].operators[1].opcodeIndex = 200
    return _pack(m)


def bad_tensor_index() -> bytes:
    """The first operator reads tensor 5000 of a subgraph that has some dozens."""
    m = _model()
    m.subgraphs[0].operators[0].inputs[0] = 5000
    return _pack(m)


def zero_operators() -> bytes:
    """No operator at all: the subgraph's output is its input."""
    m = _model()
    g = m.subgraphs[0]
    g.operators = []
    g.outputs = list(g.inputs)
    return _pack(m)


def tflite_refuses() -> bytes:
    """Runs in TFLM, which reads no signatures, but TFLite's flatbuffer verifier refuses it: the
    signature name's length runs past the end of the file."""
    data = bytearray(har_int8_model())
    at = data.find(b"serving_default")
    struct.pack_into("<I", data, at - 4, 0x7FFFFF00)
    return bytes(data)


MODELS = {
    "bad_opcode_index.tflite": bad_opcode_index,
    "bad_tensor_index.tflite": bad_tensor_index,
    "zero_operators.tflite": zero_operators,
    "tflite_refuses.tflite": tflite_refuses,
}

if __name__ == "__main__":
    for name, make in MODELS.items():
        (HERE / "models" / name).write_bytes(make())
        print(name)
