"""`tinyhar build`: board checks, the rendered sketch, build.json, bring-your-own model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.fw_models import (
    LABELS,
    har_int8_model,
    make_run,
    measured_arena,
    third_party_float_model,
)

from tinyhar.board.boards import list_boards, load_board
from tinyhar.board.tflm_library import OWN_KERNELS, OwnKernel, load_library, plan_kernels
from tinyhar.cli import main
from tinyhar.crc import crc32
from tinyhar.deploy.codegen import c_float, parse_c_array
from tinyhar.deploy.firmware import check_ops
from tinyhar.deploy.firmware_config import channel_layout, spec_from_dataset
from tinyhar.errors import TinyharError
from tinyhar.lite.arena import margin_bytes
from tinyhar.lite.tflite_inspect import inspect_tflite
from tinyhar.run import folder as runs
from tinyhar.run.records import TensorQuantization


@pytest.fixture(autouse=True)
def no_arduino_cli(monkeypatch, tmp_path):
    """These tests run where arduino-cli is not installed (an empty PATH entry for tools)."""
    monkeypatch.delenv("TINYHAR_ARDUINO_CLI", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def _build(*args):
    return CliRunner().invoke(main, ["build", *args])


def test_build_from_run_renders_a_complete_sketch(tmp_path):
    run = make_run(tmp_path)
    res = _build("--board", "nano33ble", "--run", str(run))
    assert res.exit_code == 0, res.output
    assert "arduino-cli not found" in res.output and "install.sh" in res.output
    rec = json.loads((run / runs.BUILD_JSON).read_text())
    model = har_int8_model()
    info = inspect_tflite(model)
    sketch = run / "firmware" / "nano33ble" / "tinyhar_har"
    library = run / "firmware" / "nano33ble" / "libraries" / "tinyhar_model"
    assert rec["sketch_dir"] == str(sketch) and rec["library_dir"] == str(library)
    assert [p.name for p in sketch.glob("*") if not p.name.startswith(".")] == ["tinyhar_har.ino"]
    assert sorted(p.name for p in (library / "src").iterdir()) == sorted(
        [
            "model_data.cpp", "model_data.h", "tinyhar_config.h", "tinyhar_core.c",
            "tinyhar_core.h", "tinyhar_runner.cpp", "tinyhar_runner.h", "tinyhar_model.h",
            "tinyhar_limits.h", "tinyhar_op_resolver.h", "tinyhar_kernels.h", "tinyhar_simd.h",
            "tinyhar_requantize.h", "tinyhar_lstm.cpp", "tinyhar_softmax.cpp",
            "tinyhar_board.h", "tinyhar_board.cpp",
        ]
    )  # fmt: skip
    assert (library / "examples" / "tinyhar_har" / "tinyhar_har.ino").read_text() == (
        sketch / "tinyhar_har.ino"
    ).read_text()
    assert (
        "depends=Chirale_TensorFLowLite,Arduino_LSM9DS1"
        in (library / "library.properties").read_text()
    )
    assert rec["tflm_library"] == {"name": "Chirale_TensorFLowLite", "version": "2.0.0"}
    own = {"UNIDIRECTIONAL_SEQUENCE_LSTM", "SOFTMAX"}  # tinyhar's kernels where it has one
    assert rec["kernels"] == {
        op: "tinyhar" if op in own else "Chirale_TensorFLowLite" for op in info.ops
    }
    sketch = library / "src"
    assert rec["board"] == "nano33ble" and rec["fqbn"] == "arduino:mbed_nano:nano33ble"
    assert rec["compiled"] is False and rec["flash_used"] is None and rec["synthetic"] is True
    assert rec["model_bytes"] == len(model) and int(rec["model_crc32"], 16) == crc32(model)
    assert rec["ops"] == info.ops
    # the C array is the .tflite, byte for byte, const and 16-byte aligned
    cpp = (sketch / "model_data.cpp").read_text()
    assert parse_c_array(cpp) == model
    assert "alignas(16) const unsigned char g_tinyhar_model[" in cpp
    header = (sketch / "model_data.h").read_text()
    assert f"#define TINYHAR_MODEL_LEN {len(model)}u" in header
    assert f"0x{crc32(model):08x}u" in header
    # the resolver holds exactly the model's ops
    runner = (sketch / "tinyhar_runner.cpp").read_text()
    added = re.findall(r"resolver\.library\(\)\.Add(\w+)\(\)", runner)
    assert len(added) == len(set(added)) == len(info.ops) - len(own)
    assert re.findall(r"tinyhar::Register_(\w+)\(\)", runner) == [
        op for op in info.ops if op in own
    ]
    assert f"tinyhar::OpResolver<{len(info.ops) - len(own)}, {len(own)}>" in runner
    assert "#include <Chirale_TensorFlowLite.h>" in runner
    # the arena: measured + stated margin, aligned
    measured = measured_arena()
    assert rec["arena_measured"] == measured
    assert rec["arena_bytes"] == -(-(measured + rec["arena_margin"]) // 16) * 16 >= measured
    assert rec["arena_margin"] == margin_bytes("25%", measured)
    cfg = (sketch / "tinyhar_config.h").read_text()
    assert f"#define TINYHAR_ARENA_BYTES {rec['arena_bytes']}u" in cfg
    for name in LABELS:
        assert f'"{name}",' in cfg
    assert "9.80665016f" in cfg  # g -> m/s^2 as a float32 literal


def test_config_numbers_are_exact_float32_literals(tmp_path):
    import numpy as np

    for x in (0.1, 1 / 3, 9.80665, 1e-7, -2.5, 123456.789):
        lit = c_float(x)
        assert lit.endswith("f") and np.float32(lit[:-1]) == np.float32(x)


def test_budget_overflow_is_refused_in_one_line_with_figures(tmp_path):
    run = make_run(tmp_path)
    small = load_board("nano33ble").path.read_text()
    small = small.replace("model_flash_bytes = 614_400", "model_flash_bytes = 4_096")
    small = small.replace("arena_ram_bytes = 163_840", "arena_ram_bytes = 2_048")
    board = tmp_path / "small.toml"
    board.write_text(small)
    res = _build("--board", str(board), "--run", str(run))
    assert res.exit_code != 0
    err = res.output.strip()
    assert err.count("\n") == 0 and err.startswith("error:")
    over = (len(har_int8_model()) - 4096) / 1024
    assert f"{over:.1f} KB over the 4 KB model flash budget" in err
    assert "KB over the 2 KB arena RAM budget" in err
    assert not (run / "firmware").exists() and not (run / runs.BUILD_JSON).exists()


def test_unknown_board_lists_known_boards(tmp_path):
    res = _build("--board", "nosuchboard", "--run", str(tmp_path))
    assert res.exit_code != 0
    assert res.output.count("\n") == 1
    for b in list_boards():
        assert b.name in res.output


def test_an_op_tflm_lacks_is_named():
    with pytest.raises(TinyharError, match="FlexRFFT") as e:
        check_ops(["CONV_2D", "FlexRFFT"])
    assert "\n" not in str(e.value)
    with pytest.raises(TinyharError, match="WHILE"):
        check_ops(["WHILE"])


def test_ops_go_to_the_library_or_to_tinyhar_or_are_refused_naming_op_and_library():
    lib = load_library("Chirale_TensorFLowLite")
    plan = plan_kernels(["CONV_2D", "BATCH_MATMUL", "MEAN"], lib)
    assert plan.library_methods == {"CONV_2D": "AddConv2D"}
    assert {op: k.source for op, k in plan.own_kernels.items()} == {
        "BATCH_MATMUL": "tinyhar_batch_matmul.cpp", "MEAN": "tinyhar_mean.cpp"
    }  # fmt: skip
    with pytest.raises(TinyharError) as e:  # an op TFLM has, but neither the library nor tinyhar
        plan_kernels(["CONV_2D", "STABLEHLO_COMPOSITE"], lib)
    msg = str(e.value)
    assert "STABLEHLO_COMPOSITE" in msg and "Chirale_TensorFLowLite 2.0.0" in msg
    assert "\n" not in msg


def test_tinyhar_s_kernel_runs_an_op_both_have_unless_the_library_s_is_asked_for():
    lib = load_library("Chirale_TensorFLowLite")
    ops = ["SOFTMAX", "BATCH_MATMUL", "CONV_2D"]
    ours = plan_kernels(ops, lib)
    assert ours.own_kernels["SOFTMAX"] == OwnKernel("tinyhar_softmax.cpp", "Softmax")
    assert set(ours.library_methods) == {"CONV_2D"} and "SOFTMAX" in OWN_KERNELS
    theirs = plan_kernels(ops, lib, prefer="library")
    assert theirs.library_methods == {"SOFTMAX": "AddSoftmax", "CONV_2D": "AddConv2D"}
    assert set(theirs.own_kernels) == {"BATCH_MATMUL"}  # the library has none
    with pytest.raises(TinyharError, match="kernels 'fastest'"):
        plan_kernels(ops, lib, prefer="fastest")


def test_the_user_s_edited_sketch_survives_a_rebuild(tmp_path):
    run = make_run(tmp_path)
    assert _build("--run", str(run)).exit_code == 0
    ino = run / "firmware" / "nano33ble" / "tinyhar_har" / "tinyhar_har.ino"
    example = ino.parents[1] / "libraries/tinyhar_model/examples/tinyhar_har/tinyhar_har.ino"
    assert _build("--run", str(run)).exit_code == 0  # unchanged: regenerated silently
    mine = ino.read_text().replace("void loop()", "// my BLE output\nvoid loop()")
    ino.write_text(mine)
    res = _build("--run", str(run), "--arena-margin", "4KB")
    assert res.exit_code == 0, res.output
    assert ino.read_text() == mine
    kept = [ln for ln in res.output.splitlines() if "kept your changed sketch" in ln]
    assert len(kept) == 1 and str(example.parent) in kept[0]
    assert example.read_text() != mine and "my BLE output" not in example.read_text()
    assert json.loads((run / runs.BUILD_JSON).read_text())["sketch_kept"] is True
    cfg = ino.parents[1] / "libraries/tinyhar_model/src/tinyhar_config.h"
    assert "TINYHAR_ARENA_BYTES" in cfg.read_text()  # the library was rebuilt all the same


def test_the_alternative_tflm_library_is_selectable_and_others_refused(tmp_path):
    run = make_run(tmp_path)
    res = _build("--run", str(run), "--tflm-library", "Arduino_TensorFlowLite")
    assert res.exit_code == 0, res.output
    rec = json.loads((run / runs.BUILD_JSON).read_text())
    assert rec["tflm_library"]["name"] == "Arduino_TensorFlowLite"
    runner = Path(rec["library_dir"]) / "src" / "tinyhar_runner.cpp"
    assert "#include <TensorFlowLite.h>" in runner.read_text()
    res = _build("--run", str(run), "--tflm-library", "NoSuchTFLM")
    assert res.exit_code != 0 and "supports Chirale_TensorFLowLite, Arduino_TensorFlowLite" in (
        res.output
    )


def test_require_compile_fails_without_arduino_cli_but_keeps_sources(tmp_path):
    run = make_run(tmp_path)
    res = _build("--run", str(run), "--require-compile")
    assert res.exit_code != 0 and "--require-compile" in res.output
    assert (run / "firmware" / "nano33ble" / "tinyhar_har" / "tinyhar_har.ino").is_file()
    assert json.loads((run / runs.BUILD_JSON).read_text())["compiled"] is False


def test_rebuild_replaces_the_library_atomically_and_keeps_the_user_s_files(tmp_path):
    run = make_run(tmp_path)
    assert _build("--run", str(run), "--sketch-name", "har").exit_code == 0
    sketch = run / "firmware" / "nano33ble" / "har"
    library = sketch.parent / "libraries" / "tinyhar_model"
    (library / "src" / "stale.c").write_text("from an earlier build")
    (sketch / "my_notes.txt").write_text("the user's")
    assert _build("--run", str(run), "--sketch-name", "har").exit_code == 0
    assert not (library / "src" / "stale.c").exists() and (sketch / "har.ino").is_file()
    assert (sketch / "my_notes.txt").read_text() == "the user's"
    leftovers = [p.name for p in library.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    bad = _build("--run", str(run), "--sketch-name", "bad-name")
    assert bad.exit_code != 0 and "letters, digits and _" in bad.output


def test_every_board_renders_its_imu_library(tmp_path):
    run = make_run(tmp_path)
    for b in list_boards():
        assert _build("--board", b.name, "--run", str(run)).exit_code == 0
        lib = run / "firmware" / b.name / "libraries" / "tinyhar_model" / "src"
        assert f"#include <{b.imu.library.header}>" in (lib / "tinyhar_board.cpp").read_text()
        rec = json.loads((run / runs.BUILD_JSON).read_text())
        assert rec["board"] == b.name and rec["ram_budget"] == b.arena_ram_bytes


def test_channel_layout_matches_the_device_preprocessing():
    """The generated axis map agrees with tinyhar/board/preprocess.py for every board."""
    from helpers.fw_models import dataset_record

    from tinyhar.board.preprocess import PreprocessConfig

    ds = dataset_record()
    spec = spec_from_dataset(ds, inspect_tflite(har_int8_model()))
    model_input = TensorQuantization(spec.input_scale, spec.input_zero_point, [1, 100, 6], "int8")
    for b in list_boards():
        layout = channel_layout(spec, b)
        ref = PreprocessConfig.from_run(ds, model_input, b)
        assert [c["axis_src"] for c in layout] == ref.axis_src.tolist()
        assert [c["axis_sign"] for c in layout] == ref.axis_sign.tolist()
        assert [c["unit_factor"] for c in layout] == pytest.approx(ref.unit_factor.tolist())
        assert [c["inv_std"] for c in layout] == ref.inv_std.tolist()
    rev2 = channel_layout(spec, load_board("nano33ble_rev2"))
    assert [c["axis_src"] for c in rev2] == [1, 0, 2, 4, 3, 5]
    assert [c["axis_sign"] for c in rev2] == [-1, -1, 1, -1, -1, 1]


def test_third_party_float_model_builds_with_options(tmp_path):
    model = tmp_path / "thirdparty_gesture_net.tflite"
    model.write_bytes(third_party_float_model())
    res = _build("--model", str(model), "--labels", "wave,punch,flex,idle,shake")
    assert res.exit_code == 0, res.output
    assert "labels        from option" in res.output
    assert "window        from model input shape [1, 40, 3, 1]" in res.output
    assert "mean          from default (assumed)" in res.output
    rec = json.loads((tmp_path / runs.BUILD_JSON).read_text())
    assert rec["config"]["input"]["dtype"] == "float32"
    assert [c["name"] for c in rec["config"]["channels"]] == ["acc_x", "acc_y", "acc_z"]
    sketch = tmp_path / "firmware" / "nano33ble" / "libraries" / "tinyhar_model" / "src"
    cfg = (sketch / "tinyhar_config.h").read_text()
    assert "#define TINYHAR_INPUT_IS_FLOAT 1" in cfg and "#define TINYHAR_WINDOW 40" in cfg
    assert parse_c_array((sketch / "model_data.cpp").read_text()) == model.read_bytes()


def test_third_party_model_side_file_and_mismatch(tmp_path):
    model = tmp_path / "thirdparty_gesture_net.tflite"
    model.write_bytes(third_party_float_model())
    side = {"labels": ["a", "b", "c", "d", "e"], "mean": [0, 0, 9.8], "std": [2, 2, 2]}
    (tmp_path / "thirdparty_gesture_net.json").write_text(json.dumps(side))
    out = tmp_path / "out"
    res = _build("--model", str(model), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert re.search(r"labels\s+from .*thirdparty_gesture_net\.json", res.output)
    rec = json.loads((out / runs.BUILD_JSON).read_text())
    assert rec["config"]["labels"] == side["labels"]
    assert [c["mean"] for c in rec["config"]["channels"]] == pytest.approx([0, 0, 9.8])
    bad = _build("--model", str(model), "--out", str(out), "--window", "50")
    assert bad.exit_code != 0 and "takes 120" in bad.output
    wrong = _build("--model", str(model), "--out", str(out), "--labels", "a,b")
    assert wrong.exit_code != 0 and "2 labels for a model with 5 outputs" in wrong.output


def test_an_explicit_zero_option_beats_the_side_file(tmp_path):
    """0 is a value given: --output-zero-point 0 is not 'missing', the side file's 7 loses."""
    model = tmp_path / "thirdparty_gesture_net.tflite"
    model.write_bytes(third_party_float_model())
    side = {"labels": ["a", "b", "c", "d", "e"], "output_scale": 0.5, "output_zero_point": 7}
    (tmp_path / "thirdparty_gesture_net.json").write_text(json.dumps(side))
    res = _build("--model", str(model), "--output-zero-point", "0", "--output-scale", "0.25")
    assert res.exit_code == 0, res.output
    assert "output_zero_point from option" in res.output
    rec = json.loads((tmp_path / runs.BUILD_JSON).read_text())
    assert rec["config"]["output"]["zero_point"] == 0
    assert rec["config"]["output"]["scale"] == pytest.approx(0.25)
    assert rec["origin"]["output_zero_point"] == "option"
    assert rec["origin"]["output_scale"] == "option"
    sketch = tmp_path / "firmware" / "nano33ble" / "libraries" / "tinyhar_model" / "src"
    assert "#define TINYHAR_OUTPUT_ZERO_POINT 0\n" in (sketch / "tinyhar_config.h").read_text()


