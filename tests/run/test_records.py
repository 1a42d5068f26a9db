"""The run folder's records: each JSON file loads into its type and saves back unchanged."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from helpers.fw_models import build_record, dataset_json, dataset_record, quantize_record

from tinyhar.errors import TinyharError
from tinyhar.run.records import BuildReport, DatasetContract, QuantizeReport, VerifyReport

MODEL = bytes(range(64))  # stands for an int8 model where only its size and CRC-32 are read


def test_dataset_contract_round_trips_and_keeps_the_file_format(tmp_path):
    contract = dataset_record()
    path = contract.save(tmp_path)
    data = json.loads(path.read_text())
    assert data["normalization"] == {"mean": list(contract.mean), "std": list(contract.std)}
    assert data["channels"][0] == {
        "name": "arm_acc_x", "column": 14, "unit": "m/s^2", "kind": "acc", "axis": "x"
    }  # fmt: skip
    assert DatasetContract.load(tmp_path) == contract
    assert contract.channels[3].kind == "gyro" and contract.label == "SYNTHETIC data"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"normalization": {"mean": [0.0] * 6, "std": [1.0] * 5 + [0.0]}}, "a std <= 0"),
        ({"normalization": {"mean": [0.0] * 5, "std": [1.0] * 5}}, "6 channels but 5 means"),
        ({"labels": []}, "no classes"),
        ({"window": "wide"}, "is incomplete"),
        ({"rate_hz": None}, "is incomplete"),
    ],
)
def test_a_dataset_json_no_firmware_could_use_is_one_line(tmp_path, change, message):
    (tmp_path / "dataset.json").write_text(json.dumps({**dataset_json(), **change}))
    with pytest.raises(TinyharError, match=message) as e:
        DatasetContract.load(tmp_path)
    assert "\n" not in str(e.value) and f"`tinyhar train --run {tmp_path} ...`" in str(e.value)


def test_a_missing_or_unreadable_record_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(
        TinyharError, match=r"has no build.json: build again \(`tinyhar build --run"
    ):
        BuildReport.load(tmp_path)
    (tmp_path / "quantize.json").write_text("{not json")
    with pytest.raises(TinyharError, match=r"quantize.json is unreadable .*tinyhar quantize"):
        QuantizeReport.load(tmp_path)
    (tmp_path / "quantize.json").write_text("[1, 2]")
    with pytest.raises(TinyharError, match="is not a record of tinyhar"):
        QuantizeReport.load(tmp_path)
    (tmp_path / "quantize.json").write_text(json.dumps({"model_bytes": 3}))
    with pytest.raises(TinyharError, match="quantize.json lacks float_accuracy"):
        QuantizeReport.load(tmp_path)
    assert BuildReport.load_if_present(tmp_path) is None


def test_the_crc_is_an_int_in_the_type_and_hex_in_the_file(tmp_path):
    build = build_record("nano33ble", MODEL, 4096)
    data = json.loads(build.save(tmp_path).read_text())
    assert data["model_crc32"] == f"0x{build.model_crc32:08x}" and "model_crc32_int" not in data
    assert BuildReport.load(tmp_path) == build
    data["model_crc32"] = build.model_crc32  # as an int, and a newer tinyhar's extra key
    data["from_the_future"] = True
    (tmp_path / "build.json").write_text(json.dumps(data))
    assert BuildReport.load(tmp_path) == build
    data["model_crc32"] = "0xnothex"
    (tmp_path / "build.json").write_text(json.dumps(data))
    with pytest.raises(TinyharError, match="model_crc32 '0xnothex' is not a CRC-32"):
        BuildReport.load(tmp_path)


def test_quantize_report_keeps_its_folder_out_of_the_file(tmp_path):
    from helpers.fw_models import har_int8_model

    q = replace(quantize_record(har_int8_model(), 8192), run="somewhere/else")
    data = json.loads(q.save(tmp_path).read_text())
    assert "run" not in data and data["input"]["dtype"] == "int8"
    loaded = QuantizeReport.load(tmp_path)
    assert loaded.run == str(tmp_path) and loaded.input == q.input
    assert replace(loaded, run=q.run) == q


def test_verify_reports_are_kept_per_mode(tmp_path):
    report = VerifyReport(
        passed=True, complete=True, mode="raw", port="/dev/pts/3", run=str(tmp_path),
        synthetic=True, windows_requested=4, windows=4, top1_agreement=1.0,
    )  # fmt: skip
    assert report.save(tmp_path).name == "verify_raw.json"
    loaded = VerifyReport.load_mode(tmp_path, "raw")
    assert loaded.passed and loaded.windows == 4 and loaded.mode == "raw"
    with pytest.raises(TinyharError, match="has no verify_model.json: verify again"):
        VerifyReport.load_mode(tmp_path, "model")
