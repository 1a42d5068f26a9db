"""Render the firmware with Jinja: an Arduino library the build owns and a sketch the user owns.

`firmware/<board>/libraries/tinyhar_model/` holds the model, config, core, runner and kernels and is
rewritten by every build; `firmware/<board>/<sketch>/<sketch>.ino` is written once and then only
while the user has not changed it (the library's `examples/` always has the fresh one).
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from tinyhar.board.boards import NAME
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_path, atomic_write_text
from tinyhar.resources import templates_dir
from tinyhar.run.firmware import FIRMWARE_LIBRARY, FirmwareTree

LIBRARY_NAME = FIRMWARE_LIBRARY  # the Arduino library every build regenerates
# Static C sources copied into the library's src/ (written by the core's authors, not rendered).
CORE_FILES = ("tinyhar_core.h", "tinyhar_core.c")
KERNELS_DIR = "kernels"  # tinyhar's own TFLM kernels and the resolver that adds them
# ... and the headers the kernels share (the M4's DSP instructions, exact requantization).
KERNEL_COMMON = (
    "tinyhar_kernels.h",
    "tinyhar_op_resolver.h",
    "tinyhar_simd.h",
    "tinyhar_requantize.h",
)
# Templates rendered into the library's src/ (the sketch and the README are placed apart).
LIBRARY_TEMPLATES = (
    "tinyhar_model.h.j2",
    "tinyhar_limits.h.j2",
    "tinyhar_config.h.j2",
    "model_data.h.j2",
    "model_data.cpp.j2",
    "tinyhar_runner.h.j2",
    "tinyhar_runner.cpp.j2",
    "tinyhar_board.h.j2",
    "tinyhar_board.cpp.j2",
)
SKETCH_TEMPLATE = "sketch.ino.j2"
BOARD_LAYER_CALL = "tinyhar_board_poll"  # what a sketch made since the board layer moved calls
SKETCH_MARK = ".tinyhar_generated"  # sha256 of the sketch as tinyhar last wrote it
# Files that builds before the library layout wrote into the sketch folder.
OLD_SKETCH_FILES = (
    *CORE_FILES,
    "tinyhar_config.h",
    "model_data.h",
    "model_data.cpp",
    "tinyhar_runner.h",
    "tinyhar_runner.cpp",
    "README.md",
)


def c_array(data: bytes, per_line: int = 12, indent: str = "  ") -> str:
    """The bytes as the body of a C initializer: `0x1c, 0x00, ...`, `per_line` per line."""
    lines = []
    for i in range(0, len(data), per_line):
        chunk = data[i : i + per_line]
        lines.append(indent + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    return "\n".join(lines)


def parse_c_array(text: str) -> bytes:
    """The bytes of the first `{ 0x.., ... }` initializer in C source text (for checks)."""
    m = re.search(r"=\s*\{(.*?)\};", text, re.S)
    if not m:
        raise ValueError("no array initializer found")
    return bytes(int(tok, 16) for tok in re.findall(r"0x([0-9a-fA-F]{2})", m.group(1)))


FLT_MAX = 3.4028234663852886e38
FLT_MIN = 1.1754943508222875e-38  # the smallest normal float32
# The C integer types the templates write, and their ranges.
C_INT_RANGES: dict[str, tuple[int, int]] = {
    "uint8_t": (0, 0xFF),
    "int8_t": (-0x80, 0x7F),
    "uint16_t": (0, 0xFFFF),
    "int32_t": (-0x7FFFFFFF, 0x7FFFFFFF),  # -2^31 is not a literal in C: one less
    "uint32_t": (0, 0xFFFFFFFF),
}
_HEADER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.+-]*)*\.(?:h|hpp)")
# What a comment keeps as it is: printable ASCII but `*` (no `*/`, no `/*`), backslash (no line
# continuation), `?` (no trigraph) and `%` (the escape character).
_COMMENT_SAFE = frozenset(chr(b) for b in range(32, 127)) - set("*\\?%")


def c_float(x: Any, what: str = "a value") -> str:
    """An exact float32 C literal: `%.9g` round-trips every float32; `f` keeps it single.
    Refuses what is not a number, not finite, beyond float32 or too close to 0 to be one."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise TinyharError(f"cannot write {what} {x!r} into firmware: not a number") from None
    if not math.isfinite(value) or abs(value) > FLT_MAX:
        raise TinyharError(
            f"cannot write {what} {x!r} into firmware: not a finite float32 (|x| <= {FLT_MAX:.4g})"
        )
    if value != 0 and abs(value) < FLT_MIN:
        raise TinyharError(
            f"cannot write {what} {x!r} into firmware: too close to 0 for a float32 "
            f"(|x| >= {FLT_MIN:.4g})"
        )
    f = struct.unpack("<f", struct.pack("<f", value))[0]
    text = f"{f:.9g}"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def c_int(x: Any, ctype: str = "int32_t", what: str = "a value") -> str:
    """A decimal C integer literal of a value in range for `ctype` (a C_INT_RANGES key)."""
    low, high = C_INT_RANGES[ctype]
    if isinstance(x, bool) or not isinstance(x, int | float) and not hasattr(x, "__index__"):
        raise TinyharError(f"cannot write {what} {x!r} into firmware: not a whole number")
    if isinstance(x, float) and not (math.isfinite(x) and x.is_integer()):
        raise TinyharError(f"cannot write {what} {x!r} into firmware: not a whole number")
    value = int(x)
    if not low <= value <= high:
        raise TinyharError(
            f"cannot write {what} {value} into firmware: out of range for {ctype} ({low}..{high})"
        )
    return str(value)


