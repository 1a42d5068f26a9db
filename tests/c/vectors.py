"""Test vectors for the C harness (test_main.c): generated here, written as vectors.h.

Used by tests/firmware/test_core_qemu.py; the same vectors run in the host build, on the
Cortex-M4F under QEMU and through tinyhar.board.preprocess, and the three must agree bit for bit.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyhar.board import protocol as P
from tinyhar.board.preprocess import PreprocessConfig

HERE = Path(__file__).resolve().parent
SESSION_CHUNK = 7
SESSION_WINDOW, SESSION_CH, SESSION_STRIDE, SESSION_CLASSES = 16, 6, 4, 5
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
WARN = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


@dataclass
class Vectors:
    pre_cases: list[tuple[PreprocessConfig, np.ndarray]]
    frames: list[tuple[int, int, bytes]]
    session_cfg: PreprocessConfig
    session_in: bytes
    session_samples: np.ndarray  # the raw samples sent in the session's SAMPLES frames
    stream_samples: np.ndarray
    session_window: np.ndarray  # the int8 window the session sends in a LOAD and an INFER


def c_float(x: float) -> str:
    x = float(np.float32(x))
    if math.isnan(x):
        return "NAN"
    if math.isinf(x):
        return "INFINITY" if x > 0 else "-INFINITY"
    return f"{x.hex()}f"


def _random_config(rng: np.random.Generator, ch: int) -> PreprocessConfig:
    factors = [9.80665, 1.0, 180.0 / math.pi, float(rng.uniform(0.01, 100))]
    return PreprocessConfig(
        unit_factor=[factors[i] for i in rng.integers(0, 4, ch)],
        axis_src=rng.permutation(ch),
        axis_sign=rng.choice([-1, 1], ch),
        mean=rng.normal(0, 5, ch),
        inv_std=1.0 / rng.uniform(0.05, 20, ch),
        input_scale=float(10 ** rng.uniform(-3, 0)),
        input_zero_point=int(rng.integers(-128, 128)),
    )


def _near_half(rng: np.random.Generator, cfg: PreprocessConfig, n: int) -> np.ndarray:
    """Raw samples whose quantizer input lands on or next to k + 0.5."""
    ch = cfg.channels
    k = rng.integers(-140, 140, size=(n, ch)) + 0.5
    norm = k * float(cfg.input_scale)
    v = norm / cfg.inv_std.astype(np.float64) + cfg.mean.astype(np.float64)
    v = np.where(cfg.axis_sign < 0, -v, v) / cfg.unit_factor.astype(np.float64)
    raw = np.empty_like(v)
    raw[:, cfg.axis_src] = v
    return raw.astype(np.float32)


def _exact_config(ch: int) -> PreprocessConfig:
    """Powers of two only, so .5 boundaries are hit exactly: tests round half to even."""
    return PreprocessConfig(
        unit_factor=[1.0] * ch,
        axis_src=list(range(ch))[::-1],
        axis_sign=[(-1) ** c for c in range(ch)],
        mean=[0.0] * ch,
        inv_std=[1.0] * ch,
        input_scale=0.5,
        input_zero_point=3,
    )


def make_vectors(seed: int = 0) -> Vectors:
    rng = np.random.default_rng(seed)
    cases: list[tuple[PreprocessConfig, np.ndarray]] = []
    exact = _exact_config(6)
    halves = (np.arange(-140, 140, dtype=np.float64) + 0.5) / 2.0  # x = k + 0.5 exactly
    cases.append((exact, np.resize(halves, (len(halves) // 6 * 6,)).reshape(-1, 6)))
    special = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1e6, -1e6,
               63.75, 64.25, -65.25, -64.75, 62.25]  # fmt: skip
    special = np.array(special + [-v for v in special])
    cases.append((exact, np.resize(special, (36,)).reshape(6, 6)))
    for i in range(24):
        ch = [3, 6, 12][i % 3]
        cfg = _random_config(rng, ch)
        n = int(rng.integers(1, 129))
        kind = i % 4
        if kind == 0:
            raw = rng.normal(0, 3, size=(n, ch))
        elif kind == 1:
            raw = _near_half(rng, cfg, n)
        elif kind == 2:  # values far outside the int8 range: clamping
            raw = rng.normal(0, 1, size=(n, ch)) * 10.0 ** rng.integers(2, 7, size=(n, ch))
        else:
            raw = np.concatenate([_near_half(rng, cfg, n), rng.normal(0, 50, size=(n, ch))])
        cases.append((cfg, np.asarray(raw, dtype=np.float32)))

    big = P.MAX_PAYLOAD
    frames = [(1, 0, b""), (0x83, 255, bytes(254)), (0x04, 7, bytes(range(1, 255))),
              (0x04, 8, bytes(range(1, 256))), (0x05, 9, b"\x00\x01" * 300),
              (0xE0, 1, bytes(big)), (0xA0, 2, bytes([0xFF]) * big)]  # fmt: skip
    for _ in range(12):
        n = int(rng.integers(0, P.MAX_PAYLOAD + 1))
        data = rng.integers(0, 256, n).astype(np.uint8)
        data[rng.random(n) < rng.random()] = 0
        frames.append((int(rng.integers(0, 256)), int(rng.integers(0, 256)), data.tobytes()))

    scfg = _random_config(rng, SESSION_CH)
    samples = np.concatenate(
        [_near_half(rng, scfg, 10), rng.normal(0, 2, (8, SESSION_CH)).astype(np.float32)]
    )
    stream = rng.normal(0, 2, (10, SESSION_CH)).astype(np.float32)
    win = rng.integers(-128, 128, SESSION_WINDOW * SESSION_CH).astype(np.int8)
    body = P.cobs_decode(P.encode_frame(P.MsgType.HELLO, 99)[:-1])
    bad_crc = P.cobs_encode(body[:-1] + bytes([body[-1] ^ 1])) + b"\x00"
    reqs = [b"\x00", P.encode_frame(P.MsgType.HELLO, 1),
            P.encode_frame(P.MsgType.LABELS, 2, P.pack_labels_request(0)),
            P.encode_frame(P.MsgType.RESET_BUFFER, 3),
            P.encode_frame(P.MsgType.SAMPLES, 4, P.pack_samples(samples[:10])),
            P.encode_frame(P.MsgType.SAMPLES, 5, P.pack_samples(samples[10:])),
            P.encode_frame(P.MsgType.INFER_RAW, 6, P.pack_infer_raw(True)),
            P.encode_frame(P.MsgType.GET_WINDOW, 7, P.pack_get_window(40, 100)),
            b"\x13\x37\xff\x00", bad_crc,
            P.encode_frame(P.MsgType.LOAD, 8, P.pack_piece(0, win.tobytes()[:50])),
            P.encode_frame(P.MsgType.INFER, 9, P.pack_piece(50, win.tobytes()[50:])),
            P.encode_frame(P.MsgType.STREAM_START, 10)]  # fmt: skip
    return Vectors(cases, frames, scfg, b"".join(reqs), samples, stream, win)


def session_model(window: np.ndarray) -> np.ndarray:
    """The harness's stand-in model (on_infer in test_main.c)."""
    w = np.asarray(window, dtype=np.int8).view(np.uint8).astype(np.int64)
    k = np.arange(SESSION_CLASSES)
    return ((w[(7 * k) % len(w)] + k) % 256).astype(np.uint8).view(np.int8)


