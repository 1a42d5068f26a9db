"""The protocol is defined once per side: the firmware's C (tinyhar_core.h/.c) must say what
tinyhar/board/protocol.py says. Each check parses the C and compares it with the Python."""

from __future__ import annotations

import inspect
import re
import struct

import pytest

from tinyhar.board import protocol as P
from tinyhar.resources import templates_dir

C_TYPES = {"u8": "B", "u16": "H", "u32": "I", "f32": "f"}
END = "(end)"


def _strip_comments(src: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", src, flags=re.S)


@pytest.fixture(scope="module")
def header() -> str:
    return _strip_comments((templates_dir() / "tinyhar_core.h").read_text())


@pytest.fixture(scope="module")
def core_c() -> str:
    return _strip_comments((templates_dir() / "tinyhar_core.c").read_text())


def _constants(src: str) -> dict[str, int]:
    """Every TINYHAR_* integer: enum members and #defines, expressions of others evaluated."""
    raw = dict(re.findall(r"\b(TINYHAR_\w+)\s*=\s*(0x[0-9A-Fa-f]+|\d+)", src))
    raw.update(re.findall(r"#define\s+(TINYHAR_\w+)[ \t]+([^\n]+)", src))
    out: dict[str, int] = {}

    def value(name: str) -> int:
        if name not in out:
            expr = re.sub(r"\b(\d+)u\b", r"\1", raw[name].strip())
            if not re.fullmatch(r"[\w\s()+\-*/]+", expr):
                raise ValueError(f"{name} is not an integer expression: {expr}")
            expr = re.sub(r"\bTINYHAR_\w+", lambda m: str(value(m[0])), expr)
            out[name] = int(eval(expr.replace("/", "//"), {"__builtins__": {}}))  # noqa: S307
        return out[name]

    for name, text in raw.items():
        if not text.strip().startswith('"'):
            value(name)
    return out


def _prefixed(consts: dict[str, int], prefix: str) -> dict[str, int]:
    return {k[len(prefix) :]: v for k, v in consts.items() if k.startswith(prefix)}


def test_protocol_version_reply_bit_and_frame_sizes(header) -> None:
    c = _constants(header)
    assert c["TINYHAR_PROTOCOL_VERSION"] == P.PROTOCOL_VERSION
    assert c["TINYHAR_REPLY"] == P.REPLY
    assert c["TINYHAR_FRAME_HEADER"] == P.HEADER_BYTES
    assert c["TINYHAR_FRAME_CRC"] == P.CRC_BYTES
    assert c["TINYHAR_FRAME_OVERHEAD"] == P.FRAME_OVERHEAD
    assert c["TINYHAR_SEQ_UNKNOWN"] == P.SEQ_UNKNOWN
    assert c["TINYHAR_INFER_RAW_WITH_WINDOW"] == P.INFER_RAW_WITH_WINDOW
    assert c["TINYHAR_MAX_PAYLOAD"] == P.MAX_PAYLOAD  # the default device's maxima
    # the header's layout comment and the frame packing agree with the sizes
    assert struct.calcsize("<BBBH") == P.HEADER_BYTES


def test_message_types(header) -> None:
    c = _prefixed(_constants(header), "TINYHAR_MSG_")
    assert c == {m.name: m.value for m in P.MsgType}


def test_error_codes(header) -> None:
    c = _prefixed(_constants(header), "TINYHAR_ERR_")
    assert c == {e.name: e.value for e in P.ErrorCode}
    assert set(P.ERROR_TEXT) == set(P.ErrorCode)


def test_dtype_codes(header) -> None:
    c = _prefixed(_constants(header), "TINYHAR_DTYPE_")
    assert {k.lower(): v for k, v in c.items()} == P.DTYPE_CODES
    assert {v: k for k, v in P.DTYPE_CODES.items()} == P.DTYPE_NAMES


def test_runner_codes() -> None:
    src = _strip_comments((templates_dir() / "tinyhar_runner.h.j2").read_text())
    assert set(_prefixed(_constants(src), "TINYHAR_RUNNER_").values()) == set(P.RUNNER_PROBLEMS)


# --- payload layouts: what the C writes, field by field ----------------------------------------


def _function(src: str, name: str) -> str:
    m = re.search(rf"\n[^\n]*\b{name}\([^)]*\)\s*\{{(.*?)\n\}}", src, flags=re.S)
    assert m, f"{name} not found in tinyhar_core.c"
    return m[1]


def _c_name(expr: str) -> str:
    """The field a C expression writes: cfg->window -> window, TINYHAR_MAX_PAYLOAD -> max_payload;
    the flags byte (a ?: expression) -> flags."""
    if "?" in expr:
        return "flags"
    name = re.findall(r"[A-Za-z_]\w*", expr)[-1]
    return name.removeprefix("TINYHAR_").lower()


def _layout(body: str) -> list:
    """The writes into the payload `p`, in order: fixed fields as segments of (offset, struct
    code, name), separated by ("tensor", name) and ("string", name, limit) of variable size. A
    segment ends with (offset, "", END): where the next part or the frame's end (send_frame's
    length) begins."""
    items: list = [[]]
    base = 0

    def part(marker: tuple) -> None:
        nonlocal base
        if items[-1]:
            items[-1].append((base, "", END))
        items.extend([marker, []])
        base = 0

    for stmt in (s.strip() for s in body.split(";")):
        stmt = " ".join(stmt.split())
        if m := re.fullmatch(r"p\[(o\+\+|\d+)\] = (.+)", stmt):
            off = base if m[1] == "o++" else int(m[1])
            items[-1].append((off, "B", _c_name(m[2])))
            base += m[1] == "o++"
        elif m := re.fullmatch(r"put_(u16|u32|f32)\(p( \+ o)?( \+ (\d+))?, (.+)\)", stmt):
            off = (base if m[2] else 0) + int(m[4] or 0)
            items[-1].append((off, C_TYPES[m[1]], _c_name(m[5])))
        elif m := re.fullmatch(r"o \+= (\d+)", stmt):
            base += int(m[1])
        elif m := re.fullmatch(r"o \+= put_tensor\(p \+ o, cfg->(\w+)_dtype, .+\)", stmt):
            part(("tensor", m[1]))
        elif m := re.fullmatch(r"o \+= put_string\(p \+ o, (.+), (\d+)\)", stmt):
            part(("string", _c_name(m[1]), int(m[2])))
        elif m := re.fullmatch(r"send_frame\(dev, .+, (o|\d+)\)", stmt):
            items[-1].append((base if m[1] == "o" else int(m[1]), "", END))
    return [i for i in items if i != []]


def _struct_of(fields: list[tuple[int, str, str]]) -> tuple[str, list[str]]:
    """('<codes', names) of contiguous fixed fields; fails on a gap, an overlap, or a segment
    whose end is not where its last field ends."""
    assert fields[-1][2] == END, f"no end found after {fields}"
    fields = sorted(fields, key=lambda f: (f[0], f[2] == END))
    at = 0
    for off, code, name in fields:
        assert off == at, f"{name} at offset {off}, expected {at}"
        at += struct.calcsize("<" + code)
    fields = [f for f in fields if f[2] != END]
    return "<" + "".join(f[1] for f in fields), [f[2] for f in fields]


def _same_width(py_format: str) -> str:
    """A struct format with signedness dropped: the wire carries bytes either way."""
    return py_format.translate(str.maketrans("bhi", "BHI"))


def _py_args(src: str, call: str) -> list[str]:
    m = re.search(rf"{re.escape(call)}\((.*?)\)", src, flags=re.S)
    assert m, call
    return [a.strip().removeprefix("info.") for a in m[1].split(",") if a.strip()]


def test_hello_layout(core_c) -> None:
    """handle_hello writes _INFO_HEAD's fields, two tensors, three strings, _INFO_TAIL's fields,
    in pack_info's order, with pack_info's string limits."""
    layout = _layout(_function(core_c, "handle_hello"))
    head, *middle, tail = layout
    py = inspect.getsource(P.pack_info)

    fmt, names = _struct_of(head)
    assert fmt == P._INFO_HEAD.format
    assert names == _py_args(py, "_INFO_HEAD.pack")
    fmt, names = _struct_of(tail)
    assert fmt == P._INFO_TAIL.format
    assert names == _py_args(py, "_INFO_TAIL.pack")

    py_middle = [
        ("tensor", m[1]) if m[1] else ("string", m[2].removesuffix("_name"), int(m[3] or 255))
        for m in re.finditer(
            r"_pack_tensor\(info\.(\w+)\)|_pack_str\(info\.(\w+)(?:, (\d+))?\)", py
        )
    ]
    c_middle = [(i[0], i[1].removesuffix("_name"), *i[2:]) for i in middle]
    assert c_middle == py_middle

    # the flags byte: bit 1 streaming, bit 2 a model (the C: an inference hook)
    flags_c = re.findall(
        r"dev->([\w.]+)(?: != NULL)? \? (\d)u : 0u", _function(core_c, "handle_hello")
    )
    flags_py = re.findall(r"\((\d) if info\.(\w+) else 0\)", py)
    same = {"streaming": "streaming", "plat.infer": "has_model"}
    assert [(int(bit), same.get(name, name)) for name, bit in flags_c] == [
        (int(bit), name) for bit, name in flags_py
    ]
    assert len(flags_py) == 2


@pytest.mark.parametrize(
    ("function", "py_struct"),
    [("send_error", P._ERROR), ("send_status", P._STATUS), ("stream_predict", P._PREDICTION)],
)
def test_fixed_layouts(core_c, function: str, py_struct: struct.Struct) -> None:
    (fields,) = _layout(_function(core_c, function))
    fmt, _ = _struct_of(fields)
    assert fmt == _same_width(py_struct.format)