def c_ints(values: Any, ctype: str = "int32_t", what: str = "a value") -> str:
    """Integers as the body of a C initializer (`1, 100, 6`), each checked by `c_int`."""
    return ", ".join(c_int(v, ctype, what) for v in values)


def c_hex32(x: Any, what: str = "a CRC-32") -> str:
    """A uint32_t as 8 hex digits (no 0x), range-checked."""
    return f"{int(c_int(x, 'uint32_t', what)):08x}"


def c_string(s: Any) -> str:
    """A C string literal holding `s` (UTF-8): quotes, backslashes, `?` (trigraphs) and every
    byte outside printable ASCII escaped, so nothing in `s` ends the literal."""
    out = []
    for b in str(s).encode("utf-8"):
        ch = chr(b)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")  # three digits: a following digit cannot extend it
    return '"' + "".join(out) + '"'


def c_comment(s: Any) -> str:
    """Text safe inside a C or C++ comment of either kind: printable ASCII kept; newlines, `*`,
    `\\`, `?`, `%` and every other byte written as %XX (so no `*/`, no line continuation,
    no trigraph and no new line can come from `s`)."""
    return "".join(
        chr(b) if chr(b) in _COMMENT_SAFE else f"%{b:02X}" for b in str(s).encode("utf-8")
    )


def c_header(s: Any) -> str:
    """A header name for `#include <...>`: letters, digits, `_.+-` and `/` between parts, ending
    in .h or .hpp; anything else is refused."""
    text = str(s)
    if not _HEADER.fullmatch(text) or ".." in text.split("/"):
        raise TinyharError(f"header {text!r} is not a plain header name (like Arduino_LSM9DS1.h)")
    return text


def c_ident(s: Any) -> str:
    """A C identifier made from `s`."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", str(s))
    return ident if ident and not ident[0].isdigit() else "_" + ident


def one_line(s: Any) -> str:
    """Text for one line of a non-C file (library.properties, README): control characters
    (newlines included) become spaces."""
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in str(s))


def environment() -> jinja2.Environment:
    """The Jinja environment over `firmware_templates/`: undefined variables are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    for helper in (
        c_float,
        c_int,
        c_ints,
        c_hex32,
        c_string,
        c_comment,
        c_header,
        c_ident,
        one_line,
    ):
        env.filters[helper.__name__] = helper
    return env


def _render(env: jinja2.Environment, tpl: str, context: Mapping[str, Any]) -> str:
    try:
        return env.get_template(tpl).render(**context)
    except jinja2.TemplateError as e:
        raise TinyharError(f"template {tpl} failed to render: {e}") from None


def render_library(context: Mapping[str, Any], sketch_name: str) -> dict[str, str]:
    """The Arduino library's files as {path inside the library: text}."""
    env = environment()
    out = {f"src/{tpl[: -len('.j2')]}": _render(env, tpl, context) for tpl in LIBRARY_TEMPLATES}
    out["library.properties"] = _render(env, "library.properties.j2", context)
    out["README.md"] = _render(env, "README.md.j2", context)
    out[f"examples/{sketch_name}/{sketch_name}.ino"] = _render(env, SKETCH_TEMPLATE, context)
    for name in CORE_FILES:
        out[f"src/{name}"] = (templates_dir() / name).read_text(encoding="utf-8")
    for name in dict.fromkeys((*KERNEL_COMMON, *context["own_kernels"].values())):
        out[f"src/{name}"] = (templates_dir() / KERNELS_DIR / name).read_text(encoding="utf-8")
    return out


def sketch_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Rendered:
    """Where a build put the firmware, and whether the user's sketch was kept as it was."""

    tree: FirmwareTree
    library_dir: Path
    sketch_dir: Path
    sketch_kept: bool


def check_sketch_name(name: str) -> str:
    """The sketch name, refused in one line unless arduino-cli can use it."""
    if not NAME.fullmatch(name):
        raise TinyharError(
            f"--sketch-name {name!r}: use letters, digits and _ (arduino-cli needs it)"
        )
    return name


def render_firmware(context: Mapping[str, Any], tree: FirmwareTree) -> Rendered:
    """Write the tree's tinyhar_model library (replaced whole, atomically) and its sketch
    `<sketch>/<sketch>.ino`, which is only written when the user has not changed it."""
    sketch_name = check_sketch_name(tree.sketch_name)
    missing = [f for f in CORE_FILES if not (templates_dir() / f).is_file()]
    if missing:
        raise TinyharError(f"firmware core {', '.join(missing)} missing from {templates_dir()}")
    files = render_library(context, sketch_name)
    library_dir = tree.library_dir
    with atomic_path(library_dir) as tmp:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text, encoding="utf-8")
    sketch = files[f"examples/{sketch_name}/{sketch_name}.ino"]
    kept = not _write_sketch(tree.sketch_dir, sketch_name, sketch)
    return Rendered(tree, library_dir, tree.sketch_dir, kept)


def _write_sketch(sketch_dir: Path, name: str, text: str) -> bool:
    """Write the sketch unless the user changed the one tinyhar wrote; True when written."""
    ino, mark = sketch_dir / f"{name}.ino", sketch_dir / SKETCH_MARK
    if ino.is_file():
        last = mark.read_text(encoding="utf-8").strip() if mark.is_file() else ""
        if sketch_digest(ino.read_text(encoding="utf-8")) != last:
            return False
    sketch_dir.mkdir(parents=True, exist_ok=True)
    for old in OLD_SKETCH_FILES:  # an earlier layout's copies would be compiled twice
        (sketch_dir / old).unlink(missing_ok=True)
    atomic_write_text(ino, text)
    atomic_write_text(mark, sketch_digest(text) + "\n")
    return True
