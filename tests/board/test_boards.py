"""Board files: every shipped board loads, budgets are sane, axis maps are explicit and right."""

from __future__ import annotations

import numpy as np
import pytest

from tinyhar.board.boards import UNIT_FACTORS, board_names, list_boards, load_board
from tinyhar.errors import TinyharError


def test_shipped_boards_load_and_have_sane_budgets():
    boards = list_boards()
    assert {"nano33ble", "nano33ble_rev2", "nano_rp2040_connect"} <= {b.name for b in boards}
    for b in boards:
        assert 0 < b.model_flash_bytes <= b.sketch_flash_bytes <= b.flash_bytes
        assert 0 < b.arena_ram_bytes <= b.sketch_ram_bytes <= b.ram_bytes
        assert b.fqbn.startswith(b.core + ":")
        assert b.imu.library.version and b.tflm.version
        assert b.usb_ids


def test_nano33ble_facts():
    b = load_board("nano33ble")
    assert (b.mcu, b.clock_hz, b.fqbn) == ("nRF52840", 64_000_000, "arduino:mbed_nano:nano33ble")
    assert (0x2341, 0x805A) in b.usb_ids and (0x2341, 0x005A) in b.usb_ids
    assert (b.imu.chip, b.imu.native_rate_hz) == ("LSM9DS1", 119.0)
    assert b.unit_factor("acc", "m/s^2") == 9.80665
    assert b.unit_factor("gyro", "deg/s") == 1.0
    assert (b.imu.axis_src, b.imu.axis_sign) == ((0, 1, 2), (1, 1, 1))


def _library_output_on_rev2(chip: np.ndarray) -> np.ndarray:
    """What Arduino_BMI270_BMM150 (>= 1.1.0) returns on ARDUINO_NANO33BLE for chip axes x, y, z."""
    return np.array([-chip[1], -chip[0], chip[2]])


def test_rev2_axis_map_undoes_the_library_remap():
    b = load_board("nano33ble_rev2")
    assert (b.imu.chip, b.imu.native_rate_hz) == ("BMI270", 100.0)
    rng = np.random.default_rng(1)
    for _ in range(10):
        chip = rng.normal(size=3)
        lib = _library_output_on_rev2(chip)
        training = np.array([b.imu.axis_sign[i] * lib[b.imu.axis_src[i]] for i in range(3)])
        np.testing.assert_allclose(training, chip)  # the board's printed (= chip) frame


def test_rp2040_connect_is_another_vendor():
    b = load_board("nano_rp2040_connect")
    assert b.mcu == "RP2040" and b.cpu == "Cortex-M0+"
    assert b.imu.chip == "LSM6DSOX" and b.imu.library.name == "Arduino_LSM6DSOX"
    assert all(v == 0x2341 for v, _ in b.usb_ids)


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(TinyharError) as e:
        load_board("nosuchboard")
    msg = str(e.value)
    assert "\n" not in msg
    for name in board_names():
        assert name in msg


def test_user_board_file_by_path(tmp_path):
    text = load_board("nano33ble").path.read_text().replace('name = "nano33ble"', 'name = "mine"')
    path = tmp_path / "mine.toml"
    path.write_text(text)
    assert load_board(str(path)).name == "mine"


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('x = "+x"', 'x = "+q"', "axis_map"),
        ('y = "+y"', 'y = "+x"', "used once"),
        ('"2341:805a"', '"2341-805a"', "USB id"),
        ("native_rate_hz = 119.0", "native_rate_hz = -1.0", "native_rate_hz"),
        ("clock_hz = 64_000_000", 'clock_hz = "fast"', "clock_hz"),
        ("model_flash_bytes = 614_400", "model_flash_bytes = 9_999_999", "model_flash_bytes"),
        ('fqbn = "arduino:mbed_nano:nano33ble"', 'fqbn = "nano33ble"', "fqbn"),
    ],
)
def test_bad_board_files_give_one_line(tmp_path, old, new, needle):
    text = load_board("nano33ble").path.read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(TinyharError) as e:
        load_board(str(path))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unit_factors_are_the_standard_ones():
    assert UNIT_FACTORS[("g", "m/s^2")] == 9.80665
    assert UNIT_FACTORS[("rad/s", "deg/s")] == pytest.approx(180 / np.pi)


def test_boards_command_lists_budgets():
    from click.testing import CliRunner

    from tinyhar.cli import main

    res = CliRunner().invoke(main, ["boards"])
    assert res.exit_code == 0, res.output
    out = res.output
    for b in list_boards():
        assert b.name in out and f"{b.model_flash_bytes / 1024:.0f} KB" in out


def test_a_model_faster_than_the_imu_is_refused():
    b = load_board("nano33ble_rev2")  # BMI270 at 100 Hz
    b.check_rate(50.0)
    b.check_rate(100.0)
    with pytest.raises(TinyharError, match="runs at 200 Hz but nano33ble_rev2's BMI270"):
        b.check_rate(200.0)
