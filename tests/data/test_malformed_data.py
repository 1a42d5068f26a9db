"""Every malformed dataset input of the corpus (tests/corpus/) ends in one line on stderr, exit
code 2, never a traceback: manifests (files outside the folder, rates, class names, nesting) and
recordings (subjects, values beyond any IMU, bytes, labels, a 10 MB cell); and import reads the
labels it inferred."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.commands import TINYHAR, one_error_line
from helpers.paths import TESTS

from tinyhar.cli import main

CORPUS = TESTS / "corpus"


def _cli(*args: str):
    return CliRunner().invoke(main, list(map(str, args)), env={"PATH": ""})


def _refused(res, *expected: str) -> str:
    """The one error line of a command that refused its input (exit 2); it holds `expected`."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    line = one_error_line(res.output)
    for text in expected:
        assert text in line, line
    return line


# --- dataset manifests -----------------------------------------------------------------------

MANIFESTS = {
    "absolute_glob": "files entry '/etc/passwd' reaches outside the dataset folder",
    "traversal_glob": "files entry '../../../ds/src_ok/*.csv' reaches outside the dataset folder",
    "traversal_passwd": "files entry '../../../../etc/passwd' reaches outside",
    "files_not_strings": "files entry 1 must be a glob",
    "rate_0.01": "rate_hz 0.01 is not within 5..10000 Hz",
    "rate_nan": "rate_hz nan is not within 5..10000 Hz",
    "rate_inf": "rate_hz inf is not within 5..10000 Hz",
    "nested": "nested too deeply to read",
    "classes_whitespace": "label value 'sitting ' has spaces around it",
    "classes_duplicate": "two classes are 'walking'",
    "classes_control": "label value 'sit\\x7f' holds the control character U+007F",
    "classes_long": "is 100 characters long, more than 64",
    "label_names_duplicate": "label_names: two classes are 'x'",
}


def _dataset(tmp_path: Path, manifest: str, *recordings: str) -> Path:
    ds = tmp_path / "ds"
    ds.mkdir(parents=True)
    shutil.copy(CORPUS / "manifests" / f"{manifest}.toml", ds / "dataset.toml")
    for name in recordings or ("subject1_ok",):
        shutil.copy(CORPUS / "recordings" / f"{name}.csv", ds / f"{name}.csv")
    return ds


def test_the_corpus_manifest_and_recording_read(tmp_path):
    res = _cli("data", "info", _dataset(tmp_path, "ok"))
    assert res.exit_code == 0, res.output
    assert "sitting" in res.output and "walking" in res.output


@pytest.mark.parametrize("case", sorted(MANIFESTS))
def test_a_malformed_manifest_is_one_line(tmp_path, case):
    ds = _dataset(tmp_path, case)
    (tmp_path / "secret.csv").write_text("not yours\n")
    _refused(_cli("data", "info", ds), str(ds / "dataset.toml"), MANIFESTS[case])


def test_a_recording_linked_from_outside_the_folder_is_refused(tmp_path):
    ds = _dataset(tmp_path, "ok")
    outside = tmp_path / "elsewhere" / "subject2_ok.csv"
    outside.parent.mkdir()
    shutil.copy(CORPUS / "recordings" / "subject1_ok.csv", outside)
    (ds / "subject2_ok.csv").symlink_to(outside)
    _refused(_cli("data", "info", ds), "files entry '*.csv' matches subject2_ok.csv",
             "leads outside the dataset folder")  # fmt: skip


# --- recordings ---------------------------------------------------------------------------


def test_a_huge_subject_number_is_one_line_in_train(tmp_path):
    ds = _dataset(tmp_path, "ok", "subject1_ok", "subject99999999999999999999_huge")
    res = _cli("train", "--data", ds, "--epochs", "1", "--run", tmp_path / "run")
    _refused(res, "subject 99999999999999999999 is not within 0..999999")
    assert not (tmp_path / "run").exists()


