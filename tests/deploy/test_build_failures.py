"""`build` fails when its firmware does not compile, with the compiler's first error in one line;
flash and RAM are estimates only without the toolchain or the TFLM library, and say which."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from helpers.fw_models import make_run

from tinyhar.board import tflm_library
from tinyhar.cli import main
from tinyhar.deploy import codegen
from tinyhar.deploy.footprint import estimate_footprint
from tinyhar.run import folder as runs

needs_arm = pytest.mark.usefixtures("arm_gcc")


def _build(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, ["build", *args], env=env)


@needs_arm
def test_a_firmware_that_does_not_compile_fails_the_build_with_the_first_error(
    tmp_path, monkeypatch
):
    run = make_run(tmp_path)
    ok = _build("--run", str(run), "--no-install")
    assert ok.exit_code == 0, ok.output
    rec = json.loads((run / runs.BUILD_JSON).read_text())
    assert rec["footprint"]["measured"] is True
    # the estimate a build without the link prints is not under the linked figure
    est = estimate_footprint(rec["model_bytes"], rec["arena_bytes"], "tinyhar")
    print(f"flash measured {rec['footprint']['flash']} B, estimated {est['flash']} B; RAM "
          f"measured {rec['footprint']['ram']} B, estimated {est['ram']} B")  # fmt: skip
    assert rec["footprint"]["flash"] <= est["flash"] <= 1.25 * rec["footprint"]["flash"]
    assert rec["footprint"]["ram"] <= est["ram"] <= 1.25 * rec["footprint"]["ram"]
    render = codegen.render_library

    def broken(context, sketch_name):  # what any error in generated code looks like to gcc
        files = render(context, sketch_name)
        files["src/tinyhar_runner.cpp"] += "\nstatic int broken = ;\n"
        return files

    monkeypatch.setattr(codegen, "render_library", broken)
    res = _build("--run", str(run), "--no-install")
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("error: the generated firmware does not build for the Cortex-M4F")
    assert "tinyhar_runner.cpp:" in line and "error: expected primary-expression" in line
    assert "ESTIMATE" not in res.output
    assert not (run / runs.BUILD_JSON).exists()  # no record of a firmware that does not build


def test_without_the_arm_toolchain_the_footprint_is_an_estimate_naming_it(tmp_path):
    run = make_run(tmp_path)
    res = _build("--run", str(run), env={"PATH": str(tmp_path / "no-tools")})
    assert res.exit_code == 0, res.output
    fp = json.loads((run / runs.BUILD_JSON).read_text())["footprint"]
    assert fp["measured"] is False and "arm-none-eabi-gcc" in fp["why"] and "apt-get" in fp["why"]
    assert "footprint    ESTIMATE" in res.output and "arm-none-eabi-gcc" in res.output


@needs_arm
def test_without_the_tflm_library_the_footprint_is_an_estimate_naming_it(tmp_path):
    run = make_run(tmp_path)
    empty = tmp_path / "no-libraries"
    empty.mkdir()
    res = _build("--run", str(run), "--no-install", "--libraries", str(empty))
    assert res.exit_code == 0, res.output
    fp = json.loads((run / runs.BUILD_JSON).read_text())["footprint"]
    assert fp["measured"] is False
    title = tflm_library.load_library("Chirale_TensorFLowLite").title
    assert f"{title}, the board's TFLM library, is not in {empty} (--libraries)" in fp["why"]
    assert res.output.count("the board's TFLM library, is not in") == 1  # once, not per step
