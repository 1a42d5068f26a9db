"""A synthetic MHEALTH-format dataset: same files, columns, units and number format as the UCI logs.

Each limb (chest, left ankle, right lower arm) has a posture and an activity-specific motion
(orientation angles over time); the accelerometer reads gravity rotated into the sensor plus linear
acceleration and impacts, the gyroscope the angular rate, the magnetometer the rotated earth field.
Subjects differ in cadence, amplitude, sensor mounting, noise and gyroscope bias.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyhar.data.mhealth import LABEL_NAMES, RATE_HZ, SYNTHETIC_MARKER
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_path

SUBJECTS = 10  # synthetic subjects `data synth` and `demo` make by default
G = 9.80665
CHEST, ANKLE, ARM = 0, 1, 2
GAIT, REPEAT, CYCLE, JUMP, SWAY = "gait", "repeat", "cycle", "jump", "sway"


@dataclass(frozen=True)
class Motion:
    """How one activity moves the three limbs (chest, ankle, arm); angles in degrees."""

    kind: str  # gait | repeat | cycle | jump | sway
    pitch: tuple[float, float, float]  # posture: forward tilt of each limb
    roll: tuple[float, float, float]  # posture: sideways tilt
    jitter: tuple[float, float, float]  # per-segment spread of the posture
    cadence: float  # Hz: steps (gait), repetitions, pedal turns or jumps
    swing: tuple[float, float, float]  # oscillation amplitude of each limb's pitch
    bounce: tuple[float, float, float]  # linear acceleration along the limb, m/s^2
    impact: tuple[float, float, float]  # impact peak per contact, m/s^2
    heart_rate: float  # bpm
    flight: float = 0.0  # fraction of a jump cycle in free fall


MOTIONS: dict[int, Motion] = {
    # label: kind, posture pitch and roll (chest, ankle, arm), posture jitter, cadence Hz,
    #        swing deg, bounce m/s^2, impact m/s^2, heart rate bpm[, flight]
    1: Motion(SWAY, (0, 0, 8), (0, 0, 0), (3, 3, 12), 0.25, (1, 0.5, 2), (0, 0, 0), (0, 0, 0), 75),
    2: Motion(SWAY, (-10, 25, 25), (0, 5, 0), (5, 8, 15), 0.2, (1, 1, 3), (0, 0, 0), (0, 0, 0), 70),
    3: Motion(
        SWAY, (-88, -82, -75), (5, 0, 15), (5, 6, 12), 0.15, (0.5, 1, 2), (0, 0, 0), (0, 0, 0), 64
    ),
    4: Motion(GAIT, (5, 0, 5), (0, 0, 0), (3, 3, 10), 1.8, (3, 30, 18), (2, 3, 1.5), (3, 9, 2), 95),
    5: Motion(
        GAIT, (10, 14, 6), (0, 0, 0), (3, 4, 10), 1.6, (4, 32, 16), (3, 6, 1.8), (3, 7, 2), 110
    ),
    6: Motion(
        REPEAT, (0, 0, 0), (0, 0, 0), (3, 2, 8), 0.35, (70, 3, 75), (0.5, 0, 0.5), (0, 0, 0), 90
    ),
    7: Motion(
        REPEAT, (0, 0, 5), (0, 0, 0), (2, 2, 5), 0.42, (3, 1, 155), (0, 0, 0.8), (0, 0, 0), 88
    ),
    8: Motion(
        REPEAT, (5, 0, 30), (0, 0, 0), (3, 3, 12), 0.45, (25, 45, 20), (1.5, 1, 1), (0, 0, 0), 98
    ),
    9: Motion(
        CYCLE, (15, 30, 55), (0, 0, 5), (4, 6, 12), 1.2, (2, 25, 3), (0.5, 4, 0.8), (0, 0, 0), 112
    ),
    10: Motion(
        GAIT, (8, 5, 70), (0, 0, 0), (3, 4, 12), 2.5, (4, 45, 30), (5, 10, 4), (6, 20, 4), 140
    ),
    11: Motion(
        GAIT, (12, 8, 75), (0, 0, 0), (3, 4, 12), 2.9, (5, 60, 35), (6, 12, 5), (8, 28, 5), 160
    ),
    12: Motion(
        JUMP,
        (10, 10, 20),
        (0, 0, 0),
        (4, 5, 12),
        1.1,
        (10, 25, 30),
        (4, 5, 4),
        (15, 35, 12),
        150,
        0.35,
    ),
}

# Null-class fragments: standing around, fidgeting with the arms, shuffling steps.
NULL_MOTIONS: list[tuple[float, Motion]] = [
    (
        0.55,
        Motion(SWAY, (0, 3, 30), (0, 0, 5), (6, 8, 30), 0.2, (2, 2, 8), (0, 0, 0), (0, 0, 0), 85),
    ),
    (
        0.25,
        Motion(
            REPEAT, (3, 2, 30), (0, 0, 0), (5, 5, 25), 0.3, (3, 2, 35), (0, 0, 0.5), (0, 0, 0), 85
        ),
    ),
    (
        0.20,
        Motion(
            GAIT, (3, 0, 10), (0, 0, 0), (3, 3, 15), 1.4, (2, 15, 8), (1, 1.5, 1), (1.5, 4, 1), 90
        ),
    ),
]

# Limb frame (x forward, y left, z along the limb, up when standing) -> sensor frame.
_TO_CHEST = np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]], dtype=np.float64)
_TO_ANKLE = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)
_TO_ARM = np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]], dtype=np.float64)
_MOUNT_DEG = ((0, 0, 0), (0, 0, 12), (0, 0, 28))  # typical mounting (roll, pitch, yaw) per limb
_EARTH_FIELD = np.array([0.35, 0.0, -0.45])  # north, east-ish, up: local units like the logs
_ROW_FORMAT = "\t".join(["%.5g"] * 23) + "\t%d\n"


def synthesize(out_dir: str | Path, subjects: int = SUBJECTS, seed: int = 0) -> Path:
    """Write mHealth_subject1..N.log and SYNTHETIC.md into `out_dir` atomically; return it."""
    out = Path(out_dir)
    if not 1 <= subjects <= 99:
        raise TinyharError(f"--subjects must be between 1 and 99, not {subjects}")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _is_synthetic(out))):
        raise TinyharError(
            f"{out} exists and is not a synthetic dataset folder; choose another --out or remove it"
        )
    try:
        with atomic_path(out) as tmp:
            tmp.mkdir()
            for s in range(1, subjects + 1):
                signals, labels = subject_session(s, seed)
                _write_log(tmp / f"mHealth_subject{s}.log", signals, labels)
            (tmp / SYNTHETIC_MARKER).write_text(_marker_text(subjects, seed), encoding="utf-8")
    except OSError as e:
        raise TinyharError(f"cannot write {out} ({e.strerror}); choose a writable --out") from None
    return out


def subject_session(subject: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One subject's session: (n, 23) float64 signals in UCI column order and (n,) int labels."""
    rng = np.random.default_rng([seed, subject])
    person = _Person(rng)
    segments = _plan(rng)
    parts = [_segment(rng, person, label, n, motion) for label, n, motion in segments]
    n_total = sum(n for _, n, _ in segments)
    labels = np.concatenate([np.full(n, label, dtype=np.int16) for label, n, _ in segments])

    def cat(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts], axis=-1)

    pitch = _smooth(cat("pitch"), RATE_HZ) + cat("pitch_osc")
    roll = _smooth(cat("roll"), RATE_HZ) + cat("roll_osc")
    yaw = _smooth(cat("yaw"), 2 * RATE_HZ)
    lin, flight = cat("lin"), cat("flight")
    heart_rate = _smooth(cat("hr"), 5 * RATE_HZ)

    out = np.empty((n_total, 23), dtype=np.float64)
    cols = {CHEST: (0, None, None), ANKLE: (5, 8, 11), ARM: (14, 17, 20)}
    to_sensor = {CHEST: _TO_CHEST, ANKLE: _TO_ANKLE, ARM: _TO_ARM}
    for limb, (c_acc, c_gyro, c_mag) in cols.items():
        p, r, y = np.radians(pitch[limb]), np.radians(roll[limb]), np.radians(yaw)
        up = np.stack([-np.sin(p), np.cos(p) * np.sin(r), np.cos(p) * np.cos(r)])
        acc_limb = G * up * (1.0 - flight) + lin[limb]
        m = person.mount[limb] @ to_sensor[limb]
        acc = m @ acc_limb + rng.normal(0, person.acc_noise, (3, n_total))
        out[:, c_acc : c_acc + 3] = acc.T
        if c_gyro is None or c_mag is None:
            continue
        rates = np.stack([np.gradient(roll[limb]), np.gradient(pitch[limb]), np.gradient(yaw)])
        gyro = m @ (rates * RATE_HZ) + person.gyro_bias[limb][:, None]
        gyro += rng.normal(0, person.gyro_noise, (3, n_total))
        out[:, c_gyro : c_gyro + 3] = gyro.T
        field = _inverse_rotate(_EARTH_FIELD, y, p, r)
        mag = m @ field + person.mag_offset[limb][:, None] + rng.normal(0, 0.01, (3, n_total))
        out[:, c_mag : c_mag + 3] = mag.T
    out[:, 3:5] = _ecg(rng, person, heart_rate, lin[CHEST][2]).T
    return out, labels


