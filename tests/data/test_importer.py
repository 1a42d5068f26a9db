"""`tinyhar data import` and dataset folders: real HAPT files (a few subjects), inference, refusals
in one line, bad manifests, units and resampling."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers.hapt_data import HAPT_CLASSES, hapt_folder, hapt_subset, import_cli

from tinyhar.cli import main
from tinyhar.data.dataset import load_dataset
from tinyhar.data.importer import ImportOptions, import_dataset
from tinyhar.data.manifest import MANIFEST, read_manifest
from tinyhar.errors import TinyharError

TRANSITIONS = ["STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE",
               "LIE_TO_STAND"]  # fmt: skip
_import = import_cli


def _one_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    return hapt_folder(tmp_path_factory.mktemp("hapt"), (1, 3))


def test_hapt_imports_with_its_six_classes_and_inferred_fields(imported):
    m = read_manifest(imported)
    assert m.rate_hz == 50 and m.label_column == "activity" and m.time_column == "time_s"
    assert m.classes == HAPT_CLASSES and m.drop_labels == ["*_TO_*"]
    assert [(c.column, c.kind, c.axis, c.unit) for c in m.channels] == [
        ("acc_x", "acc", "x", "g"),
        ("acc_y", "acc", "y", "g"),
        ("acc_z", "acc", "z", "g"),
        ("gyro_x", "gyro", "x", "rad/s"),
        ("gyro_y", "gyro", "y", "rad/s"),
        ("gyro_z", "gyro", "z", "rad/s"),
    ]
    copied = sorted(p.name for p in imported.glob("*.csv.gz"))
    assert copied == [f"subject{s:02d}_session{k}.csv.gz" for s in (1, 3) for k in (1, 2)]
    assert not [p for p in imported.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_hapt_loads_in_training_units_with_transitions_dropped(imported):
    data = load_dataset(imported)
    assert data.name == "hapt" and data.labels == HAPT_CLASSES and not data.synthetic
    assert sorted({r.subject for r in data.recordings}) == [1, 3]
    raw = pd.read_csv(imported / "subject01_session1.csv.gz", keep_default_na=False)
    rec = next(r for r in data.recordings if r.source == "subject01_session1.csv.gz")
    assert rec.signals.shape == (len(raw), 6)
    np.testing.assert_allclose(rec.signals[:, 0], raw["acc_x"] * 9.80665, rtol=1e-6)
    np.testing.assert_allclose(rec.signals[:, 5], np.degrees(raw["gyro_z"]), rtol=1e-5, atol=1e-5)
    dropped = raw["activity"].isin(TRANSITIONS) | (raw["activity"] == "")
    assert dropped.any() and (rec.labels[dropped.to_numpy()] < 0).all()
    kept = ~dropped.to_numpy()
    names = np.array(HAPT_CLASSES)[rec.labels[kept]]
    assert (names == raw["activity"].to_numpy()[kept]).all()


def test_data_info_shows_hapt_names_units_and_dropped_rows(imported):
    r = CliRunner().invoke(main, ["data", "info", str(imported)])
    assert r.exit_code == 0, r.output
    assert "data: real hapt" in r.output and "subjects: 2" in r.output
    assert "acc_x (m/s^2)" in r.output and "gyro_z (deg/s)" in r.output
    for name in HAPT_CLASSES:
        assert f"  {name} " in r.output
    assert "(dropped or unlabelled)" in r.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--drop", "*_TO_*"], "--gyro-unit"),  # rad/s or deg/s: the names do not say
        (["--gyro-unit", "rad/s", "--label-column", "nope"], "--label-column"),
        (["--gyro-unit", "furlong/s"], "--gyro-unit"),
        (["--gyro-unit", "rad/s", "--subject-pattern", "session(\\d+)x"], "--subject-pattern"),
    ],
)
def test_ambiguous_or_wrong_imports_are_refused_naming_the_option(tmp_path, args, option):
    src = hapt_subset(tmp_path / "src", (1,))
    line = _one_error(_import(src, tmp_path / "out", *args))
    assert option in line
    assert not (tmp_path / "out").exists()


def _write_csv(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            df.to_csv(f, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def _recording(rate: float, seconds: float, columns: dict[str, str], labels=("walk", "sit")):
    """A CSV frame: time_s, the named channels (a 2 Hz tone on gravity) and two activities."""
    t = np.arange(0, seconds, 1 / rate)
    df = pd.DataFrame({"time_s": np.round(t, 6)})
    for name, kind in columns.items():
        df[name] = (1.0 if kind.endswith("z") else 0.0) + 0.1 * np.sin(2 * np.pi * 2 * t)
    df["label"] = np.where(t < seconds / 2, labels[0], labels[1])
    return df


def test_refusals_name_rate_label_and_subject_options(tmp_path):
    cols = {"acc_x": "x", "acc_y": "y", "acc_z": "z"}
    no_time = _recording(50, 10, cols).drop(columns="time_s")
    _write_csv(tmp_path / "a" / "subject1.csv", no_time)
    assert "--rate" in _one_error(_import(tmp_path / "a", tmp_path / "oa"))
    no_label = _recording(50, 10, cols).rename(columns={"label": "what"})
    _write_csv(tmp_path / "b" / "subject1.csv", no_label)
    assert "--label-column" in _one_error(_import(tmp_path / "b", tmp_path / "ob"))
    _write_csv(tmp_path / "c" / "walk.csv", _recording(50, 10, cols))
    assert "--subject-pattern" in _one_error(_import(tmp_path / "c", tmp_path / "oc"))
    two = _recording(50, 10, cols)
    two["wrist_acc_x"] = 0.0
    two = two.rename(columns={"acc_x": "hip_acc_x"})
    _write_csv(tmp_path / "d" / "subject1.csv", two)
    assert "--columns" in _one_error(_import(tmp_path / "d", tmp_path / "od"))


def test_units_from_names_and_gravity_mg_and_a_subject_column(tmp_path):
    df = _recording(
        50, 20, {"acc_x_mg": "x", "acc_y_mg": "y", "acc_z_mg": "z", "gyro_x[deg/s]": "x"}
    )
    for c in ("acc_x_mg", "acc_y_mg", "acc_z_mg"):
        df[c] *= 1000
    df["subject"] = np.where(np.arange(len(df)) < len(df) // 2, "s7", "s9")
    _write_csv(tmp_path / "src" / "all.csv", df)
    result = _import(tmp_path / "src", tmp_path / "out")
    assert result.exit_code == 0, result.output + result.stderr
    m = read_manifest(tmp_path / "out")
    assert {c.column: c.unit for c in m.channels} == {
        "acc_x_mg": "mg",
        "acc_y_mg": "mg",
        "acc_z_mg": "mg",
        "gyro_x[deg/s]": "deg/s",
    }
    assert m.subject_column == "subject" and m.classes == ["sit", "walk"]
    data = load_dataset(tmp_path / "out")
    assert sorted(r.subject for r in data.recordings) == [7, 9]
    z = np.concatenate([r.signals[:, 2] for r in data.recordings])
    assert np.median(z) == pytest.approx(9.80665, rel=0.02)  # mg -> m/s^2


def test_a_100_hz_recording_is_resampled_to_50_hz_with_anti_aliasing(tmp_path):
    df = _recording(100, 30, {"acc_x": "x", "acc_y": "y", "acc_z": "z"})
    df["acc_y"] = np.sin(2 * np.pi * 40 * df["time_s"])  # would alias onto 10 Hz
    _write_csv(tmp_path / "src" / "subject2_a.csv.gz", df)
    result = _import(tmp_path / "src", tmp_path / "out", "--acc-unit", "g")
    assert result.exit_code == 0, result.output + result.stderr
    assert read_manifest(tmp_path / "out").rate_hz == 100
    rec = load_dataset(tmp_path / "out").recordings[0]
    assert len(rec.labels) == (len(df) - 1) // 2 + 1
    assert np.abs(rec.signals[100:-100, 1]).max() < 0.01 * 9.80665
    np.testing.assert_allclose(rec.signals[:, 2], df["acc_z"].to_numpy()[::2] * 9.80665, atol=0.05)
    assert (np.diff(rec.labels) != 0).sum() == 1  # one change of activity, in place
    assert abs(int(np.argmax(np.diff(rec.labels) != 0)) - len(rec.labels) // 2) <= 1


def _edit_manifest(folder: Path, old: str, new: str) -> None:
    path = folder / MANIFEST
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('unit = "rad/s"', 'unit = "furlong/s"', "channels[3].unit"),
        ('unit = "g"', 'unit = "deg/s"', "channels[0].unit"),
        ('kind = "acc"', 'kind = "mag"', "channels[0].kind"),
        ("rate_hz = 50", "rate_hz = -5", "rate_hz"),
        ('label_column = "activity"', "", "label_column"),
        ("format = 1", "format = 1\nwho = 3", "who"),
        ('column = "gyro_y"', 'column = "gyro_q"', "channels[4].column"),
        ('classes = ["LAYING", ', "classes = [", "LAYING"),
    ],
)
def test_a_bad_manifest_is_one_line_naming_the_file_and_field(imported, tmp_path, old, new, field):
    folder = tmp_path / "copy"
    shutil.copytree(imported, folder)
    _edit_manifest(folder, old, new)
    line = _one_error(CliRunner().invoke(main, ["data", "info", str(folder)]))
    assert field in line
    assert MANIFEST in line or ".csv.gz" in line  # the file at fault


def test_a_bad_value_in_a_recording_names_file_line_and_column(tmp_path):
    df = _recording(50, 10, {"acc_x": "x", "acc_y": "y", "acc_z": "z"})
    df = df.astype({"acc_y": object})
    df.loc[7, "acc_y"] = "oops"
    _write_csv(tmp_path / "src" / "subject1.csv", df)
    with pytest.raises(TinyharError, match=r"subject1.csv line 9: column 'acc_y' holds 'oops'"):
        import_dataset(tmp_path / "src", tmp_path / "out", ImportOptions(acc_unit="g"))
    assert not (tmp_path / "out").exists()


def test_import_refuses_a_non_empty_out_folder(tmp_path, imported):
    line = _one_error(_import(imported, imported))
    assert "not empty" in line and "--out" in line


def test_label_names_rename_classes_for_the_model_and_firmware(imported, tmp_path):
    folder = tmp_path / "named"
    shutil.copytree(imported, folder)
    with open(folder / MANIFEST, "a") as f:
        f.write('\n[label_names]\n"LAYING" = "lying"\n"WALKING" = "walking"\n')
    data = load_dataset(folder)
    assert data.labels == ["lying", *HAPT_CLASSES[1:3], "walking", *HAPT_CLASSES[4:]]
