"""`dataset.toml`: what a folder of CSV recordings holds (rate, channels and units, labels,
subjects). Read and checked here; a bad field stops with one line naming the file and the field."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyhar.data.classes import class_name_problem, shown
from tinyhar.data.units import KINDS, canonical_unit, to_training_factor
from tinyhar.errors import TinyharError

MANIFEST = "dataset.toml"
FORMAT = 1
AXES = ("x", "y", "z")
DEFAULT_FILES = ("*.csv", "*.csv.gz")
# Sampling rates a dataset may have: up to 10x upsampling to the model's 50 Hz (memory grows with
# the ratio), down from the fastest IMUs.
MIN_RATE_HZ, MAX_RATE_HZ = 5.0, 10_000.0


@dataclass(frozen=True)
class ManifestChannel:
    """One signal column: its kind (acc/gyro), axis and unit as recorded."""

    column: str
    kind: str
    axis: str
    unit: str

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.axis}"


@dataclass(frozen=True)
class Manifest:
    """A dataset folder's description; `path` is the dataset.toml it was read from."""

    name: str
    rate_hz: float
    channels: list[ManifestChannel]
    label_column: str
    classes: list[str]
    drop_labels: list[str] = field(default_factory=list)
    label_names: dict[str, str] = field(default_factory=dict)
    subject_pattern: str | None = None
    subject_column: str | None = None
    session_column: str | None = None
    time_column: str | None = None
    files: list[str] = field(default_factory=lambda: list(DEFAULT_FILES))
    synthetic: bool = False
    source: str = ""
    path: Path | None = None

    def class_name(self, label: str) -> str:
        """The name a class is shown and carried by the firmware under."""
        return self.label_names.get(label, label)


