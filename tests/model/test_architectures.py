"""Both architectures: structure, size, int8 conversion to TFLM ops, and budget sizing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinyhar.errors import TinyharError
from tinyhar.lite.keras_env import keras
from tinyhar.model.architectures import build_model


def layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_paper_structure_and_params():
    m = build_model("paper", (100, 12), 13)
    types = layer_types(m)
    assert types.count("LSTM") == 2 and types.count("Attention") == 2
    assert types.count("Conv1D") == 1 and types.count("Concatenate") == 1
    assert types.count("BatchNormalization") == 4  # conv, two dense branches, head
    assert all(layer.rate == 0.2 for layer in m.layers if type(layer).__name__ == "Dropout")
    assert len(m.get_layer("concat").input) == 3  # the three branches
    assert m.output_shape == (None, 13)
    assert 85_000 <= m.count_params() <= 100_000
    assert m.get_layer("class").activation.__name__ == "softmax"
    assert m.get_layer("conv").activation.__name__ == "relu"
    assert m.loss == "sparse_categorical_crossentropy"
    assert float(m.optimizer.learning_rate.numpy()) == pytest.approx(0.001)


# tiny's shape before the default became the cheap one: the option tests start from it
FORMER = {"filters": None, "stride": 1, "pool": 2, "norm": "relu_bn", "attention": "dot",
          "stats": "none", "means": "mean"}  # fmt: skip


def _former(input_shape, n_classes, **size):
    return build_model("tiny", input_shape, n_classes, **(FORMER | size))


def test_tiny_is_the_same_family_sized_by_width():
    small = _former((100, 6), 12, width=8)
    big = _former((100, 6), 12, width=32)
    for m in (small, big):
        types = layer_types(m)
        assert {"Conv1D", "LSTM", "Attention", "Dense", "Concatenate"} <= set(types)
    assert 1_000 < small.count_params() < big.count_params() < 20_000
    assert big.get_layer("lstm").units == 32
    assert build_model("tiny", (100, 6), 12, batch_size=1).input_shape == (1, 100, 6)


def test_tiny_default_shape_is_the_cheap_one():
    """No options: a conv of 16 strided 2 and pooled 2 (25 steps), LSTM(20), attention pooling,
    batch norm before the ReLU, the window's means beside the head."""
    m = build_model("tiny", (100, 6), 6)
    assert m.get_layer("conv").filters == 16 and m.get_layer("conv").strides == (2,)
    assert m.get_layer("lstm").input_shape == (None, 25, 16) and m.get_layer("lstm").units == 20
    assert m.get_layer("attention_softmax").output_shape == (None, 1, 25)
    assert _source(m, "conv_relu") == "conv_bn" and _source(m, "conv_bn") == "conv"
    assert m.get_layer("concat").output_shape == (None, 20 + 20 + 6)
    assert "branch_pool" in {layer.name for layer in m.layers}


def test_tiny_former_shape_keeps_its_layer_names():
    """The former default's layers (and names), which saved runs and the search use."""
    m = _former((100, 6), 6, width=12)
    assert sorted(layer.name for layer in m.layers) == sorted([
        "window", "conv", "conv_bn", "conv_dropout", "conv_pool", "lstm", "attention",
        "temporal_pool", "branch_pool", "branch_dense", "branch_bn",
        "branch_dropout", "concat", "head_dense", "head_dropout", "class",
    ])  # fmt: skip
    assert m.get_layer("conv").activation.__name__ == "relu"
    assert m.get_layer("lstm").input_shape == (None, 50, 12)


def _source(model, name: str) -> str:
    return model.get_layer(name).inbound_nodes[0].inbound_layers.name