class _Person:
    """What makes one synthetic subject differ from another."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.cadence = float(np.clip(rng.normal(1.0, 0.06), 0.88, 1.12))
        self.amplitude = float(rng.uniform(0.8, 1.2))
        self.harmonic = rng.uniform(0.1, 0.35, 3)  # gait signature: 2nd harmonic per limb
        self.harmonic_phase = rng.uniform(0, 2 * np.pi, 3)
        self.mount = [_rotation(*(np.array(d) + rng.normal(0, 6, 3))) for d in _MOUNT_DEG]
        self.acc_noise = float(rng.uniform(0.04, 0.15))
        self.gyro_noise = float(rng.uniform(0.5, 2.0))
        self.gyro_bias = [rng.normal(0, 1.5, 3) for _ in range(3)]
        self.mag_offset = [rng.normal(0, 0.05, 3) for _ in range(3)]
        self.heart_rate = float(rng.normal(0, 6))
        self.ecg_gain = float(rng.uniform(0.6, 1.4))


def _plan(rng: np.random.Generator) -> list[tuple[int, int, Motion]]:
    """Activities 1..12 in protocol order, each one segment, with null stretches around them."""
    active = rng.uniform(20, 40, 12)
    null_total = active.sum() * rng.uniform(1.2, 1.45)
    gaps = 10 + (null_total - 13 * 10) * rng.dirichlet(np.full(13, 4.0))
    segments: list[tuple[int, int, Motion]] = []
    for i in range(13):
        segments += _null_stretch(rng, gaps[i])
        if i < 12:
            segments.append((i + 1, int(active[i] * RATE_HZ), MOTIONS[i + 1]))
    return segments


def _null_stretch(rng: np.random.Generator, seconds: float) -> list[tuple[int, int, Motion]]:
    weights = np.array([w for w, _ in NULL_MOTIONS])
    parts = []
    left = int(seconds * RATE_HZ)
    while left > 0:
        n = min(left, int(rng.uniform(4, 12) * RATE_HZ))
        if left - n < 2 * RATE_HZ:
            n = left
        parts.append((0, n, NULL_MOTIONS[rng.choice(len(weights), p=weights)][1]))
        left -= n
    return parts


def _segment(
    rng: np.random.Generator, person: _Person, label: int, n: int, mo: Motion
) -> dict[str, np.ndarray]:
    """Posture targets and enveloped motion of one segment (limbs on axis 0, samples last)."""
    t = np.arange(n) / RATE_HZ
    jitter = np.array(mo.jitter)
    pitch = np.array(mo.pitch) + rng.normal(0, 1, 3) * jitter
    roll = np.array(mo.roll) + rng.normal(0, 0.5, 3) * jitter
    cadence = mo.cadence * rng.normal(1.0, 0.04) * (person.cadence if mo.kind == GAIT else 1.0)
    if mo.kind in (REPEAT, CYCLE, JUMP):
        cadence *= person.cadence ** rng.uniform(0.3, 1.0)
    amp = person.amplitude * rng.normal(1.0, 0.1)
    env = _envelope(n)
    phase0 = rng.uniform(0, 2 * np.pi)
    # gait: chest moves once per step, ankle and arm once per stride (every other step)
    mult = np.array([1.0, 0.5, 0.5]) if mo.kind == GAIT else np.ones(3)
    phase = 2 * np.pi * cadence * mult[:, None] * t[None, :] + phase0
    phase[ARM] += np.pi  # arm swings against the same-side leg

    swing = np.array(mo.swing)[:, None] * amp
    if mo.kind == REPEAT:
        wave = (1 - np.cos(phase)) / 2  # from the posture out to the extreme and back
    else:
        h = person.harmonic[:, None]
        wave = np.sin(phase) + h * np.sin(2 * phase + person.harmonic_phase[:, None])
    if mo.kind == SWAY:
        wave = wave + 0.5 * np.sin(2.7 * phase + rng.uniform(0, 6))
    pitch_osc = swing * wave * env
    roll_osc = 0.25 * swing * np.cos(phase) * env

    lin = np.zeros((3, 3, n))
    bounce = np.array(mo.bounce)[:, None] * amp
    step_phase = 2 * np.pi * cadence * t + phase0
    lin[:, 2] = bounce * np.sin(step_phase)[None, :]
    lin[:, 0] = 0.3 * bounce * np.cos(step_phase)[None, :]
    if mo.kind == CYCLE:
        lin[ANKLE, 0] = bounce[ANKLE] * np.cos(phase[ANKLE])
        lin[ANKLE, 2] = bounce[ANKLE] * np.sin(phase[ANKLE])
    flight: np.ndarray = np.zeros(n)
    impacts = np.array(mo.impact) * amp
    if impacts.any():
        at = mo.flight if mo.kind == JUMP else 0.0
        for limb in range(3):
            # the ankle lands once per its own cycle; chest and arm feel every step
            hits = _crossings(phase[ANKLE] if limb == ANKLE else step_phase, at)
            pulse = _impact_train(hits, n) * impacts[limb] * rng.uniform(0.8, 1.2)
            lin[limb, 2] += pulse
            lin[limb, 0] += 0.4 * pulse
        if mo.kind == JUMP:
            u = (step_phase / (2 * np.pi)) % 1.0
            flight = (u < mo.flight) * 1.0
    lin *= env

    return {
        "pitch": np.repeat(pitch[:, None], n, axis=1),
        "roll": np.repeat(roll[:, None], n, axis=1),
        "yaw": np.full(n, rng.uniform(-180, 180)),
        "pitch_osc": pitch_osc,
        "roll_osc": roll_osc,
        "lin": lin,
        "flight": flight * env,
        "hr": np.full(n, mo.heart_rate + person.heart_rate + rng.normal(0, 4)),
    }


def _ecg(
    rng: np.random.Generator, person: _Person, heart_rate: np.ndarray, chest_motion: np.ndarray
) -> np.ndarray:
    """Two ECG leads in mV: P, QRS and T waves at the heart rate, baseline wander, motion noise."""
    n = heart_rate.size
    beat = np.cumsum(heart_rate / 60.0 / RATE_HZ) + rng.uniform()
    u = beat % 1.0
    waves = [
        (0.15, 0.12, 0.025),
        (0.27, -0.1, 0.008),
        (0.3, 1.0, 0.009),
        (0.33, -0.25, 0.01),
        (0.55, 0.3, 0.045),
    ]
    lead = np.zeros((2, n))
    for center, height, width in waves:
        g = np.exp(-0.5 * ((u - center) / width) ** 2)
        lead[0] += height * g
        lead[1] += height * g * (0.7 if height > 0.5 else 0.85)
    t = np.arange(n) / RATE_HZ
    wander = 0.08 * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 6))
    lead = lead * person.ecg_gain + wander + 0.01 * chest_motion
    return lead + rng.normal(0, 0.02, (2, n))


def _envelope(n: int, ramp: int = RATE_HZ // 2) -> np.ndarray:
    env = np.ones(n)
    r = min(ramp, n // 2)
    if r > 0:
        fade = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, r))
        env[:r], env[n - r :] = fade, fade[::-1]
    return env


def _crossings(phase: np.ndarray, at: float) -> np.ndarray:
    """Sample indices where the cycle position (phase / 2 pi, mod 1) passes `at`."""
    cycles = np.floor(phase / (2 * np.pi) - at)
    return np.flatnonzero(np.diff(cycles) > 0) + 1


def _impact_train(hits: np.ndarray, n: int) -> np.ndarray:
    """A damped ringing pulse (about 0.15 s) at each contact."""
    k = np.arange(int(0.2 * RATE_HZ)) / RATE_HZ
    kernel = np.exp(-k / 0.04) * np.cos(2 * np.pi * 9 * k)
    spikes = np.zeros(n)
    spikes[hits] = 1.0
    return np.convolve(spikes, kernel)[:n]


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average along the last axis (edges held), so posture changes take time."""
    kernel = np.ones(width) / width
    pad = [(0, 0)] * (x.ndim - 1) + [(width // 2, width - 1 - width // 2)]
    xp = np.pad(x, pad, mode="edge")
    return np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), -1, xp)