def test_arena_margin_forms():
    assert margin_bytes("2048", 10_000) == 2048
    assert margin_bytes("2KB", 10_000) == 2048
    assert margin_bytes("25%", 10_000) == 2500
    assert margin_bytes("1%", 10_000) == 1024  # at least 1 KB
    with pytest.raises(TinyharError):
        margin_bytes("lots", 1)


def test_run_without_int8_model_is_quantized_first(tmp_path, monkeypatch):
    from helpers.fw_models import make_keras_run

    run = make_keras_run(tmp_path)
    monkeypatch.chdir(tmp_path)  # no --run: the latest run under ./runs is taken
    (tmp_path / "runs").mkdir()
    run = run.rename(tmp_path / "runs" / run.name)
    res = _build()
    assert res.exit_code == 0, res.output
    assert f"using the latest run runs/{run.name}" in res.output
    assert "running `tinyhar quantize" in res.output
    model = (run / runs.INT8_MODEL).read_bytes()
    q = json.loads((run / runs.QUANTIZE_JSON).read_text())
    rec = json.loads((run / runs.BUILD_JSON).read_text())
    assert rec["arena_measured"] == q["arena_bytes"] and int(rec["model_crc32"], 16) == crc32(model)
    sketch = run / "firmware" / "nano33ble" / "libraries" / "tinyhar_model" / "src"
    assert parse_c_array((sketch / "model_data.cpp").read_text()) == model