def test_a_value_beyond_any_imu_is_one_line_in_import_and_read(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(CORPUS / "recordings" / "subject1_value_1e308.csv", src / "subject1.csv")
    res = _cli("data", "import", src, "--out", tmp_path / "out", "--gyro-unit", "deg/s")
    _refused(res, "subject1.csv line 2: column 'acc_y' holds 1e+308 m/s^2, beyond ±627.626 m/s^2")
    assert not (tmp_path / "out").exists()
    ds = _dataset(tmp_path, "ok", "subject1_value_1e308")
    _refused(_cli("data", "info", ds), "check channels[1].unit in the manifest")


def test_a_latin1_label_is_one_line_in_import(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(CORPUS / "recordings" / "subject1_latin1_label.csv", src / "subject1.csv")
    res = _cli("data", "import", src, "--out", tmp_path / "out", "--gyro-unit", "deg/s")
    _refused(res, "subject1.csv: byte 0xe9 at offset", "is not UTF-8: save the file as UTF-8")


def test_a_control_character_in_a_label_is_one_line_in_import(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(CORPUS / "recordings" / "subject1_label_del.csv", src / "subject1.csv")
    res = _cli("data", "import", src, "--out", tmp_path / "out", "--gyro-unit", "deg/s")
    _refused(res, "column activity: label 'sit\\x7f' holds the control character U+007F")
    assert not any(p.name.startswith(".out.") for p in tmp_path.iterdir())


def test_import_reads_the_labels_it_inferred_with_spaces_around_them(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(CORPUS / "recordings" / "subject1_labels_whitespace.csv", src / "subject1.csv")
    out = tmp_path / "out"
    res = _cli("data", "import", src, "--out", out, "--gyro-unit", "deg/s")
    assert res.exit_code == 0, res.output
    assert "2 classes (400 rows): sitting, walking" in res.output
    info = _cli("data", "info", out)
    assert info.exit_code == 0, info.output


def test_labels_that_differ_only_in_case_are_warned_about(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(CORPUS / "recordings" / "subject1_labels_case.csv", src / "subject1.csv")
    res = _cli("data", "import", src, "--out", tmp_path / "out", "--gyro-unit", "deg/s")
    assert res.exit_code == 0, res.output
    assert "warning: labels 'Walking' and 'walking' differ only in case" in res.output


def test_import_refuses_a_rate_that_would_upsample_5000_times(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(CORPUS / "recordings" / "subject1_ok.csv", src / "subject1.csv")
    res = _cli("data", "import", src, "--out", tmp_path / "out", "--gyro-unit", "deg/s",
               "--rate", "0.01")  # fmt: skip
    _refused(res, "--rate 0.01 is not within 5..10000 Hz")


def test_a_10_mb_label_cell_is_one_line_in_bounded_memory(tmp_path):
    """A 10 MB label made numpy ask for 67 GiB (fixed-width strings of the longest cell)."""
    ds = _dataset(tmp_path, "ok")
    lines = (ds / "subject1_ok.csv").read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + "," + "x" * 10_000_000  # line 6 of the file
    (ds / "subject1_ok.csv").write_text("\n".join(lines) + "\n")
    script = (
        "import resource, sys\n"
        "from tinyhar.cli import main\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "sys.argv = ['tinyhar', 'data', 'info', sys.argv[1]]\n"
        "main()\n"
    )
    proc = subprocess.run([str(Path(TINYHAR[0]).with_name("python")), "-c", script, str(ds)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "line 6: a label cell of 10000000 characters (at most 1024)" in one_error_line(
        proc.stderr
    )


def test_subject_ids_and_strides_beyond_what_tinyhar_carries_are_usage_errors(tmp_path):
    for option, value, said in (
        ("--test-subjects", "99999999999999999999", "subject ids are 0..999999"),
        ("--stride", "65536", "65536 is not in the range 1<=x<=65535"),
        ("--train-stride", "100000", "100000 is not in the range 1<=x<=65535"),
    ):
        res = _cli("train", "--data", tmp_path, option, value)
        assert res.exit_code == 2 and said in res.output, res.output
        assert "Traceback" not in res.output
