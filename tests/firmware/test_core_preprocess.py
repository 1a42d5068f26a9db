"""Canonical preprocessing: Python against the C core, and board files to the unit/axis mapping."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from helpers.fw_models import dataset_record
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyhar.board import protocol as P
from tinyhar.board.boards import Board, load_board
from tinyhar.board.preprocess import (
    PreprocessConfig,
    channel_map,
    normalise,
    quantize,
    quantize_window,
    to_board_units,
    to_training_units,
)
from tinyhar.device.core_lib import CoreConfig, CoreDevice
from tinyhar.errors import TinyharError
from tinyhar.run.records import Channel, TensorQuantization

CHANNELS = [
    {"name": f"{k}_{a}", "column": 14 + i, "unit": "m/s^2" if k == "acc" else "deg/s",
     "kind": k, "axis": a}
    for i, (k, a) in enumerate((k, a) for k in ("acc", "gyro") for a in "xyz")
]  # fmt: skip


def _device(cfg: PreprocessConfig) -> CoreDevice:
    ch = cfg.channels
    core = CoreConfig(
        window=4, stride=1, rate_hz=50.0, preprocess=cfg,
        input=P.TensorSpec(9, (1, 4, ch), cfg.input_scale, cfg.input_zero_point),
        output=P.TensorSpec(9, (1, 2), 1 / 256, -128),
    )  # fmt: skip
    return CoreDevice(core, None)


f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
configs = st.integers(1, 12).flatmap(
    lambda ch: st.builds(
        PreprocessConfig,
        unit_factor=st.lists(st.sampled_from([9.80665, 1.0, 180 / math.pi, 0.001, 3.7]),
                             min_size=ch, max_size=ch),
        axis_src=st.permutations(list(range(ch))),
        axis_sign=st.lists(st.sampled_from([-1, 1]), min_size=ch, max_size=ch),
        mean=st.lists(st.floats(-50, 50, width=32), min_size=ch, max_size=ch),
        inv_std=st.lists(st.floats(0.0009765625, 1024.0, width=32), min_size=ch, max_size=ch),
        input_scale=st.floats(0.0001220703125, 2.0, width=32),
        input_zero_point=st.integers(-128, 127),
    )
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(configs, st.data())
def test_python_and_c_core_agree_bit_for_bit(cfg: PreprocessConfig, data) -> None:
    raw = data.draw(hnp.arrays(np.float32, (data.draw(st.integers(1, 40)), cfg.channels),
                               elements=f32))  # fmt: skip
    np.testing.assert_array_equal(_device(cfg).preprocess(raw), quantize_window(raw, cfg))


def test_steps_compose_and_round_half_to_even() -> None:
    cfg = PreprocessConfig([2.0], [0], [-1], [1.0], [0.5], 0.25, 10)
    raw = np.array([[0.0625], [-0.1875], [0.3125], [np.nan], [1e30]], np.float32)
    v = to_training_units(raw, cfg)
    np.testing.assert_array_equal(v[:3, 0], [-0.125, 0.375, -0.625])
    n = normalise(v, cfg)
    np.testing.assert_array_equal(n[:3, 0], [-0.5625, -0.3125, -0.8125])
    # x = n * 4 = -2.25, -1.25, -3.25 -> -2, -1, -3; NaN -> zero point; huge -> clamp
    np.testing.assert_array_equal(quantize(n, cfg)[:, 0], [8, 9, 7, 10, -128])
    half = PreprocessConfig([1.0], [0], [1], [0.0], [1.0], 1.0, 0)
    got = quantize_window(np.array([[0.5], [1.5], [2.5], [-0.5], [-2.5]], np.float32), half)
    np.testing.assert_array_equal(got[:, 0], [0, 2, 2, 0, -2])


def _board(name: str) -> Board:
    return load_board(name)


def _kau(channels) -> list[tuple[str, str, str]]:
    return [(c["kind"], c["axis"], c["unit"]) for c in channels]


def test_rev2_board_axis_map_swaps_and_negates_x_y() -> None:
    maps = channel_map(_kau(CHANNELS), _board("nano33ble_rev2"))
    assert [m.axis_src for m in maps] == [1, 0, 2, 4, 3, 5]
    assert [m.axis_sign for m in maps] == [-1, -1, 1, -1, -1, 1]
    assert [m.unit_factor for m in maps] == [9.80665] * 3 + [1.0] * 3
    assert [m.imu_slot for m in maps] == list(range(6))
    maps = channel_map(_kau(CHANNELS), _board("nano33ble"))
    assert [m.axis_src for m in maps] == list(range(6)) and {m.axis_sign for m in maps} == {1}


def test_a_model_without_all_three_axes_reads_the_axis_it_needs_into_its_own_slot() -> None:
    maps = channel_map([("acc", "x", "m/s^2"), ("gyro", "z", "deg/s")], _board("nano33ble_rev2"))
    # training acc x is the library's -y on the Rev2: slot 0 holds library acc y
    assert [(m.imu_slot, m.axis_src, m.axis_sign) for m in maps] == [(1, 0, -1), (5, 1, 1)]


def test_from_run_and_board_units_round_trip() -> None:
    dataset = replace(
        dataset_record(),
        channels=tuple(Channel(**c) for c in CHANNELS),
        mean=(0.1, 9.5, -1, 2, 3, 4),
        std=(2, 3, 0, 40, 50, 60),  # a std of 0 no dataset.json holds, floored all the same
    )
    model_input = TensorQuantization(0.05, -4, [1, 100, 6], "int8")
    cfg = PreprocessConfig.from_run(dataset, model_input, _board("nano33ble_rev2"))
    assert cfg.inv_std[2] == np.float32(1) / np.float32(1e-3)  # a zero std is floored, not 1/0
    assert cfg.inv_std.dtype == np.float32 and cfg.inv_std[0] == np.float32(0.5)
    training = np.random.default_rng(0).normal(0, 5, (50, 6)).astype(np.float32)
    board = to_board_units(training, cfg)
    # library x = -(training y) / g on the Rev2
    np.testing.assert_allclose(board[:, 0], -training[:, 1] / 9.80665, rtol=1e-6)
    np.testing.assert_allclose(to_training_units(board, cfg), training, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(_device(cfg).preprocess(board), quantize_window(board, cfg))


def test_bad_inputs_are_one_line_errors() -> None:
    furlong = replace(_board("nano33ble"), imu=replace(_board("nano33ble").imu, acc_unit="fur"))
    with pytest.raises(TinyharError, match="no conversion from acc unit 'fur' to 'm/s\\^2'"):
        channel_map(_kau(CHANNELS), furlong)
    with pytest.raises(TinyharError, match="expected \\(n, 1\\)"):
        quantize_window(
            np.zeros((3, 2), np.float32), PreprocessConfig([1], [0], [1], [0], [1], 1, 0)
        )
