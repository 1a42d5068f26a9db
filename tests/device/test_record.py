"""`tinyhar record` against the virtual board, whose IMU replays the run's test recordings: what
the firmware core sends in RECORDING frames is what lands in the dataset folder, and the folder
is one that `data info`, `data import`, `train` and `evaluate` take."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from helpers.boards import virtual_board
from helpers.commands import tinyhar

from tinyhar.data.manifest import read_manifest
from tinyhar.device.live_plot import LivePlot
from tinyhar.device.record import RecordOptions, record_imu
from tinyhar.errors import TinyharError
from tinyhar.files import read_json

COLUMNS = ["acc_x_g", "acc_y_g", "acc_z_g", "gyro_x_dps", "gyro_y_dps", "gyro_z_dps"]


def _opts(port, run, out, **kw) -> RecordOptions:
    args = dict(port=port, run=run, out=out, label="walking", subject=3, seconds=4.0,
                progress=False, plot=False)  # fmt: skip
    args.update(kw)
    return RecordOptions(**args)


def test_a_recording_holds_the_samples_the_board_sent(tiny_run, tmp_path) -> None:
    out = tmp_path / "rec"
    with virtual_board(tiny_run, speed=20) as (vb, _):
        first = record_imu(_opts(vb.path, tiny_run, out))
        second = record_imu(_opts(vb.path, tiny_run, out, label="sitting", seconds=1.0))
        other = record_imu(_opts(vb.path, tiny_run, out, subject=12, seconds=1.0))
        replay = vb.image.replay
    assert (first.samples, first.lost, first.stopped) == (200, 0, None)
    assert [r.file.name for r in (first, second, other)] == [
        "subject03_session1.csv", "subject03_session2.csv", "subject12_session1.csv"]  # fmt: skip
    csv = pd.read_csv(first.file)
    assert list(csv.columns) == ["time_s", *COLUMNS, "activity"]
    assert set(csv["activity"]) == {"walking"}
    np.testing.assert_allclose(csv["time_s"], np.arange(200) / 50.0, atol=1e-4)
    # the arm run's six channels are the IMU's six readings, in the board's units (g, deg/s):
    # each recording replays from the start of the run's test recordings
    np.testing.assert_allclose(csv[COLUMNS].to_numpy(), replay[:200], rtol=1e-6, atol=1e-6)
    m = read_manifest(out)
    assert m.classes == ["walking", "sitting"] and m.rate_hz == 50
    assert [(c.column, c.kind, c.axis, c.unit) for c in m.channels][::3] == [
        ("acc_x_g", "acc", "x", "g"), ("gyro_x_dps", "gyro", "x", "deg/s")]  # fmt: skip
    assert m.synthetic == read_json(tiny_run / "dataset.json")["synthetic"] is True
    assert "virtual nano33ble" in m.source


def test_unplugging_the_board_mid_recording_keeps_what_came(tiny_run, tmp_path) -> None:
    out = tmp_path / "rec"
    with virtual_board(tiny_run) as (vb, _):
        threading.Timer(1.5, vb.close).start()  # the pty goes away, as a USB port does
        report = record_imu(_opts(vb.path, tiny_run, out, seconds=30.0))
    assert report.stopped and "went away" in report.stopped
    assert 30 <= report.samples < 1500
    assert len(pd.read_csv(report.file)) == report.samples
    assert read_manifest(out).classes == ["walking"]


def test_a_folder_of_another_layout_or_a_bad_label_is_refused_before_recording(
    tiny_run, tmp_path
) -> None:
    out = tmp_path / "rec"
    out.mkdir()
    (out / "dataset.toml").write_text(
        'format = 1\nname = "x"\nrate_hz = 100\nlabel_column = "activity"\nclasses = ["a"]\n'
        'subject_pattern = "s(?P<subject>[0-9]+)"\n'
        '[[channels]]\ncolumn = "acc_x"\nkind = "acc"\naxis = "x"\nunit = "g"\n'
    )
    with virtual_board(tiny_run, speed=20) as (vb, _):
        with pytest.raises(TinyharError, match=r"holds recordings at 100 Hz .* another --out"):
            record_imu(_opts(vb.path, tiny_run, out))
        with pytest.raises(TinyharError, match="--label 'a,b'"):
            record_imu(_opts(vb.path, tiny_run, tmp_path / "new", label="a,b"))
    assert sorted(p.name for p in out.iterdir()) == ["dataset.toml"]


def test_the_live_plot_shows_the_last_seconds_of_each_column() -> None:
    plot = LivePlot(COLUMNS, 50.0, show=False)  # drawn off screen: no display here
    try:
        plot.add(np.ones((300, 6), np.float32))
        plot.add(np.zeros((400, 6), np.float32))
        x, y = plot.lines[3].get_data()
        assert len(y) == 500 and y[:100].tolist() == [1.0] * 100 and y[-1] == 0.0
        assert x[-1] == pytest.approx(-1 / 50)
    finally:
        plot.close()


@pytest.mark.slow
def test_recordings_train_and_evaluate_as_a_dataset(tiny_run, tmp_path) -> None:
    rec, run = tmp_path / "rec", tmp_path / "run"
    with virtual_board(tiny_run, speed=50) as (vb, _):
        for subject in (1, 2, 3, 4):
            for label in ("walking", "sitting"):
                record_imu(_opts(vb.path, tiny_run, rec, label=label, subject=subject,
                                 seconds=30.0))  # fmt: skip
    info = tinyhar("data", "info", rec).stdout
    assert "walking" in info and "sitting" in info
    imported = tinyhar("data", "import", rec, "--out", tmp_path / "imported").stdout
    assert read_manifest(tmp_path / "imported").channels == read_manifest(rec).channels, imported
    tinyhar("train", "--data", rec, "--arch", "tiny", "--epochs", "1", "--run", run)
    assert read_json(run / "dataset.json")["labels"] == ["walking", "sitting"]
    tinyhar("evaluate", "--run", run, "--data", rec, "--subjects", "4")
    assert (run / "evaluate.json").is_file()
