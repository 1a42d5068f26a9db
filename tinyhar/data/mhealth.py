"""Read MHEALTH the ways users hold it: the UCI log folder (plain or gzip), one log, the UCI zip,
or the Kaggle single CSV. Every broken input stops with one line naming the file and the line."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import itertools
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import numpy as np
import pandas as pd

from tinyhar.errors import TinyharError
from tinyhar.run.records import Channel

RATE_HZ = 50
N_SENSOR_COLUMNS = 23
N_COLUMNS = N_SENSOR_COLUMNS + 1
MAX_LABEL = 12
SYNTHETIC_MARKER = "SYNTHETIC.md"

COLUMN_NAMES: list[str] = [
    "chest_acc_x",
    "chest_acc_y",
    "chest_acc_z",
    "ecg_lead_1",
    "ecg_lead_2",
    "ankle_acc_x",
    "ankle_acc_y",
    "ankle_acc_z",
    "ankle_gyro_x",
    "ankle_gyro_y",
    "ankle_gyro_z",
    "ankle_mag_x",
    "ankle_mag_y",
    "ankle_mag_z",
    "arm_acc_x",
    "arm_acc_y",
    "arm_acc_z",
    "arm_gyro_x",
    "arm_gyro_y",
    "arm_gyro_z",
    "arm_mag_x",
    "arm_mag_y",
    "arm_mag_z",
]

COLUMN_UNITS: list[str] = (
    ["m/s^2"] * 3
    + ["mV"] * 2
    + ["m/s^2"] * 3
    + ["deg/s"] * 3
    + ["local"] * 3
    + ["m/s^2"] * 3
    + ["deg/s"] * 3
    + ["local"] * 3
)

LABEL_NAMES: dict[int, str] = {
    0: "Null",
    1: "Standing still",
    2: "Sitting and relaxing",
    3: "Lying down",
    4: "Walking",
    5: "Climbing stairs",
    6: "Waist bends forward",
    7: "Frontal elevation of arms",
    8: "Knees bending (crouching)",
    9: "Cycling",
    10: "Jogging",
    11: "Running",
    12: "Jump front & back",
}

SENSOR_SETS = ("arm", "ankle", "both")

# Kaggle CSV column -> 0-based column in the 23-column UCI layout.
KAGGLE_COLUMNS: dict[str, int] = {
    "alx": 5,
    "aly": 6,
    "alz": 7,
    "glx": 8,
    "gly": 9,
    "glz": 10,
    "arx": 14,
    "ary": 15,
    "arz": 16,
    "grx": 17,
    "gry": 18,
    "grz": 19,
}

_LOG_NAME = re.compile(r"(?:^|/)mHealth_subject(\d+)\.log(\.gz)?$")
_SUBJECT_VALUE = re.compile(r"^\s*(?:subject)?\s*(\d+)\s*$", re.IGNORECASE)
_SCAN_LINES = 20_000
_Hint = tuple[str, object] | None  # ("line", n) | ("row", i) | ("text", s): where a parse failed
_HINT_DATA = "run `tinyhar data download` or `tinyhar data synth --out DIR`"


@dataclass(frozen=True)
class Recording:
    """One subject's session: signals (n, 23) float32 in UCI column order, labels (n,) int16."""

    subject: int
    signals: np.ndarray
    labels: np.ndarray
    source: str


@dataclass(frozen=True)
class MhealthData:
    """All recordings read from one place, and whether they are synthetic."""

    recordings: list[Recording]
    synthetic: bool
    source: str


def channels(sensors: str) -> list[Channel]:
    """Accelerometer+gyroscope channels of a sensor set: 'arm', 'ankle' or 'both' (ankle, arm)."""
    starts = {"ankle": 5, "arm": 14}
    if sensors not in SENSOR_SETS:
        raise TinyharError(
            f"unknown sensor set '{sensors}'; choose one of {', '.join(SENSOR_SETS)}"
        )
    limbs = ["ankle", "arm"] if sensors == "both" else [sensors]
    out = []
    for limb in limbs:
        for k in range(6):
            col = starts[limb] + k
            kind = "acc" if k < 3 else "gyro"
            out.append(Channel(COLUMN_NAMES[col], col, COLUMN_UNITS[col], kind, "xyz"[k % 3]))
    return out


def load_mhealth(path: str | Path) -> MhealthData:
    """Read a folder of mHealth_subjectN.log(.gz), one such file, the UCI zip, or the Kaggle CSV."""
    path = Path(path).expanduser()
    if not path.exists():
        raise TinyharError(
            f"{path}: no such file or folder; give a folder of mHealth_subjectN.log files, "
            f"the UCI zip or the Kaggle CSV ({_HINT_DATA})"
        )
    if path.is_dir():
        return _load_folder(path)
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    if _is_kaggle_csv(path):
        return _load_kaggle(path)
    subject = _subject_from_name(path.name)
    rec = _read_log(path.name, lambda: _open_maybe_gz(path), subject)
    synthetic = (path.parent / SYNTHETIC_MARKER).exists()
    return MhealthData([rec], synthetic, _describe("MHEALTH log", path, synthetic))


