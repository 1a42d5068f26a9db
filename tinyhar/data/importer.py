"""`tinyhar data import`: look at a folder of CSV recordings, infer what they hold, write the
dataset folder (the recordings, hard-linked or copied unchanged, and a dataset.toml)."""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from tinyhar.data.classes import case_duplicates, normalise_label, shown
from tinyhar.data.manifest import (
    MANIFEST,
    Manifest,
    ManifestChannel,
    check_class_names,
    check_rate,
    manifest_toml,
    read_manifest,
    subject_regex,
)
from tinyhar.data.recordings import read_recording
from tinyhar.data.units import UNITS_OF_KIND, canonical_unit
from tinyhar.errors import TinyharError

_SIGNAL = re.compile(
    r"^(?:(?P<place>.*?)[_\-. ])?(?P<kind>acc|accel|accelerometer|gyro|gyroscope)[_\-. ]?"
    r"(?P<axis>[xyz])(?:[_\- ]*[\[(]?(?P<unit>[^\])]+?)[\])]?)?$",
    re.IGNORECASE,
)
_LABEL_NAMES = ("activity", "label", "class", "activity_label", "activity_name")
_SUBJECT_NAMES = ("subject", "subject_id", "user", "participant")
_SESSION_NAMES = ("session", "session_id", "trial")
_TIME = re.compile(
    r"^(?:time|timestamp|t|seconds)(?:[_\-. ]?\(?\[?(?P<unit>s|sec|ms|us|ns)\]?\)?)?$",
    re.IGNORECASE,
)
_TIME_SCALE = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_SUBJECT_IN_NAME = r"(?:subject|subj|user|participant)[_\-]?(?P<subject>\d+)"
_GRAVITY = {"g": 1.0, "m/s^2": 9.80665, "mg": 1000.0}


@dataclass
class ImportOptions:
    """What `tinyhar data import` accepts; None means infer it."""

    acc_unit: str | None = None
    gyro_unit: str | None = None
    rate_hz: float | None = None
    label_column: str | None = None
    drop: list[str] = field(default_factory=list)
    subject_pattern: str | None = None
    subject_column: str | None = None
    columns: list[str] | None = None
    name: str | None = None


@dataclass
class ImportResult:
    """The dataset folder written, its manifest, and how each inferred field was found."""

    out: Path
    manifest: Manifest
    files: int
    rows: dict[str, int]  # label value -> rows (dropped labels included)
    notes: list[str]


def import_dataset(
    src: Path, out: Path, opts: ImportOptions, log: Callable[[str], None] = lambda s: None
) -> ImportResult:
    """Infer the manifest of the recordings in `src`, check every file reads, then write `out`
    atomically (a temporary folder renamed into place)."""
    src, out = Path(src).expanduser(), Path(out).expanduser()
    files = _source_files(src)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TinyharError(f"--out {out} exists and is not empty: choose a new folder")
    notes: list[str] = []
    header = _header(files[0])
    for f in files[1:]:
        if _header(f) != header:
            raise TinyharError(
                f"{f.name}: its header differs from {files[0].name}'s; import "
                "recordings of one layout together"
            )
    first = _csv(files[0], nrows=20_000)
    first.columns = [c.strip() for c in first.columns]
    channels = _channels(header, first, opts, notes)
    label_column = _label_column(header, opts, notes)
    rate, time_column = _rate(header, first, opts, notes)
    subject_pattern, subject_column, session_column = _subjects(header, files, opts, notes)
    rows = _label_rows(files, label_column)
    for d in opts.drop:
        if not any(fnmatch.fnmatchcase(v, d) for v in rows):
            notes.append(f"--drop {d} matches no label")
    classes = sorted(v for v in rows if v and not any(fnmatch.fnmatchcase(v, d) for d in opts.drop))
    if not classes:
        raise TinyharError(
            f"{src}: every label is dropped or empty; check --drop and --label-column"
        )
    check_class_names(classes, f"{src}: column {label_column}", "label")
    for a, b in case_duplicates(classes):
        notes.append(
            f"warning: labels {shown(a)} and {shown(b)} differ only in case: two classes; "
            "if they are one, fix the recordings (or --drop one)"
        )
    manifest = Manifest(
        name=opts.name or out.name,
        rate_hz=rate,
        channels=channels,
        label_column=label_column,
        classes=classes,
        drop_labels=list(opts.drop),
        subject_pattern=subject_pattern,
        subject_column=subject_column,
        session_column=session_column,
        time_column=time_column,
        files=sorted({_glob_of(f) for f in files}),
        source=str(src.resolve()),
    )
    _write(out, files, manifest, log)
    return ImportResult(out, manifest, len(files), rows, notes)


