"""The package layering of docs/architecture.md, checked on the source: imports point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers.paths import REPO

PACKAGE = REPO / "tinyhar"

# Lower layers never import higher ones; packages of one layer do not import each other.
# The top-level modules (errors, files, log, runs, crc, resources, interrupt) are the base layer.
LAYERS: dict[str, int] = {
    "": 0,
    "run": 0,  # the run folder's names and types, a package of the base layer
    "data": 1,
    "lite": 1,
    "parallel": 1,
    "board": 2,
    "model": 3,
    "deploy": 4,
    "device": 5,
    "demo": 6,
    "search": 6,
    "commands": 7,
    "cli": 8,
    "__main__": 9,
}
BASE_MODULES = {"__init__", "errors", "files", "log", "run", "crc", "resources", "interrupt"}
LAZY_MARK = "# lazy:"  # a function-local import kept for start-up time says so on its line


def _package_of(module: str) -> str:
    """'tinyhar.deploy.build' -> 'deploy'; 'tinyhar.run.folder' -> '' (base, as every module of
    BASE_MODULES); 'tinyhar.cli' -> 'cli'."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in BASE_MODULES:
        return ""
    if len(parts) == 2 and not (PACKAGE / parts[1]).is_dir() and parts[1] not in LAYERS:
        return ""  # a name from tinyhar/__init__.py, e.g. __version__
    return parts[1]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        out.append((".".join(rel.parts), path))
    return out


