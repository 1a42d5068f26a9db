"""Read the CSV recordings a dataset.toml describes into training units at the model's rate."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import numpy as np
import pandas as pd

from tinyhar.data.classes import normalise_label, shown
from tinyhar.data.manifest import Manifest, check_files_entry
from tinyhar.data.mhealth import RATE_HZ, Recording
from tinyhar.data.resample import resample, resample_labels
from tinyhar.data.units import RANGE_MARGIN, to_training_factor, value_limit
from tinyhar.errors import TinyharError

DROPPED = -1  # label code of rows that belong to no class (dropped or unlabelled)
MAX_CELL = 1024  # characters of a label, subject or session cell: more is no label but a fault
MAX_SUBJECT = 999_999  # subject numbers are ids, not measurements


def recording_files(m: Manifest, folder: Path) -> list[Path]:
    """The recordings in `folder` matching the manifest's `files` globs, sorted by name; a match
    that resolves outside `folder` (a symlink) is refused, naming the entry."""
    root = folder.resolve()
    found = set()
    for pattern in m.files:
        check_files_entry(pattern, str(m.path))
        for p in folder.glob(pattern):
            if not p.is_file():
                continue
            if not p.resolve().is_relative_to(root):
                raise TinyharError(
                    f"{m.path}: files entry {pattern!r} matches {p.name}, which leads outside the "
                    f"dataset folder (to {p.resolve()}): copy the recording into {folder}"
                )
            found.add(p)
    if not found:
        raise TinyharError(
            f"{m.path}: files {m.files} match nothing in {folder}; put the recordings beside it"
        )
    return sorted(found)


def read_recordings(m: Manifest, folder: Path) -> list[Recording]:
    """Every recording of the dataset: signals (n, C) float32 in training units at RATE_HZ, labels
    as class codes (index into m.classes; DROPPED for dropped or unlabelled rows)."""
    out = []
    for path in recording_files(m, folder):
        out += read_recording(m, path)
    return out


def label_codes(m: Manifest, values: pd.Series, where: str) -> np.ndarray:
    """Label cells -> class codes, after `normalise_label` (what import inferred the classes
    with); a value neither a class nor dropped stops the read. Memory grows with the rows and
    the distinct labels, never with the length of one cell."""
    text = _cells(values, where, "label")
    inverse, uniq = pd.factorize(text.map(normalise_label), use_na_sentinel=False)
    lut = np.empty(len(uniq), np.int16)
    for i, v in enumerate(uniq):
        if v in m.classes:
            lut[i] = m.classes.index(v)
        elif v == "" or any(fnmatch.fnmatchcase(v, d) for d in m.drop_labels):
            lut[i] = DROPPED
        else:
            row = int(np.flatnonzero(inverse == i)[0])
            raise TinyharError(
                f"{where} line {row + 2}: label {shown(v)} is in neither classes nor drop_labels "
                f"of {m.path}; add it to one"
            )
    return lut[inverse]


def _cells(values: pd.Series, where: str, what: str) -> pd.Series:
    """A column's cells as text, refused when one is longer than MAX_CELL characters."""
    text = values.astype(str)
    lengths = text.str.len().to_numpy()
    if len(lengths) and lengths.max() > MAX_CELL:
        row = int(np.argmax(lengths))
        raise TinyharError(
            f"{where} line {row + 2}: a {what} cell of {lengths[row]} characters (at most "
            f"{MAX_CELL}); fix or remove that line"
        )
    return text


def read_recording(m: Manifest, path: Path) -> list[Recording]:
    """One CSV(.gz) file: one recording, or one per subject/session when they are columns."""
    name = path.name
    df = _read_csv(m, path)
    subject_of_file = _subject_from_name(m, name)
    signals = np.empty((len(df), len(m.channels)), np.float32)
    for c, ch in enumerate(m.channels):
        field = f"channels[{c}].unit"
        factor = to_training_factor(ch.kind, ch.unit, f"{m.path}: {field}")
        values = _numbers(df[ch.column], name, ch.column) * factor
        _check_range(values, ch.kind, ch.unit, factor, name, ch.column, field)
        signals[:, c] = values
    labels = label_codes(m, df[m.label_column], name)
    if subject_of_file is not None:
        groups = [(subject_of_file, np.arange(len(df)), name)]
    else:
        groups = _groups_by_column(m, df, name)
    recs = []
    for subject, idx, source in groups:
        sig, lab = signals[idx], labels[idx]
        if m.rate_hz != RATE_HZ:
            sig = resample(sig, m.rate_hz, RATE_HZ)
            lab = resample_labels(lab, m.rate_hz, RATE_HZ)
        recs.append(Recording(subject, sig, lab.astype(np.int16), source))
    return recs


