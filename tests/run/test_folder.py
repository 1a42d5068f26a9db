"""A run's files belong together, provably: metrics.json holds the digests of the model, dataset
and windows it trained; quantize.json those of the model.keras it converted and the int8 model it
wrote; build.json that of the int8 model it built. Readers refuse a mismatch in one line, and a
retrain killed at any file write leaves the old run or one that quantize and build refuse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.commands import TINYHAR, one_error_line
from helpers.fw_models import make_keras_run, make_run

from tinyhar.cli import main
from tinyhar.files import KILL_AFTER_WRITES
from tinyhar.run import folder as runs
from tinyhar.run.firmware import FIRMWARE_DIR


def _cli(*args: str):
    res = CliRunner().invoke(main, list(map(str, args)), env={"PATH": ""})
    return res


def _error(res) -> str:
    """The one error line of an in-process command that failed with exit code 2."""
    assert res.exit_code == 2, res.output
    return one_error_line(res.output)


def _record(run: Path, record: str, **keys: dict) -> None:
    path = run / record
    content = json.loads(path.read_text())
    path.write_text(json.dumps({**content, **keys}))


def _trained(tmp_path: Path) -> Path:
    """make_keras_run's run with metrics.json's digests, as `tinyhar train` writes them."""
    run = make_keras_run(tmp_path)
    names = [runs.KERAS_MODEL, runs.DATASET_JSON, runs.WINDOWS_NPZ]
    _record(run, runs.METRICS_JSON, **{runs.OUTPUTS: runs.digests(run, names)})
    return run


def test_quantize_needs_a_finished_training(tmp_path):
    run = _trained(tmp_path)
    (run / runs.METRICS_JSON).unlink()
    line = _error(_cli("quantize", "--run", run))
    assert f"{run} has no metrics.json: run `tinyhar train` first" in line


def test_quantize_refuses_a_dataset_json_the_model_was_not_trained_with(tmp_path):
    run = _trained(tmp_path)
    trained = (run / runs.DATASET_JSON).read_text()
    ds = json.loads(trained)
    ds["labels"] = ds["labels"][:3]
    (run / runs.DATASET_JSON).write_text(json.dumps(ds))
    line = _error(_cli("quantize", "--run", run))
    assert f"{run}: metrics.json does not describe this dataset.json: train the run again" in line
    (run / runs.DATASET_JSON).write_text(trained)
    (run / runs.WINDOWS_NPZ).unlink()
    line = _error(_cli("quantize", "--run", run))
    assert "windows.npz is missing but metrics.json was made with it" in line


def _quantized_run(tmp_path: Path) -> Path:
    """make_run's int8 run with the records quantize writes (its model.keras: a stand-in file)."""
    run = make_run(tmp_path)
    (run / runs.KERAS_MODEL).write_bytes(b"the model.keras the int8 model was made from")
    made_from = runs.digests(run, [runs.KERAS_MODEL])
    outputs = runs.digests(run, [runs.INT8_MODEL])
    _record(run, runs.QUANTIZE_JSON, **{runs.MADE_FROM: made_from, runs.OUTPUTS: outputs})
    return run


def test_build_refuses_an_int8_model_of_another_model_keras(tmp_path):
    run = _quantized_run(tmp_path)
    assert _cli("build", "--run", run, "--no-measure").exit_code == 0
    (run / runs.KERAS_MODEL).write_bytes(b"a model.keras trained since")
    line = _error(_cli("build", "--run", run, "--no-measure"))
    assert line.endswith(
        f"{run}: quantize.json is from another model.keras: quantize again "
        f"(`tinyhar quantize --run {run}`)"
    )


def test_build_refuses_an_int8_model_quantize_json_does_not_describe(tmp_path):
    run = _quantized_run(tmp_path)
    (run / runs.INT8_MODEL).write_bytes((run / runs.INT8_MODEL).read_bytes()[:-4] + b"\0\0\0\0")
    line = _error(_cli("build", "--run", run, "--no-measure"))
    assert "quantize.json does not describe this model_int8.tflite: quantize again" in line


def test_build_json_records_its_model_and_emulate_refuses_another(tmp_path):
    run = _quantized_run(tmp_path)
    assert _cli("build", "--run", run, "--no-measure").exit_code == 0
    rec = json.loads((run / runs.BUILD_JSON).read_text())
    assert rec[runs.MADE_FROM] == runs.digests(run, [runs.INT8_MODEL])
    model = (run / runs.INT8_MODEL).read_bytes()
    (run / runs.INT8_MODEL).write_bytes(model[:-4] + b"\0\0\0\0")  # quantized again since
    _record(run, runs.QUANTIZE_JSON, **{runs.OUTPUTS: runs.digests(run, [runs.INT8_MODEL])})
    line = _error(_cli("sim", "--emulate", "--run", run))
    assert "build.json is from another model_int8.tflite: build again" in line


def test_a_record_from_before_digests_is_taken_as_it_is(tmp_path):
    run = make_run(tmp_path)  # quantize.json and metrics.json without digests
    assert _cli("build", "--run", run, "--no-measure").exit_code == 0


def _files(run: Path) -> dict[str, str]:
    """Every file of a run (recursively) and its digest."""
    return {
        str(p.relative_to(run)): runs.digest(p)
        for p in sorted(run.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.mark.slow
def test_a_retrain_killed_at_every_file_write_leaves_the_old_run_or_one_refused(tiny_run, tmp_path):
    """`train --run R` into a quantized and built run, SIGKILLed right after its 1st, 2nd, ...
    file write or removal (the TINYHAR_TEST_KILL_AFTER_WRITES test hook), until it finishes."""
    old = tmp_path / "old"
    shutil.copytree(tiny_run, old)
    assert _cli("build", "--run", old, "--no-measure").exit_code == 0
    before = _files(old)
    data = tiny_run.parent / "synth"
    classes = ",".join(json.loads((old / runs.DATASET_JSON).read_text())["labels"][:3])
    states = []
    for n in range(1, 40):
        run = tmp_path / f"killed{n}"
        shutil.copytree(old, run)
        proc = subprocess.run(
            [*TINYHAR, "train", "--data", str(data), "--run", str(run), "--epochs", "1",
             "--classes", classes, "--stride", "100", "--train-stride", "100"],
            env={**os.environ, KILL_AFTER_WRITES: str(n)}, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        if proc.returncode == 0:  # fewer writes than n: the retrain finished
            break
        assert proc.returncode == -9, proc.stderr[-2000:]
        if _files(run) == before:
            states.append("old run intact")
            continue
        if runs.METRICS_JSON not in _files(run):
            q = _cli("quantize", "--run", run)  # in process: they refuse before TensorFlow
            b = _cli("build", "--run", run, "--no-measure")
            assert "has no metrics.json" in _error(q) and "has no metrics.json" in _error(b), n
            states.append("refused")
            continue
        # killed after metrics.json, the last write: the new run whole, nothing of the old model
        assert not (run / runs.INT8_MODEL).exists() and not (run / runs.BUILD_JSON).exists()
        runs.check_run(run)
        states.append("new run")
    else:
        pytest.fail("the retrain never finished")
    assert proc.returncode == 0
    rec = json.loads((run / runs.METRICS_JSON).read_text())
    assert len(rec["labels"]) == 3 and runs.check_run(run) is None
    assert not (run / runs.INT8_MODEL).exists() and not (run / FIRMWARE_DIR).exists()
    # every write and removal was a kill point: a removal of each of the old derived files, the
    # seven training files, metrics.json last
    assert n >= 12 and states.count("refused") >= 10, states
