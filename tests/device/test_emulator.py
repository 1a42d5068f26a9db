"""The generated firmware itself on an emulated Cortex-M4F: `tinyhar build`'s sketch and model
library, the Chirale TFLM library with its CMSIS-NN kernels and tinyhar's MPS2 Arduino layer,
cross-compiled and run on QEMU mps2-an386 (-icount shift=0). The host talks to it over the pty
exactly as to a board.

Findings pinned here: the emulated board computes what the board's library computes on the host,
byte for byte; the Python TFLM interpreter (a newer TFLM) differs from Chirale's int8 LSTM kernel
by up to ~20 LSB on the test model's outputs, which flips top-1 where an untrained model's scores
are within a few LSB of each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import serial
from click.testing import CliRunner
from helpers.boards import sim_board
from helpers.commands import SHARED_LIBRARIES, one_error_line, require_tools
from helpers.fw_models import LABELS, make_run

from tinyhar.board import tflm_library
from tinyhar.cli import main
from tinyhar.deploy.m4f_image import (
    EmulatedImage,
    build_emulated_firmware,
    firmware_dirs_of,
    library_ops,
    link_map_footprint,
)
from tinyhar.device.emulator import EmulatedBoard
from tinyhar.device.link import Link
from tinyhar.errors import TinyharError
from tinyhar.run import folder as runs
from tinyhar.run.records import BuildReport

CHIRALE = "Chirale_TensorFLowLite"
APT = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm"
N_WINDOWS = 20


@dataclass
class Built:
    run: Path
    record: BuildReport
    image: EmulatedImage
    model: bytes


@pytest.fixture(scope="session")
def tflm_src() -> Path:
    require_tools("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm", apt=APT)
    src = SHARED_LIBRARIES / CHIRALE / "src"
    if not (src / "Chirale_TensorFlowLite.h").is_file():
        msg = f"{CHIRALE} is not in {SHARED_LIBRARIES}"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {msg}; the CI checkout must carry shared/ beside the repository")
        pytest.skip(msg)
    return src


def build_run(root: Path, board: str, tflm_src: Path) -> Built:
    """`tinyhar build` for a small CNN-LSTM run (no arduino-cli), then its emulated image."""
    run = make_run(root)
    res = CliRunner().invoke(main, ["build", "--board", board, "--run", str(run)], env={"PATH": ""})
    assert res.exit_code == 0, res.output
    rec = BuildReport.load(run)
    image = build_emulated_firmware(
        firmware_dirs_of(rec, run), tflm_src, library_ops(rec), run / "emulator", log=print,
        name=rec.sketch_name,
    )  # fmt: skip
    return Built(run, rec, image, (run / runs.INT8_MODEL).read_bytes())


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, tflm_src: Path) -> Built:
    """The Nano 33 BLE firmware for the emulated board; the session compiles the library once
    (later sessions take it from the object cache)."""
    b = build_run(tmp_path_factory.mktemp("emulated"), "nano33ble", tflm_src)
    print(f"emulated build: {b.image.seconds} s, {b.image.library_compiled} of "
          f"{b.image.library_sources} library sources compiled")  # fmt: skip
    return b


@pytest.fixture(scope="module")
def board(built: Built) -> Iterator[EmulatedBoard]:
    with EmulatedBoard(built.image.elf) as emu:
        yield emu


@pytest.fixture(scope="module")
def link(board: EmulatedBoard) -> Iterator[Link]:
    with Link(board.port, timeout=2.0) as lk:
        yield lk


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    """Int8 windows: uniform over the whole range, and normal around the zero point."""
    rng = np.random.default_rng(7)
    q = rng.integers(-128, 128, size=(N_WINDOWS, 100, 6))
    q[N_WINDOWS // 2 :] = np.clip(rng.normal(0, 30, size=(N_WINDOWS // 2, 100, 6)), -128, 127)
    return q.astype(np.int8)


@pytest.fixture(scope="module")
def results(link: Link, windows: np.ndarray) -> list:
    link.hello()
    return [link.infer(w) for w in windows]


# --- the image -----------------------------------------------------------------------------


def test_image_holds_the_model_arena_library_and_layers(built: Built, tflm_src: Path) -> None:
    fp, rec = built.image.footprint, built.record
    assert built.image.elf.is_file() and built.image.map_file.parent == built.image.elf.parent
    assert rec.model_bytes <= fp["model"]["flash"] <= rec.model_bytes + 64
    assert fp["model"]["ram"] == 0
    assert fp["arena"]["ram"] == rec.arena_bytes and fp["arena"]["flash"] == 0
    assert fp["tflm"]["flash"] > 40_000  # interpreter, allocator, CMSIS-NN and LSTM kernels
    # protocol, runner and tinyhar's own kernels (LSTM, SOFTMAX, MEAN, ADD/MUL, BATCH_MATMUL)
    assert 1_000 < fp["tinyhar"]["flash"] < 40_000 and fp["tinyhar"]["ram"] > 1_000
    assert 500 < fp["arduino"]["flash"] < 8_000
    groups = [g for g in fp if g not in ("total", "reserved")]
    for kind in ("flash", "ram"):
        assert fp["total"][kind] == sum(fp[g][kind] for g in groups)
    assert fp["reserved"]["stack"] >= 16_384 and fp["reserved"]["heap"] > 0
    wanted = tflm_library.sources_for_ops(tflm_src, library_ops(rec))
    assert built.image.library_sources == len(wanted)


def test_firmware_folders_are_found_from_another_directory(built: Built) -> None:
    """build.json holds paths relative to where `tinyhar build` ran: the run's folder is used."""
    rec = built.record
    real = firmware_dirs_of(rec, built.run)
    assert real == [Path(rec.library_dir) / "src", Path(rec.sketch_dir)]
    moved = {
        key: str(Path("elsewhere") / Path(getattr(rec, key)).relative_to(built.run.parent))
        for key in ("sketch_dir", "library_dir")
    }
    assert firmware_dirs_of(replace(rec, **moved), built.run) == real


