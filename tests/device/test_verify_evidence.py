"""verify keeps its evidence: each mode its own report, the json and png of one run, a run that
compared nothing leaves the last report alone, a run stopped part-way reports what it compared,
and every run adds a line to verify_history.jsonl.

A virtual board served by a thread of this process; verify in-process, on a copy of the tiny run
(so the history is this test's alone)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.boards import virtual_board
from helpers.commands import verify_history, verify_quietly
from PIL import Image

from tinyhar.device.link import Link
from tinyhar.errors import TinyharError
from tinyhar.files import read_json
from tinyhar.run import folder as runs


@pytest.fixture
def run(tiny_run: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run without any verify files."""
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst, ignore=shutil.ignore_patterns("verify*", "firmware"))
    return dst


def _png_run_id(path: Path) -> str:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.text["run_id"]


def test_each_mode_keeps_its_own_report(run: Path) -> None:
    with virtual_board(run) as (vb, _):
        model = verify_quietly(vb.path, run, windows=12)
        raw = verify_quietly(vb.path, run, raw=True, windows=7)
    assert model.passed and raw.passed and model.run_id != raw.run_id
    for report, mode, n in ((model, "model", 12), (raw, "raw", 7)):
        saved = read_json(run / runs.verify_json(mode))
        assert saved == report.to_json()
        assert saved["mode"] == mode and saved["windows"] == n and saved["complete"] is True
        assert _png_run_id(run / runs.verify_png(mode)) == report.run_id
    assert not (run / "verify.json").exists() and not (run / "verify.png").exists()
    history = verify_history(run)
    assert [(h["mode"], h["passed"], h["windows"], h["windows_requested"]) for h in history] == [
        ("model", True, 12, 12),
        ("raw", True, 7, 7),
    ]
    assert [h["run_id"] for h in history] == [model.run_id, raw.run_id]
    assert history[0]["report"] == "verify_model.json" and history[1]["top1_agreement"] == 1.0


def test_a_mistyped_port_leaves_the_passing_report_alone(run: Path, tmp_path: Path) -> None:
    with virtual_board(run) as (vb, _):
        passed = verify_quietly(vb.path, run, windows=5)
    assert passed.passed
    files = [run / runs.verify_json("model"), run / runs.verify_png("model")]
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in files]
    port = str(tmp_path / "ttyACM9")
    with pytest.raises(TinyharError, match="does not exist"):
        verify_quietly(port, run, windows=5)
    assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in files] == before
    assert read_json(files[0])["run_id"] == passed.run_id == _png_run_id(files[1])
    history = verify_history(run)
    assert len(history) == 2 and history[0]["passed"] is True
    failed = history[1]
    assert failed["port"] == port and failed["mode"] == "model"
    assert failed["passed"] is False and failed["complete"] is False
    assert failed["windows"] == 0 and failed["windows_requested"] == 5
    assert failed["report"] is None and "does not exist" in failed["error"]


def _stop_at_infer(monkeypatch: pytest.MonkeyPatch, call: int, stop) -> None:
    """Link.infer runs `stop()` instead of its `call`-th request (1-based)."""
    infer, calls = Link.infer, [0]

    def wrapped(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == call:
            stop()
        return infer(self, *args, **kwargs)

    monkeypatch.setattr(Link, "infer", wrapped)


def _interrupt() -> None:
    raise KeyboardInterrupt


def test_ctrl_c_part_way_keeps_the_passing_report_and_resume_finishes(
    run: Path, monkeypatch
) -> None:
    files = [run / runs.verify_json("model"), run / runs.verify_png("model")]
    with virtual_board(run) as (vb, _):
        passed = verify_quietly(vb.path, run, windows=20)
        before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in files]
        _stop_at_infer(monkeypatch, 7, _interrupt)
        with pytest.raises(KeyboardInterrupt):
            verify_quietly(vb.path, run, windows=20)
        # the passing report and its plot are untouched and agree; the stop is in the history
        assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in files] == before
        assert _png_run_id(files[1]) == passed.run_id
        line = verify_history(run)[-1]
        assert line["report"] is None and line["stopped_at"] == "window 7 of 20"
        assert (line["passed"], line["complete"], line["windows"], line["error"]) == (
            False, False, 6, "interrupted",
        )  # fmt: skip
        assert line["top1_agreement"] == 1.0 and line["max_abs_diff_lsb"] == 0
        assert (run / runs.verify_resume("model")).is_file()

        monkeypatch.undo()
        asked: list[int] = []
        infer = Link.infer
        monkeypatch.setattr(Link, "infer", lambda self, w: asked.append(1) or infer(self, w))
        resumed = verify_quietly(vb.path, run, windows=20, resume=True)
    assert len(asked) == 14  # windows 7 to 20 only
    assert resumed.passed and resumed.complete and resumed.windows == 20
    assert (resumed.top1_agreement, resumed.max_abs_diff_lsb) == (1.0, 0)
    assert read_json(files[0])["run_id"] == resumed.run_id == _png_run_id(files[1])
    assert not (run / runs.verify_resume("model")).exists()


def test_resume_without_an_interrupted_run_is_one_line(run: Path) -> None:
    with virtual_board(run) as (vb, _):
        with pytest.raises(TinyharError, match="--resume: no interrupted model-mode run"):
            verify_quietly(vb.path, run, windows=5, resume=True)


def test_a_board_gone_part_way_reports_the_windows_compared(run: Path, monkeypatch) -> None:
    with virtual_board(run) as (vb, _):
        _stop_at_infer(monkeypatch, 4, vb.stop)
        with pytest.raises(TinyharError) as err:
            verify_quietly(vb.path, run, windows=10, timeout=0.3, retries=1)
    report = read_json(run / runs.verify_json("model"))
    assert report["passed"] is False and report["complete"] is False
    assert report["windows"] == 3 and report["windows_requested"] == 10
    assert report["stopped_at"] == "window 4 of 10" and report["error"] == str(err.value)
    assert _png_run_id(run / runs.verify_png("model")) == report["run_id"]
    assert not (run / runs.verify_json("raw")).exists()
    (line,) = verify_history(run)
    assert line["run_id"] == report["run_id"] and line["windows"] == 3
    assert line["error"] == str(err.value) and line["passed"] is False
