"""The smaller holes: data's control characters never reach the terminal, labels given twice are
warned about, a killed import's staging folder is cleaned by the next import, a killed verify
leaves its history line, and two builds of the same host reference never share a file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from helpers.commands import TINYHAR, one_error_line, verify_history
from helpers.fw_models import har_int8_model, make_run
from helpers.paths import TESTS

from tinyhar.board import tflm_library
from tinyhar.cli import main
from tinyhar.deploy import board_reference, native_build
from tinyhar.files import KILL_AFTER_WRITES
from tinyhar.log import printable
from tinyhar.run import folder as runs

CORPUS = TESTS / "corpus"
OSC_TITLE = "\x1b]0;owned\x07"  # a terminal's window title, set by printing it


def _cli(*args: str):
    return CliRunner().invoke(main, list(map(str, args)), env={"PATH": ""})


def test_printable_escapes_control_characters_and_bidi_overrides():
    assert printable(f"a{OSC_TITLE}b") == "a\\x1b]0;owned\\x07b"
    assert printable("abc\u202edef") == "abc\\u202edef"
    assert printable("two\nlines\tok é") == "two\nlines\tok é"
    assert printable("one\nline", lines=False) == "one\\x0aline"


def test_a_dropped_label_with_a_terminal_escape_is_printed_escaped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rows = (CORPUS / "recordings" / "subject1_ok.csv").read_text().splitlines()
    rows = (
        rows[:100] + [r.replace("walking", f"junk{OSC_TITLE}") for r in rows[100:150]] + rows[150:]
    )
    (src / "subject1.csv").write_text("\n".join(rows) + "\n")
    res = _cli("data", "import", src, "--out", tmp_path / "out", "--gyro-unit", "deg/s",
               "--drop", "junk*")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output
    assert "dropped: junk\\x1b]0;owned\\x07 (50)" in res.output


def test_an_error_line_escapes_what_it_quotes(tmp_path):
    res = _cli("build", "--board", f"my{OSC_TITLE}\nboard.toml", "--run", tmp_path)
    assert res.exit_code == 2
    line = one_error_line(res.output)
    assert "\x1b" not in line and "my\\x1b]0;owned\\x07\\x0aboard.toml" in line


def test_labels_given_twice_or_differing_in_case_are_warned_about_in_build(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(har_int8_model())
    res = _cli("build", "--no-measure", "--model", model, "--labels", "same,same,Walk,walk")
    assert res.exit_code == 0, res.output
    assert "build: warning: label 'same' is given 2 times" in res.output
    assert "build: warning: labels 'Walk' and 'walk' differ only in case" in res.output


def test_the_next_import_removes_the_staging_folder_of_a_killed_one(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(CORPUS / "recordings" / "subject1_ok.csv", src / "subject1.csv")
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid no process has now
    stale = tmp_path / f".out.import-{dead.pid}-abc123"
    (stale / "junk").mkdir(parents=True)
    alive = tmp_path / f".out.import-{os.getpid()}-def456"  # a running import's: kept
    alive.mkdir()
    res = _cli("data", "import", src, "--out", tmp_path / "out", "--gyro-unit", "deg/s")
    assert res.exit_code == 0, res.output
    assert not stale.exists() and alive.is_dir() and (tmp_path / "out" / "dataset.toml").is_file()
    assert "removed 1 staging folder(s) an interrupted import left" in res.output


def test_a_killed_verify_leaves_its_history_line(tmp_path):
    run = make_run(tmp_path)
    rng = np.random.default_rng(0)
    np.savez(run / runs.WINDOWS_NPZ, x_test=rng.normal(size=(4, 100, 6)).astype(np.float32),
             y_test=np.arange(4), subject_test=np.full(4, 9),
             x_rep=rng.normal(size=(4, 100, 6)).astype(np.float32))  # fmt: skip
    proc = subprocess.run(
        [*TINYHAR, "verify", "--port", str(tmp_path / "ttyACM0"), "--run", str(run)],
        env={**os.environ, KILL_AFTER_WRITES: "1"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -9  # killed right after its first write: the history line
    (line,) = verify_history(run)
    assert line["passed"] is False and line["complete"] is False and line["windows"] == 0
    assert line["error"].startswith("unfinished:")
    # a verify that ends replaces its line: one line per run
    res = _cli("verify", "--port", tmp_path / "ttyACM0", "--run", run)
    assert res.exit_code == 2
    lines = verify_history(run)
    assert len(lines) == 2 and lines[0]["run_id"] != lines[1]["run_id"]
    assert "does not exist" in lines[1]["error"]


def test_two_builds_of_the_same_host_reference_link_to_files_of_their_own(tmp_path, monkeypatch):
    run = make_run(tmp_path)
    assert _cli("build", "--no-measure", "--run", run).exit_code == 0
    rec = json.loads((run / runs.BUILD_JSON).read_text())
    lib = tflm_library.load_library(rec["tflm_library"]["name"])
    tflm_src = tflm_library.library_src(tflm_library.libraries_dir(), lib)
    ops = [op for op, who in rec["kernels"].items() if who != "tinyhar"]
    library = Path(rec["library_dir"])
    first = board_reference.build_reference(library, tflm_src, ops)
    first.path.unlink()  # as if never built: the next two race to build it
    linked, link = [], native_build.link

    def slow_link(tc, objects, out, *args, **kwargs):
        linked.append(out)
        time.sleep(0.5)  # both are linking at once
        return link(tc, objects, out, *args, **kwargs)

    monkeypatch.setattr(native_build, "link", slow_link)
    built, errors = [], []

    def build() -> None:
        try:
            built.append(board_reference.build_reference(library, tflm_src, ops))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors and len(built) == 2 and built[0].path == built[1].path == first.path
    assert len(set(linked)) == 2 and all(p.name.endswith(".tmp.so") for p in linked)
    assert first.path.is_file() and not list(first.path.parent.glob("*.tmp.so"))
