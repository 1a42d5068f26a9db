"""The generated firmware compiles: C core + config + model array with gcc/g++ and arm-none-eabi
(-Wall -Wextra -Werror); the whole firmware links for the Cortex-M4F against the real TFLM and IMU
library sources for every shipped board; tinyhar's own files compile against both TFLM ports."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.commands import SHARED_LIBRARIES
from helpers.fw_models import dataset_record, make_run, third_party_float_model
from helpers.paths import TESTS

from tinyhar.board import tflm_library
from tinyhar.board.boards import list_boards, load_board
from tinyhar.board.preprocess import PreprocessConfig, quantize_window
from tinyhar.cli import main
from tinyhar.deploy.m4f_image import build_emulated_firmware, firmware_dirs_of, library_ops
from tinyhar.resources import templates_dir
from tinyhar.run import folder as runs
from tinyhar.run.records import BuildReport, TensorQuantization

STAND_INS = TESTS / "stand_in_headers"  # the Arduino core only: no source here
WARN = ["-Wall", "-Wextra", "-Werror"]
M4F = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16"]  # the core's ABI
needs_gcc = pytest.mark.usefixtures("host_gcc")  # skipped without them locally, failed in CI
needs_arm = pytest.mark.usefixtures("arm_gcc")

# A host program around the generated header: fill the config, init the core, preprocess a raw
# window read from a file and print the config and the int8 window.
MAIN_C = r"""
#include <stdio.h>
#include "tinyhar_config.h"
#include "model_data.h"

static void sink(const uint8_t *d, size_t n, void *c) { (void)d; (void)n; (void)c; }

int main(int argc, char **argv)
{
    static tinyhar_config_t cfg;
    static tinyhar_dev_t dev;
    static float raw[TINYHAR_WINDOW * TINYHAR_CHANNELS];
    static int8_t out[TINYHAR_WINDOW * TINYHAR_CHANNELS];
    tinyhar_platform_t plat = {sink, NULL, NULL, NULL};
    FILE *f;
    size_t i;
    if (argc < 2 || (f = fopen(argv[1], "rb")) == NULL) return 3;
    if (fread(raw, sizeof(float), TINYHAR_WINDOW * TINYHAR_CHANNELS, f) !=
        TINYHAR_WINDOW * TINYHAR_CHANNELS) return 4;
    fclose(f);
    tinyhar_config_fill(&cfg);
    if (tinyhar_init(&dev, &cfg, &plat) != TINYHAR_OK) return 5;
    printf("%u %u %u %u %08x %u %u %s\n", cfg.window, cfg.stride, cfg.channels, cfg.n_classes,
           (unsigned)g_tinyhar_model_crc32, g_tinyhar_model_len, (unsigned)cfg.arena_bytes,
           cfg.labels[cfg.n_classes - 1]);
    tinyhar_preprocess(&cfg, raw, TINYHAR_WINDOW, out);
    for (i = 0; i < (size_t)TINYHAR_WINDOW * TINYHAR_CHANNELS; i++) printf("%d ", out[i]);
    printf("\n");
    return 0;
}
"""


def _cc(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stderr}"


def _render(tmp_path: Path, board: str, *args: str) -> tuple[Path, dict]:
    """Build the firmware for `board`; the generated library's src/ folder and build.json."""
    run = tmp_path / board
    if not run.exists():
        if not (tmp_path / "src" / "run").exists():
            make_run(tmp_path / "src")
        shutil.copytree(tmp_path / "src" / "run", run)
    res = CliRunner().invoke(main, ["build", "--board", board, "--run", str(run), *args],
                             env={"PATH": ""})  # fmt: skip
    assert res.exit_code == 0, res.output
    rec = json.loads((run / runs.BUILD_JSON).read_text())
    return Path(rec["library_dir"]) / "src", rec