def _c_bytes(data: bytes) -> str:
    return "{" + ",".join(str(b) for b in data) + "}"


def _c_floats(values) -> str:
    return "{" + ",".join(c_float(v) for v in np.asarray(values).reshape(-1)) + "}"


def _c_config(name: str, cfg: PreprocessConfig, extra: str = "") -> str:
    return (
        f"static const tinyhar_config_t {name} = {{ .channels = {cfg.channels}, "
        f".unit_factor = {_c_floats(cfg.unit_factor)}, "
        f".axis_src = {{{','.join(str(int(v)) for v in cfg.axis_src)}}}, "
        f".axis_sign = {{{','.join(str(int(v)) for v in cfg.axis_sign)}}}, "
        f".mean = {_c_floats(cfg.mean)}, .inv_std = {_c_floats(cfg.inv_std)}, "
        f".input_scale = {c_float(cfg.input_scale)}, "
        f".input_zero_point = {cfg.input_zero_point}{extra} }};\n"
    )


def write_vectors_h(v: Vectors, path: Path) -> None:
    out = ["#include <math.h>\n#include <stdint.h>\n#include \"tinyhar_core.h\"\n",
           "typedef struct { const tinyhar_config_t *cfg; size_t n; const float *raw; } "
           "pre_case_t;\n",
           "typedef struct { uint8_t type, seq; size_t len; const uint8_t *payload; "
           "size_t enc_len; const uint8_t *enc; } frame_case_t;\n"]  # fmt: skip
    for i, (cfg, raw) in enumerate(v.pre_cases):
        out.append(_c_config(f"pre_cfg_{i}", cfg))
        out.append(f"static const float pre_raw_{i}[] = {_c_floats(raw)};\n")
    out.append("static const pre_case_t pre_cases[] = {")
    out.append(",".join(f"{{&pre_cfg_{i}, {len(r)}, pre_raw_{i}}}" for i, (_, r) in
                        enumerate(v.pre_cases)))  # fmt: skip
    out.append(f"}};\n#define N_PRE_CASES {len(v.pre_cases)}u\n")
    entries = []
    for i, (t, s, data) in enumerate(v.frames):
        enc = P.encode_frame(t, s, data)
        pl = "NULL"
        if data:
            out.append(f"static const uint8_t frame_pl_{i}[] = {_c_bytes(data)};\n")
            pl = f"frame_pl_{i}"
        out.append(f"static const uint8_t frame_enc_{i}[] = {_c_bytes(enc)};\n")
        entries.append(f"{{{t}, {s}, {len(data)}, {pl}, {len(enc)}, frame_enc_{i}}}")
    out.append("static const frame_case_t frame_cases[] = {" + ",".join(entries) + "};\n")
    out.append(f"#define N_FRAME_CASES {len(v.frames)}u\n")
    labels = ",".join(f'"class {k}"' for k in range(SESSION_CLASSES))
    out.append(f"static const char *const session_labels[] = {{{labels}}};\n")
    extra = (
        f", .window = {SESSION_WINDOW}, .stride = {SESSION_STRIDE}, "
        f".n_classes = {SESSION_CLASSES}, .rate_hz = 50.0f, .output_scale = 0x1p-8f, "
        f".output_zero_point = -128, .input_dtype = 9, .output_dtype = 9, .input_ndims = 3, "
        f".output_ndims = 2, .input_dims = {{1, {SESSION_WINDOW}, {SESSION_CH}}}, "
        f".output_dims = {{1, {SESSION_CLASSES}}}, .model_crc32 = 0xC0FFEE01u, "
        f'.arena_bytes = 4096, .board_name = "qemu-an386", .firmware_version = "test", '
        f".labels = session_labels"
    )
    out.append(_c_config("session_cfg", v.session_cfg, extra))
    out.append(f"static const uint8_t session_in[] = {_c_bytes(v.session_in)};\n")
    out.append(f"#define SESSION_CHUNK {SESSION_CHUNK}u\n")
    out.append(f"static const float stream_samples[] = {_c_floats(v.stream_samples)};\n")
    out.append(f"#define N_STREAM_SAMPLES {len(v.stream_samples)}u\n")
    path.write_text("".join(out))


