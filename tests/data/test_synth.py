"""The synthetic dataset: UCI log format, deterministic, realistic structure, `data info`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinyhar.cli import main
from tinyhar.data.info import dataset_info
from tinyhar.data.mhealth import LABEL_NAMES, channels, load_mhealth
from tinyhar.data.synth import subject_session, synthesize
from tinyhar.errors import TinyharError

RATE = 50


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("s") / "d", subjects=3, seed=0)


@pytest.fixture(scope="module")
def data(synth):
    return load_mhealth(synth)


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(label, start, length) of each constant stretch."""
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [labels.size]])
    return [(int(labels[s]), int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)]


def test_same_seed_same_bytes_other_seed_differs(tmp_path, synth):
    again = synthesize(tmp_path / "again", subjects=3, seed=0)
    other = synthesize(tmp_path / "other", subjects=1, seed=1)
    for name in ["mHealth_subject1.log", "mHealth_subject3.log", "SYNTHETIC.md"]:
        assert (again / name).read_bytes() == (synth / name).read_bytes()
    assert (other / "mHealth_subject1.log").read_bytes() != (
        synth / "mHealth_subject1.log"
    ).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "other"]  # no temp left


def test_uci_log_format(synth):
    lines = (synth / "mHealth_subject2.log").read_text().splitlines()
    for line in lines[:: len(lines) // 50]:
        cells = line.split("\t")
        assert len(cells) == 24
        assert cells[23].isdigit() and 0 <= int(cells[23]) <= 12
        for c in cells[:23]:
            float(c)
            assert len(c.lstrip("-").replace(".", "").split("e")[0].lstrip("0")) <= 5
    assert (synth / "SYNTHETIC.md").read_text().startswith("# SYNTHETIC")
    assert sorted(p.name for p in synth.iterdir()) == [
        "SYNTHETIC.md",
        "mHealth_subject1.log",
        "mHealth_subject2.log",
        "mHealth_subject3.log",
    ]


def test_null_majority_and_contiguous_activities(data):
    for rec in data.recordings:
        minutes = rec.labels.size / RATE / 60
        assert 10 <= minutes <= 16
        assert (rec.labels == 0).mean() > 0.5
        runs = [r for r in _runs(rec.labels) if r[0] != 0]
        assert [r[0] for r in runs] == list(range(1, 13))  # each activity once, in protocol order
        assert all(20 * RATE <= n <= 40 * RATE for _, _, n in runs)
        assert rec.labels[0] == 0 and rec.labels[-1] == 0  # null stretches around every activity


def _segment(rec, label: int) -> np.ndarray:
    return rec.signals[rec.labels == label]


def test_gravity_and_posture(data):
    for rec in data.recordings:
        for cols in [(0, 3), (5, 8), (14, 17)]:  # chest, ankle, arm accelerometers
            standing = _segment(rec, 1)[:, cols[0] : cols[1]]
            assert 9.5 < np.median(np.linalg.norm(standing, axis=1)) < 10.1
        chest = {lab: _segment(rec, lab)[:, 0:3].mean(axis=0) for lab in (1, 2, 3)}
        ankle = {lab: _segment(rec, lab)[:, 5:8].mean(axis=0) for lab in (1, 2, 3)}
        assert chest[1][0] < -9 and abs(chest[3][0]) < 3  # lying turns the chest by ~90 degrees
        assert np.linalg.norm(ankle[1] - ankle[2]) > 1.5  # sitting bends the shank
        assert np.linalg.norm(ankle[1] - ankle[3]) > 8


def test_units_and_other_columns(data):
    rec = data.recordings[0]
    still, walk = _segment(rec, 1), _segment(rec, 4)
    assert still[:, 8:11].std(axis=0).max() < 30  # deg/s: little rotation when standing
    assert walk[:, 8:11].std(axis=0).max() > 80  # the shank swings at hundreds of deg/s
    ecg = rec.signals[:, 3:5]
    assert 0.4 < np.percentile(ecg[:, 0], 99.5) < 2.5 and np.abs(ecg).max() < 5  # mV
    for cols in [(11, 14), (20, 23)]:
        mag = np.linalg.norm(rec.signals[:, cols[0] : cols[1]], axis=1)
        assert 0.3 < np.median(mag) < 1.0
    jump = _segment(rec, 12)[:, 5:8]
    assert np.linalg.norm(jump, axis=1).max() > 30  # landing impacts
    assert np.linalg.norm(jump, axis=1).min() < 3  # free fall in the air


def _peak_hz(x: np.ndarray, lo: float = 0.6, hi: float = 5.0) -> float:
    x = x - x.mean()
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    f = np.fft.rfftfreq(x.size, 1 / RATE)
    band = (f >= lo) & (f <= hi)
    return float(f[band][np.argmax(spec[band])])


def test_cadence_per_activity(data):
    for rec in data.recordings:
        step = {lab: _peak_hz(_segment(rec, lab)[:, 0]) for lab in (4, 10, 11)}  # chest bounce
        assert 1.5 < step[4] < 2.1 and 2.1 < step[10] < 2.9 and 2.5 < step[11] < 3.4
        assert step[4] < step[10] < step[11]
        cycling = _peak_hz(_segment(rec, 9)[:, 9], lo=0.5)  # ankle pitch rate: one pedal turn
        assert 0.9 < cycling < 1.5
        bends = _peak_hz(_segment(rec, 6)[:, 0], lo=0.1, hi=1.0)
        assert 0.2 < bends < 0.6


def test_subjects_differ(data):
    a, b = data.recordings[0], data.recordings[1]
    arm_a, arm_b = _segment(a, 1)[:, 14:17].mean(0), _segment(b, 1)[:, 14:17].mean(0)
    assert np.linalg.norm(arm_a - arm_b) > 0.2  # sensor mounting
    gyro_a, gyro_b = _segment(a, 3)[:, 17:20].mean(0), _segment(b, 3)[:, 17:20].mean(0)
    assert np.abs(gyro_a - gyro_b).max() > 0.3  # gyro bias while lying still
    assert a.labels.size != b.labels.size


def test_subject_independent_of_count():
    s4, _ = subject_session(4, seed=2)
    again, _ = subject_session(4, seed=2)
    np.testing.assert_array_equal(s4, again)


def test_refuses_to_overwrite_other_folders(tmp_path, synth):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(TinyharError, match="not a synthetic dataset"):
        synthesize(tmp_path / "mine", subjects=1)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    first = synthesize(tmp_path / "s", subjects=2, seed=0)
    synthesize(first, subjects=1, seed=5)  # a synthetic folder is replaced as a whole
    assert sorted(p.name for p in first.iterdir()) == ["SYNTHETIC.md", "mHealth_subject1.log"]


def test_cli_synth_default_then_info(tmp_path):
    out = tmp_path / "d"
    t = time.perf_counter()
    r = CliRunner().invoke(main, ["data", "synth", "--out", str(out)])
    took = time.perf_counter() - t
    assert r.exit_code == 0, r.output
    assert took < 20
    assert "SYNTHETIC" in r.output and "10 subjects" in r.output
    assert len(list(out.glob("mHealth_subject*.log"))) == 10

    r = CliRunner().invoke(main, ["data", "info", str(out)])
    assert r.exit_code == 0, r.output
    info = dataset_info(out)
    assert "data: SYNTHETIC" in r.output and "subjects: 10" in r.output
    rows1 = info.rows_per_subject[1]
    assert f"       1 {rows1:>9} {rows1 / 3000:>8.1f}" in r.output
    assert f"   total {info.rows:>9} {info.rows / 3000:>8.1f}" in r.output
    for label, name in LABEL_NAMES.items():
        assert f"{label:>5}  {name:<26} {info.class_counts[label]:>9}" in r.output
    assert sum(info.class_counts.values()) == info.rows


def test_cli_synth_rejects_bad_subjects(tmp_path):
    r = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path / "x"), "--subjects", "0"])
    assert r.exit_code == 2 and "Traceback" not in r.output