def _tinyhar_imports(tree: ast.AST) -> list[tuple[ast.stmt, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "tinyhar":
                found += [(node, f"tinyhar.{a.name}") for a in node.names]
            elif node.module.startswith("tinyhar."):
                found.append((node, node.module))
        elif isinstance(node, ast.Import):
            found += [(node, a.name) for a in node.names if a.name.startswith("tinyhar")]
    return found


def _function_local_imports(tree: ast.AST) -> list[ast.stmt]:
    local = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            local += [n for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)]
    return local


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert packages <= set(LAYERS), f"give {packages - set(LAYERS)} a layer here and in the docs"
    assert modules - BASE_MODULES <= set(LAYERS), "a new top-level module needs a layer"


def test_no_import_points_up_or_sideways():
    wrong = []
    for module, path in _modules():
        own = _package_of(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, target in _tinyhar_imports(tree):
            other = _package_of(target)
            if other == own or LAYERS[other] < LAYERS[own]:
                continue
            wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_function_local_imports_are_only_those_kept_for_start_up_time():
    unmarked = []
    for _module, path in _modules():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in _function_local_imports(ast.parse(text)):
            if LAZY_MARK not in lines[node.lineno - 1]:
                unmarked.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not unmarked, (
        f"function-local imports without '{LAZY_MARK} <why>': move them to the top of the "
        "module, or say why start-up time needs them here:\n" + "\n".join(unmarked)
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from tinyhar.device.verify import x\n", ["tinyhar/deploy/fake.py:1 imports"]),
        ("from tinyhar import demo\n", ["tinyhar/deploy/fake.py:1 imports"]),
        ("from tinyhar.model.train import x\n", []),
        ("from tinyhar.run.folder import x\n", []),
    ],
)
def test_the_layer_check_catches_an_upward_import(source, expected):
    tree = ast.parse(source)
    own = _package_of("tinyhar.deploy.fake")
    wrong = [
        f"tinyhar/deploy/fake.py:{n.lineno} imports"
        for n, target in _tinyhar_imports(tree)
        if not (_package_of(target) == own or LAYERS[_package_of(target)] < LAYERS[own])
    ]
    assert wrong == expected


def _load_board_calls(tree: ast.AST) -> int:
    return sum(
        isinstance(node, ast.Call)
        and (
            getattr(node.func, "id", None) == "load_board"
            or getattr(node.func, "attr", None) == "load_board"
        )
        for node in ast.walk(tree)
    )


# where a board name becomes a Board: the commands, and boards.py's own one rule (resolve_board)
RESOLVES_BOARDS = ("commands/", "board/boards.py")


def test_the_board_is_named_once_and_resolved_where_a_command_starts():
    spelled = {
        str(p.relative_to(PACKAGE)): p.read_text(encoding="utf-8").count('"nano33ble"')
        for p in PACKAGE.rglob("*.py")
    }
    assert {k: n for k, n in spelled.items() if n} == {"board/boards.py": 1}
    calls = {
        str(p.relative_to(PACKAGE)): _load_board_calls(ast.parse(p.read_text(encoding="utf-8")))
        for p in PACKAGE.rglob("*.py")
    }
    elsewhere = {k: n for k, n in calls.items() if n and not k.startswith(RESOLVES_BOARDS)}
    assert elsewhere == {}
    assert sum(n for k, n in calls.items() if k.startswith("commands/")) >= 1


def test_the_load_board_scan_sees_calls_and_attributes():
    tree = ast.parse("from x import boards\nload_board('a')\nboards.load_board('b')\n")
    assert _load_board_calls(tree) == 2


# the names of a run's firmware tree: only tinyhar/run/firmware.py joins them into paths
FIRMWARE_TREE_NAMES = {"firmware", "libraries", "tinyhar_model", "m4f", "emulator"}


def _firmware_paths_spelled(tree: ast.AST) -> list[int]:
    """Lines that join one of the firmware tree's names into a path (`x / "firmware"`)."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div)
        and any(
            isinstance(side, ast.Constant) and side.value in FIRMWARE_TREE_NAMES
            for side in (node.left, node.right)
        )
        and not _shipped(node.left)
    ]


def _shipped(node: ast.AST) -> bool:
    """`templates_dir() / ...` or `boards_dir() / ...`: tinyhar's own files, not a run's."""
    while isinstance(node, ast.BinOp):
        node = node.left
    return isinstance(node, ast.Call) and getattr(node.func, "id", "") in SHIPPED_DIRS


SHIPPED_DIRS = {"templates_dir", "boards_dir"}


def test_only_the_run_package_spells_the_firmware_tree():
    spelled = {
        str(p.relative_to(PACKAGE)): lines
        for p in PACKAGE.rglob("*.py")
        if not str(p.relative_to(PACKAGE)).startswith("run/")
        and (lines := _firmware_paths_spelled(ast.parse(p.read_text(encoding="utf-8"))))
    }
    # board/arduino_dirs: the libraries folder of the user's Arduino sketchbook
    assert {k: v for k, v in spelled.items() if k != "board/arduino_dirs.py"} == {}


def test_the_firmware_tree_scan_sees_a_spelled_path():
    tree = ast.parse('p = run / "firmware" / board / "libraries" / "tinyhar_model"\n')
    assert _firmware_paths_spelled(tree) == [1, 1, 1]
    assert _firmware_paths_spelled(ast.parse('t = templates_dir() / "emulator"\n')) == []


# the JSON records of a run: only tinyhar/run/records.py reads or writes them
RUN_RECORDS = {"DATASET_JSON", "METRICS_JSON", "QUANTIZE_JSON", "BUILD_JSON", "verify_json"}
RUN_RECORD_FILES = {"dataset.json", "metrics.json", "quantize.json", "build.json"}
READS_OR_WRITES = {"read_json", "atomic_write_json", "load", "loads", "open", "read_text",
                   "write_text", "dump", "dumps"}  # fmt: skip


def _names_a_run_record(node: ast.AST) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id in RUN_RECORDS)
        or (isinstance(n, ast.Attribute) and n.attr in RUN_RECORDS)
        or (isinstance(n, ast.Constant) and n.value in RUN_RECORD_FILES)
        for n in ast.walk(node)
    )


def _run_json_read_or_written(tree: ast.AST) -> list[int]:
    """Lines that read or write a run record's JSON (`read_json(run / runs.BUILD_JSON)`,
    `(run / "build.json").read_text()`) instead of going through its type."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name not in READS_OR_WRITES:
            continue
        target = [*node.args, *(k.value for k in node.keywords)]
        if isinstance(func, ast.Attribute):
            target.append(func.value)
        if any(_names_a_run_record(t) for t in target):
            found.append(node.lineno)
    return found


def test_only_the_run_package_reads_or_writes_a_run_s_json():
    spelled = {
        str(p.relative_to(PACKAGE)): lines
        for p in PACKAGE.rglob("*.py")
        if not str(p.relative_to(PACKAGE)).startswith("run/")
        and (lines := _run_json_read_or_written(ast.parse(p.read_text(encoding="utf-8"))))
    }
    assert spelled == {}


@pytest.mark.parametrize(
    "source",
    [
        "d = read_json(run / runs.DATASET_JSON)",
        "d = json.loads((run / 'build.json').read_text())",
        "atomic_write_json(run / QUANTIZE_JSON, record)",
        "r = read_json(run / runs.verify_json(mode))",
        "(run / METRICS_JSON).write_text(text)",
    ],
)
def test_the_run_json_scan_sees_a_read_or_a_write(source):
    assert set(_run_json_read_or_written(ast.parse(source))) == {1}
    assert _run_json_read_or_written(ast.parse("BuildReport.load(run)")) == []
