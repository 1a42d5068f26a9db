"""Physical units of IMU channels: their spellings, the training units and the factors between.

Training units are MHEALTH's: acceleration in m/s^2, angular rate in deg/s. Every dataset is
converted into them when it is read, and every board's IMU reading on the device, with the same
factors (`UNIT_FACTORS`, used by `board.boards.Board.unit_factor`)."""

from __future__ import annotations

from tinyhar.errors import TinyharError

KINDS = ("acc", "gyro")
TRAINING_UNITS: dict[str, str] = {"acc": "m/s^2", "gyro": "deg/s"}
STANDARD_GRAVITY = 9.80665  # m/s^2 per g

# Factor from a unit (a dataset's or an IMU library's) to a training unit.
UNIT_FACTORS: dict[tuple[str, str], float] = {
    ("g", "m/s^2"): STANDARD_GRAVITY,
    ("mg", "m/s^2"): STANDARD_GRAVITY / 1000,
    ("m/s^2", "m/s^2"): 1.0,
    ("deg/s", "deg/s"): 1.0,
    ("rad/s", "deg/s"): 57.29577951308232,
    ("rad/s", "rad/s"): 1.0,
    ("deg/s", "rad/s"): 0.017453292519943295,
}

# The widest full scales of common MEMS IMUs, in training units: ±16 g and ±2000 deg/s. A value
# beyond RANGE_MARGIN times these is no reading but a wrong unit or a broken file.
SENSOR_RANGE: dict[str, float] = {"acc": 16 * STANDARD_GRAVITY, "gyro": 2000.0}
RANGE_MARGIN = 4.0

# Spellings users write -> the unit's one name here.
_SPELLINGS: dict[str, str] = {
    "g": "g",
    "mg": "mg",
    "m/s^2": "m/s^2",
    "m/s²": "m/s^2",
    "m/s2": "m/s^2",
    "ms^-2": "m/s^2",
    "rad/s": "rad/s",
    "rad/sec": "rad/s",
    "rads": "rad/s",
    "deg/s": "deg/s",
    "dps": "deg/s",
    "°/s": "deg/s",
    "deg/sec": "deg/s",
}
UNITS_OF_KIND: dict[str, tuple[str, ...]] = {
    "acc": ("g", "mg", "m/s^2"),
    "gyro": ("rad/s", "deg/s"),
}


def canonical_unit(unit: str) -> str | None:
    """The unit's name here ('m/s²' -> 'm/s^2'); None for a unit tinyhar does not know."""
    return _SPELLINGS.get(unit.strip().replace(" ", "").lower())


def value_limit(kind: str) -> float:
    """The largest magnitude a `kind` reading may have in training units (range x margin)."""
    return SENSOR_RANGE[kind] * RANGE_MARGIN


def to_training_factor(kind: str, unit: str, where: str) -> float:
    """Factor turning `unit` of a `kind` channel into the training unit; TinyharError naming
    `where` (file and field) when the unit is unknown or belongs to the other kind."""
    if kind not in KINDS:
        raise TinyharError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    name = canonical_unit(unit)
    if name is None or name not in UNITS_OF_KIND[kind]:
        raise TinyharError(
            f"{where}: unit {unit!r} is not a {kind} unit; use one of "
            f"{', '.join(UNITS_OF_KIND[kind])}"
        )
    return UNIT_FACTORS[(name, TRAINING_UNITS[kind])]