# --- sources ----------------------------------------------------------------------------------


def _load_folder(folder: Path) -> MhealthData:
    files: dict[int, Path] = {}
    for f in sorted(folder.iterdir()):
        m = _LOG_NAME.search(f.name)
        if m and f.is_file():
            subject = int(m.group(1))
            if subject not in files or not m.group(2):  # prefer the plain .log over its .gz
                files[subject] = f
    if not files and (folder / "MHEALTHDATASET").is_dir():
        return _load_folder(folder / "MHEALTHDATASET")
    if not files:
        raise TinyharError(
            f"{folder}: no mHealth_subjectN.log or .log.gz files in this folder; {_HINT_DATA}"
        )
    recs = [
        _read_log(f.name, functools.partial(_open_maybe_gz, f), subject)
        for subject, f in sorted(files.items())
    ]
    synthetic = (folder / SYNTHETIC_MARKER).exists()
    return MhealthData(recs, synthetic, _describe("MHEALTH logs in", folder, synthetic))


def _load_zip(path: Path) -> MhealthData:
    with zipfile.ZipFile(path) as zf:
        recs, synthetic = _read_zip(zf, path.name)
    if not recs:
        raise TinyharError(
            f"{path.name}: the zip holds no mHealth_subjectN.log files; is it the UCI MHEALTH zip?"
        )
    return MhealthData(recs, synthetic, _describe("MHEALTH zip", path, synthetic))


def _read_zip(zf: zipfile.ZipFile, zip_name: str) -> tuple[list[Recording], bool]:
    names = zf.namelist()
    synthetic = any(Path(n).name == SYNTHETIC_MARKER for n in names)
    members: dict[int, str] = {}
    for n in names:
        m = _LOG_NAME.search(n)
        if m and not n.startswith("__MACOSX"):
            members.setdefault(int(m.group(1)), n)
    if not members:
        for n in names:  # some mirrors wrap the dataset zip in another zip
            if n.lower().endswith(".zip"):
                with zf.open(n) as inner, zipfile.ZipFile(io.BytesIO(inner.read())) as izf:
                    recs, syn = _read_zip(izf, f"{zip_name}/{n}")
                if recs:
                    return recs, syn or synthetic
        return [], synthetic

    def opener(n: str) -> Callable[[], IO[bytes]]:
        if n.endswith(".gz"):
            return lambda: cast(IO[bytes], gzip.open(zf.open(n)))
        return lambda: zf.open(n)

    recs = [
        _read_log(f"{zip_name}/{Path(members[s]).name}", opener(members[s]), s)
        for s in sorted(members)
    ]
    return recs, synthetic


_KAGGLE_NEEDED = [*KAGGLE_COLUMNS, "Activity", "subject"]
_KAGGLE_DTYPES = {c: np.float64 for c in KAGGLE_COLUMNS} | {"subject": str}


def _load_kaggle(path: Path) -> MhealthData:
    name = path.name
    with _open_maybe_gz(path) as f:
        header = f.readline().decode("utf-8", "replace").strip()
    if not header:
        raise TinyharError(f"{name}: the file is empty; {_HINT_DATA}")
    missing = [c for c in _KAGGLE_NEEDED if c not in [h.strip() for h in header.split(",")]]
    if missing:
        raise TinyharError(
            f"{name} line 1: header lacks {', '.join(missing)}; expected the Kaggle MHEALTH CSV "
            "header alx,aly,alz,glx,gly,glz,arx,ary,arz,grx,gry,grz,Activity,subject"
        )
    with _open_maybe_gz(path) as f:
        parsed, hint = _kaggle_frame(f)
    if parsed is None:
        raise _kaggle_problem(path, hint)
    sensors, labels, subjects = parsed
    if len(labels) == 0:
        raise TinyharError(f"{name}: the file has a header but no rows; {_HINT_DATA}")
    full = np.full((len(labels), N_SENSOR_COLUMNS), np.nan, dtype=np.float32)
    full[:, list(KAGGLE_COLUMNS.values())] = sensors
    recs = []
    for s in sorted(set(subjects.tolist())):
        idx = np.flatnonzero(subjects == s)
        recs.append(Recording(int(s), full[idx], labels[idx], f"{name} subject{s}"))
    synthetic = (path.parent / SYNTHETIC_MARKER).exists()
    return MhealthData(recs, synthetic, _describe("MHEALTH Kaggle CSV", path, synthetic))


