"""`tinyhar sim`: what the virtual board carries (model, arena, labels, replay) and its options."""

from __future__ import annotations

import shutil
import signal
import time

import numpy as np
import pytest
from helpers.boards import sim_board
from helpers.commands import tinyhar
from helpers.fw_models import build_record

from tinyhar.data.mhealth import load_mhealth
from tinyhar.deploy.footprint import firmware_arena
from tinyhar.device.link import Link
from tinyhar.device.virtual_board import (
    Faults,
    _Mangler,
    replay_training_units,
    stream_from_windows,
)
from tinyhar.errors import TinyharError
from tinyhar.files import read_json
from tinyhar.lite.arena import DEFAULT_MARGIN, align, margin_bytes


def test_sim_carries_the_runs_model_with_the_firmware_arena(tiny_run, clean_sim) -> None:
    quant, ds = read_json(tiny_run / "quantize.json"), read_json(tiny_run / "dataset.json")
    measured = quant["arena_bytes"]
    with Link(clean_sim.port) as link:
        info = link.hello()
        labels = link.labels()
    assert info.model_crc32 == int(quant["model_crc32"], 16) and info.has_model
    assert info.board == "nano33ble" and info.firmware_version == "sim"
    assert info.arena_bytes == align(measured + margin_bytes(DEFAULT_MARGIN, measured))
    assert (info.window, info.stride, info.channels) == (100, ds["stride"], 6)
    assert info.rate_hz == ds["rate_hz"] and info.n_classes == len(ds["labels"])
    assert info.input.shape == tuple(quant["input"]["shape"])
    assert info.input.zero_point == quant["input"]["zero_point"]
    assert labels == ds["labels"]


def test_firmware_arena_prefers_build_json(tiny_run, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    model = (run / "model_int8.tflite").read_bytes()
    build_record("nano33ble", model, 40000).save(run)
    assert firmware_arena(run, model, "nano33ble") == 40000
    # a build for another board (or model) does not describe this firmware
    assert firmware_arena(run, model, "nano33ble_rev2") != 40000


def test_stream_from_windows_rejoins_overlapping_windows() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 3)), rng.normal(size=(150, 3))
    wins = [a[i : i + 100] for i in range(0, 201, 50)] + [b[i : i + 100] for i in (0, 50)]
    out = stream_from_windows(np.stack(wins), stride=50)
    np.testing.assert_array_equal(out, np.concatenate([a, b]).astype(np.float32))


def test_replay_of_an_mhealth_file_keeps_the_models_channels_and_classes(tiny_run) -> None:
    data_dir = tiny_run.parent / "synth"
    log = sorted(data_dir.glob("mHealth_subject*.log*"))[0]
    ds = read_json(tiny_run / "dataset.json")
    rec = load_mhealth(log).recordings[0]
    keep = np.isin(rec.labels, ds["label_ids"])
    want = rec.signals[keep][:, [c["column"] for c in ds["channels"]]]
    got = replay_training_units(tiny_run, log)
    np.testing.assert_array_equal(got, want)
    with sim_board(tiny_run, "--replay", log) as sim:
        sim.proc.send_signal(signal.SIGTERM)
        sim.proc.wait(timeout=10)
        assert f"IMU replay of {len(want)} samples" in sim.proc.stderr.read()


def test_fault_injection_is_seeded_and_independent_of_chunking() -> None:
    data = bytes(range(1, 256)) * 20
    one = _Mangler(Faults(drop=0.05, corrupt=0.05, seed=4), 0)(data)
    m = _Mangler(Faults(drop=0.05, corrupt=0.05, seed=4), 0)
    split = m(data[:1000]) + m(data[1000:3333]) + m(data[3333:])
    assert one == split and one != data
    assert 0 < m.dropped < len(data) * 0.1 and 0 < m.corrupted < len(data) * 0.1
    assert _Mangler(Faults(drop=0.05, corrupt=0.05, seed=5), 0)(data) != one
    assert _Mangler(Faults(drop=0.05, corrupt=0.05, seed=4), 1)(data) != one  # other direction


def test_sim_link_option_makes_and_removes_a_symlink(tiny_run, tmp_path) -> None:
    link = tmp_path / "ttyTINYHAR"
    with sim_board(tiny_run, "--link", link) as sim:
        assert link.is_symlink() and str(link.resolve()) == sim.port
        with Link(str(link)) as dev:
            assert dev.hello().board == "nano33ble"
        sim.proc.send_signal(signal.SIGTERM)
        assert sim.proc.wait(timeout=10) == 0
    deadline = time.monotonic() + 5
    while link.is_symlink() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not link.is_symlink()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--drop", "1.5"], "--drop 1.5"),
        (["--board", "no_such_board"], "unknown board"),
        (["--run", "/nonexistent/run"], "does not exist"),
    ],
)
def test_sim_bad_options_are_one_line(tiny_run, args: list[str], words: str) -> None:
    full = ["sim", *(["--run", str(tiny_run)] if "--run" not in args else []), *args]
    proc = tinyhar(*full, check=False, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0]


def test_faults_reject_bad_rates() -> None:
    with pytest.raises(TinyharError):
        Faults(corrupt=-0.1)
    with pytest.raises(TinyharError):
        Faults(delay_ms=-1)
