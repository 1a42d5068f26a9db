"""The C core on the Cortex-M4F under QEMU (mps2-an386) against the host build and Python.

One set of vectors (tests/c/vectors.py) runs in three places: the host build of tests/c/test_main.c,
the same harness cross-compiled with arm-none-eabi-gcc and run on QEMU with semihosting, and
tinyhar.board.preprocess. Int8 windows, encoded frames and a whole protocol session must agree.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.commands import require_tools
from helpers.paths import TESTS

from tinyhar.board import protocol as P
from tinyhar.board.preprocess import quantize_window
from tinyhar.resources import templates_dir

_spec = importlib.util.spec_from_file_location("core_vectors", TESTS / "c" / "vectors.py")
V = importlib.util.module_from_spec(_spec)
sys.modules["core_vectors"] = V
_spec.loader.exec_module(V)


@pytest.fixture(scope="module")
def vectors():
    return V.make_vectors(seed=2026)


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory, vectors) -> Path:
    d = tmp_path_factory.mktemp("vectors")
    V.write_vectors_h(vectors, d / "vectors.h")
    return d


@pytest.fixture(scope="module")
def host_out(gen_dir) -> dict:
    exe = V.build_host(gen_dir, templates_dir(), gen_dir / "host_test")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    return V.parse_output(proc.stdout)


@pytest.fixture(scope="module")
def qemu_out(gen_dir) -> dict:
    require_tools("arm-none-eabi-gcc", "qemu-system-arm",
                  apt="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")  # fmt: skip
    elf = V.build_arm(gen_dir, templates_dir(), gen_dir / "test.elf")
    proc = V.run_qemu(elf)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # QEMU writes semihosting output to stderr with -nographic; parse both streams
    return V.parse_output(proc.stdout + proc.stderr)


def _python_windows(vectors) -> dict[int, bytes]:
    return {
        i: quantize_window(raw, cfg).tobytes() for i, (cfg, raw) in enumerate(vectors.pre_cases)
    }


def test_host_build_preprocesses_bit_identically_to_python(vectors, host_out) -> None:
    assert host_out["done"]
    expected = _python_windows(vectors)
    assert len(host_out["W"]) == len(expected)
    for i, win in expected.items():
        assert host_out["W"][i] == win, f"case {i}"


def test_round_half_even_and_clamping_cases(vectors, host_out) -> None:
    cfg, raw = vectors.pre_cases[0]  # x = k + 0.5 exactly, zero point 3, even channels negated
    x = raw[:, cfg.axis_src] * 2.0 * cfg.axis_sign
    got = np.frombuffer(host_out["W"][0], np.int8).reshape(raw.shape).astype(int)
    # round half to even then clamp: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2
    want = np.clip(np.round(x).astype(int) + 3, -128, 127)
    np.testing.assert_array_equal(got, want)
    assert {0.5, 1.5, 2.5}.issubset(set(np.abs(x).ravel().tolist())) and (x < 0).any()
    cfg, raw = vectors.pre_cases[1]  # NaN, infinities, huge values, denormals, -0.0
    x = raw[:, cfg.axis_src].astype(np.float64) * 2.0 * cfg.axis_sign
    want = np.where(np.isnan(x), 3, np.clip(np.round(np.nan_to_num(x, posinf=1e9, neginf=-1e9))
                                            + 3, -128, 127))  # fmt: skip
    got = np.frombuffer(host_out["W"][1], np.int8).reshape(raw.shape)
    np.testing.assert_array_equal(got, want)
    assert {-128, 127, 3}.issubset(set(got.ravel().tolist()))


def test_qemu_preprocesses_bit_identically_to_host_and_python(vectors, host_out, qemu_out) -> None:
    assert qemu_out["done"]
    assert qemu_out["W"] == host_out["W"] == _python_windows(vectors)


def test_frames_encode_and_decode_identically_everywhere(vectors, host_out, qemu_out) -> None:
    for out in (host_out, qemu_out):
        for i, (t, s, data) in enumerate(vectors.frames):
            assert out["E"][i] == P.encode_frame(t, s, data), f"frame {i}"
            assert out["D"][i] == "ok", f"frame {i}"


def test_protocol_session_on_qemu_matches_host_and_protocol(vectors, host_out, qemu_out) -> None:
    assert qemu_out["S"] == host_out["S"]
    frames = P.FrameDecoder().feed(b"".join(qemu_out["S"]))
    assert len(frames) == len(qemu_out["S"])
    msgs = [(f.type, f.seq, P.parse_message(f)) for f in frames]
    info = msgs[0][2]
    assert (msgs[0][:2], info.board, info.model_crc32) == ((0x81, 1), "qemu-an386", 0xC0FFEE01)
    assert (info.window, info.channels, info.n_classes) == (16, 6, 5)
    assert msgs[1][2].labels == [f"class {k}" for k in range(5)]
    assert [m[2] for m in msgs[2:5]] == [P.Status(0, 0, False), P.Status(10, 10, False),
                                         P.Status(18, 16, False)]  # fmt: skip
    res = msgs[5][2]
    expected = quantize_window(vectors.session_samples[-16:], vectors.session_cfg).ravel()
    np.testing.assert_array_equal(res.window, expected)
    np.testing.assert_array_equal(res.output, V.session_model(expected))
    assert res.latency_us == 100
    assert msgs[6][2].offset == 40
    np.testing.assert_array_equal(msgs[6][2].window, expected[40:])
    assert msgs[7][:2] == (P.MsgType.ERROR, 0xFF) and msgs[7][2].code == P.ErrorCode.BAD_FRAME
    assert msgs[8][:2] == (P.MsgType.ERROR, 0xFF) and msgs[8][2].code == P.ErrorCode.BAD_CRC
    assert msgs[9][:2] == (0x8A, 8) and msgs[9][2] == P.Loaded(50)
    assert msgs[10][:2] == (0x83, 9)
    np.testing.assert_array_equal(msgs[10][2].output, V.session_model(vectors.session_window))
    assert msgs[11][2] == P.Status(18, 16, True)
    preds = [m[2] for m in msgs[12:]]
    assert [p.sample_counter for p in preds] == [19, 23, 27]
    for p in preds:
        n = p.sample_counter - 18
        window = np.concatenate([vectors.session_samples, vectors.stream_samples])[n + 2 : n + 18]
        out = V.session_model(quantize_window(window, vectors.session_cfg).ravel())
        assert (p.class_index, p.confidence) == (int(np.argmax(out)), int(out.max()))