def _read_csv(m: Manifest, path: Path) -> pd.DataFrame:
    needed = [c.column for c in m.channels] + [m.label_column]
    needed += [c for c in (m.subject_column, m.session_column) if c]
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, engine="c")
    except (OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise TinyharError(f"{path.name}: cannot read as CSV ({first})") from None
    except pd.errors.EmptyDataError:
        raise TinyharError(f"{path.name}: the file is empty; remove it from the dataset") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        field = _field_of(m, missing[0])
        raise TinyharError(
            f"{path.name}: no column {missing[0]!r} ({m.path.name if m.path else 'manifest'} "
            f"{field}); its columns are {', '.join(df.columns)}"
        )
    return df


def _field_of(m: Manifest, column: str) -> str:
    for i, c in enumerate(m.channels):
        if c.column == column:
            return f"channels[{i}].column"
    for key in ("label_column", "subject_column", "session_column"):
        if getattr(m, key) == column:
            return key
    return "columns"


def _numbers(col: pd.Series, name: str, column: str) -> np.ndarray:
    values = pd.to_numeric(col.str.strip(), errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad))
        raise TinyharError(
            f"{name} line {row + 2}: column {column!r} holds {col.iloc[row][:20]!r}, not a number; "
            "fix or remove that line"
        )
    return values


def _check_range(
    values: np.ndarray, kind: str, unit: str, factor: float, name: str, column: str, field: str
) -> None:
    """Readings in training units within the sensor's range times a margin (`value_limit`)."""
    limit = value_limit(kind)
    bad = ~(np.abs(values) <= limit)  # NaN and inf too
    if bad.any():
        row = int(np.argmax(bad))
        raise TinyharError(
            f"{name} line {row + 2}: column {column!r} holds {values[row] / factor:.6g} {unit}, "
            f"beyond ±{limit / factor:.6g} {unit} ({RANGE_MARGIN:g} x the widest IMU range): "
            f"check {field} in the manifest, or fix that line"
        )


def _subject(value: float | int, where: str) -> int:
    """A subject number within 0..MAX_SUBJECT."""
    if not 0 <= value <= MAX_SUBJECT:
        text = value if isinstance(value, int) else f"{value:.0f}"
        raise TinyharError(f"{where}: subject {text} is not within 0..{MAX_SUBJECT}")
    return int(value)


def _subject_from_name(m: Manifest, name: str) -> int | None:
    if m.subject_pattern is None:
        return None
    match = re.search(m.subject_pattern, name)
    if not match:
        raise TinyharError(
            f"{name}: the file name does not match subject_pattern {m.subject_pattern!r} of "
            f"{m.path}; rename the file or change the pattern"
        )
    value = match.group("subject") if "subject" in match.re.groupindex else match.group(1)
    try:
        return _subject(int(value), f"{name}: subject_pattern of {m.path}")
    except (TypeError, ValueError):
        raise TinyharError(
            f"{name}: subject_pattern of {m.path} found subject {value!r}, not a number"
        ) from None


def _groups_by_column(
    m: Manifest, df: pd.DataFrame, name: str
) -> list[tuple[int, np.ndarray, str]]:
    """Runs of consecutive rows with one subject (and session) value."""
    subj_text = _cells(df[m.subject_column], name, "subject").str.strip()
    subj = pd.to_numeric(subj_text.str.extract(r"(\d+)\s*$")[0], errors="coerce").to_numpy()
    bad = np.isnan(subj)
    if bad.any():
        row = int(np.argmax(bad))
        raise TinyharError(
            f"{name} line {row + 2}: subject_column {m.subject_column!r} holds "
            f"{subj_text.iloc[row][:20]!r}, not a subject number"
        )
    bad = ~(subj <= MAX_SUBJECT)
    if bad.any():
        row = int(np.argmax(bad))
        _subject(subj[row], f"{name} line {row + 2}: subject_column {m.subject_column!r}")
    key = pd.factorize(subj_text)[0]
    if m.session_column:
        session = pd.factorize(_cells(df[m.session_column], name, "session"))[0]
        key = pd.factorize(pd.Series(key).astype(str) + "/" + pd.Series(session).astype(str))[0]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    return [
        (int(subj[a]), np.arange(a, b), f"{name} rows {a + 2}-{b + 1}")
        for a, b in zip(starts, ends, strict=True)
    ]