def _window_features(data, sensors: str):
    cols = [c.column for c in channels(sensors)]
    feats, labels, subjects = [], [], []
    for rec in data.recordings:
        x, y = rec.signals[:, cols], rec.labels
        for i in range(0, y.size - 100, 50):
            lab = y[i : i + 100]
            if lab[0] != 0 and (lab == lab[0]).all():
                w = x[i : i + 100]
                feats.append(np.concatenate([w.mean(0), w.std(0)]))
                labels.append(lab[0])
                subjects.append(rec.subject)
    return np.array(feats), np.array(labels), np.array(subjects)


def _centroid_test(data, sensors: str) -> tuple[float, np.ndarray]:
    """Nearest class centroid trained on subjects 1-2, tested on subject 3."""
    x, y, s = _window_features(data, sensors)
    train, test = s <= 2, s == 3
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    centroids = np.array([x[train & (y == k)].mean(0) for k in range(1, 13)])
    pred = np.argmin(((x[test][:, None] - centroids[None]) ** 2).sum(-1), axis=1) + 1
    confusion = np.zeros((13, 13), dtype=int)
    np.add.at(confusion, (y[test], pred), 1)
    return float((pred == y[test]).mean()), confusion


def test_learnable_but_not_trivial(data):
    arm, c = _centroid_test(data, "arm")
    both, _ = _centroid_test(data, "both")
    assert 0.35 < arm < 0.95  # chance is 1/12; a trivial dataset would be near 1.0
    assert both > arm  # the ankle adds what the arm cannot see
    for a, b in [(1, 2), (4, 5), (10, 11)]:  # standing/sitting, walking/stairs, jogging/running
        assert c[a, b] + c[b, a] > 0


def test_cli_synth_unwritable_is_one_line(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    r = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path / "file.txt" / "d")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.count("\n") == 1 and "cannot write" in r.stderr and "--out" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
