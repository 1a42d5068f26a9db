"""Every malformed model input of the corpus (tests/corpus/) ends in one line on stderr, exit
code 2, never a traceback: side files and models, in build, sim and verify; and an injection in a
side file's channel name stays in its comment."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.boards import sim_board
from helpers.commands import one_error_line, tinyhar
from helpers.fw_models import har_int8_model, make_run
from helpers.paths import TESTS

from tinyhar.cli import main
from tinyhar.crc import crc32
from tinyhar.run import folder as runs
from tinyhar.run.records import QuantizeReport

CORPUS = TESTS / "corpus"


def _cli(*args: str):
    return CliRunner().invoke(main, list(map(str, args)), env={"PATH": ""})


def _refused(res, *expected: str) -> str:
    """The one error line of a command that refused its input (exit 2); it holds `expected`."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    line = one_error_line(res.output)
    for text in expected:
        assert text in line, line
    return line


# --- side files of a .tflite (build --model) --------------------------------------------------

SIDE_FILES = {
    "window_abc": ("window in", "'abc' is not a number"),
    "labels_5": ("labels in", "5 is not a list of class names"),
    "rate_fast": ("rate_hz in", "'fast' is not a number"),
    "rate_nan": ("rate_hz in", "'nan' is not a finite number"),
    "std_strings": ("std in", "'a' is not a number"),
    "mean_1e300": ("mean in", "channel 0 mean 1e+300 is beyond a float32"),
    "stride_1e30": ("stride in", "is not within 1..65535"),
    "rate_1e-300": ("rate_hz in", "1e-300 Hz is not within 1..10000 Hz"),
    "channels_object": ("channels in", "is not a count or a list of channels"),
    "labels_control": ("labels in", "label 3", "holds the control character U+001B"),
    "not_an_object": ("must hold a JSON object",),
}


def _model_with_side_file(tmp_path: Path, side: Path) -> Path:
    model = tmp_path / "m.tflite"
    model.write_bytes(har_int8_model())
    shutil.copy(side, tmp_path / "m.json")
    return model


@pytest.mark.parametrize("case", sorted(SIDE_FILES))
def test_a_malformed_side_file_is_one_line(tmp_path, case):
    model = _model_with_side_file(tmp_path, CORPUS / "side_files" / f"{case}.json")
    line = _refused(_cli("build", "--no-measure", "--model", model), *SIDE_FILES[case])
    assert str(tmp_path / "m.json") in line or case == "not_an_object"
    assert not (tmp_path / runs.BUILD_JSON).exists()


def test_an_injection_in_a_side_file_channel_name_stays_in_its_comment(tmp_path):
    side = CORPUS / "side_files" / "channel_name_injection.json"
    model = _model_with_side_file(tmp_path, side)
    res = _cli("build", "--no-measure", "--model", model)
    assert res.exit_code == 0, res.output
    config = tmp_path / "firmware" / "nano33ble" / "libraries" / "tinyhar_model" / "src"
    text = (config / "tinyhar_config.h").read_text()
    assert '//   0: acc_x%0A#define INJECTED 1%0A#pragma message("INJECTED")%0A//' in text
    assert "\n#define INJECTED" not in text and "\n#pragma message" not in text


# --- models -------------------------------------------------------------------------------

MODELS = {
    "bad_opcode_index": "operator 1 of subgraph 0 uses opcode 200 of",
    "bad_tensor_index": "operator 0 of subgraph 0 names input tensor 5000 of",
    "zero_operators": "it has no operators",
}


@pytest.mark.parametrize("case", sorted(MODELS))
def test_a_corrupt_model_is_one_line_in_build(tmp_path, case):
    model = tmp_path / "m.tflite"
    shutil.copy(CORPUS / "models" / f"{case}.tflite", model)
    _refused(_cli("build", "--no-measure", "--model", model, "--labels", "a,b,c,d"),
             "corrupt TFLite model:", MODELS[case], "re-export it")  # fmt: skip


@pytest.mark.parametrize("case", sorted(MODELS))
def test_a_corrupt_model_is_one_line_in_sim(tmp_path, case):
    run = make_run(tmp_path)
    res = _cli("sim", "--run", run, "--model", CORPUS / "models" / f"{case}.tflite")
    _refused(res, "corrupt TFLite model:", MODELS[case])


def _verifiable_run(tmp_path: Path, model: bytes) -> Path:
    """make_run with `model` as its int8 model and test windows for verify."""
    run = make_run(tmp_path)
    (run / runs.INT8_MODEL).write_bytes(model)
    # quantize.json keeps the tensors of the model the mutated ones come from
    replace(QuantizeReport.load(run), model_crc32=crc32(model)).save(run)
    rng = np.random.default_rng(0)
    np.savez(run / runs.WINDOWS_NPZ, x_test=rng.normal(size=(4, 100, 6)).astype(np.float32),
             y_test=np.arange(4), subject_test=np.full(4, 9),
             x_rep=rng.normal(size=(4, 100, 6)).astype(np.float32))  # fmt: skip
    return run


def test_verify_with_a_zero_operator_model_is_one_line(tmp_path):
    zero = (CORPUS / "models" / "zero_operators.tflite").read_bytes()
    run = _verifiable_run(tmp_path, zero)
    res = _cli("verify", "--port", tmp_path / "no-such-port", "--run", run)
    _refused(res, "corrupt TFLite model: it has no operators")


@pytest.mark.e2e
def test_verify_with_a_model_tflm_runs_but_tflite_refuses_is_one_line(tmp_path):
    model = (CORPUS / "models" / "tflite_refuses.tflite").read_bytes()
    run = _verifiable_run(tmp_path, model)
    with sim_board(run) as sim:
        proc = tinyhar("verify", "--port", sim.port, "--run", run, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "TensorFlow Lite refuses the model" in one_error_line(proc.stderr)


def test_a_run_whose_dataset_json_rate_is_nan_is_one_line_in_build(tmp_path):
    run = make_run(tmp_path)
    ds = json.loads((run / runs.DATASET_JSON).read_text())
    (run / runs.DATASET_JSON).write_text(json.dumps({**ds, "rate_hz": float("nan")}))
    _refused(_cli("build", "--no-measure", "--run", run), "rate_hz in dataset.json",
             "nan Hz is not within")  # fmt: skip