def _kaggle_frame(source) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray] | None, _Hint]:
    """((sensors float32, labels int16, subjects int), None) of a Kaggle CSV, or (None, a hint
    where the trouble is)."""
    try:
        df = pd.read_csv(source, dtype=_KAGGLE_DTYPES, engine="c")
        sensors = df[list(KAGGLE_COLUMNS)].to_numpy(np.float64)
        labels = pd.to_numeric(df["Activity"], errors="coerce").to_numpy(np.float64)
        subjects = df["subject"].astype(str).str.extract(_SUBJECT_VALUE.pattern, flags=re.I)[0]
    except Exception as e:
        return None, _hint_from_error(e)
    bad = ~np.isfinite(sensors).all(axis=1) | ~_label_ok(labels) | subjects.isna().to_numpy()
    if bad.any():
        return None, ("row", int(np.argmax(bad)))
    return (
        sensors.astype(np.float32),
        labels.astype(np.int16),
        subjects.astype(int).to_numpy(),
    ), None


# --- one log file -----------------------------------------------------------------------------


def _read_log(name: str, open_: Callable[[], IO[bytes]], subject: int) -> Recording:
    """Parse one log with pandas' C parser; on any problem, find the offending line and say so."""
    try:
        with open_() as f:
            df = pd.read_csv(f, sep=r"\s+", header=None, dtype=np.float64, engine="c")
    except pd.errors.EmptyDataError:
        raise TinyharError(
            f"{name}: the file is empty; delete it or re-download the data ({_HINT_DATA})"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise TinyharError(f"{name}: cannot read the file ({e}); re-download the data") from None
    except Exception as e:
        raise _log_problem(name, open_, _hint_from_error(e)) from None
    values = df.to_numpy(np.float64)
    if values.shape[0] == 0:
        raise TinyharError(f"{name}: the file is empty; delete it or re-download the data")
    if not _log_values_ok(values):
        raise _log_problem(name, open_, ("row", _first_bad_row(values)))
    return Recording(
        subject=subject,
        signals=np.ascontiguousarray(values[:, :N_SENSOR_COLUMNS], dtype=np.float32),
        labels=values[:, -1].astype(np.int16),
        source=name,
    )


def _hint_from_error(e: Exception) -> _Hint:
    """Where pandas' message says the trouble is: a line number or the offending text."""
    m = re.search(r"in line (\d+)", str(e))
    if m:
        return ("line", int(m.group(1)))
    m = re.search(r"could not convert string to float: '(.+)'", str(e))
    return ("text", m.group(1)) if m else None


def _first_bad_row(values: np.ndarray) -> int:
    """Index among non-blank lines of the first row that is short, long, non-finite, mislabelled."""
    if values.shape[1] < N_COLUMNS:
        return 0
    bad = ~np.isfinite(values[:, :N_COLUMNS]).all(axis=1)
    if values.shape[1] > N_COLUMNS:
        bad |= ~np.isnan(values[:, N_COLUMNS:]).all(axis=1)
    bad |= ~_label_ok(values[:, N_COLUMNS - 1])
    return int(np.argmax(bad))


def _log_frame(text: str) -> bool:
    """Whether a piece of a log parses cleanly (blank pieces do)."""
    try:
        values = pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, dtype=np.float64)
    except pd.errors.EmptyDataError:
        return True
    except Exception:
        return False
    return _log_values_ok(values.to_numpy(np.float64))


def _log_values_ok(values: np.ndarray) -> bool:
    return (
        values.shape[1] == N_COLUMNS
        and bool(np.isfinite(values).all())
        and _labels_ok(values[:, -1])
    )


def _log_problem(name: str, open_: Callable[[], IO[bytes]], hint: _Hint) -> TinyharError:
    def check(line: str) -> str | None:
        return _row_problem(line.split(), N_COLUMNS)

    with open_() as f:
        where = _locate(f, 1, hint, check, _log_frame)
    if where is None:
        return TinyharError(
            f"{name}: cannot parse the file as an MHEALTH log; re-download the data"
        )
    return TinyharError(f"{name} line {where[0]}: {where[1]}; {_FIX}")


def _kaggle_problem(path: Path, hint: _Hint) -> TinyharError:
    with _open_maybe_gz(path) as f:
        header_line = f.readline().decode("utf-8", "replace")
        header = next(csv.reader([header_line]))
        pos = {c: header.index(c) for c in _KAGGLE_NEEDED}

        def check(line: str) -> str | None:
            return _kaggle_row_problem(next(csv.reader([line])), len(header), pos)

        def piece_ok(text: str) -> bool:
            return _kaggle_frame(io.StringIO(header_line + text))[0] is not None

        where = _locate(f, 2, hint, check, piece_ok)
    if where is None:
        return TinyharError(f"{path.name}: cannot parse the Kaggle MHEALTH CSV; {_FIX}")
    return TinyharError(f"{path.name} line {where[0]}: {where[1]}; {_FIX}")


