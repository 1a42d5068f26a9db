"""The README says what a user sees: the protocol version, the run folder's name and its files are
the code's."""

from __future__ import annotations

import re
from pathlib import Path

from helpers.paths import REPO

from tinyhar.board.protocol import PROTOCOL_VERSION
from tinyhar.run import firmware as fw
from tinyhar.run import folder as runs

README = (REPO / "README.md").read_text(encoding="utf-8")


def _run_folder_paragraph() -> str:
    start = README.index("Everything a run produces lands in one run folder")
    return README[start : README.index("\n\n", start)]


def test_the_protocol_version_is_the_code_s() -> None:
    assert {int(v) for v in re.findall(r"protocol version (\d+)", README)} == {PROTOCOL_VERSION}
    protocol = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert protocol.startswith(f"# The tinyhar serial protocol (version {PROTOCOL_VERSION})")


def test_the_run_folder_names_every_file_a_run_gets() -> None:
    text = _run_folder_paragraph()
    names = [
        runs.KERAS_MODEL, runs.DATASET_JSON, runs.WINDOWS_NPZ, runs.METRICS_JSON,
        runs.HISTORY_JSON, runs.CONFUSION_PNG, runs.HISTORY_PNG, runs.INT8_MODEL,
        runs.QUANTIZE_JSON, runs.BUILD_JSON, runs.VERIFY_HISTORY, runs.EVALUATE_JSON,
        runs.EVALUATE_PNG, runs.DEMO_JSON, runs.verify_json("model"), runs.verify_json("raw"),
        f"{fw.FIRMWARE_DIR}/<board>/libraries/{fw.FIRMWARE_LIBRARY}/",
        f"{fw.FIRMWARE_DIR}/<board>/{fw.M4F_DIR}/", f"{fw.EMULATOR_DIR}/<board>/",
        runs.verify_resume("model").replace("model", "<mode>"),
    ]  # fmt: skip
    missing = [n for n in names if f"`{n}`" not in text]
    assert not missing, f"the README's run folder lacks {missing}"


def test_the_run_folder_names_are_the_code_s(tmp_path: Path) -> None:
    text = _run_folder_paragraph()
    for arch, tag in (("tiny", "arm"), ("tiny", "hapt")):
        name = runs.new_run_dir(arch, tag, root=tmp_path).name
        shown = re.search(rf"`runs/(\d{{8}}-\d{{6}})-{arch}-{tag}/`", text)
        assert shown and re.fullmatch(rf"\d{{8}}-\d{{6}}-{arch}-{tag}", name), (name, text)


def test_the_readme_quotes_the_latest_figures_of_its_script():
    """benchmarks/readme_figures.py's latest recorded output is what the README quotes."""
    results = REPO / "benchmarks" / "results" / "readme_figures.txt"
    figures = [
        line.rsplit(": ", 1)[1]
        for line in results.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert len(figures) == 3 and all(f.replace(" ", "").isdigit() for f in figures)
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert [
        f for f in figures if f"{f} B" not in readme and f"{f} instructions" not in readme
    ] == []