def test_arduino_tensorflowlite_is_refused_in_one_line(built: Built, tmp_path: Path) -> None:
    """Its TensorFlowLite.h #errors on every board but the Nano 33 BLE's mbed core."""
    src = SHARED_LIBRARIES / "Arduino_TensorFlowLite" / "src"
    with pytest.raises(TinyharError, match="cannot build against Arduino_TensorFlowLite"):
        build_emulated_firmware(firmware_dirs_of(built.record, built.run), src, [], tmp_path)


def test_map_totals_are_the_elf_sections(built: Built) -> None:
    size = shutil.which("arm-none-eabi-size")
    if size is None:
        pytest.skip("arm-none-eabi-size not installed (binutils-arm-none-eabi)")
    out = subprocess.run([size, "-A", str(built.image.elf)], capture_output=True, text=True)
    sections = {ln.split()[0]: int(ln.split()[1]) for ln in out.stdout.splitlines()[2:]
                if len(ln.split()) == 3}  # fmt: skip
    fp = link_map_footprint(built.image.map_file)["total"]
    code = (".text", ".ARM.extab", ".ARM.exidx", ".preinit_array", ".init_array", ".fini_array")
    assert fp["text"] == sum(sections.get(s, 0) for s in code)
    assert (fp["rodata"], fp["data"], fp["bss"]) == (
        sections[".rodata"], sections.get(".data", 0), sections[".bss"])  # fmt: skip


def test_a_warm_rebuild_compiles_only_tinyhar_code(built: Built, tflm_src: Path, tmp_path) -> None:
    t0 = time.monotonic()
    again = build_emulated_firmware(
        firmware_dirs_of(built.record, built.run),
        tflm_src,
        library_ops(built.record),
        tmp_path,
        log=print,
    )
    print(f"warm emulated build: {time.monotonic() - t0:.1f} s")
    assert again.library_compiled == 0
    assert again.footprint["total"] == built.image.footprint["total"]


# --- the board on the pty ------------------------------------------------------------------


def test_hello_reports_the_built_model(link: Link, built: Built) -> None:
    info = link.hello()
    rec = built.record
    assert info.model_crc32 == rec.model_crc32 and info.has_model
    assert getattr(info, "runner_status", 0) == 0
    assert info.arena_bytes == rec.arena_bytes and info.board == "nano33ble"
    assert (info.window, info.channels, info.n_classes) == (100, 6, len(LABELS))
    assert link.labels() == LABELS


