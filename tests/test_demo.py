"""`tinyhar demo`, the README's first command: the whole job offline, on synthetic data."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
from helpers.commands import tinyhar

pytestmark = pytest.mark.e2e  # the real command line against a virtual board


def test_demo_runs_every_step_and_verifies_the_virtual_board(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = tinyhar("demo", "--out", out, "--subjects", "4", "--epochs", "1", "--windows", "40",
                   timeout=600)  # fmt: skip
    summary = json.loads((out / "demo.json").read_text())

    assert summary["passed"] is True and summary["synthetic"] is True
    for mode in ("model", "raw"):
        v = summary["verify"][mode]
        assert v["passed"] and v["windows"] == 40
        assert v["top1_agreement"] == 1.0 and v["max_abs_diff_lsb"] == 0
    assert summary["verify"]["raw"]["preprocess_mismatch_windows"] == 0
    for mode in ("model", "raw"):  # each mode its own report, and a line in the history
        assert json.loads((out / f"verify_{mode}.json").read_text())["mode"] == mode
        assert (out / f"verify_{mode}.png").read_bytes()[:4] == b"\x89PNG"
    history = (out / "verify_history.jsonl").read_text().splitlines()
    assert [json.loads(ln)["mode"] for ln in history] == ["model", "raw"]

    model = (out / "model_int8.tflite").read_bytes()
    build = json.loads((out / "build.json").read_text())
    assert summary["model_bytes"] == len(model) == build["model_bytes"]
    assert int(build["model_crc32"], 16) == zlib.crc32(model)
    assert summary["firmware_arena_bytes"] >= summary["arena_bytes"] > 0
    assert (Path(build["library_dir"]) / "src" / "model_data.cpp").is_file()
    assert json.loads((out / "metrics.json").read_text())["synthetic"] is True
    assert (out / "data" / "mHealth_subject4.log").is_file()

    assert "PASSED" in proc.stdout and "SYNTHETIC" in proc.stdout
    assert f"{len(model)} B" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert "firmware for nano33ble" in proc.stderr and "Board(" not in proc.stderr  # its name


def test_demo_with_an_unknown_board_fails_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = tinyhar("demo", "--out", out, "--board", "nosuchboard", check=False, timeout=120)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [lines[-1]] and "unknown board 'nosuchboard'" in lines[-1]
    assert "nano33ble" in lines[-1]
    assert not out.exists()
