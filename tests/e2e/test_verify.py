"""`tinyhar verify` end to end: the real CLI against `tinyhar sim` (pty, C core, TFLM)."""

from __future__ import annotations

import re
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from helpers.boards import sim_board
from helpers.commands import one_error_line, tinyhar, verify_history

from tinyhar.board import protocol as P
from tinyhar.device.verify import (
    PROVES_BOARD_CODE,
    VerifyReport,
    compare,
    emulated_timing,
    format_report,
)
from tinyhar.files import read_json

pytestmark = pytest.mark.e2e  # the real command line against a virtual board


def test_verify_model_mode_passes_on_every_test_window(tiny_run, clean_sim) -> None:
    proc = tinyhar("verify", "--port", clean_sim.port, "--run", tiny_run, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "PASSED" in proc.stdout
    report = read_json(tiny_run / "verify_model.json")
    with np.load(tiny_run / "windows.npz") as npz:
        n_test, y = len(npz["x_test"]), npz["y_test"]
    quant = read_json(tiny_run / "quantize.json")
    assert report["passed"] is True and report["complete"] is True
    assert report["mode"] == "model" and report["windows"] == n_test
    assert report["top1_agreement"] == 1.0
    assert report["max_abs_diff_lsb"] == 0 and report["mean_abs_diff_lsb"] == 0.0
    # the device computes exactly what TFLM computes, so both score the same on the labels
    assert report["device_accuracy"] == report["host_accuracy"]
    assert report["host_accuracy"] == quant["int8_accuracy"]
    assert report["device"]["model_crc32"] == quant["model_crc32"]
    assert report["device"]["board"] == "nano33ble"
    lat = report["latency_us"]
    assert 0 < lat["min"] <= lat["median"] <= lat["max"]
    assert report["windows_per_second"] > 0 and report["bytes_per_window"] > 600
    assert report["synthetic"] is True
    assert (tiny_run / "verify_model.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the virtual board runs the Python interpreter: the report says what agreeing proves, does
    # not call it the board's code, and does not list it again as a second opinion
    ref = report["reference"]
    assert "which the virtual board itself runs" in ref["name"]
    assert "not the board's TFLM kernels" in ref["proves"] and "python_tflm" not in report
    assert (
        "board's own code" not in proc.stdout and "Python TFLM (second opinion)" not in proc.stdout
    )
    assert "agreement checks             the serial link, the firmware's C core" in proc.stdout
    assert "the virtual board runs this same interpreter" in report["thresholds"]["why"]
    assert y.shape == (n_test,)


def test_verify_raw_mode_checks_the_device_preprocessing(tiny_run, clean_sim) -> None:
    proc = tinyhar(
        "verify", "--port", clean_sim.port, "--run", tiny_run, "--raw", "--windows", "40",
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = read_json(tiny_run / "verify_raw.json")
    assert report["passed"] is True and report["mode"] == "raw" and report["windows"] == 40
    assert report["top1_agreement"] == 1.0 and report["max_abs_diff_lsb"] == 0
    assert report["preprocess_mismatch_windows"] == 0
    assert report["preprocess_mismatch_values"] == 0
    # raw samples (100 x 6 float32) cost more on the wire than the int8 window (600 B)
    assert report["bytes_per_window"] > 2400
    assert "preprocessing mismatches     0 windows" in proc.stdout


def test_verify_refuses_a_device_with_another_model(tiny_run, tmp_path) -> None:
    model = (tiny_run / "model_int8.tflite").read_bytes()
    assert model.count(b"MLIR Converted.") == 1
    other = model.replace(b"MLIR Converted.", b"MLIR Converted!")  # same net, another flatbuffer
    (tmp_path / "other.tflite").write_bytes(other)
    run_crc = zlib.crc32(model) & 0xFFFFFFFF
    dev_crc = zlib.crc32(other) & 0xFFFFFFFF
    with sim_board(tiny_run, "--model", tmp_path / "other.tflite") as sim:
        proc = tinyhar("verify", "--port", sim.port, "--run", tiny_run, check=False)
    assert proc.returncode != 0
    line = one_error_line(proc.stderr)
    assert f"0x{dev_crc:08x}" in line and f"0x{run_crc:08x}" in line
    line = verify_history(tiny_run)[-1]  # compared nothing: no report, a line in the history
    assert line["passed"] is False and line["windows"] == 0 and line["report"] is None
    assert f"0x{dev_crc:08x}" in line["error"]


def test_verify_nonexistent_port_is_one_line(tiny_run) -> None:
    proc = tinyhar("verify", "--port", "/dev/does-not-exist", "--run", tiny_run, check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and one_error_line(proc.stderr)
    assert "/dev/does-not-exist does not exist" in proc.stderr
    line = verify_history(tiny_run)[-1]
    assert line["passed"] is False and line["port"] == "/dev/does-not-exist"
    assert "/dev/does-not-exist does not exist" in line["error"]


def test_compare_figures() -> None:
    host = np.array([[10, 5, -3], [0, 9, 1], [4, 4, 2]], dtype=np.int8)
    dev = np.array([[10, 5, -3], [0, 8, 10], [4, 3, 2]], dtype=np.int8)
    y = np.array([0, 1, 0])
    r = compare(dev, host, host, y, np.array([100, 300, 200]), seconds=2.0)
    assert r["top1_agreement"] == 2 / 3  # window 1: device says class 2, TFLM class 1
    assert r["max_abs_diff_lsb"] == 9 and r["mean_abs_diff_lsb"] == 11 / 9
    assert r["windows_differing"] == 2
    assert r["device_accuracy"] == 2 / 3 and r["host_accuracy"] == 1.0
    assert r["latency_us"] == {"min": 100, "median": 200.0, "max": 300}
    assert r["windows_per_second"] == 1.5


def _report(**over) -> VerifyReport:
    """A complete passing report against a firmware, as judge() fills it."""
    r = VerifyReport(passed=True, complete=True, mode="model", port="/dev/pts/9", run="runs/x",
                     synthetic=False, windows_requested=100)  # fmt: skip
    r.set(
        device={"board": "nano33ble"},
        windows=100,
        top1_agreement=1.0,
        max_abs_diff_lsb=0,
        mean_abs_diff_lsb=0.0,
        device_accuracy=0.9,
        host_accuracy=0.9,
        tflite_top1_agreement=1.0,
        tflite_max_abs_diff_lsb=1,
        latency_us={"min": 28000, "median": 29200.0, "max": 30000},
        windows_per_second=5.0,
        bytes_per_window=700.0,
        retries=0,
        thresholds={"min_agreement": 1.0, "max_lsb": 0, "why": "bit-exact"},
        reference={
            "name": "Chirale_TensorFLowLite 2.0.0 built for the host (the board's code)",
            "exact": True,
            "proves": PROVES_BOARD_CODE,
            "note": "",
        },
        python_tflm={
            "top1_agreement": 0.99,
            "max_abs_diff_lsb": 20,
            "windows_differing": 43,
            "accuracy": 0.9,
            "per_op_windows": 64,
            "per_op": [
                {
                    "op": "MEAN",
                    "tensor": "tiny/branch_pool/Mean",
                    "origin": 62,
                    "origin_max_lsb": 1,
                    "max_lsb": 1,
                    "first_step": None,
                },
                {
                    "op": "MEAN",
                    "tensor": "tiny/attn_pool/Mean",
                    "origin": 11,
                    "origin_max_lsb": 1,
                    "max_lsb": 1,
                    "first_step": None,
                },
            ],
        },
    )
    for k, v in over.items():
        setattr(r, k, v)
    return r  # fmt: skip


def test_the_emulated_report_names_instructions_and_which_node_differs() -> None:
    latency = np.array([28000, 29200, 30000])
    info = SimpleNamespace(device_kind=P.DeviceKind.EMULATED, board="nano33ble")
    text = format_report(_report(emulated=emulated_timing(info, latency)))
    assert "device latency" not in text
    assert "instructions per inference   min 28,000,000, median 29,200,000, max 30,000,000" in text
    assert re.search(r"latency on nano33ble +456-684 ms ESTIMATE \(the median's instructions", text)
    assert "43 of 100 windows differ" in text
    assert "MEAN (tiny/branch_pool/Mean) ±1 LSB in 62 of 64 windows examined" in text
    assert "MEAN (tiny/attn_pool/Mean) ±1 LSB in 11 of 64 windows examined" in text
    assert "agreement checks             the device computes what the board's own" in text
    hardware = format_report(_report())
    assert "device latency (us)          min 28000, median 29200, max 30000" in hardware
    assert "instructions" not in hardware
