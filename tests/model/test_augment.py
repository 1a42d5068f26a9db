"""Train-time augmentation: shapes and labels kept, one rotation for acc and gyro, the board's
range for clipping, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from tinyhar.board.boards import load_board
from tinyhar.errors import TinyharError
from tinyhar.model.augment import (
    Augment,
    SensorGroup,
    augment,
    clip_to_board,
    rotations,
    sensor_groups,
    time_stretch,
)
from tinyhar.run.records import Channel


# HAPT's channels as dataset.json holds them: acc x,y,z then gyro x,y,z.
def channel(kind: str, axis: str) -> Channel:
    return Channel(f"{kind}_{axis}", 0, "", kind, axis)


CHANNELS = [channel(k, a) for k in ("acc", "gyro") for a in ("x", "y", "z")]


def windows(n: int = 16, t: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 5, (n, t, 6)).astype(np.float32)


def test_sensor_groups_pair_acc_with_gyro_per_imu():
    assert sensor_groups(CHANNELS) == [SensorGroup((0, 1, 2), (3, 4, 5))]
    two = [channel(k, a) for _ in range(2) for k in ("acc", "gyro") for a in ("x", "y", "z")]
    assert sensor_groups(two) == [
        SensorGroup((0, 1, 2), (3, 4, 5)),
        SensorGroup((6, 7, 8), (9, 10, 11)),
    ]
    assert sensor_groups([channel("acc", a) for a in "zyx"]) == [SensorGroup((2, 1, 0), None)]


def test_rotations_are_proper_and_bounded():
    r = rotations(200, 15, np.random.default_rng(1))
    assert np.allclose(r @ r.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(r), 1)
    angles = np.degrees(np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() <= 15 + 1e-9 and angles.max() > 10  # uses the range, not just 0


def test_rotation_turns_acc_and_gyro_by_the_same_matrix():
    x = windows()
    out = augment(x, sensor_groups(CHANNELS), Augment(rotate_deg=30), np.random.default_rng(2))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not np.allclose(out, x)
    for i in range(len(x)):
        # the matrix taking acc to its rotated self (least squares over 100 samples) ...
        r, *_ = np.linalg.lstsq(x[i, :, :3].astype(np.float64), out[i, :, :3], rcond=None)
        # ... takes the gyroscope to its rotated self too
        assert np.allclose(x[i, :, 3:] @ r, out[i, :, 3:], atol=1e-3)
        assert np.allclose(r.T @ r, np.eye(3), atol=1e-4)  # and it is a rotation
    # lengths are kept: a rotation does not change gravity's magnitude
    assert np.allclose(
        np.linalg.norm(out[..., :3], axis=-1), np.linalg.norm(x[..., :3], axis=-1), rtol=1e-4
    )


def test_off_by_default_and_seeded():
    x = windows()
    g = sensor_groups(CHANNELS)
    assert not Augment().active and Augment().describe() == "none"
    assert np.array_equal(augment(x, g, Augment(), np.random.default_rng(0)), x)
    aug = Augment(rotate_deg=10, scale=0.1, time_jitter=0.1)
    a = augment(x, g, aug, np.random.default_rng(5))
    assert np.array_equal(a, augment(x, g, aug, np.random.default_rng(5)))
    assert not np.array_equal(a, augment(x, g, aug, np.random.default_rng(6)))


def test_scaling_multiplies_each_window_and_kind_within_range():
    x = windows()
    out = augment(x, sensor_groups(CHANNELS), Augment(scale=0.2), np.random.default_rng(3))
    for i in range(len(x)):
        for sl in (slice(0, 3), slice(3, 6)):
            f = out[i, :, sl] / x[i, :, sl]
            assert np.allclose(f, f.flat[0], rtol=1e-5) and 0.8 <= f.flat[0] <= 1.2


def test_time_stretch_keeps_the_centre_and_interpolates_linearly():
    ramp = np.tile(np.arange(101, dtype=np.float64)[None, :, None], (2, 1, 1))
    out = time_stretch(ramp, np.array([1.0, 0.5]))
    assert np.allclose(out[0], ramp[0])
    assert out[1, 50, 0] == 50 and np.allclose(out[1, :, 0], 25 + np.arange(101) * 0.5)
    faster = time_stretch(ramp, np.array([2.0, 2.0]))
    assert faster[0, 0, 0] == 0 and faster[0, -1, 0] == 100 and faster[0, 30, 0] == 10


def test_clipping_uses_the_boards_imu_range_in_training_units():
    board = load_board("nano33ble")
    assert (board.imu.acc_range, board.imu.gyro_range) == (4.0, 2000.0)  # Arduino_LSM9DS1
    aug = clip_to_board(Augment(), load_board("nano33ble"))
    assert aug.clip_board == "nano33ble" and aug.active
    assert aug.describe() == (
        "acc clipped at ±39.2266 m/s², gyro clipped at ±2000 deg/s (nano33ble's IMU range)"
    )
    assert aug.clip_acc == pytest.approx(4 * 9.80665) and aug.clip_gyro == pytest.approx(2000)
    x = windows()
    x[0, 10, 0], x[1, 20, 4] = 100.0, -5000.0  # 10 g and -5000 deg/s
    out = augment(x, sensor_groups(CHANNELS), aug, np.random.default_rng(0))
    assert out[0, 10, 0] == pytest.approx(4 * 9.80665) and out[1, 20, 4] == -2000.0
    inside = np.abs(x) < 30
    assert np.array_equal(out[inside], x[inside])


def test_every_shipped_board_has_its_libraries_range():
    for name in ("nano33ble", "nano33ble_rev2", "nano_rp2040_connect"):
        b = load_board(name)
        assert (b.imu.acc_range, b.imu.gyro_range) == (4.0, 2000.0), name
        assert b.imu_range("gyro", "rad/s") == pytest.approx(2000 * np.pi / 180)


def test_bad_options_are_refused():
    with pytest.raises(TinyharError, match="--scale"):
        Augment(scale=1.5)
    with pytest.raises(TinyharError, match="--time-jitter"):
        Augment(time_jitter=0.7)