def build_host(gen_dir: Path, core_dir: Path, out: Path, cc: str = "gcc") -> Path:
    """The harness for the host."""
    cmd = [cc, *WARN, "-O2", "-I", str(core_dir), "-I", str(gen_dir), "-o", str(out),
           str(HERE / "test_main.c"), str(core_dir / "tinyhar_core.c")]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


def build_arm(gen_dir: Path, core_dir: Path, out: Path) -> Path:
    """The harness as a bare-metal Cortex-M4F image for QEMU's mps2-an386."""
    cmd = ["arm-none-eabi-gcc", *ARM_FLAGS, *WARN, "-O2", "-DTINYHAR_SEMIHOSTING",
           "-ffunction-sections", "-fdata-sections", "-nostartfiles",
           "-T", str(HERE / "mps2_an386.ld"), "-Wl,--gc-sections",
           "-I", str(core_dir), "-I", str(gen_dir), "-o", str(out),
           str(HERE / "startup_m4.c"), str(HERE / "test_main.c"), str(core_dir / "tinyhar_core.c"),
           "--specs=nano.specs", "--specs=nosys.specs"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


def run_qemu(
    elf: Path, timeout: float = 60, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """QEMU mps2-an386 with semihosting on `elf`; `extra` options (e.g. -icount shift=0)."""
    cmd = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
           "-semihosting-config", "enable=on,target=native", *extra,
           "-kernel", str(elf)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def parse_output(text: str) -> dict[str, object]:
    """{'W': {case: bytes}, 'E': {case: bytes}, 'D': {case: str}, 'S': [bytes], 'done': bool}."""
    res: dict[str, object] = {"W": {}, "E": {}, "D": {}, "S": [], "done": False}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "DONE":
            res["done"] = True
        elif parts[0] in ("W", "E"):
            res[parts[0]][int(parts[1])] = bytes.fromhex(parts[2] if len(parts) > 2 else "")
        elif parts[0] == "D":
            res["D"][int(parts[1])] = parts[2]
        elif parts[0] == "S":
            res["S"].append(bytes.fromhex(parts[1]))
    return res