def _source_files(src: Path) -> list[Path]:
    if not src.exists():
        raise TinyharError(f"{src}: no such file or folder; give a folder of CSV or CSV.gz files")
    if src.is_file():
        files = [src]
    else:
        files = sorted(p for p in src.iterdir() if p.is_file() and _is_csv(p.name))
    if not files:
        raise TinyharError(f"{src}: no .csv or .csv.gz recordings in this folder")
    return files


def _is_csv(name: str) -> bool:
    return name.lower().endswith((".csv", ".csv.gz"))


def _glob_of(f: Path) -> str:
    return "*.csv.gz" if f.name.lower().endswith(".gz") else "*.csv"


def _header(path: Path) -> list[str]:
    return [c.strip() for c in _csv(path, nrows=0).columns]


def _csv(path: Path, **options) -> pd.DataFrame:
    """pd.read_csv of text cells; one line naming the file when it does not read as CSV."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, **options)
    except UnicodeDecodeError as e:
        raise TinyharError(
            f"{path.name}: byte 0x{e.object[e.start]:02x} at offset {e.start} is not UTF-8: "
            "save the file as UTF-8"
        ) from None
    except (OSError, EOFError, pd.errors.ParserError) as e:
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise TinyharError(f"{path.name}: cannot read as CSV ({first})") from None
    except pd.errors.EmptyDataError:
        raise TinyharError(f"{path.name}: the file is empty") from None


def _channels(
    header: list[str], first: pd.DataFrame, opts: ImportOptions, notes: list[str]
) -> list[ManifestChannel]:
    candidates = header
    if opts.columns is not None:
        missing = [c for c in opts.columns if c not in header]
        if missing:
            raise TinyharError(
                f"--columns {missing[0]} is not a column; the columns are {', '.join(header)}"
            )
        candidates = opts.columns
    found: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    for col in candidates:
        m = _SIGNAL.match(col)
        if m:
            kind = "acc" if m["kind"].lower().startswith("acc") else "gyro"
            found.setdefault((kind, m["axis"].lower()), []).append((col, m["unit"]))
        elif opts.columns is not None:
            raise TinyharError(
                f"--columns {col}: the name does not say acc/gyro and x/y/z "
                "(like acc_x, gyro_z); rename the column"
            )
    if not found:
        raise TinyharError(
            f"no accelerometer or gyroscope columns (like acc_x, gyro_z) among "
            f"{', '.join(header)}: name them with --columns"
        )
    for (kind, axis), cols in found.items():
        if len(cols) > 1:
            names = " and ".join(c for c, _ in cols)
            raise TinyharError(
                f"columns {names} are both {kind} {axis}: choose one set with --columns"
            )
    out = []
    units = {kind: _unit(kind, found, first, opts, notes) for kind in {k for k, _ in found}}
    for kind in ("acc", "gyro"):
        for axis in ("x", "y", "z"):
            if (kind, axis) in found:
                out.append(ManifestChannel(found[(kind, axis)][0][0], kind, axis, units[kind]))
    return out


def _unit(
    kind: str,
    found: dict[tuple[str, str], list[tuple[str, str | None]]],
    first: pd.DataFrame,
    opts: ImportOptions,
    notes: list[str],
) -> str:
    option = f"--{kind}-unit"
    given = opts.acc_unit if kind == "acc" else opts.gyro_unit
    if given is not None:
        unit = canonical_unit(given)
        if unit not in UNITS_OF_KIND[kind]:
            raise TinyharError(f"{option} {given}: use one of {', '.join(UNITS_OF_KIND[kind])}")
        return unit
    in_names = {
        canonical_unit(u) for (k, _), cols in found.items() if k == kind for _, u in cols if u
    }
    in_names.discard(None)
    if len(in_names) == 1 and next(iter(in_names)) in UNITS_OF_KIND[kind]:
        unit = str(next(iter(in_names)))
        notes.append(f"{kind} unit {unit}: from the column names")
        return unit
    if kind == "acc" and all(("acc", a) in found for a in "xyz"):
        cols = [found[("acc", a)][0][0] for a in "xyz"]
        values = first[cols].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        magnitude = float(np.nanmedian(np.linalg.norm(values, axis=1)))
        for unit, g in _GRAVITY.items():
            if 0.8 * g <= magnitude <= 1.2 * g:
                notes.append(
                    f"acc unit {unit}: the median magnitude {magnitude:.3g} is gravity in it"
                )
                return unit
        raise TinyharError(
            f"cannot tell the accelerometer's unit (median magnitude "
            f"{magnitude:.3g} is not 1 g in g, mg or m/s^2): set {option}"
        )
    raise TinyharError(
        f"cannot tell the {'accelerometer' if kind == 'acc' else 'gyroscope'}'s unit from the "
        f"column names: set {option} ({' or '.join(UNITS_OF_KIND[kind])})"
    )


def _label_column(header: list[str], opts: ImportOptions, notes: list[str]) -> str:
    if opts.label_column is not None:
        if opts.label_column not in header:
            raise TinyharError(
                f"--label-column {opts.label_column} is not a column; the columns "
                f"are {', '.join(header)}"
            )
        return opts.label_column
    hits = [c for c in header if c.lower() in _LABEL_NAMES]
    if len(hits) != 1:
        raise TinyharError(
            f"cannot tell which column holds the activity: set --label-column "
            f"(columns: {', '.join(header)})"
        )
    notes.append(f"labels: column {hits[0]}")
    return hits[0]


def _rate(
    header: list[str], first: pd.DataFrame, opts: ImportOptions, notes: list[str]
) -> tuple[float, str | None]:
    times = [(c, m) for c in header if (m := _TIME.match(c))]
    time_column = times[0][0] if len(times) == 1 else None
    if opts.rate_hz is not None:
        return check_rate(opts.rate_hz, "--rate"), time_column
    if time_column is None:
        raise TinyharError(
            "cannot tell the sampling rate (no single time column like time_s): set --rate HZ"
        )
    unit = times[0][1]["unit"]
    if unit is None:
        raise TinyharError(
            f"cannot tell the unit of time column {time_column} (name it time_s "
            "or time_ms): set --rate HZ"
        )
    t = pd.to_numeric(first[time_column], errors="coerce").to_numpy(np.float64)
    dt = np.diff(t[np.isfinite(t)]) * _TIME_SCALE[unit.lower()]
    dt = dt[dt > 0]
    if len(dt) < 10:
        raise TinyharError(f"time column {time_column} has too few increasing values: set --rate")
    period = float(np.median(dt))
    if np.mean(np.abs(dt - period) > 0.1 * period) > 0.05:
        raise TinyharError(
            f"time column {time_column} is not evenly spaced (over 5 % of steps "
            "differ by 10 % from the median): set --rate HZ"
        )
    rate = 1.0 / period
    if abs(rate - round(rate)) < 0.005 * rate:
        rate = float(round(rate))
    check_rate(rate, f"the rate from time column {time_column} ({unit}),")
    notes.append(f"rate {rate:g} Hz: from column {time_column}")
    return rate, time_column


def _subjects(
    header: list[str], files: list[Path], opts: ImportOptions, notes: list[str]
) -> tuple[str | None, str | None, str | None]:
    session = next((c for c in header if c.lower() in _SESSION_NAMES), None)
    if opts.subject_pattern is not None and opts.subject_column is not None:
        raise TinyharError("give one of --subject-pattern and --subject-column")
    if opts.subject_column is not None:
        if opts.subject_column not in header:
            raise TinyharError(
                f"--subject-column {opts.subject_column} is not a column; the "
                f"columns are {', '.join(header)}"
            )
        return None, opts.subject_column, session
    if opts.subject_pattern is not None:
        _check_pattern(opts.subject_pattern, files, "--subject-pattern")
        return opts.subject_pattern, None, None
    column = next((c for c in header if c.lower() in _SUBJECT_NAMES), None)
    if column is not None:
        notes.append(
            f"subjects: column {column}" + (f", sessions: column {session}" if session else "")
        )
        return None, column, session
    pattern = _SUBJECT_IN_NAME
    if all(re.search(pattern, f.name, re.IGNORECASE) for f in files):
        pattern = "(?i)" + pattern
        notes.append(f"subjects: from the file names ({pattern})")
        return pattern, None, None
    raise TinyharError(
        "cannot tell each recording's subject (no subject column, file names "
        "without subjectN): set --subject-pattern REGEX or --subject-column"
    )


def _check_pattern(pattern: str, files: list[Path], option: str) -> None:
    rx = subject_regex(pattern, option)
    for f in files:
        m = rx.search(f.name)
        value = (m.group("subject") if "subject" in rx.groupindex else m.group(1)) if m else None
        if value is None or not value.isdigit():
            raise TinyharError(f"{f.name}: {option} {pattern!r} finds no subject number in it")


def _label_rows(files: list[Path], label_column: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in files:
        df = _csv(f, usecols=lambda c: c.strip() == label_column)
        labels = df.iloc[:, 0]
        for v, n in labels.map(normalise_label).value_counts().items():
            counts[str(v)] = counts.get(str(v), 0) + int(n)
    return dict(sorted(counts.items()))


def _staging_prefix(out: Path) -> str:
    return f".{out.name}.import-"


def clean_stale_staging(out: Path, log: Callable[[str], None]) -> list[Path]:
    """Remove staging folders of imports into `out` whose process is gone (killed: its `finally`
    never ran); the folders removed."""
    prefix = _staging_prefix(out)
    removed = []
    for p in out.parent.glob(f"{glob.escape(prefix)}*"):
        pid = p.name[len(prefix) :].split("-", 1)[0]
        if p.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    if removed:
        log(f"removed {len(removed)} staging folder(s) an interrupted import left in {out.parent}")
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(out: Path, files: list[Path], manifest: Manifest, log: Callable[[str], None]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(out, log)
    prefix = f"{_staging_prefix(out)}{os.getpid()}-"
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=prefix))
    mask = os.umask(0)
    os.umask(mask)
    tmp.chmod(0o777 & ~mask)  # mkdtemp makes it private; the dataset folder is not
    try:
        linked = 0
        for f in files:
            try:
                os.link(f, tmp / f.name)
                linked += 1
            except OSError:
                shutil.copy2(f, tmp / f.name)
        (tmp / MANIFEST).write_text(manifest_toml(manifest), encoding="utf-8")
        log(f"checking every recording reads ({len(files)} files, {linked} hard-linked)")
        written = read_manifest(tmp)  # what later commands will read, checked now
        for f in files:  # errors name the manifest as it will be called (out/ is not there yet)
            read_recording(replace(written, path=Path(MANIFEST)), tmp / f.name)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def format_import(r: ImportResult) -> str:
    """What `tinyhar data import` prints: what was inferred, the classes and what was dropped."""
    m = r.manifest
    kept = sum(n for v, n in r.rows.items() if v in m.classes)
    dropped = {v or "(unlabelled)": n for v, n in r.rows.items() if v not in m.classes}
    units = ", ".join(sorted({f"{c.kind} {c.unit}" for c in m.channels}))
    lines = [
        f"imported {r.files} recording(s) into {r.out} ({MANIFEST} written)",
        f"  rate {m.rate_hz:g} Hz; channels {', '.join(c.column for c in m.channels)} ({units})",
        f"  {len(m.classes)} classes ({kept} rows): {', '.join(m.classes)}",
    ]
    if dropped:
        lines.append("  dropped: " + ", ".join(f"{v} ({n})" for v, n in dropped.items()))
    lines += [f"  {note}" for note in r.notes]
    lines.append(f"train on it with: tinyhar train --data {r.out}")
    return "\n".join(lines)