def read_manifest(path: Path) -> Manifest:
    """Read and check `path` (a dataset.toml, or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    where = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TinyharError(f"{where}: cannot read ({e.strerror or e})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TinyharError(
            f"{where}: not valid TOML ({e}); fix the file or re-run `tinyhar data import`"
        ) from None
    except RecursionError:
        raise TinyharError(
            f"{where}: nested too deeply to read; a dataset.toml is a flat list of fields "
            "(docs/data.md)"
        ) from None
    return parse_manifest(raw, path)


def parse_manifest(raw: dict[str, Any], path: Path) -> Manifest:
    """Check a parsed dataset.toml; TinyharError '<file>: <field> ...' on the first problem."""
    w = str(path)
    known = {
        "format",
        "name",
        "rate_hz",
        "files",
        "label_column",
        "classes",
        "drop_labels",
        "label_names",
        "subject_pattern",
        "subject_column",
        "session_column",
        "time_column",
        "synthetic",
        "source",
        "channels",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise TinyharError(
            f"{w}: unknown field {unknown[0]!r}; fields are {', '.join(sorted(known))}"
        )
    fmt = raw.get("format", FORMAT)
    if fmt != FORMAT:
        raise TinyharError(f"{w}: format {fmt!r} is not {FORMAT}; re-run `tinyhar data import`")
    rate = check_rate(_get(raw, "rate_hz", (int, float), w), f"{w}: rate_hz")
    chans = _get(raw, "channels", list, w)
    if not chans:
        raise TinyharError(f"{w}: channels is empty; list the signal columns")
    channels = [_channel(c, i, w) for i, c in enumerate(chans)]
    names = [c.name for c in channels]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise TinyharError(f"{w}: channels: two channels are {dup}; give each kind and axis once")
    classes = [str(c) for c in _get(raw, "classes", list, w)]
    if not classes:
        raise TinyharError(f"{w}: classes is empty: list the label values to learn")
    check_class_names(classes, f"{w}: classes", "label value")
    subject_pattern = _opt(raw, "subject_pattern", str, w)
    subject_column = _opt(raw, "subject_column", str, w)
    if (subject_pattern is None) == (subject_column is None):
        raise TinyharError(
            f"{w}: give exactly one of subject_pattern (a regex on file names) and subject_column"
        )
    if subject_pattern is not None:
        subject_regex(subject_pattern, f"{w}: subject_pattern")
    label_names = {str(k): str(v) for k, v in (_opt(raw, "label_names", dict, w) or {}).items()}
    check_class_names([label_names.get(c, c) for c in classes], f"{w}: label_names", "class name")
    files = _opt(raw, "files", list, w) or list(DEFAULT_FILES)
    for entry in files:
        check_files_entry(entry, w)
    return Manifest(
        name=str(_opt(raw, "name", str, w) or path.parent.name),
        rate_hz=float(rate),
        channels=channels,
        label_column=_get(raw, "label_column", str, w),
        classes=classes,
        drop_labels=[str(d) for d in (_opt(raw, "drop_labels", list, w) or [])],
        label_names=label_names,
        subject_pattern=subject_pattern,
        subject_column=subject_column,
        session_column=_opt(raw, "session_column", str, w),
        time_column=_opt(raw, "time_column", str, w),
        files=[str(f) for f in files],
        synthetic=bool(_opt(raw, "synthetic", bool, w) or False),
        source=str(_opt(raw, "source", str, w) or ""),
        path=path,
    )


def check_class_names(names: list[str], where: str, what: str) -> None:
    """Class names a model can carry: each a clean name (`class_name_problem`), no two the same;
    one line naming the first that is not."""
    for name in names:
        problem = class_name_problem(name)
        if problem is not None:
            raise TinyharError(f"{where}: {what} {shown(name)} {problem}")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TinyharError(f"{where}: two classes are {shown(name)}: give each class once")
        seen.add(name)


def check_rate(rate: Any, what: str) -> float:
    """A dataset's sampling rate within MIN_RATE_HZ..MAX_RATE_HZ; one line leading with `what`
    (a manifest field or an option) otherwise."""
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise TinyharError(f"{what} {rate!r} must be a number of Hz")
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise TinyharError(
            f"{what} {rate!r} is not within {MIN_RATE_HZ:g}..{MAX_RATE_HZ:g} Hz (the model runs at "
            "50 Hz; slower recordings hold too little of a movement to upsample)"
        )
    return float(rate)


def check_files_entry(entry: Any, where: str) -> str:
    """A `files` glob that stays in the dataset folder: relative, without `..`; one line naming
    the entry otherwise."""
    if not isinstance(entry, str) or not entry.strip():
        raise TinyharError(f'{where}: files entry {entry!r} must be a glob like "*.csv"')
    parts = entry.replace("\\", "/").split("/")
    if entry.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", entry) or ".." in parts:
        raise TinyharError(
            f"{where}: files entry {entry!r} reaches outside the dataset folder: give globs of "
            'the recordings beside dataset.toml (like "*.csv" or "subject1/*.csv")'
        )
    return entry


def _channel(raw: Any, i: int, w: str) -> ManifestChannel:
    where = f"{w}: channels[{i}]"
    if not isinstance(raw, dict):
        raise TinyharError(f"{where} must be a table with column, kind, axis, unit")
    column = _get(raw, "column", str, where)
    kind = _get(raw, "kind", str, where)
    if kind not in KINDS:
        raise TinyharError(f"{where}.kind {kind!r} is not one of {', '.join(KINDS)}")
    axis = _get(raw, "axis", str, where)
    if axis not in AXES:
        raise TinyharError(f"{where}.axis {axis!r} is not one of {', '.join(AXES)}")
    unit = _get(raw, "unit", str, where)
    to_training_factor(kind, unit, f"{where}.unit")  # refuses an unknown or wrong-kind unit
    return ManifestChannel(column, kind, axis, canonical_unit(unit) or unit)


def _get(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise TinyharError(f"{where}: missing field {key!r}; see docs/data.md")
    return _check(d[key], key, typ, where)


def _opt(d: dict[str, Any], key: str, typ: type, where: str) -> Any:
    return _check(d[key], key, typ, where) if key in d else None


def _check(value: Any, key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, typ):
        name = typ.__name__ if isinstance(typ, type) else "number"
        kinds = {"str": "a string", "list": "a list", "dict": "a table", "bool": "true or false"}
        raise TinyharError(f"{where}: {key} must be {kinds.get(name, name)}, got {value!r}")
    return value


def subject_regex(pattern: str, name: str) -> re.Pattern[str]:
    """`pattern` compiled, with a group for the subject number; `name` (an option or a manifest
    field) leads the one line that refuses it."""
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise TinyharError(f"{name} {pattern!r} is not a regex ({e})") from None
    if "subject" not in rx.groupindex and rx.groups < 1:
        raise TinyharError(f"{name} needs a group with the subject number, like (?P<subject>\\d+)")
    return rx


def manifest_toml(m: Manifest) -> str:
    """The text of a dataset.toml for `m`, with a comment on every field."""

    def s(v: str) -> str:
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string

    def lst(vs: list[str]) -> str:
        return "[" + ", ".join(s(v) for v in vs) + "]"

    lines = [
        "# tinyhar dataset manifest (docs/data.md): what the recordings in this folder hold.",
        f"format = {FORMAT}",
        f"name = {s(m.name)}",
    ]
    if m.source:
        lines.append(f"source = {s(m.source)}  # where the recordings were imported from")
    if m.synthetic:
        lines.append("synthetic = true")
    lines += [
        f"rate_hz = {m.rate_hz:g}  # samples per second of every recording",
        f"files = {lst(m.files)}  # the recordings, as globs in this folder",
    ]
    if m.time_column:
        lines.append(f"time_column = {s(m.time_column)}  # not read for training")
    lines += [
        f"label_column = {s(m.label_column)}",
        f"classes = {lst(m.classes)}  # label values kept, in class order",
        f"drop_labels = {lst(m.drop_labels)}  # label values (globs) dropped; empty labels always",
    ]
    if m.subject_pattern is not None:
        lines.append(f"subject_pattern = {s(m.subject_pattern)}  # regex on file names")
    if m.subject_column is not None:
        lines.append(f"subject_column = {s(m.subject_column)}")
    if m.session_column is not None:
        lines.append(f"session_column = {s(m.session_column)}")
    if m.label_names:
        lines += ["", "[label_names]  # label value -> the name shown and put in the firmware"]
        lines += [f"{s(k)} = {s(v)}" for k, v in m.label_names.items()]
    for c in m.channels:
        lines += [
            "",
            "[[channels]]  # kind: acc | gyro; unit: g, mg, m/s^2 | rad/s, deg/s",
            f"column = {s(c.column)}",
            f"kind = {s(c.kind)}",
            f"axis = {s(c.axis)}",
            f"unit = {s(c.unit)}",
        ]
    return "\n".join(lines) + "\n"