@needs_gcc
@pytest.mark.parametrize("board", ["nano33ble", "nano33ble_rev2"])
def test_host_build_runs_and_preprocesses_like_python(tmp_path, board):
    sketch, rec = _render(tmp_path, board)
    (sketch / "main.c").write_text(MAIN_C)
    for src in ("tinyhar_core.c", "main.c"):
        _cc(["gcc", "-std=c99", *WARN, "-I.", "-c", src, "-o", src + ".o"], sketch)
    _cc(["g++", "-std=c++11", *WARN, "-c", "model_data.cpp", "-o", "model_data.o"], sketch)
    _cc(["g++", "tinyhar_core.c.o", "main.c.o", "model_data.o", "-o", "prog"], sketch)

    b = load_board(board)
    tin = rec["config"]["input"]
    model_input = TensorQuantization(tin["scale"], tin["zero_point"], [1, 100, 6], "int8")
    cfg = PreprocessConfig.from_run(dataset_record(), model_input, b)
    rng = np.random.default_rng(3)
    raw = np.concatenate(  # library units: g and deg/s, around the normalisation's range
        [rng.normal(0, 0.5, (100, 3)), rng.normal(0, 60, (100, 3))], axis=1
    ).astype(np.float32)
    raw[0, 0] = np.float32(0.5) * np.float32(3.0)  # a few values on rounding edges too
    (sketch / "raw.bin").write_bytes(raw.astype("<f4").tobytes())
    proc = subprocess.run(
        [str(sketch / "prog"), "raw.bin"], cwd=sketch, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    head, window = proc.stdout.splitlines()
    w, s, c, n, crc, length, arena, last = head.split(" ", 7)
    assert (int(w), int(s), int(c), int(n)) == (100, 50, 6, 4)
    assert int(crc, 16) == int(rec["model_crc32"], 16) and int(length) == rec["model_bytes"]
    assert int(arena) == rec["arena_bytes"] and last == dataset_record().labels[-1]
    device = np.array([int(v) for v in window.split()], dtype=np.int8).reshape(100, 6)
    np.testing.assert_array_equal(device, quantize_window(raw, cfg))
    assert len(np.unique(device)) > 20  # a window that exercises the quantizer


@needs_arm
def test_arm_cortex_m4f_build_of_core_config_and_model(tmp_path):
    sketch, _ = _render(tmp_path, "nano33ble")
    (sketch / "main.c").write_text(MAIN_C)
    arm = ["arm-none-eabi-gcc", "-std=c99", *WARN, *M4F, "-O2", "-I."]
    _cc([*arm, "-c", "tinyhar_core.c", "-o", "core.o"], sketch)
    _cc([*arm, "-c", "main.c", "-o", "main.o"], sketch)
    _cc(["arm-none-eabi-g++", "-std=gnu++14", *WARN, *M4F, "-O2", "-c", "model_data.cpp", "-o",
         "model_data.o"], sketch)  # fmt: skip
    objdump = shutil.which("arm-none-eabi-objdump")
    if objdump:
        sections = subprocess.run([objdump, "-h", "model_data.o"], cwd=sketch, capture_output=True,
                                  text=True).stdout  # fmt: skip
        rodata = [ln for ln in sections.splitlines() if ".rodata" in ln]
        assert rodata and rodata[0].split()[-1] == "2**4"  # the model array is 16-byte aligned


IMU_LIBRARIES = {"LSM9DS1": "Arduino_LSM9DS1", "BMI270": "Arduino_BMI270_BMM150",
                 "LSM6DSOX": "Arduino_LSM6DSOX"}  # fmt: skip


@needs_arm
@pytest.mark.parametrize("board", [b.name for b in list_boards()])
def test_every_board_s_firmware_links_against_the_real_tflm_and_imu_libraries(tmp_path, board):
    """Sketch + tinyhar_model library (-Wall -Wextra -Werror) + Chirale TFLM with its CMSIS-NN
    kernels + the board's real IMU library, linked for the Cortex-M4F (the Arduino core replaced
    by tinyhar's MPS2 layer and a stub Wire)."""
    src, rec = _render(tmp_path, board, "--no-measure")
    b = load_board(board)
    imu = SHARED_LIBRARIES / IMU_LIBRARIES[b.imu.chip] / "src"
    tflm = tflm_library.library_src(SHARED_LIBRARIES, tflm_library.load_library(b.tflm.name))
    build = BuildReport.load(src.parents[4])
    image = build_emulated_firmware(firmware_dirs_of(build, src.parents[4]), tflm,
                                    library_ops(build), tmp_path / "elf",
                                    imu_library=imu)  # fmt: skip
    symbols = subprocess.run(["arm-none-eabi-nm", "-C", str(image.elf)], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    imu_class = {"LSM9DS1": "LSM9DS1Class", "BMI270": "BoschSensorClass",
                 "LSM6DSOX": "LSM6DSOXClass"}[b.imu.chip]  # fmt: skip
    assert f"{imu_class}::readAcceleration" in symbols  # the real driver, not the replay
    assert "tinyhar_imu_replay" not in symbols and "g_tinyhar_model" in symbols
    assert "tflite::MicroInterpreter::Invoke" in symbols
    assert image.footprint["model"]["flash"] == rec["model_bytes"]


# What the mbed core defines that Arduino_TensorFlowLite's peripherals.h uses for the Nano 33 BLE
# (a STAND-IN: the core has no source here).
MBED_PINS = """#pragma once
#include <stdint.h>
typedef enum { P0_27 = 27, P1_2 = 34, P1_11 = 43, P1_12 = 44 } PinName;
typedef uint8_t pin_size_t;
#define D8 8
#define D13 13
"""


@needs_arm
def test_tinyhar_s_own_files_compile_against_arduino_tensorflowlite(tmp_path):
    src, rec = _render(tmp_path, "nano33ble", "--tflm-library", "Arduino_TensorFlowLite",
                       "--no-measure")  # fmt: skip
    assert rec["tflm_library"]["name"] == "Arduino_TensorFlowLite"
    lib = tflm_library.library_src(
        SHARED_LIBRARIES, tflm_library.load_library("Arduino_TensorFlowLite")
    )
    (tmp_path / "mbed_pins.h").write_text(MBED_PINS)
    layer = templates_dir() / "emulator"
    system = [a for d in tflm_library.include_dirs(lib) for a in ("-isystem", str(d))]
    flags = ["arm-none-eabi-g++", "-std=gnu++14", *WARN, *M4F, "-O2", "-DARDUINO",
             "-DARDUINO_ARDUINO_NANO33BLE", "-include", str(tmp_path / "mbed_pins.h"),
             f"-I{src}", f"-I{layer}", *system, "-c"]  # fmt: skip
    kernel = templates_dir() / "kernels" / "tinyhar_batch_matmul.cpp"
    for cpp in (src / "tinyhar_runner.cpp", src / "model_data.cpp", kernel):
        _cc([*flags, str(cpp), "-o", str(tmp_path / f"{cpp.stem}.o")], tmp_path)
    assert "#include <TensorFlowLite.h>" in (src / "tinyhar_runner.cpp").read_text()


@needs_gcc
def test_float_io_model_config_compiles_as_c(tmp_path):
    model = tmp_path / "thirdparty_gesture_net.tflite"
    model.write_bytes(third_party_float_model())
    res = CliRunner().invoke(main, ["build", "--model", str(model)], env={"PATH": ""})
    assert res.exit_code == 0, res.output
    src = tmp_path / "firmware" / "nano33ble" / "libraries" / "tinyhar_model" / "src"
    _cc(["gcc", "-std=c99", *WARN, "-I.", "-fsyntax-only", "-x", "c", "tinyhar_config.h"], src)
    assert "#define TINYHAR_INPUT_IS_FLOAT 1" in (src / "tinyhar_config.h").read_text()


# Host harness around the generated sketch: FAKE clock, a FAKE LSM9DS1 (the real library's header,
# our definitions) producing ramps at its native rate, and a FAKE core that records what the sketch
# pushes (the real core is tested on its own).
SKETCH_HARNESS = r"""
#include <stdio.h>
#include <Arduino.h>
#include <Arduino_LSM9DS1.h>
#include <tinyhar_model.h>

static unsigned long g_now_us = 1000;
static unsigned long g_imu_next_us = 0;
static unsigned long g_imu_period_us = 0;
static float g_sample_t = 0.0f;

StandInSerial Serial;
void StandInSerial::begin(unsigned long) {}
int StandInSerial::available() { return 0; }
int StandInSerial::read() { return -1; }
size_t StandInSerial::write(const uint8_t *, size_t n) { return n; }
unsigned long micros() { return g_now_us; }
unsigned long millis() { return g_now_us / 1000; }
void delay(unsigned long) {}
void pinMode(uint8_t, uint8_t) {}
void digitalWrite(uint8_t, uint8_t) {}

TwoWire Wire1;
LSM9DS1Class::LSM9DS1Class(TwoWire &wire) : continuousMode(false), _wire(&wire) {}
LSM9DS1Class::~LSM9DS1Class() {}
LSM9DS1Class IMU_LSM9DS1(Wire1);
float LSM9DS1Class::accelerationSampleRate() { return 119.0f; }
float LSM9DS1Class::gyroscopeSampleRate() { return 119.0f; }
int LSM9DS1Class::readMagneticField(float &, float &, float &) { return 0; }
int LSM9DS1Class::magneticFieldAvailable() { return 0; }
float LSM9DS1Class::magneticFieldSampleRate() { return 0.0f; }
int LSM9DS1Class::begin() { return 1; }
int LSM9DS1Class::accelerationAvailable() { return g_now_us >= g_imu_next_us; }
int LSM9DS1Class::gyroscopeAvailable() { return g_now_us >= g_imu_next_us; }
int LSM9DS1Class::readAcceleration(float &x, float &y, float &z)
{
    g_sample_t = (float)g_imu_next_us * 1e-6f;  // the IMU sampled at its own tick
    x = g_sample_t; y = 2.0f * g_sample_t; z = -g_sample_t;
    return 1;
}
int LSM9DS1Class::readGyroscope(float &x, float &y, float &z)
{
    x = 10.0f * g_sample_t; y = 20.0f * g_sample_t; z = 30.0f * g_sample_t;
    g_imu_next_us += g_imu_period_us;
    return 1;
}

extern "C" {
int tinyhar_runner_init(void) { return 0; }
int tinyhar_runner_infer(const int8_t *, size_t, int8_t *, size_t, void *) { return 0; }
int tinyhar_init(tinyhar_dev_t *, const tinyhar_config_t *, const tinyhar_platform_t *)
{
    return 0;
}
void tinyhar_rx(tinyhar_dev_t *, const uint8_t *, size_t) {}
void tinyhar_set_streaming(tinyhar_dev_t *, int) {}
void tinyhar_set_runner_info(tinyhar_dev_t *, int, uint32_t) {}
size_t tinyhar_runner_arena_used(void) { return 0; }
int tinyhar_is_streaming(const tinyhar_dev_t *) { return 1; }
int tinyhar_is_recording(const tinyhar_dev_t *) { return 0; }
void tinyhar_push_sample(tinyhar_dev_t *, const float *raw)
{
    printf("%lu", g_now_us);
    for (int c = 0; c < TINYHAR_CHANNELS; c++) printf(" %.7g", raw[c]);
    printf("\n");
}
}

#include "tinyhar_har.ino"
#include "tinyhar_board.cpp"

int main()
{
    g_imu_period_us = (unsigned long)(1e6 / TINYHAR_IMU_RATE_HZ + 0.5);
    g_imu_next_us = 5000;
    setup();
    for (; g_now_us < 2000000; g_now_us += 700) loop();  // 2 s of polling every 0.7 ms
    return 0;
}
"""


@needs_gcc
@pytest.mark.parametrize("edited", [False, True])
def test_sketch_resamples_the_imu_to_the_training_rate(tmp_path, edited):
    """119 Hz IMU ramps through the generated sketch: 50 Hz samples on a 20 ms grid whose values
    are the ramps interpolated at the grid times, in the model's channel slots. The resampler is
    in the library a build rewrites, so a sketch the user changed gets it too."""
    sketch, rec = _render(tmp_path, "nano33ble")
    if edited:  # the user's own sketch survives the next build, which rewrites the library
        ino = Path(rec["sketch_dir"]) / "tinyhar_har.ino"
        mine = ino.read_text().replace(
            "    tinyhar_board_poll();", "    tinyhar_board_poll();  // mine"
        )
        ino.write_text(mine)
        (sketch / "tinyhar_board.cpp").write_text("#error stale library\n")
        sketch, rec = _render(tmp_path, "nano33ble")
        assert rec["sketch_kept"] and ino.read_text() == mine
        assert "resample" not in mine.lower().replace("resampling", "")
        assert "void tinyhar_board_resample(" in (sketch / "tinyhar_board.cpp").read_text()
    (sketch / "harness.cpp").write_text(SKETCH_HARNESS)
    imu = SHARED_LIBRARIES / "Arduino_LSM9DS1" / "src"
    _cc(["g++", "-std=gnu++14", *WARN, "-Wno-unused-parameter", f"-I{STAND_INS}", "-I.",
         f"-I{rec['sketch_dir']}", f"-isystem{imu}", "harness.cpp", "-o", "harness"],
        sketch)  # fmt: skip
    out = subprocess.run([str(sketch / "harness")], capture_output=True, text=True, check=True)
    rows = np.array([[float(v) for v in ln.split()] for ln in out.stdout.splitlines()])
    emitted_at, samples = rows[:, 0], rows[:, 1:]
    assert 95 <= len(samples) <= 100  # ~2 s at 50 Hz
    grid = samples[:, 0]  # acc x is the time ramp: the grid times the sketch interpolated at
    np.testing.assert_allclose(np.diff(grid), 0.02, atol=1e-3)  # 50 Hz, within read jitter
    assert np.all(emitted_at * 1e-6 >= grid - 1e-6)  # never extrapolates into the future
    np.testing.assert_allclose(samples[:, 1], 2 * grid, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(samples[:, 2], -grid, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(samples[:, 3:], grid[:, None] * [10, 20, 30], rtol=1e-5, atol=1e-4)