def _locate(
    f: IO[bytes],
    first_line: int,
    hint: _Hint,
    check: Callable[[str], str | None],
    piece_ok: Callable[[str], bool],
) -> tuple[int, str] | None:
    """(line number, problem) of a broken row. Go straight to the line the fast parse pointed at
    (a line number, a row index among non-blank lines, or the offending text); failing that, let
    the C parser narrow it down to a piece of lines and check only that piece in Python."""
    start_pos = f.tell()
    text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline=None)
    if hint is not None:
        kind, where = hint
        row = -1
        for lineno, line in enumerate(text, first_line):
            if not line.strip():
                continue
            row += 1
            if kind == "text":
                hit = isinstance(where, str) and where in line
            else:
                hit = (lineno if kind == "line" else row) == where
            if hit:
                problem = check(line)
                if problem:
                    return lineno, problem
                if kind != "text":
                    break
        text.seek(start_pos)
    start = first_line
    while chunk := list(itertools.islice(text, _SCAN_LINES)):
        if not piece_ok("".join(chunk)):
            for lineno, line in enumerate(chunk, start):
                problem = check(line) if line.strip() else None
                if problem:
                    return lineno, problem
        start += len(chunk)
    return None


def _kaggle_row_problem(row: list[str], ncols: int, pos: dict[str, int]) -> str | None:
    if len(row) != ncols:
        return f"expected {ncols} columns, found {len(row)}"
    for col, i in pos.items():
        cell = row[i]
        if col == "subject":
            if not _SUBJECT_VALUE.match(cell):
                return f"subject '{cell[:20]}' is not like 'subject3'"
            continue
        problem = _cell_problem(cell, col, is_label=col == "Activity")
        if problem:
            return problem
    return None


_FIX = "fix or remove that line, or re-download the data"


def _row_problem(cells: list[str], ncols: int) -> str | None:
    if len(cells) != ncols:
        return f"expected {ncols} columns, found {len(cells)}"
    for i, cell in enumerate(cells):
        problem = _cell_problem(cell, f"column {i + 1}", is_label=i == ncols - 1)
        if problem:
            return problem
    return None


def _cell_problem(cell: str, where: str, is_label: bool) -> str | None:
    try:
        v = float(cell)
    except ValueError:
        return f"{where}: '{cell[:20]}' is not a number"
    if not np.isfinite(v):
        return f"{where}: '{cell[:20]}' is not a finite number"
    if is_label and (v != int(v) or not 0 <= v <= MAX_LABEL):
        return f"label '{cell[:20]}' is not an integer 0-{MAX_LABEL}"
    return None


def _label_ok(labels: np.ndarray) -> np.ndarray:
    """Per row: the label is an integer 0-12."""
    return (labels == np.round(labels)) & (labels >= 0) & (labels <= MAX_LABEL)


def _labels_ok(labels: np.ndarray) -> bool:
    return bool(
        np.isfinite(labels).all()
        and (labels == np.round(labels)).all()
        and labels.min(initial=0) >= 0
        and labels.max(initial=0) <= MAX_LABEL
    )


# --- helpers ----------------------------------------------------------------------------------


def _open_maybe_gz(path: Path) -> IO[bytes]:
    with open(path, "rb") as f:
        magic = f.read(2)
    return cast(IO[bytes], gzip.open(path, "rb")) if magic == b"\x1f\x8b" else open(path, "rb")


def _is_kaggle_csv(path: Path) -> bool:
    if path.name.lower().endswith((".csv", ".csv.gz")):
        return True
    try:
        with _open_maybe_gz(path) as f:
            first = f.readline(4096).decode("utf-8", "replace").lower()
    except (OSError, EOFError):
        return False
    return "alx" in first and "," in first


def _subject_from_name(name: str) -> int:
    m = re.search(r"subject(\d+)", name, re.IGNORECASE)
    return int(m.group(1)) if m else 1


def _describe(kind: str, path: Path, synthetic: bool) -> str:
    prefix = "synthetic (tinyhar data synth) " if synthetic else ""
    return f"{prefix}{kind} {path.resolve()}"


def label_counts(labels: Iterable[np.ndarray]) -> dict[int, int]:
    """Rows per MHEALTH label id (0-12) summed over label arrays."""
    counts = np.zeros(MAX_LABEL + 1, dtype=np.int64)
    for lab in labels:
        counts += np.bincount(lab.astype(np.int64), minlength=MAX_LABEL + 1)[: MAX_LABEL + 1]
    return {i: int(c) for i, c in enumerate(counts)}
