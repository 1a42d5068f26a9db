"""Reading MHEALTH: every format users hold, and one clear line for every broken input."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tinyhar.cli import main
from tinyhar.data.mhealth import (
    COLUMN_NAMES,
    KAGGLE_COLUMNS,
    LABEL_NAMES,
    SYNTHETIC_MARKER,
    channels,
    load_mhealth,
)
from tinyhar.data.synth import synthesize
from tinyhar.errors import TinyharError


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synth") / "d", subjects=2, seed=3)


def _copy_logs(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.glob("mHealth_subject*.log"):
        shutil.copy(f, dst / f.name)
    return dst


def _same(a, b) -> None:
    assert [r.subject for r in a.recordings] == [r.subject for r in b.recordings]
    for ra, rb in zip(a.recordings, b.recordings, strict=True):
        np.testing.assert_array_equal(ra.signals, rb.signals)
        np.testing.assert_array_equal(ra.labels, rb.labels)


def test_folder_reads_types_and_marker(synth_dir):
    data = load_mhealth(synth_dir)
    assert data.synthetic and "synthetic" in data.source
    assert [r.subject for r in data.recordings] == [1, 2]
    rec = data.recordings[0]
    assert rec.signals.dtype == np.float32 and rec.signals.shape[1] == 23
    assert rec.labels.dtype == np.int16 and rec.labels.shape == (rec.signals.shape[0],)
    assert rec.source == "mHealth_subject1.log"
    first = (synth_dir / "mHealth_subject1.log").read_text().splitlines()[0].split("\t")
    np.testing.assert_allclose(rec.signals[0], np.array(first[:23], dtype=np.float32))
    assert rec.labels[0] == int(first[23])


def test_real_folder_is_not_synthetic(synth_dir, tmp_path):
    data = load_mhealth(_copy_logs(synth_dir, tmp_path / "plain"))
    assert not data.synthetic and "synthetic" not in data.source
    _same(data, load_mhealth(synth_dir))


def test_gzip_folder_matches_plain(synth_dir, tmp_path):
    gz = tmp_path / "gz"
    gz.mkdir()
    for f in synth_dir.glob("*.log"):
        (gz / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes(), compresslevel=1))
    _same(load_mhealth(gz), load_mhealth(synth_dir))


def test_single_file(synth_dir):
    data = load_mhealth(synth_dir / "mHealth_subject2.log")
    assert [r.subject for r in data.recordings] == [2] and data.synthetic
    np.testing.assert_array_equal(
        data.recordings[0].labels, load_mhealth(synth_dir).recordings[1].labels
    )


def _uci_zip(synth_dir: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("MHEALTHDATASET/README.txt", "readme")
        for f in sorted(synth_dir.glob("*.log")):
            zf.write(f, f"MHEALTHDATASET/{f.name}")
    return path


def test_uci_zip_read_in_place(synth_dir, tmp_path):
    z = _uci_zip(synth_dir, tmp_path / "mhealth+dataset.zip")
    data = load_mhealth(z)
    assert not data.synthetic and "zip" in data.source
    assert data.recordings[0].source == "mhealth+dataset.zip/mHealth_subject1.log"
    _same(data, load_mhealth(synth_dir))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mhealth+dataset.zip"]  # no extraction


def test_zip_inside_zip(synth_dir, tmp_path):
    inner = _uci_zip(synth_dir, tmp_path / "MHEALTHDATASET.zip")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, inner.name)
    _same(load_mhealth(outer), load_mhealth(synth_dir))


def _kaggle_csv(data, path: Path) -> Path:
    frames = []
    for rec in data.recordings:
        df = pd.DataFrame({k: rec.signals[:, c] for k, c in KAGGLE_COLUMNS.items()})
        df["Activity"] = rec.labels
        df["subject"] = f"subject{rec.subject}"
        frames.append(df)
    pd.concat(frames).to_csv(path, index=False)
    return path


def test_kaggle_csv_round_trip(synth_dir, tmp_path):
    ref = load_mhealth(synth_dir)
    csv = _kaggle_csv(ref, tmp_path / "mhealth_raw_data.csv")
    assert csv.read_text().splitlines()[0] == (
        "alx,aly,alz,glx,gly,glz,arx,ary,arz,grx,gry,grz,Activity,subject"
    )
    data = load_mhealth(csv)
    cols = list(KAGGLE_COLUMNS.values())
    assert cols == [5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 19]
    for ra, rb in zip(data.recordings, ref.recordings, strict=True):
        assert ra.subject == rb.subject
        np.testing.assert_array_equal(ra.labels, rb.labels)
        np.testing.assert_allclose(ra.signals[:, cols], rb.signals[:, cols], rtol=1e-6)
        absent = [c for c in range(23) if c not in cols]
        assert np.isnan(ra.signals[:, absent]).all()


def test_channels_follow_the_uci_columns():
    arm = channels("arm")
    assert [c.column for c in arm] == [14, 15, 16, 17, 18, 19]
    assert [c.kind for c in arm] == ["acc"] * 3 + ["gyro"] * 3
    assert [c.axis for c in arm] == list("xyzxyz")
    assert [c.unit for c in arm] == ["m/s^2"] * 3 + ["deg/s"] * 3
    assert [c.column for c in channels("ankle")] == [5, 6, 7, 8, 9, 10]
    both = channels("both")
    assert [c.column for c in both] == [5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 19]
    assert both[0].name == COLUMN_NAMES[5] == "ankle_acc_x"
    assert len(COLUMN_NAMES) == 23 and len(LABEL_NAMES) == 13 and LABEL_NAMES[12].startswith("Jump")
    with pytest.raises(TinyharError, match="sensor set"):
        channels("wrist")


# --- broken input, through the command line ---------------------------------------------------


def _run_info(path: Path) -> str:
    result = CliRunner().invoke(main, ["data", "info", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _broken_folder(synth_dir: Path, tmp_path: Path, lineno: int, edit) -> Path:
    folder = _copy_logs(synth_dir, tmp_path / "broken")
    f = folder / "mHealth_subject2.log"
    lines = f.read_text().splitlines(keepends=True)
    lines[lineno - 1] = edit(lines[lineno - 1])
    f.write_text("".join(lines))
    return folder


@pytest.mark.parametrize(
    "lineno, edit, expect",
    [
        (1742, lambda s: s.split("\t", 1)[1], "expected 24 columns, found 23"),
        (1742, lambda s: s.rstrip("\n") + "\t1.5\n", "expected 24 columns, found 25"),
        (1, lambda s: s.rstrip("\n") + "\t1.5\n", "expected 24 columns, found 25"),
        (900, lambda s: "abc\t" + s.split("\t", 1)[1], "column 1: 'abc' is not a number"),
        (77, lambda s: s.rsplit("\t", 1)[0] + "\t13\n", "label '13' is not an integer 0-12"),
        (77, lambda s: s.rsplit("\t", 1)[0] + "\t2.5\n", "label '2.5' is not an integer 0-12"),
        (5000, lambda s: s.rsplit("\t", 1)[0] + "\t-1\n", "label '-1' is not an integer 0-12"),
        (
            12,
            lambda s: s.replace("\t", "\tnan\t", 1).rsplit("\t", 1)[0] + "\n",
            "column 2: 'nan' is not a finite",
        ),
    ],
)
def test_broken_row_names_file_and_line(synth_dir, tmp_path, lineno, edit, expect):
    line = _run_info(_broken_folder(synth_dir, tmp_path, lineno, edit))
    assert f"mHealth_subject2.log line {lineno}: {expect}" in line


def test_line_numbers_count_blank_lines(synth_dir, tmp_path):
    folder = _copy_logs(synth_dir, tmp_path / "blank")
    f = folder / "mHealth_subject1.log"
    good = f.read_text().splitlines(keepends=True)
    good[9:9] = ["\n", "  \n"]  # lines 10 and 11 are blank
    lines = list(good)
    lines[1202] = lines[1202].rsplit("\t", 1)[0] + "\t99\n"
    f.write_text("".join(lines))
    assert "mHealth_subject1.log line 1203: label '99' is not an integer 0-12" in _run_info(folder)
    lines = list(good)
    lines[2002] = lines[2002].replace("\t", "\tbad\t", 1)
    f.write_text("".join(lines))
    assert "mHealth_subject1.log line 2003: expected 24 columns, found 25" in _run_info(folder)
    lines = list(good)
    lines[2502] = lines[2502].replace("\t", "\t-\t", 1).rsplit("\t", 1)[0] + "\n"
    f.write_text("".join(lines))
    assert "mHealth_subject1.log line 2503: column 2: '-' is not a number" in _run_info(folder)


def test_broken_row_in_gz_and_zip(synth_dir, tmp_path):
    folder = _broken_folder(synth_dir, tmp_path, 300, lambda s: s.replace("\t", "\tx1\t", 1))
    f = folder / "mHealth_subject2.log"
    z = tmp_path / "m.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(f, "MHEALTHDATASET/mHealth_subject2.log")
    assert "m.zip/mHealth_subject2.log line 300: expected 24 columns, found 25" in _run_info(z)
    gz = folder / "mHealth_subject2.log.gz"
    gz.write_bytes(gzip.compress(f.read_bytes(), compresslevel=1))
    f.unlink()
    assert "mHealth_subject2.log.gz line 300: expected 24 columns" in _run_info(folder)


def test_empty_file(synth_dir, tmp_path):
    folder = _copy_logs(synth_dir, tmp_path / "e")
    (folder / "mHealth_subject1.log").write_text("")
    assert "mHealth_subject1.log: the file is empty" in _run_info(folder)


def test_folder_without_subject_files(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    line = _run_info(tmp_path)
    assert str(tmp_path) in line and "no mHealth_subjectN.log" in line and "tinyhar data" in line


def test_missing_path(tmp_path):
    line = _run_info(tmp_path / "nope")
    assert "nope: no such file or folder" in line


def test_zip_without_logs(tmp_path):
    z = tmp_path / "other.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("hello.txt", "hi")
    assert "other.zip: the zip holds no mHealth_subjectN.log" in _run_info(z)


@pytest.mark.parametrize(
    "row, expect",
    [
        (5, "line 5: glx: 'oops' is not a number"),
        (9, "line 9: label '14' is not an integer 0-12"),
        (11, "line 11: subject 'bob' is not like 'subject3'"),
        (13, "line 13: expected 14 columns, found 13"),
    ],
)
def test_broken_kaggle_csv(synth_dir, tmp_path, row, expect):
    csv = _kaggle_csv(load_mhealth(synth_dir), tmp_path / "k.csv")
    lines = csv.read_text().splitlines(keepends=True)
    cells = lines[row - 1].rstrip("\n").split(",")
    if "oops" in expect:
        cells[3] = "oops"
    elif "label" in expect:
        cells[12] = "14"
    elif "subject" in expect:
        cells[13] = "bob"
    else:
        cells = cells[:-1]
    lines[row - 1] = ",".join(cells) + "\n"
    csv.write_text("".join(lines))
    line = _run_info(csv)
    assert f"k.csv {expect}" in line


def test_kaggle_header_checked(tmp_path):
    csv = tmp_path / "k.csv"
    csv.write_text("alx,aly,Activity,subject\n1,2,0,subject1\n")
    assert "k.csv line 1: header lacks alz" in _run_info(csv)


def test_marker_only_from_synth(synth_dir):
    assert (synth_dir / SYNTHETIC_MARKER).read_text().startswith("# SYNTHETIC")


def test_reader_speed_on_many_rows(synth_dir, tmp_path):
    """The C parser reads a few hundred thousand rows in well under a few seconds."""
    import time

    body = (synth_dir / "mHealth_subject1.log").read_bytes()
    (tmp_path / "mHealth_subject1.log").write_bytes(body * 6)
    t = time.perf_counter()
    data = load_mhealth(tmp_path)
    assert time.perf_counter() - t < 3.0
    assert data.recordings[0].signals.shape[0] == 6 * body.count(b"\n") > 200_000