def test_no_run_at_all_is_refused_with_the_commands_that_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = _build()
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1, res.stderr
    for command in ("tinyhar demo", "tinyhar data synth", "tinyhar train", "--train-if-missing"):
        assert command in res.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_no_run_at_all_trains_one_on_synthetic_data_first(tmp_path, monkeypatch):
    import tinyhar.model.train as train_mod

    real_train = train_mod.train

    def quick_train(cfg, log):  # the defaults, but 1 epoch and a small budget: a short test
        cfg.epochs, cfg.max_model_kb = 1, 12
        return real_train(cfg, log=log)

    monkeypatch.setattr(train_mod, "train", quick_train)
    real_resolve = train_mod.resolve_data

    def no_download(data):  # as on a machine where `tinyhar data download` never ran
        if data is None:
            raise TinyharError("no downloaded MHEALTH found")
        return real_resolve(data)

    monkeypatch.setattr(train_mod, "resolve_data", no_download)
    monkeypatch.chdir(tmp_path)
    res = _build("--train-if-missing")
    assert res.exit_code == 0, res.output
    assert "TRAINING ON SYNTHETIC DATA" in res.output
    assert (tmp_path / "data" / "synth" / "SYNTHETIC.md").is_file()
    run = runs.latest_run(tmp_path / "runs")
    rec = json.loads((run / runs.BUILD_JSON).read_text())
    assert rec["synthetic"] is True and "SYNTHETIC data" in res.output
    model = (run / runs.INT8_MODEL).read_bytes()
    assert parse_c_array(Path(rec["library_dir"], "src", "model_data.cpp").read_text()) == model


def test_a_float_op_goes_to_the_library_because_tinyhar_s_kernels_are_int8_only():
    lib = load_library("Chirale_TensorFLowLite")
    plan = plan_kernels(["SOFTMAX", "MEAN"], lib, not_int8=frozenset({"SOFTMAX"}))
    assert plan.library_methods == {"SOFTMAX": "AddSoftmax"} and set(plan.own_kernels) == {"MEAN"}
    with pytest.raises(TinyharError, match="BATCH_MATMUL"):  # a float op only tinyhar has
        plan_kernels(["BATCH_MATMUL"], lib, not_int8=frozenset({"BATCH_MATMUL"}))
