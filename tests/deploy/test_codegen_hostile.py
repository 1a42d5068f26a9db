"""Nothing from outside reaches the generated firmware unescaped: labels, the model's file name,
side-file fields, a dataset's class and channel names and a board file's strings, each hostile,
render into firmware that compiles with -Wall -Wextra -Werror -trigraphs under -std=c++11 (and
C99), carries the labels byte for byte, and holds no injected line outside a string literal."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jinja2
import jinja2.nodes
import pytest
from click.testing import CliRunner
from helpers.fw_models import dataset_json, har_int8_model, make_run, third_party_float_model
from helpers.paths import TESTS

from tinyhar.board import tflm_library
from tinyhar.cli import main
from tinyhar.deploy import codegen
from tinyhar.deploy.codegen import c_comment, c_float, c_header, c_int, c_string
from tinyhar.errors import TinyharError
from tinyhar.resources import boards_dir, templates_dir
from tinyhar.run import folder as runs

STAND_INS = TESTS / "stand_in_headers"
STRICT = ["-Wall", "-Wextra", "-Werror", "-trigraphs"]
needs_gcc = pytest.mark.usefixtures("host_gcc")

# For comments and names: a new line with a directive after it, a comment's end, line
# continuations (a backslash, and the trigraph ??/ that is one under -trigraphs), a format string.
HOSTILE = (
    'x"\n#error INJECTED_1\n#define INJECTED_2 1\n*/ #error INJECTED_3 /* ??/\n'
    "#error INJECTED_4 \\\n#error INJECTED_5 \r#error INJECTED_6 %s%n é"
)
HOSTILE_FILE = HOSTILE.replace("/", "|")  # a file name holds no slash
# Class names are refused with control characters (tests below); these are hostile without one:
# quotes, backslashes and trigraphs that would end or escape a string literal, comment marks.
LABELS = ['q"??/', "w\\", "*/ x /* ??=error INJECTED_7", "%s%n??(??)??<??>??'??!??-é", "e??/"]


# --- the helpers ------------------------------------------------------------------------------


def test_c_string_escapes_quotes_backslashes_trigraphs_and_bytes():
    assert c_string('a"b\\c') == '"a\\"b\\\\c"'
    assert c_string("??/") == '"\\?\\?/"'  # no trigraph survives
    assert c_string("é\n\x00") == '"\\303\\251\\012\\000"'
    assert c_string("\x01" + "7") == '"\\0017"'  # three octal digits: the 7 stays a 7


def test_c_comment_leaves_no_way_out_of_a_comment():
    text = c_comment(HOSTILE)
    assert "\n" not in text and "\r" not in text and "*" not in text and "\\" not in text
    assert "??" not in text and "?" not in text
    assert c_comment("acc_x [m/s^2] 100%") == "acc_x [m/s^2] 100%25"
    assert c_comment("*/") == "%2A/"


def test_c_int_and_c_float_refuse_what_the_c_type_cannot_hold():
    assert c_int(65535, "uint16_t") == "65535" and c_int(-128, "int8_t") == "-128"
    assert c_float(1e38) == "9.99999968e+37f" and c_float(0) == "0.0f"
    for bad in (
        lambda: c_int(1e30, "uint16_t"),
        lambda: c_int(65536, "uint16_t"),
        lambda: c_int(-1, "uint32_t"),
        lambda: c_int(2.5, "int32_t"),
        lambda: c_int("7", "int32_t"),
        lambda: c_float(1e300),
        lambda: c_float(-1e39),
        lambda: c_float(1e-300),  # would be written 0.0f
        lambda: c_float(float("nan")),
        lambda: c_float("fast"),
        lambda: c_header("a.h>\n#error x.h"),
        lambda: c_header("../../etc/x.h"),
    ):
        with pytest.raises(TinyharError):
            bad()


ALLOWED_FILTERS = {"c_float", "c_int", "c_ints", "c_hex32", "c_string", "c_comment", "c_header",
                   "c_ident"}  # fmt: skip
PRE_RENDERED = {"model_array"}  # codegen.c_array's output: hex bytes


def _safe(node: jinja2.nodes.Node) -> bool:
    """Whether an output expression is a C helper's result, a constant or the loop counter."""
    if isinstance(node, jinja2.nodes.Filter):
        return node.name in ALLOWED_FILTERS
    if isinstance(node, jinja2.nodes.CondExpr):
        return _safe(node.expr1) and (node.expr2 is None or _safe(node.expr2))
    if isinstance(node, jinja2.nodes.Const):
        return True
    if isinstance(node, jinja2.nodes.Getattr):
        return node.attr == "index0" and getattr(node.node, "name", "") == "loop"
    return isinstance(node, jinja2.nodes.Name) and node.name in PRE_RENDERED


