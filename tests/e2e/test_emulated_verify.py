"""What users flash is what is verified: the generated firmware on the emulated Cortex-M4F
(`tinyhar sim --emulate`) against the board's own TFLM library built for the host, through the
same `tinyhar verify` a user runs: 0 LSB on 200 windows in model mode (50 in raw mode), against
the board's library and against the Python TFLM interpreter (the gate), for tiny (the default
shape), a width-12 tiny of the former default shape whose LSTM cell scale is 2^-13 and paper; a
float-I/O model of one's own through the firmware's runner."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from helpers.boards import sim_board
from helpers.commands import require_tools, tinyhar
from helpers.fw_models import third_party_float_model
from helpers.lstm_models import lstm_node

from tinyhar.board import protocol as P
from tinyhar.deploy.board_reference import for_build
from tinyhar.device.emulator import start_emulator
from tinyhar.device.link import Link
from tinyhar.lite.reference import Reference
from tinyhar.lite.tflite_inspect import parse_model
from tinyhar.run import folder as runs
from tinyhar.run.records import BuildReport

APT = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm"
WINDOWS = 200
RAW_WINDOWS = 50  # raw mode adds the board's preprocessing, checked on fewer windows
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def toolchain() -> None:
    require_tools("arm-none-eabi-g++", "qemu-system-arm", "g++", apt=APT)


# The default shape before issue 20 at width 12 (what `--max-model-kb 13` sized it to)
FORMER_W12 = "width=12,filters=12,stride=1,pool=2,norm=relu_bn,attention=dot,stats=none,means=mean"


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("synth") / "data"
    tinyhar("data", "synth", "--out", data, "--subjects", "3")
    return data


def _trained(synth: Path, root: Path, *args: str) -> Path:
    run = root / "run"
    tinyhar("train", "--data", synth, "--epochs", "1", "--run", run, *args)
    tinyhar("quantize", "--run", run)
    return run


def _verify(run: Path, port: str, windows: int, *args: str, cwd: Path | None = None) -> dict:
    given = os.path.relpath(run, cwd) if cwd else run  # as a user in `cwd` names it
    proc = tinyhar("verify", "--port", port, "--run", given, "--windows", windows, "--timeout", 30,
                   *args, timeout=900, check=False, cwd=cwd)  # fmt: skip
    mode = "raw" if "--raw" in args else "model"
    report = json.loads((run / runs.verify_json(mode)).read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return report | {"stdout": proc.stdout}


def _check(report: dict, mode: str, windows: int) -> None:
    assert report["passed"] and report["mode"] == mode and report["windows"] == windows
    assert report["max_abs_diff_lsb"] == 0 and report["top1_agreement"] == 1.0
    assert (
        report["reference"]["exact"]
        and "Chirale_TensorFLowLite 2.0.0" in (report["reference"]["name"])
    )
    assert report["thresholds"]["max_lsb"] == 0
    emulated = report["emulated"]
    assert emulated["instructions_per_inference"] > 100_000
    est = emulated["estimated_latency_ms"]
    assert est["clock_hz"] == 64_000_000 and 0 < est["min"] < est["max"]
    assert "instructions per inference" in report["stdout"] and "ESTIMATE" in report["stdout"]
    assert "device latency" not in report["stdout"]  # -icount's "us" are instructions / 1000
    n = emulated["instructions"]
    assert n["min"] <= n["median"] == emulated["instructions_per_inference"] <= n["max"]
    assert "the board's own firmware code" in report["reference"]["proves"]
    second = report["python_tflm"]  # every op on tinyhar's kernels or on ones known to match:
    assert second["gate"]["violations"] == []
    assert re.search(r"Python TFLM gate\s+passed", report["stdout"])
    assert second["max_abs_diff_lsb"] == 0 and second["top1_agreement"] == 1.0  # a gate at 0


@pytest.mark.parametrize(
    ("args", "windows"),
    [
        (("--arch", "tiny", "--sensors", "arm"), WINDOWS),
        (
            ("--arch", "tiny", "--sensors", "arm", "--size", FORMER_W12, "--train-stride", "25"),
            WINDOWS,
        ),  # fmt: skip
        (("--arch", "paper", "--sensors", "both"), WINDOWS),
    ],
    ids=["tiny-arm", "tiny-w12", "paper"],
)
def test_emulated_firmware_matches_the_board_library_bit_for_bit(synth, tmp_path, args, windows):
    run = _trained(synth, tmp_path, *args)
    if FORMER_W12 in args:  # width 12 and a cell scale at which Chirale's LSTM loses state
        model = (run / runs.INT8_MODEL).read_bytes()
        node = lstm_node(model)
        units = parse_model(model).subgraphs[0].tensors[node.output].shape[-1]
        assert node.cell_power == -13 and units == 12, (node.cell_power, units)
    tinyhar("build", "--run", run, timeout=900)
    build = json.loads((run / runs.BUILD_JSON).read_text())
    assert build["footprint"]["measured"] is True
    groups = build["footprint"]["groups"]
    assert groups["model"]["flash"] == build["model_bytes"]
    assert groups["arena"]["ram"] == build["arena_bytes"]
    assert groups["tflm"]["flash"] > 20_000 and groups["tinyhar"]["flash"] > 1_000
    if "BATCH_MATMUL" in build["ops"]:
        assert build["kernels"]["BATCH_MATMUL"] == "tinyhar"
    # sim and verify run from a folder that holds a run of its own, of another board: they act
    # on the named run's files, not on the working directory's
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "runs" / "run").mkdir(parents=True)
    decoy = {"board": "nano_rp2040_connect", "sketch_name": "decoy", "model_crc32": "0x0"}
    (elsewhere / "runs" / "run" / runs.BUILD_JSON).write_text(json.dumps(decoy))
    named = os.path.relpath(run, elsewhere)
    with sim_board(named, "--emulate", start_timeout=900, cwd=elsewhere) as sim:
        model = _verify(run, sim.port, windows, "--profile", cwd=elsewhere)
        _check(model, "model", windows)
        _check_profile(model, run)
        _check(_verify(run, sim.port, RAW_WINDOWS, "--raw", cwd=elsewhere), "raw", RAW_WINDOWS)
    assert not (elsewhere / "runs" / "run" / "firmware").exists()
    assert (
        not (elsewhere / "emulator").exists()
        and not (elsewhere / "runs" / "run" / "emulator").exists()
    )


def _check_profile(report: dict, run: Path) -> None:
    """verify --profile: every node of the model counted in every window, in instructions, and
    the nodes together are the inference (the runner's own few instructions aside)."""
    from tinyhar.lite.tflite_inspect import node_work

    profile, nodes = report["profile"], node_work((run / runs.INT8_MODEL).read_bytes())
    assert profile["unit"] == "instructions" and profile["windows"] == report["windows"]
    assert [n["op"] for n in profile["nodes"]] == [n.op for n in nodes]
    assert all(n["min"] > 0 for n in profile["nodes"])
    # an op's count barely depends on the data: no window's clock read jumped (a lagging timer
    # interrupt once added a millisecond to one node)
    assert all(n["max"] - n["min"] <= max(2_000, 0.05 * n["mean"]) for n in profile["nodes"])
    total = report["emulated"]["instructions_per_inference"]  # a median, in steps of 1000
    assert 0.97 * total < profile["total"] <= 1.01 * total
    assert sum(o["mean"] for o in profile["ops"]) == pytest.approx(profile["total"], rel=1e-6)
    assert "per-op profile (instructions" in report["stdout"]


def test_a_float_io_model_of_one_s_own_runs_through_the_firmware_s_runner(tmp_path):
    from tinyhar.board.tflm_library import libraries_dir, library_src, load_library
    from tinyhar.deploy.m4f_image import build_emulated_firmware, firmware_dirs_of, library_ops

    model = tmp_path / "gesture_net.tflite"
    model.write_bytes(third_party_float_model())
    tinyhar("build", "--model", model, "--labels", "a,b,c,d,e", timeout=900)
    build = json.loads((tmp_path / runs.BUILD_JSON).read_text())
    assert build["config"]["input"]["dtype"] == "float32" and build["footprint"]["measured"]
    tflm = library_src(libraries_dir(), load_library(build["tflm_library"]["name"]))
    rec = BuildReport.load(tmp_path)
    image = build_emulated_firmware(firmware_dirs_of(rec, tmp_path), tflm, library_ops(rec),
                                    tmp_path / "emu")  # fmt: skip
    ref, why = for_build(rec, model.read_bytes(), None, run=tmp_path)
    assert ref is not None, why
    rng = np.random.default_rng(5)
    q = rng.integers(-128, 128, (WINDOWS, 40 * 3), dtype=np.int8)
    assert isinstance(ref, Reference) and "Chirale" in ref.name  # the one interface
    want = ref.predict(q)
    board = start_emulator(image.elf)
    try:
        with Link(board.port, timeout=30) as link:
            info = link.hello()
            assert info.has_model and info.runner_status == 0 and info.arena_used > 0
            assert info.device_kind == P.DeviceKind.EMULATED  # from HELLO, not a version suffix
            got = np.stack([link.infer(w).output for w in q])
    finally:
        board.stop()
    np.testing.assert_array_equal(got, want)
    assert len({int(np.argmax(r)) for r in want}) > 1  # windows that reach different classes