def test_inference_is_the_board_librarys_byte_for_byte(
    results: list, windows: np.ndarray, built: Built
) -> None:
    """The exact reference: the same runner and Chirale sources built for the host."""
    require_tools("gcc", "g++", apt="gcc g++")
    from tinyhar.deploy.board_reference import for_build

    ref, why = for_build(built.record, built.model, SHARED_LIBRARIES, run=built.run)
    assert ref is not None, why
    device = np.stack([r.output for r in results])
    want = ref.predict(np.asarray(windows))
    np.testing.assert_array_equal(device, want)


def test_inference_against_the_python_tflm_interpreter(
    results: list, windows: np.ndarray, built: Built
) -> None:
    """A second opinion from a newer TFLM: its LSTM kernel differs from Chirale's by some LSB."""
    from tinyhar.lite.reference import TflmReference

    want = TflmReference(built.model, built.record.arena_bytes).predict(windows)
    want = want.reshape(len(windows), -1).astype(int)
    device = np.stack([r.output for r in results]).astype(int)
    diff = np.abs(device - want)
    agree = int((device.argmax(1) == want.argmax(1)).sum())
    print(f"emulated board vs Python TFLM: {int((diff > 0).sum())} of {diff.size} bytes differ, "
          f"max {int(diff.max())} LSB, top-1 agrees on {agree}/{len(windows)} windows")  # fmt: skip
    assert diff.max() <= 32  # the same model: a kernel version's rounding, not another network
    assert agree >= len(windows) // 2


def test_latency_is_virtual_microseconds(results: list) -> None:
    """-icount shift=0: one instruction per ns, so latency_us x 1000 = instructions, and the
    same model takes the same instructions on every window (within the SysTick interrupts)."""
    lat = np.array([r.latency_us for r in results])
    print(f"latency {lat.min()}..{lat.max()} us = about {lat.mean() * 1000:.0f} instructions")
    assert 50 < lat.min() and lat.max() - lat.min() <= max(5, lat.min() // 100)
    assert lat.max() < 100_000


def test_streaming_from_the_imu_replay_gives_predictions(link: Link, built: Built) -> None:
    link.hello()
    stride = built.record.config["stride"]
    t0 = time.monotonic()
    assert link.stream_start().streaming
    preds = []
    try:
        for p in link.read_predictions(timeout=15):
            preds.append(p)
            if len(preds) == 3:
                break
    finally:
        link.stream_stop()
    elapsed = time.monotonic() - t0
    assert len(preds) == 3, "the emulated IMU produced no prediction stream"
    counters = [p.sample_counter for p in preds]
    assert all(c % stride == 0 for c in counters) and np.all(np.diff(counters) == stride)
    assert all(p.latency_us > 50 and 0 <= p.class_index < len(LABELS) for p in preds)
    assert elapsed < 60  # about real time: a window of 50 Hz samples per stride second


# --- the Arduino layer on its own -----------------------------------------------------------

CALIBRATION_SKETCH = r"""
// calib.ino: the emulated board's clock against a loop of known length, and its fault report.
static void spin(uint32_t turns)
{
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(turns) : : "cc");
}

void setup()
{
    Serial.begin(115200);
}

void loop()
{
    if (Serial.available() <= 0) {
        return;
    }
    const int c = Serial.read();
    if (c == 'c') {
        const unsigned long t0 = micros();
        spin(2000000u);  // subs + bne: 4,000,000 instructions
        const unsigned long t1 = micros();
        Serial.print("us ");
        Serial.println(t1 - t0);
    } else if (c == 'f') {
        __asm__ volatile("udf #0");
    }
}
"""


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory, tflm_src: Path) -> EmulatedImage:
    sketch = tmp_path_factory.mktemp("calib") / "calib"
    sketch.mkdir()
    (sketch / "calib.ino").write_text(CALIBRATION_SKETCH)
    return build_emulated_firmware([sketch], tflm_src, [], sketch.parent / "out", name="calib")


def _ask(port: str, command: bytes, timeout: float = 10.0) -> bytes:
    with serial.Serial(port, 115200, timeout=timeout) as s:
        s.write(command)
        return s.readline()