def test_tiny_options_shape_the_model():
    m = _former((100, 6), 6, width=12, pool=4, norm="bn_relu", attention="pool", stats="mad")
    names = [layer.name for layer in m.layers]
    assert m.get_layer("lstm").input_shape == (None, 25, 12)  # pooled by 4
    assert m.get_layer("conv").activation.__name__ == "linear"  # batch norm, then ReLU
    for part in ("conv", "branch"):  # layer -> batch norm -> ReLU
        assert _source(m, f"{part}_bn") == f"{part}_dense" if part == "branch" else "conv"
        assert _source(m, f"{part}_relu") == f"{part}_bn"
    assert "attention" not in names and "temporal_pool" not in names
    assert m.get_layer("attention_softmax").output_shape == (None, 1, 25)  # over time, not T x T
    assert m.get_layer("stats").output_shape == (None, 12)  # mean and mean |x - mean| of 6
    assert m.get_layer("concat").output_shape == (None, 12 + 12 + 12)
    assert m.count_params() == 2359
    strided = _former((100, 6), 6, width=8, stride=2, pool=2, attention=False)
    assert strided.get_layer("lstm").input_shape == (None, 25, 8)
    assert _former((100, 6), 6, width=8, pool=1).get_layer("lstm").input_shape == (
        None,
        100,
        8,
    )
    mean_only = _former((100, 6), 6, width=8, stats="mean", branch=False)
    assert mean_only.get_layer("concat").output_shape == (None, 8 + 6)
    drops = [layer.rate for layer in mean_only.layers if type(layer).__name__ == "Dropout"]
    assert drops == [0.2, 0.2]  # conv and head: the default rate
    wide = _former((100, 6), 6, width=8, filters=24, stride=2, pool=2)
    assert wide.get_layer("conv").filters == 24 and wide.get_layer("lstm").units == 8
    assert wide.get_layer("lstm").input_shape == (None, 25, 24)
    light = _former((100, 6), 6, width=8, dropout=0.05)
    assert {layer.rate for layer in light.layers if type(layer).__name__ == "Dropout"} == {0.05}


@pytest.mark.parametrize(
    "bad, word",
    [({"norm": "ln"}, "norm"), ({"attention": "mha"}, "attention"), ({"stats": "max"}, "stats"),
     ({"pool": 0}, "pool"), ({"means": "median"}, "means"), ({"stride": 0}, "stride"),
     ({"filters": -4}, "filters"), ({"dropout": 1.0}, "dropout"), ({"width": 0}, "width")],
)  # fmt: skip
def test_tiny_bad_option_is_one_line_error(bad, word):
    with pytest.raises(TinyharError, match=word) as e:
        build_model("tiny", (100, 6), 6, **{"width": 8, **bad})
    assert "\n" not in str(e.value)


def test_unknown_arch_is_one_line_error():
    with pytest.raises(TinyharError, match="unknown architecture"):
        build_model("resnet", (100, 6), 12)


def _convert_and_run(arch: str, channels: int, classes: int, **size):
    from tflite_micro.python.tflite_micro import runtime

    from tinyhar.lite.convert import to_int8_tflite
    from tinyhar.lite.tflite_inspect import inspect_tflite

    keras.utils.set_random_seed(1)
    model = build_model(arch, (100, channels), classes, **size)
    rep = np.random.default_rng(0).standard_normal((32, 100, channels)).astype(np.float32)
    data = to_int8_tflite(model, rep)
    info = inspect_tflite(data)
    interp = runtime.Interpreter.from_bytes(data, arena_size=256 * 1024)
    q = np.clip(np.rint(rep[0] / info.inputs[0].scale) + info.inputs[0].zero_point, -128, 127)
    interp.set_input(q.astype(np.int8)[None], 0)
    interp.invoke()
    out = interp.get_output(0)
    return data, info, out


@pytest.mark.slow
def test_tiny_converts_to_int8_tflm_ops_and_runs():
    data, info, out = _convert_and_run("tiny", 6, 12, width=16)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in info.ops and "WHILE" not in info.ops
    assert {"BATCH_MATMUL", "SOFTMAX", "CONV_2D"} <= set(info.ops)
    assert not [op for op in info.ops if op.startswith("Flex")]
    assert info.inputs[0].dtype == "int8" and info.inputs[0].shape == (1, 100, 6)
    assert out.shape == (1, 12) and out.dtype == np.int8
    assert len(data) < 64 * 1024


@pytest.mark.slow
def test_paper_converts_to_int8_tflm_ops_and_runs():
    data, info, out = _convert_and_run("paper", 12, 13)
    assert info.ops.count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 1  # op names are listed once
    assert "WHILE" not in info.ops and "BATCH_MATMUL" in info.ops
    assert out.shape == (1, 13)
    assert 80 * 1024 < len(data) < 140 * 1024


@pytest.mark.slow
def test_budget_refuses_impossible_budget_in_one_line():
    from tinyhar.model.budget import Budget, fit_tiny_to_budget

    with pytest.raises(TinyharError) as e:
        fit_tiny_to_budget((100, 6), 12, Budget(max_model_kb=2, max_arena_kb=32))
    msg = str(e.value)
    assert "\n" not in msg and "smallest" in msg and "--max-model-kb 2" in msg


@pytest.mark.slow
def test_budget_picks_largest_fitting_width_by_measuring():
    from tinyhar.model.budget import Budget, fit_tiny_to_budget, measure_tiny

    fit = fit_tiny_to_budget((100, 6), 12, Budget(20, 32), widths=(8, 16, 32), shape=FORMER)
    assert fit.model_bytes <= 20 * 1024 and fit.arena_bytes <= 32 * 1024
    bigger = measure_tiny((100, 6), 12, 32, **FORMER)
    assert fit.size == FORMER | {"width": 16} and fit.instructions is None, (fit, bigger)
    assert bigger[0] > 20 * 1024  # width 32 was measured and refused