def test_every_value_a_c_template_writes_goes_through_a_c_helper():
    env = codegen.environment()
    c_templates = [t for t in (*codegen.LIBRARY_TEMPLATES, codegen.SKETCH_TEMPLATE)]
    checked = 0
    for name in c_templates:
        source = (templates_dir() / name).read_text(encoding="utf-8")
        tree = env.parse(source)
        for output in tree.find_all(jinja2.nodes.Output):
            for node in output.nodes:
                if isinstance(node, jinja2.nodes.TemplateData):
                    continue
                checked += 1
                assert _safe(node), f"{name}: a value reaches C without a helper: {node}"
    assert checked > 60
    for name in ("README.md.j2", "library.properties.j2"):
        tree = env.parse((templates_dir() / name).read_text(encoding="utf-8"))
        for output in tree.find_all(jinja2.nodes.Output):
            for node in output.nodes:
                if not isinstance(node, jinja2.nodes.TemplateData):
                    assert isinstance(node, jinja2.nodes.Filter) and node.name == "one_line"


# --- the firmware, rendered with hostile values on every input path -------------------------


def _hostile_board(folder: Path) -> Path:
    """nano33ble.toml with every free-text string hostile (names the C code needs stay valid)."""
    text = (boards_dir() / "nano33ble.toml").read_text(encoding="utf-8")
    hostile = json.dumps(HOSTILE)
    for key, value in (("title", HOSTILE), ("chip", HOSTILE), ("core", HOSTILE),
                       ("fqbn", "a:b:" + HOSTILE), ("version", HOSTILE)):  # fmt: skip
        line = f"{key} = {json.dumps(value)}"
        text = re.sub(rf'(?m)^{key} = ".*"$', lambda _, line=line: line, text, count=1)
    text = text.replace('[mcu]\nname = "nRF52840"', f"[mcu]\nname = {hostile}")
    text = text.replace('cpu = "Cortex-M4F"', f"cpu = {hostile}")
    text = text.replace('name = "nano33ble"', 'name = "hostile_board"')
    path = folder / "hostile_board.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _build(*args: str) -> None:
    res = CliRunner().invoke(main, ["build", "--no-measure", *args], env={"PATH": ""})
    assert res.exit_code == 0, res.output


def _src(build_json: Path) -> tuple[Path, dict]:
    rec = json.loads(build_json.read_text())
    return Path(rec["library_dir"]) / "src", rec


def hostile_firmware(tmp_path: Path) -> dict[str, tuple[Path, dict]]:
    """Three builds, each the library src/ folder and build.json: a run whose dataset's class
    and channel names are hostile, for a hostile board file; a .tflite with a hostile file name
    and side file; the same model with hostile --labels."""
    board = _hostile_board(tmp_path)
    out = {}
    root = tmp_path / "from_run"
    make_run(root)
    ds = dataset_json()
    ds["labels"] = LABELS[:4]
    for ch in ds["channels"]:
        ch["name"] = HOSTILE
    (root / "run" / runs.DATASET_JSON).write_text(json.dumps(ds))
    _build("--board", str(board), "--run", str(root / "run"))
    out["run"] = _src(root / "run" / runs.BUILD_JSON)

    folder = tmp_path / "from_model"
    folder.mkdir()
    model = folder / f"{HOSTILE_FILE}.tflite"
    model.write_bytes(third_party_float_model())
    side = {
        "labels": LABELS,
        "channels": [{"kind": "acc", "axis": a, "name": HOSTILE, "unit": "m/s^2"} for a in "xyz"],
        "mean": [0.5, -1e-3, 9.8],
        "std": [2, 3, 4],
        "rate_hz": 50,
        "stride": 20,
    }
    model.with_suffix(".json").write_text(json.dumps(side))
    _build("--board", str(board), "--model", str(model))
    out["model"] = _src(folder / runs.BUILD_JSON)

    other = tmp_path / "from_options"
    _build("--model", str(model), "--out", str(other), "--labels", ",".join(LABELS))
    out["options"] = _src(other / runs.BUILD_JSON)
    return out


def code_outside_literals(text: str) -> str:
    """C source with comments and string/char literals removed, after what translation phases
    1-2 do under -trigraphs (trigraphs replaced, backslash-newlines spliced)."""
    trigraphs = dict(zip("=/'()!<>-", "#\\^[]|{}~", strict=True))
    text = re.sub(r"\?\?([=/'()!<>-])", lambda m: trigraphs[m.group(1)], text)
    text = text.replace("\\\r\n", "").replace("\\\n", "")
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            assert end >= 0, "an unterminated comment"
            i = end + 2
        elif text[i] in "\"'":
            quote, i = text[i], i + 1
            while text[i] != quote:
                assert text[i] != "\n", "a literal runs over a line end"
                i += 2 if text[i] == "\\" else 1
            i += 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


C_FILES = ("tinyhar_config.h", "tinyhar_limits.h", "tinyhar_model.h", "model_data.h",
           "model_data.cpp", "tinyhar_runner.h", "tinyhar_runner.cpp")  # fmt: skip

