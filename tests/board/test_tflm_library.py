"""TFLM library facts: the op lists shipped in boards/libraries/ are what the real libraries'
resolvers hold; the sources a model needs; where the libraries are looked for."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from helpers.commands import SHARED_LIBRARIES

from tinyhar.board import tflm_library as T
from tinyhar.board.boards import list_boards
from tinyhar.errors import TinyharError


@pytest.mark.parametrize("name", ["Chirale_TensorFLowLite", "Arduino_TensorFlowLite"])
def test_shipped_op_lists_are_read_from_the_real_resolver(name):
    src = SHARED_LIBRARIES / name / "src"
    lib = T.load_library(name)
    assert lib.ops == T.read_resolver_ops(src)
    assert len(lib.ops) >= 90 and "BATCH_MATMUL" not in lib.ops  # why tinyhar brings its own
    for op in ("CONV_2D", "FULLY_CONNECTED", "UNIDIRECTIONAL_SEQUENCE_LSTM", "MEAN", "SOFTMAX"):
        assert op in lib.ops
    props = (SHARED_LIBRARIES / name / "library.properties").read_text()
    assert f"version={lib.version}\n" in props and (src / lib.header).is_file()
    assert lib.fc_per_channel is False


def test_every_board_names_a_known_library_and_its_alternatives():
    for board in list_boards():
        raw = tomllib.loads(board.path.read_text())
        assert raw["tflm"]["library"] == board.tflm.name == "Chirale_TensorFLowLite"
        assert board.tflm.version == "2.0.0" and board.tflm.header == "Chirale_TensorFlowLite.h"
        assert board.with_tflm("Arduino_TensorFlowLite").tflm.git_url.startswith("https://")


def test_sources_for_a_model_are_the_interpreter_and_its_kernels_only():
    src = SHARED_LIBRARIES / "Chirale_TensorFLowLite" / "src"
    small = T.sources_for_ops(src, ["FULLY_CONNECTED", "SOFTMAX"])
    names = {p.relative_to(src).as_posix() for p in small}
    assert "tensorflow/lite/micro/micro_interpreter.cpp" in names
    assert "tensorflow/lite/micro/kernels/cmsis_nn/fully_connected.cpp" in names
    assert "tensorflow/lite/micro/kernels/fully_connected.cpp" not in names  # CMSIS-NN's wins
    assert "tensorflow/lite/micro/kernels/fully_connected_common.cpp" in names
    assert "tensorflow/lite/micro/kernels/reduce.cpp" not in names  # MEAN not asked for
    assert not any("microfrontend" in n or "test_helpers" in n for n in names)
    more = T.sources_for_ops(src, ["FULLY_CONNECTED", "SOFTMAX", "MEAN"])
    assert src / "tensorflow/lite/micro/kernels/reduce.cpp" in more
    assert len(small) < len(list(src.rglob("*.cpp"))) * 0.75


FAKE_CLI = """#!/bin/sh
# FAKE arduino-cli: answers `config get directories.user` only
[ "$1 $2 $3" = "config get directories.user" ] && echo "$FAKE_USER_DIR" && exit 0
echo "Error: unknown command $*" >&2; exit 1
"""


def test_libraries_folder_precedence_and_a_missing_library_is_one_line(tmp_path, monkeypatch):
    """--libraries, else $TINYHAR_ARDUINO_LIBRARIES, else arduino-cli's directories.user, else the
    platform default; a missing library is one line naming the folder and why that one."""
    bindir, home = tmp_path / "bin", tmp_path / "home"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))  # no arduino-cli
    monkeypatch.delenv(T.LIBRARIES_ENV, raising=False)
    monkeypatch.delenv("TINYHAR_ARDUINO_CLI", raising=False)
    monkeypatch.setenv("HOME", str(home))
    assert T.libraries_dir() == home / "Arduino" / "libraries"
    lib = T.load_library("Chirale_TensorFLowLite")
    with pytest.raises(TinyharError) as e:
        T.tflm_source(lib)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"not in {home / 'Arduino' / 'libraries'} (the Arduino default" in msg
    assert "no arduino-cli" in msg and "arduino-cli lib install" not in msg  # it is not there
    assert "--libraries DIR" in msg and "$TINYHAR_ARDUINO_LIBRARIES" in msg
    cli = bindir / "arduino-cli"
    cli.write_text(FAKE_CLI)
    cli.chmod(0o755)
    monkeypatch.setenv("FAKE_USER_DIR", str(tmp_path / "sketchbook"))
    assert T.find_libraries() == T.LibrariesFolder(
        tmp_path / "sketchbook" / "libraries", "arduino-cli's directories.user"
    )
    with pytest.raises(
        TinyharError, match='`arduino-cli lib install "Chirale_TensorFLowLite@2.0.0"`'
    ):
        T.tflm_source(lib)
    monkeypatch.setenv(T.LIBRARIES_ENV, str(SHARED_LIBRARIES))
    assert T.libraries_dir() == SHARED_LIBRARIES
    assert T.tflm_source(lib) == SHARED_LIBRARIES / lib.name / "src"
    assert T.libraries_dir(tmp_path) == tmp_path
    with pytest.raises(TinyharError, match=f"not in {tmp_path} \\(--libraries\\)"):
        T.tflm_source(lib, tmp_path)
    assert T.library_src(SHARED_LIBRARIES, lib) == SHARED_LIBRARIES / lib.name / "src"
    old = tmp_path / "Chirale_TensorFLowLite"
    old.mkdir()
    (old / "library.properties").write_text("name=Chirale_TensorFLowLite\nversion=1.0.0\n")
    with pytest.raises(TinyharError, match="is Chirale_TensorFLowLite 1.0.0, tinyhar needs 2.0.0"):
        T.library_src(tmp_path, lib)


def test_unknown_library_names_the_known_ones():
    with pytest.raises(TinyharError, match="Arduino_TensorFlowLite, Chirale_TensorFLowLite"):
        T.load_library("TensorFlowLite_ESP32")
    assert Path(T.library_facts_dir()).is_dir()


def test_the_interpreter_bounds_every_op_by_who_runs_it():
    """tinyhar's kernels and the library's exact ones: 0 LSB; the library's MEAN: its +-1; a
    library LSTM (no bound) makes the interpreter a second opinion only."""
    from tinyhar.deploy.board_reference import interpreter_violations

    lib = T.load_library("Chirale_TensorFLowLite")
    bounds, why = T.interpreter_bounds(
        {"CONV_2D": lib.name, "MEAN": lib.name, "UNIDIRECTIONAL_SEQUENCE_LSTM": "tinyhar"}, lib
    )
    assert why == "" and bounds == {"CONV_2D": 0, "MEAN": 1, "UNIDIRECTIONAL_SEQUENCE_LSTM": 0}
    none, why = T.interpreter_bounds({"UNIDIRECTIONAL_SEQUENCE_LSTM": lib.name}, lib)
    assert none == {} and "UNIDIRECTIONAL_SEQUENCE_LSTM" in why and "second opinion" in why
    per_op = [
        {"op": "MEAN", "tensor": "m", "origin": 5, "origin_max_lsb": 1, "first_step": None},
        {
            "op": "UNIDIRECTIONAL_SEQUENCE_LSTM",
            "tensor": "lstm",
            "origin": 2,
            "origin_max_lsb": 3,
            "first_step": 1,
        },  # fmt: skip
        {"op": "CONV_2D", "tensor": "c", "origin": 0, "origin_max_lsb": 0, "first_step": None},
    ]
    assert interpreter_violations(per_op, bounds) == [
        {
            "op": "UNIDIRECTIONAL_SEQUENCE_LSTM",
            "tensor": "lstm",
            "max_lsb": 3,
            "bound": 0,
            "first_step": 1,
            "windows": 2,
        }  # fmt: skip
    ]
    assert interpreter_violations(per_op[:1], {"MEAN": 0}) != []
