"""`tinyhar search` on Ray Tune: Pareto front, a buildable best run, a raising trial reported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.commands import one_error_line, require_tools, tinyhar

from tinyhar.cli import main
from tinyhar.search.pareto import latency_key, pareto_front


def _point(acc: float, model: int, arena: int = 1, macs: int = 1) -> dict:
    return {"int8_val_accuracy": acc, "model_bytes": model, "arena_bytes": arena, "macs": macs}


def test_pareto_front_keeps_only_undominated_trials():
    points = [_point(0.9, 100), _point(0.8, 50), _point(0.8, 60), _point(0.95, 100, arena=2)]
    # 2 is dominated by 1 (same accuracy, larger); 0 and 3 trade accuracy against arena
    assert pareto_front(points) == [1, 3, 0]


def test_latency_is_the_emulated_instructions_only_where_every_trial_has_them():
    points = [_point(0.9, 100, macs=5) | {"instructions": 9}, _point(0.9, 100, macs=9)]
    assert latency_key(points) == "macs" and pareto_front(points) == [0]  # fewer MACs
    points[1]["instructions"] = 5
    assert latency_key(points) == "instructions" and pareto_front(points) == [1]


def test_emulate_without_qemu_is_one_line(tmp_path, monkeypatch):
    data = tmp_path / "synth"
    tinyhar("data", "synth", "--out", data, "--subjects", "3")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no qemu-system-arm, no arm gcc
    res = CliRunner().invoke(main, ["search", "--data", str(data), "--run", str(tmp_path / "s"),
                                    "--emulate"])  # fmt: skip
    assert res.exit_code == 2 and "qemu-system-arm not found" in one_error_line(res.output)
    assert not (tmp_path / "s").exists()


def test_resume_without_a_search_is_one_line(tmp_path):
    data = tmp_path / "synth"
    tinyhar("data", "synth", "--out", data, "--subjects", "3")
    proc = tinyhar("search", "--data", data, "--run", tmp_path / "s", "--resume", check=False)
    assert "--resume" in one_error_line(proc.stderr) and proc.returncode == 2


@pytest.mark.slow
def test_search_writes_a_front_and_a_buildable_best_and_survives_a_raising_trial(
    tmp_path, capfd, monkeypatch
):
    from tinyhar.model.train import TrainConfig  # lazy: TensorFlow, slow only
    from tinyhar.search.trial import run_trial  # lazy: TensorFlow, slow only
    from tinyhar.search.tune import SearchOptions, run_search  # lazy: TensorFlow, slow only

    data, run, flag = tmp_path / "synth", tmp_path / "search", tmp_path / "failed-once"
    tinyhar("data", "synth", "--out", data, "--subjects", "3")

    def first_trial_raises(params, ctx, name):  # local: pickled by value into the workers
        try:
            os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return run_trial(params, ctx, name)
        raise RuntimeError("injected trial failure")

    cfg = TrainConfig(data=data, run=run, epochs=1, stride=100, train_stride=100, seed=0)
    opts = SearchOptions(train=cfg, trials=4, workers=2, max_model_kb=24, progress=False)
    result = run_search(opts, log=lambda _: None, trial=first_trial_raises)

    s = json.loads((run / "search.json").read_text())
    assert s == result.summary and len(s["trials"]) == 4
    assert len(s["failed"]) == 1 and "injected trial failure" in s["failed"][0]["error"]
    finished = {t["trial"]: t for t in s["trials"] if "error" not in t}
    assert len(finished) == 3 and s["pareto"] and set(s["pareto"]) <= set(finished)
    assert (run / "search_pareto.png").read_bytes()[:4] == b"\x89PNG"
    err = capfd.readouterr().err
    assert err.count("FAILED") == 1 and err.count("int8 val") == 3  # one line per trial
    # with QEMU and the Arm compiler, each trial's firmware ran on the emulated board
    require_tools("arm-none-eabi-g++", "qemu-system-arm", apt="gcc-arm-none-eabi qemu-system-arm")
    assert s["latency"]["key"] == "instructions" and err.count("M instructions") == 3
    for t in finished.values():
        assert t["instructions"] > 100_000 and t["flash_bytes"] > t["model_bytes"] + 20_000
    assert s["best"] in finished and finished[s["best"]]["model_bytes"] <= 24 * 1024
    best = Path(finished[s["best"]]["run"])
    assert (run / "model_int8.tflite").is_file() and (run / "quantize.json").is_file()
    assert (run / "model.keras").read_bytes() == (best / "model.keras").read_bytes()

    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no arduino-cli: sources only
    res = CliRunner().invoke(main, ["build", "--run", str(run), "--no-install", "--no-measure"])
    assert res.exit_code == 0, res.output
    assert (run / "build.json").is_file()
    assert (run / "firmware" / "nano33ble" / "libraries" / "tinyhar_model").is_dir()


@pytest.mark.slow
def test_a_size_suggested_again_is_not_trained_again(tmp_path):
    from tinyhar.model.train import TrainConfig  # lazy: TensorFlow, slow only
    from tinyhar.search.trial import TrialContext, run_trial  # lazy: TensorFlow, slow only

    data = tmp_path / "synth"
    tinyhar("data", "synth", "--out", data, "--subjects", "3")
    cfg = TrainConfig(data=data, epochs=1, stride=100, train_stride=100)
    ctx = TrialContext(cfg, tmp_path / "trials")
    size = {"width": 8, "kernel": 3, "pool": 2, "attention": False, "branch": True}
    first = run_trial(size, ctx, "first")
    again = run_trial(dict(size), ctx, "again")
    assert again == first and first["trained_in"] == "first"
    assert (tmp_path / "trials" / "first" / "model_int8.tflite").is_file()
    assert not (tmp_path / "trials" / "again").exists()  # nothing trained for it
    other = run_trial(size | {"width": 12}, ctx, "other")
    assert other["trained_in"] == "other" and other["model_bytes"] > first["model_bytes"]


def test_a_trial_size_is_the_search_family_whatever_the_default_shape():
    from tinyhar.search.trial import FIXED, SPACE, size_of

    params = {k: v[-1] for k, v in SPACE.items()}
    size = size_of(params)
    assert size == {**FIXED, **params} and size["norm"] == "bn_relu"
    old = size_of({"width": 8, "kernel": 3, "pool": 2, "attention": False, "branch": True})
    assert old["attention"] is False and old["stride"] == 1  # a search from before stride
