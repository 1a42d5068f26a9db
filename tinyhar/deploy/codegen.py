"""Render the firmware templates with Jinja into a sketch folder; C literal writers."""

from __future__ import annotations

import math
import re
import shutil
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from tinyhar.errors import TinyharError
from tinyhar.files import atomic_path
from tinyhar.resources import templates_dir

# Static C sources copied into every sketch (written by the core's authors, not rendered).
CORE_FILES = ("tinyhar_core.h", "tinyhar_core.c")
# Templates rendered into every sketch; "sketch.ino.j2" becomes "<sketch>.ino".
TEMPLATES = (
    "tinyhar_config.h.j2",
    "model_data.h.j2",
    "model_data.cpp.j2",
    "tinyhar_runner.h.j2",
    "tinyhar_runner.cpp.j2",
    "sketch.ino.j2",
    "README.md.j2",
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


def render_files(context: Mapping[str, Any], sketch_name: str) -> dict[str, str]:
    """Render every template to {file name: text}; the sketch template becomes `<sketch>.ino`."""
    env = environment()
    out: dict[str, str] = {}
    for tpl in TEMPLATES:
        name = tpl[: -len(".j2")]
        if name == "sketch.ino":
            name = f"{sketch_name}.ino"
        try:
            out[name] = env.get_template(tpl).render(**context)
        except jinja2.TemplateError as e:
            raise TinyharError(f"template {tpl} failed to render: {e}") from None
    return out


def render_firmware(context: Mapping[str, Any], sketch_dir: Path) -> Path:
    """Render the templates and copy the core into `sketch_dir`, atomically (all or nothing).

    The folder name is the sketch name, as arduino-cli requires (`<name>/<name>.ino`)."""
    sketch_dir = Path(sketch_dir)
    if not re.fullmatch(r"[A-Za-z0-9_]+", sketch_dir.name):
        raise TinyharError(
            f"sketch name {sketch_dir.name!r}: use letters, digits and _ (arduino-cli needs it)"
        )
    missing = [f for f in CORE_FILES if not (templates_dir() / f).is_file()]
    if missing:
        raise TinyharError(f"firmware core {', '.join(missing)} missing from {templates_dir()}")
    files = render_files(context, sketch_dir.name)
    with atomic_path(sketch_dir) as tmp:
        tmp.mkdir(parents=True)
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        for name in CORE_FILES:
            shutil.copyfile(templates_dir() / name, tmp / name)
    return sketch_dir
