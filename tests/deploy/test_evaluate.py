"""`tinyhar evaluate` on a `tiny` run trained on real HAPT subjects: the same figures as train and
quantize on the run's own test subjects, units mapped through the manifests on another dataset
folder, and HAPT's names in the generated firmware."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers.boards import virtual_board
from helpers.commands import one_error_line, verify_quietly
from helpers.hapt_data import HAPT_CLASSES, hapt_folder, hapt_subset, import_cli

from tinyhar.cli import main
from tinyhar.run import folder as runs

pytestmark = pytest.mark.slow


def _cli(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + result.stderr
    return result


@pytest.fixture(scope="module")
def hapt_run(tmp_path_factory) -> tuple[Path, Path]:
    """(run, dataset folder): tiny trained for 2 epochs on HAPT subjects 1, 3 (train), 5 (val),
    6 (test); 7 is imported too but never seen."""
    root = tmp_path_factory.mktemp("hapt_run")
    data = hapt_folder(root, (1, 3, 5, 6, 7))
    run = root / "run"
    _cli(
        "train",
        "--data",
        data,
        "--run",
        run,
        "--epochs",
        "2",
        "--train-subjects",
        "1,3",
        "--val-subjects",
        "5",
        "--test-subjects",
        "6",
    )
    return run, data


def test_evaluate_before_quantize_scores_float_and_says_how_to_get_int8(hapt_run):
    run, data = hapt_run
    if (run / runs.INT8_MODEL).exists():
        pytest.skip("the run was quantized by an earlier test")
    out = _cli("evaluate", "--run", run, "--data", data, "--subjects", "7").output
    assert "int8: not scored" in out and "tinyhar quantize" in out
    ev = json.loads((run / runs.EVALUATE_JSON).read_text())
    assert ev["int8"]["unavailable"] and 0 <= ev["float"]["accuracy"] <= 1


def test_on_its_test_subjects_evaluate_repeats_train_and_quantize(hapt_run):
    run, data = hapt_run
    _cli("quantize", "--run", run)
    result = _cli("evaluate", "--run", run, "--data", data, "--subjects", "6")
    ev = json.loads((run / runs.EVALUATE_JSON).read_text())
    metrics = json.loads((run / runs.METRICS_JSON).read_text())
    quant = json.loads((run / runs.QUANTIZE_JSON).read_text())
    ds = json.loads((run / runs.DATASET_JSON).read_text())
    assert ev["labels"] == HAPT_CLASSES == ds["labels"] == quant["labels"]
    assert ev["windows"] == ds["counts"]["test"] and ev["subjects"] == [6]
    assert ev["float"]["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-9)
    assert ev["float"]["confusion"] == metrics["confusion"]
    assert ev["int8"]["accuracy"] == pytest.approx(quant["int8_accuracy"], abs=1e-9)
    # as the board computes it: its TFLM library built for the host, as quantize measured it
    assert ev["board_int8"]["library"] == quant["board_int8"]["library"]
    assert ev["board_int8"]["accuracy"] == pytest.approx(quant["board_int8"]["accuracy"], abs=1e-9)
    assert "nano33ble's Chirale_TensorFLowLite 2.0.0 built for the host" in result.output
    assert ev["seen_in_training"] == [] and "warning" not in result.stderr
    png = (run / runs.EVALUATE_PNG).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temp files left


def test_evaluate_says_where_it_looked_for_the_board_library(hapt_run, tmp_path):
    run, data = hapt_run
    if not (run / runs.INT8_MODEL).exists():
        _cli("quantize", "--run", run)
    empty = tmp_path / "no-libraries"
    empty.mkdir()
    result = _cli("evaluate", "--run", run, "--data", data, "--subjects", "6",
                  "--libraries", empty)  # fmt: skip
    line = next(ln for ln in result.output.splitlines() if "int8 with nano33ble's TFLM" in ln)
    assert f"is not in {empty} (--libraries)" in line and "not scored" in line
    assert "accuracy" not in json.loads((run / runs.EVALUATE_JSON).read_text())["board_int8"]


def test_subjects_it_trained_on_are_flagged(hapt_run):
    run, data = hapt_run
    result = CliRunner().invoke(
        main, ["evaluate", "--run", str(run), "--data", str(data), "--subjects", "1"]
    )
    assert result.exit_code == 0
    assert "warning: subject(s) 1 trained or validated this run" in result.stderr
    assert json.loads((run / runs.EVALUATE_JSON).read_text())["seen_in_training"] == [1]


def test_units_are_mapped_through_the_manifests_of_another_dataset(hapt_run, tmp_path):
    """Subject 7 rewritten in m/s^2 and deg/s, named so by its columns, scores as the original."""
    run, data = hapt_run
    _cli("quantize", "--run", run) if not (run / runs.INT8_MODEL).exists() else None
    _cli("evaluate", "--run", run, "--data", data, "--subjects", "7")
    original = json.loads((run / runs.EVALUATE_JSON).read_text())
    src = hapt_subset(tmp_path / "orig", (7,))
    other = tmp_path / "si"
    other.mkdir()
    for f in sorted(src.glob("*.csv.gz")):
        df = pd.read_csv(f, keep_default_na=False)
        out = pd.DataFrame({"time_s": df["time_s"]})
        for a in "xyz":
            out[f"acc_{a}_m/s^2"] = df[f"acc_{a}"] * 9.80665
        for a in "xyz":
            out[f"gyro_{a}_deg/s"] = np.degrees(df[f"gyro_{a}"])
        out["activity"] = df["activity"]
        out.to_csv(other / f.name.replace(".csv.gz", ".csv"), index=False, float_format="%.9g")
    assert import_cli(other, tmp_path / "si_data", "--drop", "*_TO_*").exit_code == 0
    _cli("evaluate", "--run", run, "--data", tmp_path / "si_data")
    mapped = json.loads((run / runs.EVALUATE_JSON).read_text())
    assert mapped["channels"] == {
        n: n for n in ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
    }
    assert mapped["windows"] == original["windows"] > 0
    assert abs(mapped["float"]["accuracy"] - original["float"]["accuracy"]) <= 1 / mapped["windows"]
    assert abs(mapped["int8"]["accuracy"] - original["int8"]["accuracy"]) <= 1 / mapped["windows"]


def test_firmware_carries_hapt_names(hapt_run, tmp_path, monkeypatch):
    run, _ = hapt_run
    if not (run / runs.INT8_MODEL).exists():
        _cli("quantize", "--run", run)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no arduino-cli: sources only
    _cli("build", "--run", run, "--no-install", "--no-measure")
    src = run / "firmware" / "nano33ble" / "libraries" / "tinyhar_model" / "src"
    config = (src / "tinyhar_config.h").read_text()
    for name in HAPT_CLASSES:
        assert f'"{name}",' in config
    assert "Walking" not in config and "Jogging" not in config  # no MHEALTH names left


def test_the_virtual_board_carries_hapt_names_and_its_raw_pipeline_agrees(hapt_run):
    """The HAPT run on a virtual Nano 33 BLE: its labels are HAPT's, and raw board samples
    (g and deg/s, the board's units) preprocessed on the device give the host's int8 windows."""
    from tinyhar.device.link import Link

    run, _ = hapt_run
    if not (run / runs.INT8_MODEL).exists():
        _cli("quantize", "--run", run)
    with virtual_board(run) as (vb, _):
        with Link(vb.path) as link:
            assert link.labels() == HAPT_CLASSES
        report = verify_quietly(vb.path, run, windows=20, raw=True)
    assert report.passed and report.windows == 20 and report.max_abs_diff_lsb == 0


def test_sim_replays_a_dataset_folder_of_the_runs_own_dataset_only(hapt_run, tiny_run):
    from tinyhar.data.dataset import load_dataset
    from tinyhar.device.virtual_board import replay_training_units
    from tinyhar.errors import TinyharError

    run, data = hapt_run
    ds = json.loads((run / runs.DATASET_JSON).read_text())
    recs = load_dataset(data).recordings
    cols = [c["column"] for c in ds["channels"]]
    want = np.concatenate([r.signals[np.isin(r.labels, ds["label_ids"])][:, cols] for r in recs])
    np.testing.assert_array_equal(replay_training_units(run, data), want)
    with pytest.raises(TinyharError, match="has no channel .* replay recordings of the dataset"):
        replay_training_units(tiny_run, data)  # MHEALTH's arm channels are not in HAPT


def test_evaluate_refuses_data_sharing_no_class_in_one_line(hapt_run, tmp_path):
    run, _ = hapt_run
    df = pd.DataFrame(
        {
            "time_s": np.arange(300) / 50,
            "acc_x": 0.0,
            "acc_y": 0.0,
            "acc_z": 1.0,
            "gyro_x": 0.0,
            "gyro_y": 0.0,
            "gyro_z": 0.0,
            "label": "swimming",
        }
    )
    (tmp_path / "src").mkdir()
    df.to_csv(tmp_path / "src" / "subject4.csv", index=False)
    assert import_cli(tmp_path / "src", tmp_path / "swim", "--gyro-unit", "rad/s").exit_code == 0
    result = CliRunner().invoke(
        main, ["evaluate", "--run", str(run), "--data", str(tmp_path / "swim")]
    )
    assert result.exit_code == 2
    assert "shares no class with the run" in one_error_line(result.stderr)