@pytest.mark.slow
def test_budget_sizes_are_cached_on_disk_for_later_trainings(tmp_path, monkeypatch):
    from tinyhar.model import budget

    monkeypatch.setenv("TINYHAR_CACHE", str(tmp_path))
    monkeypatch.setattr(budget, "_CACHE", {})
    measured = budget.measure_tiny((50, 3), 4, 8)
    (cache,) = (tmp_path / "budget").glob("tiny-*.json")
    assert list(json.loads(cache.read_text()).values()) == [list(measured)]

    def no_conversion(*_args):  # a later process: nothing in memory, no conversion needed
        raise AssertionError("converted again instead of reading the disk cache")

    monkeypatch.setattr(budget, "_CACHE", {})
    monkeypatch.setattr(budget, "to_int8_tflite", no_conversion)
    assert budget.measure_tiny((50, 3), 4, 8) == measured
    with pytest.raises(AssertionError, match="converted again"):
        budget.measure_tiny((50, 3), 4, 16)  # another width is measured, not guessed


@pytest.mark.slow
def test_tiny_batch_norm_before_relu_folds_into_conv_and_dense():
    from tinyhar.lite.tflite_inspect import inspect_tflite
    from tinyhar.model.budget import untrained_int8

    width = 12
    today = inspect_tflite(
        untrained_int8("tiny", (100, 6), 6, **FORMER | {"width": width, "pool": 4})
    )
    folded = inspect_tflite(
        untrained_int8(
            "tiny", (100, 6), 6, **FORMER | {"width": width, "pool": 4, "norm": "bn_relu"}
        )
    )
    assert today.op_counts["MUL"] == today.op_counts["ADD"] == 2  # conv's and branch's batch norm
    assert "MUL" not in folded.ops and "ADD" not in folded.ops
    assert today.params - folded.params == 2 * 2 * width  # their scale and offset, per channel
    assert folded.macs == today.macs


@pytest.mark.slow
def test_tiny_attention_pooling_and_window_stats_run_on_the_board_library():
    """Attention pooling and the statistics branch convert to int8 ops that the Nano 33 BLE's
    TFLM library (or tinyhar's own kernels) runs, and run in the TFLM interpreter."""
    from tinyhar.board.boards import load_board
    from tinyhar.deploy.firmware import kernel_plan

    former = {k: v for k, v in FORMER.items() if k != "stats"}
    size = former | {"width": 12, "pool": 4, "norm": "bn_relu", "attention": "pool"}
    data, info, out = _convert_and_run("tiny", 6, 6, **size, stats="mad")
    assert out.shape == (1, 6) and out.dtype == np.int8
    assert info.op_counts["BATCH_MATMUL"] == 1  # the weighted sum; no T x T scores
    assert info.op_counts["SOFTMAX"] == 2  # over time, and the classes
    assert {"SUB", "ABS"} <= set(info.ops) and info.op_counts["MEAN"] == 3
    assert "MUL" not in info.ops and "ADD" not in info.ops
    plan = kernel_plan(load_board("nano33ble"), data, info.ops)
    assert set(plan.ops) == set(info.ops)
    own = {"BATCH_MATMUL", "SOFTMAX", "MEAN", "UNIDIRECTIONAL_SEQUENCE_LSTM"}
    assert set(plan.own_kernels) == own  # the stats' SUB and ABS: the library's kernels
    dot, dot_info, _ = _convert_and_run("tiny", 6, 6, **{**size, "attention": "dot"}, stats="mad")
    # T x T scores and their weighted sum, against a score per step and one weighted sum
    assert dot_info.macs - info.macs == 2 * 25 * 25 * 12 - (25 * 12 + 25 * 12)
    pooled, pooled_info, _ = _convert_and_run(
        "tiny", 6, 6, **{**size, "means": "avgpool"}, stats="mad"
    )
    assert "MEAN" not in pooled_info.ops and pooled_info.op_counts["AVERAGE_POOL_2D"] == 3
    assert pooled_info.macs == info.macs
    kernel_plan(load_board("nano33ble"), pooled, pooled_info.ops)
    var_data, var_info, _ = _convert_and_run("tiny", 6, 6, **size, stats="var")
    assert "SQUARED_DIFFERENCE" in var_info.ops and "ABS" not in var_info.ops
    kernel_plan(load_board("nano33ble"), var_data, var_info.ops)