def _rotation(roll_deg: float, pitch_deg: float, yaw_deg: float) -> np.ndarray:
    r, p, y = np.radians([roll_deg, pitch_deg, yaw_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _inverse_rotate(v: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray):
    """World vector `v` seen in a frame rotated by Rz(yaw) Ry(pitch) Rx(roll), per sample."""
    x = np.cos(yaw) * v[0] + np.sin(yaw) * v[1]
    y = -np.sin(yaw) * v[0] + np.cos(yaw) * v[1]
    z = np.full_like(yaw, v[2])
    x, z = np.cos(pitch) * x - np.sin(pitch) * z, np.sin(pitch) * x + np.cos(pitch) * z
    y, z = np.cos(roll) * y + np.sin(roll) * z, -np.sin(roll) * y + np.cos(roll) * z
    return np.stack([x, y, z])


def _write_log(path: Path, signals: np.ndarray, labels: np.ndarray) -> None:
    """Tab-separated rows like the UCI logs: 23 values with 5 significant digits, integer label."""
    rows = np.column_stack([signals, labels.astype(np.float64)])
    text = (_ROW_FORMAT * len(rows)) % tuple(rows.ravel().tolist())
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _is_synthetic(folder: Path) -> bool:
    return (folder / SYNTHETIC_MARKER).exists()


def _marker_text(subjects: int, seed: int) -> str:
    names = "\n".join(f"- {k}: {v}" for k, v in LABEL_NAMES.items())
    return f"""# SYNTHETIC data — not MHEALTH recordings

Made by `tinyhar data synth --subjects {subjects} --seed {seed}`. The same command writes the same
bytes. These files imitate the format of the UCI MHEALTH dataset (mHealth_subjectN.log: 23
tab-separated sensor columns and a label, 50 Hz; accelerometers in m/s^2, gyroscopes in deg/s) so
that the whole pipeline can run offline, but no person wore a sensor to make them: the motions come
from a simple model of posture, cadence and impacts per activity. Accuracy measured on this data
says nothing about real activity recognition. For the real data run `tinyhar data download`.

Labels:
{names}
"""
