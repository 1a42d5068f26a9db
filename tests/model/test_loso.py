"""Leave-one-subject-out on Ray: folds, summary, reproducibility against sequential runs."""

from __future__ import annotations

import json
import sys

import pytest
from helpers.commands import one_error_line, tinyhar

from tinyhar.errors import TinyharError
from tinyhar.model.loso import parse_folds, summarize
from tinyhar.parallel import ray_env
from tinyhar.parallel.ray_env import import_ray, plan

TINY = ["--epochs", "1", "--stride", "100", "--train-stride", "100",
        "--max-model-kb", "16", "--max-arena-kb", "12"]  # fmt: skip


def _metrics(acc: float, labels: list[str], confusion: list[list[int]]) -> dict:
    return {
        "accuracy": acc,
        "macro_f1": acc / 2,
        "labels": labels,
        "confusion": confusion,
        "counts": {"test": sum(map(sum, confusion))},
        "split": {"val_subjects": [9]},
        "epochs_run": 1,
    }


def test_parse_folds():
    assert parse_folds("all", [3, 1, 2]) == [1, 2, 3]
    assert parse_folds("3, 1", [1, 2, 3]) == [1, 3]
    with pytest.raises(TinyharError, match="subject"):
        parse_folds("7", [1, 2, 3])
    with pytest.raises(TinyharError, match="all or subject ids"):
        parse_folds("x", [1, 2, 3])


def test_summary_pools_confusions_by_class_name_and_reports_failures():
    s = summarize(
        {
            1: _metrics(0.5, ["a", "b"], [[1, 1], [0, 2]]),
            2: _metrics(1.0, ["b", "c"], [[3, 0], [0, 1]]),
        },
        {3: "ValueError: boom"},
    )
    assert s["labels"] == ["a", "b", "c"]
    assert s["confusion"] == [[1, 1, 0], [0, 5, 0], [0, 0, 1]]
    assert s["accuracy"]["mean"] == pytest.approx(0.75)
    assert s["accuracy"]["sd"] == pytest.approx(0.353553, abs=1e-6)  # sample sd, n - 1
    assert s["pooled_accuracy"] == pytest.approx(7 / 8)
    assert s["failed"] == [{"subject": 3, "error": "ValueError: boom"}]


def test_plan_sizes_local_workers_to_the_cores(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray_env.os, "cpu_count", lambda: 8)
    assert plan(None, None) == ray_env.Cluster(None, 8, 1)
    assert plan(2, None) == ray_env.Cluster(None, 2, 4)
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert plan(None, None).address == "ray://head:10001"


def test_without_ray_one_line_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(TinyharError, match=r"pip install 'tinyhar\[ray\]'"):
        import_ray()


def test_folds_without_loso_is_refused(tmp_path):
    proc = tinyhar("train", "--data", tmp_path, "--folds", "all", check=False)
    assert proc.returncode == 2 and "--split loso" in proc.stderr


def test_unknown_fold_subject_is_one_line(tmp_path):
    data = tmp_path / "synth"
    tinyhar("data", "synth", "--out", data, "--subjects", "3")
    proc = tinyhar("train", "--data", data, "--split", "loso", "--folds", "1,7", check=False)
    assert "7" in one_error_line(proc.stderr)


@pytest.mark.slow
def test_loso_on_ray_equals_sequential_runs(tmp_path):
    """4 subjects, a local Ray of 2 workers: 4 folds, and the summary of sequential trainings
    with the same seed is identical."""
    from tinyhar.model.train import TrainConfig, train  # lazy: TensorFlow, slow tests only

    data, run = tmp_path / "synth", tmp_path / "loso"
    tinyhar("data", "synth", "--out", data, "--subjects", "4")
    proc = tinyhar("train", "--data", data, "--split", "loso", "--folds", "all",
                   "--workers", "2", "--seed", "3", "--run", run, *TINY)  # fmt: skip
    summary = json.loads((run / "loso.json").read_text())
    assert [f["subject"] for f in summary["folds"]] == [1, 2, 3, 4] and not summary["failed"]
    assert (run / "loso_confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert all((run / "folds" / f"subject{s:02d}" / "model.keras").exists() for s in range(1, 5))
    assert proc.stderr.count("fold subject ") == 4  # one line per finished fold
    assert "local Ray: 2 CPUs, 2 at once" in proc.stderr
    assert "± " in proc.stdout and "SYNTHETIC" in proc.stdout

    sequential = {}
    for s in range(1, 5):
        cfg = TrainConfig(data=data, split="loso", test_subjects=[s], seed=3,
                          run=tmp_path / f"seq{s}", epochs=1, stride=100, train_stride=100,
                          max_model_kb=16, max_arena_kb=12)  # fmt: skip
        sequential[s] = train(cfg, log=lambda _: None).metrics.to_json()
    expected = summarize(sequential, {})
    assert {k: summary[k] for k in expected} == expected