def test_micros_counts_instructions_over_1000(calibration: EmulatedImage) -> None:
    with EmulatedBoard(calibration.elf) as emu:
        line = _ask(emu.port, b"c").decode()
    assert line.startswith("us "), line
    assert 4000 <= int(line.split()[1]) <= 4005  # 4,000,000 instructions = 4000 us


def test_a_fault_is_reported_and_stops_qemu(calibration: EmulatedImage) -> None:
    with EmulatedBoard(calibration.elf) as emu:
        with serial.Serial(emu.port, 115200, timeout=5) as s:
            s.write(b"f")
            text = s.read_until(b"\n\x00").decode(errors="replace")
        emu.proc.wait(timeout=10)
        assert "stopped: fault (exception 3) pc=0x" in text  # HardFault, on the UART
        with pytest.raises(TinyharError, match=r"QEMU exit 1\): .*fault \(exception 3\)"):
            emu.check()


@pytest.mark.parametrize(("board_name", "imu_header"), [
    ("nano33ble_rev2", "Arduino_BMI270_BMM150.h"), ("nano_rp2040_connect", "Arduino_LSM6DSOX.h")
])  # fmt: skip
def test_other_boards_firmware_runs_with_its_imu_replay(
    board_name: str, imu_header: str, tmp_path: Path, tflm_src: Path
) -> None:
    b = build_run(tmp_path, board_name, tflm_src)
    board_layer = Path(b.record.library_dir) / "src" / "tinyhar_board.cpp"
    assert f"#include <{imu_header}>" in board_layer.read_text()
    stride = b.record.config["stride"]
    with EmulatedBoard(b.image.elf) as emu, Link(emu.port, timeout=2.0) as lk:
        info = lk.hello()
        assert info.board == board_name and info.model_crc32 == b.record.model_crc32
        lk.stream_start()
        try:
            first = next(lk.read_predictions(timeout=15), None)
        finally:
            lk.stream_stop()
    assert first is not None and first.sample_counter % stride == 0


# --- tinyhar sim --emulate ------------------------------------------------------------------


def test_sim_emulate_prints_the_port_and_serves(built: Built, monkeypatch, tmp_path) -> None:
    """--libraries is the folder it builds against, whatever $TINYHAR_ARDUINO_LIBRARIES says."""
    monkeypatch.setenv(tflm_library.LIBRARIES_ENV, str(tmp_path / "no-libraries"))
    with sim_board(built.run, "--emulate", "--libraries", SHARED_LIBRARIES,
                   start_timeout=600) as sim:  # fmt: skip
        with Link(sim.port, timeout=2.0) as lk:
            info = lk.hello()
        assert info.model_crc32 == built.record.model_crc32
    assert sim.proc.returncode == 0  # SIGTERM stops QEMU and exits cleanly
    assert not Path(sim.port).exists()  # QEMU (and its pty) is gone


def test_sim_emulate_says_where_it_looked_for_the_library(built: Built, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(main, ["sim", "--emulate", "--run", str(built.run),
                                    "--libraries", str(empty)])  # fmt: skip
    assert res.exit_code != 0
    line = one_error_line(res.output)
    assert f"Chirale_TensorFLowLite 2.0.0, the board's TFLM library, is not in {empty} " \
        "(--libraries)" in line  # fmt: skip
    res = CliRunner().invoke(main, ["sim", "--run", str(built.run), "--libraries", str(empty)])
    assert res.exit_code != 0 and "only the emulated board" in one_error_line(res.output)


def test_sim_emulate_refuses_software_board_options(built: Built) -> None:
    res = CliRunner().invoke(main, ["sim", "--emulate", "--run", str(built.run), "--drop", "0.1"])
    assert res.exit_code != 0
    assert "fault injection: only the software board" in one_error_line(res.output)


def test_sim_emulate_without_qemu_says_how_to_install_it(built: Built) -> None:
    res = CliRunner().invoke(main, ["sim", "--emulate", "--run", str(built.run)], env={"PATH": ""})
    assert res.exit_code != 0
    assert "apt-get install -y qemu-system-arm" in one_error_line(res.output)