# A host program around the generated library: prints every label, the board and the version.
MAIN = r"""
#include <stdio.h>
#include "tinyhar_model.h"
#include "model_data.h"

int main(void)
{
    static tinyhar_config_t cfg;
    tinyhar_config_fill(&cfg);
    for (unsigned i = 0; i < cfg.n_classes; i++) {
        fputs(cfg.labels[i], stdout);
        fputc('\n', stdout);
    }
    printf("%s|%s|%u\n", cfg.board_name, cfg.firmware_version, g_tinyhar_model_len);
    return 0;
}
"""


def _cc(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@needs_gcc
def test_hostile_values_on_every_input_path_compile_and_inject_nothing(tmp_path):
    libraries = tflm_library.libraries_dir()  # $TINYHAR_ARDUINO_LIBRARIES (conftest sets it)
    lib_src = tflm_library.library_src(libraries, tflm_library.load_library(
        "Chirale_TensorFLowLite"))  # fmt: skip
    tflm = [a for d in tflm_library.include_dirs(lib_src) for a in ("-isystem", str(d))]
    imu = ["-isystem", str(libraries / "Arduino_LSM9DS1" / "src")]
    for path, (src, rec) in hostile_firmware(tmp_path).items():
        sketch = next((src.parent / "examples").rglob("*.ino"))
        for f in (*(src / name for name in C_FILES), sketch):
            text = f.read_text(encoding="utf-8")
            assert "??" not in text, f"{path}: a trigraph in {f.name}"
            assert "INJECTED" not in code_outside_literals(text), f"{path}: {f.name}"
            assert not re.search(r"(?m)^\s*#\s*(error|define) INJECTED", text), f"{path}: {f.name}"
        for props in (src.parent / "library.properties", src.parent / "README.md"):
            assert "\n#error" not in props.read_text(encoding="utf-8")
        (src / "main.cpp").write_text(MAIN)
        cxx = ["g++", "-std=c++11", *STRICT, "-I.", "-c"]
        _cc(["gcc", "-std=c99", *STRICT, "-I.", "-c", "tinyhar_core.c", "-o", "core.o"], src)
        _cc([*cxx, "main.cpp", "-o", "main.o"], src)
        _cc([*cxx, "model_data.cpp", "-o", "model_data.o"], src)
        _cc(["g++", "core.o", "main.o", "model_data.o", "-o", "prog"], src)
        printed = subprocess.run([str(src / "prog")], capture_output=True, check=True).stdout
        *labels, last = printed.decode("utf-8").split("\n")[:-1]
        assert labels == rec["config"]["labels"] and labels[:4] == LABELS[:4]
        assert last.startswith(("hostile_board|", "nano33ble|"))
        # the runner against the real TFLM headers, and the sketch as the Arduino builder takes it
        _cc(["g++", "-std=c++11", *STRICT, "-I.", f"-I{templates_dir() / 'emulator'}", *tflm,
             *(f"-D{d}" for d in tflm_library.DEFINES), "-fsyntax-only", "tinyhar_runner.cpp"],
            src)  # fmt: skip
        _cc(["g++", "-std=c++11", *STRICT, f"-I{src}", f"-I{STAND_INS}", *imu, "-fsyntax-only",
             "-x", "c++", "-include", str(STAND_INS / "Arduino.h"), str(sketch)], src)  # fmt: skip


@pytest.mark.parametrize(
    "label, problem",
    [
        ("walk\n#error INJECTED", "control character U+000A"),
        ("\x1b]0;owned\x07", "control character U+001B"),
        ("del\x7f", "control character U+007F"),
        (" walking ", "spaces around it"),
        ("x" * 65, "more than 64"),
    ],
)
def test_labels_with_control_characters_are_refused_in_one_line(tmp_path, label, problem):
    model = tmp_path / "m.tflite"
    model.write_bytes(har_int8_model())
    labels = ["a", "b", "c", label]
    (tmp_path / "m.json").write_text(json.dumps({"labels": labels}))
    res = CliRunner().invoke(main, ["build", "--no-measure", "--model", str(model)],
                             env={"PATH": ""})  # fmt: skip
    assert res.exit_code == 2 and problem in res.output, res.output
    assert "labels in" in res.output and "m.json" in res.output
    assert len(res.output.strip().splitlines()[-1]) < 300
    assert not (tmp_path / "firmware").exists()


def test_a_hostile_header_in_a_board_file_is_refused(tmp_path):
    text = (boards_dir() / "nano33ble.toml").read_text(encoding="utf-8")
    text = text.replace('header = "Arduino_LSM9DS1.h"', 'header = "x.h>\\n#error INJECTED\\n<y.h"')
    board = tmp_path / "evil.toml"
    board.write_text(text.replace('name = "nano33ble"', 'name = "evil"'))
    run = make_run(tmp_path)
    res = CliRunner().invoke(main, ["build", "--no-measure", "--board", str(board), "--run",
                                    str(run)], env={"PATH": ""})  # fmt: skip
    assert res.exit_code == 2 and "is not a plain header name" in res.output, res.output
