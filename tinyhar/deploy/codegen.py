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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from tinyhar.board.boards import NAME
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_path, atomic_write_text
from tinyhar.resources import templates_dir

LIBRARY_NAME = "tinyhar_model"  # the Arduino library every build regenerates
# Static C sources copied into the library's src/ (written by the core's authors, not rendered).
CORE_FILES = ("tinyhar_core.h", "tinyhar_core.c")
KERNELS_DIR = "kernels"  # tinyhar's own TFLM kernels and the resolver that adds them
# ... and the headers the kernels share (the M4's DSP instructions, exact requantisation).
KERNEL_COMMON = (
    "tinyhar_kernels.h",
    "tinyhar_op_resolver.h",
    "tinyhar_simd.h",
    "tinyhar_requantise.h",
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
)
SKETCH_TEMPLATE = "sketch.ino.j2"
SKETCH_MARK = ".tinyhar_generated"  # sha256 of the sketch as tinyhar last wrote it
# Files that builds before the library layout wrote into the sketch folder.
OLD_SKETCH_FILES = (*CORE_FILES, "tinyhar_config.h", "model_data.h", "model_data.cpp",
                    "tinyhar_runner.h", "tinyhar_runner.cpp", "README.md")  # fmt: skip


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


def c_float(x: float) -> str:
    """An exact float32 C literal: `%.9g` round-trips every float32; `f` keeps it single."""
    f = struct.unpack("<f", struct.pack("<f", float(x)))[0]
    if math.isnan(f) or math.isinf(f):
        raise TinyharError(f"cannot write {x} into firmware: not a finite number")
    text = f"{f:.9g}"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def c_string(s: str) -> str:
    """A C string literal holding `s` (UTF-8, escaped)."""
    out = []
    for b in s.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def c_ident(s: str) -> str:
    """A C identifier made from `s`."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", s)
    return ident if ident and not ident[0].isdigit() else "_" + ident


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
    env.filters["c_float"] = c_float
    env.filters["c_string"] = c_string
    env.filters["c_ident"] = c_ident
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
    for name in (*KERNEL_COMMON, *context["own_kernels"].values()):
        out[f"src/{name}"] = (templates_dir() / KERNELS_DIR / name).read_text(encoding="utf-8")
    return out


def sketch_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Rendered:
    """Where a build put the firmware, and whether the user's sketch was kept as it was."""

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


def render_firmware(context: Mapping[str, Any], board_dir: Path, sketch_name: str) -> Rendered:
    """Write `board_dir/libraries/tinyhar_model/` (replaced whole, atomically) and the sketch
    `board_dir/<sketch>/<sketch>.ino`, which is only written when the user has not changed it."""
    check_sketch_name(sketch_name)
    missing = [f for f in CORE_FILES if not (templates_dir() / f).is_file()]
    if missing:
        raise TinyharError(f"firmware core {', '.join(missing)} missing from {templates_dir()}")
    files = render_library(context, sketch_name)
    library_dir = Path(board_dir) / "libraries" / LIBRARY_NAME
    with atomic_path(library_dir) as tmp:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text, encoding="utf-8")
    sketch_dir = Path(board_dir) / sketch_name
    sketch = files[f"examples/{sketch_name}/{sketch_name}.ino"]
    return Rendered(library_dir, sketch_dir, not _write_sketch(sketch_dir, sketch_name, sketch))


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
