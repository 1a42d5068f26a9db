"""--max-instructions: `tinyhar train` sizes tiny to it, `tinyhar search` bounds and ranks by it;
counted on the emulated board, one error line where it cannot be met or counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.commands import one_error_line, require_tools, tinyhar

from tinyhar.board.boards import default_board
from tinyhar.cli import main
from tinyhar.device import instruction_budget
from tinyhar.errors import TinyharError
from tinyhar.model import budget
from tinyhar.model.budget import Budget, fit_tiny_to_budget


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("data") / "synth"
    tinyhar("data", "synth", "--out", data, "--subjects", "3")
    return data


def test_the_ladder_counts_instructions_only_where_the_bytes_fit(monkeypatch):
    counted: list[int] = []
    shapes: list[dict] = []

    def fake_bytes(shape, classes, width, **size):
        shapes.append(size)
        return (width * 1000, 4096)  # model bytes grow with width

    def fake_instructions(shape, classes, size, board):
        counted.append(size["width"])
        return size["width"] * 10_000

    monkeypatch.setattr(budget, "measure_tiny", fake_bytes)
    want = Budget(max_model_kb=48_000 / 1024, max_arena_kb=32, max_instructions=250_000)
    fit = fit_tiny_to_budget((100, 6), 6, want, shape={"width": 64, "pool": 4},
                             count_instructions=fake_instructions)  # fmt: skip
    assert fit.size == {"pool": 4, "width": 24} and fit.instructions == 240_000
    assert 64 not in counted and 96 not in counted  # their bytes are over: never counted
    assert shapes and all(s == {"pool": 4} for s in shapes)  # the shape's options, not its width
    with pytest.raises(TinyharError) as e:
        fit_tiny_to_budget((100, 6), 6, Budget(max_instructions=50_000),
                           count_instructions=fake_instructions)  # fmt: skip
    assert "\n" not in str(e.value)
    assert "80,000 instructions" in str(e.value) and "--max-instructions 50000" in str(e.value)


def test_train_max_instructions_without_the_emulator_is_one_line(synth, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no qemu-system-arm, no arm gcc
    run = tmp_path / "R"
    res = CliRunner().invoke(main, ["train", "--data", str(synth), "--arch", "tiny", "--run",
                                    str(run), "--max-instructions", "600000"])  # fmt: skip
    line = one_error_line(res.output)
    assert res.exit_code == 2 and "--max-instructions" in line and "not found" in line
    assert not (run / "model.keras").exists()


@pytest.mark.slow
def test_a_budget_no_width_meets_is_one_line_with_the_count(tmp_path, monkeypatch):
    """The smallest width is built and run on the emulated board; its count is then cached."""
    require_tools("arm-none-eabi-g++", "qemu-system-arm", apt="gcc-arm-none-eabi qemu-system-arm")
    real = budget.sizing_cache  # a fresh cache of counts; the compiled objects' as it is
    fresh = lambda kind="tiny": tmp_path / real(kind).name  # noqa: E731
    monkeypatch.setattr(instruction_budget, "sizing_cache", fresh)
    monkeypatch.setattr(instruction_budget, "_INSTRUCTIONS", {})
    want = Budget(max_instructions=1000)
    with pytest.raises(TinyharError) as e:
        counter = instruction_budget.instruction_counter(default_board())
        fit_tiny_to_budget((100, 6), 6, want, widths=(8, 16), count_instructions=counter)
    msg = str(e.value)
    assert "\n" not in msg and "width 8" in msg and "--max-instructions 1000" in msg
    count = int(msg.split(" instructions")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert 100_000 < count < 2_000_000
    (cache,) = tmp_path.glob("instructions-*.json")
    assert list(json.loads(cache.read_text()).values()) == [[count]]
    monkeypatch.setattr(instruction_budget, "_INSTRUCTIONS", {})
    monkeypatch.setattr(instruction_budget, "measure_instructions", None)  # not run again
    assert (
        instruction_budget.measure_tiny_instructions((100, 6), 6, {"width": 8}, default_board())
        == count
    )


def test_search_max_instructions_needs_the_emulator_in_one_line(synth, tmp_path, monkeypatch):
    args = ["search", "--data", str(synth), "--run", str(tmp_path / "s"),
            "--max-instructions", "600000"]  # fmt: skip
    res = CliRunner().invoke(main, [*args, "--no-emulate"])
    assert res.exit_code == 2 and "drop --no-emulate" in one_error_line(res.output)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    res = CliRunner().invoke(main, args)
    line = one_error_line(res.output)
    assert res.exit_code == 2 and "--max-instructions" in line and "not found" in line
    assert not (tmp_path / "s").exists()


def test_a_trial_over_the_bound_is_counted_not_trained(synth, tmp_path, monkeypatch):
    from tinyhar.model.train import TrainConfig  # lazy: TensorFlow
    from tinyhar.search import trial

    monkeypatch.setattr(trial, "measure_tiny_instructions", lambda *a: 2_500_000)
    cfg = TrainConfig(data=synth, epochs=1, stride=100, train_stride=100)
    ctx = trial.TrialContext(cfg, tmp_path / "trials", "nano33ble", max_instructions=600_000)
    size = {"width": 64, "kernel": 5, "pool": 2, "attention": True, "branch": True}
    r = trial.run_trial(size, ctx, "big")
    assert r["over_instructions"] == r["instructions"] == 2_500_000
    assert r["int8_val_accuracy"] == 0.0 and not (tmp_path / "trials" / "big").exists()


def _trial(tid: str, acc: float, model: int, insn: int) -> dict:
    return {"trial": tid, "params": {"width": 8}, "int8_val_accuracy": acc,
            "int8_test_accuracy": acc, "model_bytes": model, "arena_bytes": 4096, "macs": 1,
            "instructions": insn, "run": f"/runs/{tid}", "trained_in": tid}  # fmt: skip


def test_the_search_front_and_best_meet_the_bound(tmp_path, monkeypatch):
    from tinyhar.search import tune

    adopted = []
    monkeypatch.setattr(tune, "_adopt", lambda best, run, board, log: adopted.append(best.name))
    monkeypatch.setattr(tune, "_synthetic", lambda t: True)
    trials = [
        _trial("fast", 0.90, 9000, 400_000),
        _trial("slow", 0.97, 8000, 900_000),  # best and smallest, but over the bound
        _trial("mid", 0.93, 12000, 550_000),
        _trial("huge", 0.0, 0, 6_000_000) | {"over_instructions": 6_000_000},
    ]
    train = tune.TrainConfig()
    opts = tune.SearchOptions(train=train, max_instructions=600_000, progress=False)
    result = tune._finish(opts, tmp_path, trials, tune.budget_of(opts), lambda _: None)
    s = result.summary
    assert s["budget"]["instructions"] == 600_000
    assert s["pareto"] == ["fast", "mid"] and s["best"] == "mid" and adopted == ["mid"]
    assert s["over_instructions"] == ["huge"] and "instructions down" in s["algorithm"]
    assert [t["fits"] for t in s["trials"][:3]] == [True, False, True]
    text = tune.format_search(result)
    assert "1 sizes over --max-instructions 600,000: not trained" in text
    unbounded = tune.SearchOptions(train=train, progress=False)
    s = tune._finish(unbounded, tmp_path, trials[:3], tune.budget_of(unbounded),
                     lambda _: None).summary  # fmt: skip
    assert s["best"] == "slow" and "slow" in s["pareto"] and "model bytes down" in s["algorithm"]
