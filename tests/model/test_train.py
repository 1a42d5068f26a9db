"""`tinyhar train` end to end on a small synthetic dataset; failed and interrupted runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinyhar.cli import main
from tinyhar.errors import TinyharError
from tinyhar.model.architectures import TINY_SIZE
from tinyhar.model.train import TrainConfig, prepare
from tinyhar.run import folder as runs


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from tinyhar.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("data") / "synth", subjects=4, seed=0)


@pytest.fixture(scope="module")
def loaded(synth):
    from tinyhar.data.dataset import load_dataset

    return load_dataset(synth)


@pytest.fixture(scope="module")
def trained_run(synth, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "R"
    run.mkdir()
    (run / runs.INT8_MODEL).write_bytes(b"from an older model")
    args = ["train", "--data", str(synth), "--sensors", "arm", "--arch", "tiny"]
    result = CliRunner().invoke(main, [*args, "--run", str(run), "--epochs", "2"])
    return run, result


FILES = [
    runs.KERAS_MODEL,
    runs.DATASET_JSON,
    runs.WINDOWS_NPZ,
    runs.METRICS_JSON,
    runs.HISTORY_JSON,
    runs.CONFUSION_PNG,
    runs.HISTORY_PNG,
]


def snapshot(run) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in FILES}


@pytest.mark.slow
def test_train_writes_every_artifact(trained_run):
    run, result = trained_run
    assert result.exit_code == 0, result.output
    for name in FILES:
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    assert not (run / runs.INT8_MODEL).exists()  # stale: made from the previous model
    ds = json.loads((run / runs.DATASET_JSON).read_text())
    assert len(ds["channels"]) == 6 and ds["synthetic"] is True
    assert [c["column"] for c in ds["channels"]] == [14, 15, 16, 17, 18, 19]
    assert ds["split"] == {
        **ds["split"],
        "kind": "subjects",
        "train": [1, 2],
        "val": [3],
        "test": [4],
    }
    assert len(ds["normalization"]["std"]) == 6 and len(ds["labels"]) == 12
    m = json.loads((run / runs.METRICS_JSON).read_text())
    assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["macro_f1"] <= 1.0
    assert m["epochs_run"] == 2 and m["synthetic"] is True and m["arch"] == "tiny"
    assert m["train_stride"] == ds["train_stride"] == 10 and ds["stride"] == 50  # tiny's defaults
    assert np.sum(m["confusion"]) == ds["counts"]["test"]
    assert sum(c["support"] for c in m["per_class"].values()) == ds["counts"]["test"]
    assert m["size"] == TINY_SIZE and m["budget"] == {}  # no budget option: the default shape
    w = np.load(run / runs.WINDOWS_NPZ)
    assert w["x_test"].shape == (ds["counts"]["test"], 100, 6) and w["x_test"].dtype == np.float32
    assert len(w["y_test"]) == len(w["subject_test"]) == ds["counts"]["test"]
    assert set(w["subject_test"].tolist()) == {4}
    assert 0 < len(w["x_rep"]) <= 500
    hist = json.loads((run / runs.HISTORY_JSON).read_text())
    assert len(hist["loss"]) == 2 and len(hist["val_accuracy"]) == 2
    # the default rule, recorded: best val macro-F1 (2 epochs < --min-epochs: the best so far)
    assert m["selection"]["metric"] == "val_macro_f1" and m["selection"]["min_epochs"] == 10
    assert "highest val_macro_f1" in m["selection"]["rule"]
    f1 = hist["val_macro_f1"]
    assert len(f1) == 2 and m["best_epoch"] == int(np.argmax(f1)) + 1
    assert m["augment"]["rotate_deg"] == 0 and m["augment"]["clip_board"] is None
    assert m["lr_schedule"] == "cosine"
    assert "SYNTHETIC" in result.stdout and "accuracy" in result.stdout
    assert "epoch   2/2" in result.stderr


@pytest.mark.slow
def test_failed_or_interrupted_train_leaves_earlier_artifacts(trained_run, synth, monkeypatch):
    run, result = trained_run
    assert result.exit_code == 0
    before = snapshot(run)

    bad = CliRunner().invoke(main, ["train", "--data", str(run / "nope"), "--run", str(run)])
    assert bad.exit_code == 2 and "does not exist" in bad.stderr
    assert "Traceback" not in bad.output

    import tinyhar.model.train as train_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "evaluate", interrupted)
    args = ["train", "--data", str(synth), "--arch", "tiny", "--run", str(run), "--epochs", "1"]
    stopped = CliRunner().invoke(main, args)
    assert stopped.exit_code == 130
    assert snapshot(run) == before
    assert sorted(p.name for p in run.iterdir()) == sorted(FILES)  # no temp files left


@pytest.mark.slow
def test_same_seed_same_training(loaded, trained_run):
    from tinyhar.model.train import fit

    cfg = TrainConfig(epochs=1, seed=7)
    prep = prepare(cfg, loaded)
    first = fit(cfg, prep, log=lambda line: None)
    second = fit(cfg, prep, log=lambda line: None)
    assert first[1]["loss"] == second[1]["loss"]
    for a, b in zip(first[0].get_weights(), second[0].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_the_kept_weights_are_those_of_the_selected_epoch(loaded):
    from tinyhar.data.windows import normalize
    from tinyhar.model.augment import Augment
    from tinyhar.model.metrics import classification_metrics
    from tinyhar.model.selection import SelectionRule
    from tinyhar.model.train import fit

    cfg = TrainConfig(
        epochs=4,
        seed=3,
        select=SelectionRule("val_macro_f1", min_epochs=2, patience=10),
        augment=Augment(rotate_deg=10, scale=0.1),
    )
    prep = prepare(cfg, loaded)
    model, history, _, _ = fit(cfg, prep, log=lambda line: None)
    f1 = history["val_macro_f1"]
    best = int(np.argmax(f1[1:])) + 2  # from epoch 2 on
    x_val = normalize(prep.split.val.x, prep.mean, prep.std)
    pred = model.predict(x_val, verbose=0).argmax(axis=1)
    now = classification_metrics(prep.split.val.y, pred, prep.class_names)["macro_f1"]
    assert now == pytest.approx(f1[best - 1], abs=1e-6), (f1, best)


@pytest.mark.slow
def test_augmented_training_records_its_options_and_the_int8_parameter_count(synth, tmp_path):
    run = tmp_path / "R"
    args = ["train", "--data", str(synth), "--arch", "tiny", "--run", str(run), "--epochs", "2"]
    aug = ["--rotate", "10", "--scale", "0.1", "--time-jitter", "0.05"]
    sel = ["--clip-board", "nano33ble", "--select", "val_accuracy", "--min-epochs", "2"]
    result = CliRunner().invoke(main, [*args, *aug, *sel])
    assert result.exit_code == 0, result.output
    assert "augmenting the training windows: rotation ±10°" in result.stderr
    m = json.loads((run / runs.METRICS_JSON).read_text())
    assert m["augment"]["clip_board"] == "nano33ble"
    assert m["augment"]["clip_acc"] == pytest.approx(4 * 9.80665)
    assert m["augment"]["clip_gyro"] == 2000 and m["augment"]["time_jitter"] == 0.05
    assert m["selection"] == {**m["selection"], "metric": "val_accuracy", "min_epochs": 2}
    assert m["best_epoch"] == 2  # the minimum is the last epoch: the only one to choose
    quantized = CliRunner().invoke(main, ["quantize", "--run", str(run)])
    assert quantized.exit_code == 0, quantized.output
    q = json.loads((run / runs.QUANTIZE_JSON).read_text())
    assert m["params"] == q["params"]  # one count: the int8 model's
    assert "not folded" in m["params_note"]
    assert f"{m['params']} params" in result.stdout


def test_random_split_and_null_class_in_dataset_json(loaded):
    prep = prepare(TrainConfig(sensors="both", split="random", include_null=True), loaded)
    ds = prep.dataset.to_json()
    assert ds["split"]["kind"] == "random" and "leak" in ds["split"]["note"]
    assert ds["labels"][0] == "Null" and ds["label_ids"] == list(range(13))
    assert len(ds["channels"]) == 12 and ds["channels"][0]["unit"] == "m/s^2"
    assert ds["channels"][3]["unit"] == "deg/s"
    counts = np.bincount(prep.split.train.y, minlength=13)
    assert counts[0] == counts.max()  # the null class is the majority


def test_loso_split_from_config(loaded):
    prep = prepare(TrainConfig(split="loso", test_subjects=[2]), loaded)
    assert prep.dataset.split["test"] == [2] and 2 not in prep.dataset.split["train"]
    assert set(np.unique(prep.split.test.subject)) == {2}


def test_missing_default_data_is_one_line_error(monkeypatch, tmp_path):
    import tinyhar.model.train as train_mod

    try:
        import tinyhar.data.download as dl

        monkeypatch.setattr(dl, "default_data_dir", lambda: tmp_path / "empty-cache")
    except ImportError:
        pass
    with pytest.raises(TinyharError, match="tinyhar data download") as e:
        train_mod.resolve_data(None)
    assert "\n" not in str(e.value)


def test_cosine_learning_rate_falls_from_adams_rate_to_zero():
    from tinyhar.model.architectures import LEARNING_RATE
    from tinyhar.model.train import cosine_lr

    assert cosine_lr(0, 50) == LEARNING_RATE
    assert cosine_lr(25, 50) == pytest.approx(LEARNING_RATE / 2)
    assert cosine_lr(49, 50) < LEARNING_RATE * 0.01
    assert all(cosine_lr(e + 1, 50) < cosine_lr(e, 50) for e in range(49))


def test_warmup_climbs_to_adams_rate_then_the_schedule_runs_over_the_rest():
    from tinyhar.model.architectures import LEARNING_RATE
    from tinyhar.model.train import cosine_lr, learning_rate

    assert [learning_rate(e, 50, "cosine", 3) for e in range(3)] == pytest.approx(
        [LEARNING_RATE / 4, LEARNING_RATE / 2, LEARNING_RATE * 3 / 4]
    )
    assert learning_rate(3, 50, "cosine", 3) == LEARNING_RATE
    assert learning_rate(10, 50, "cosine", 3) == cosine_lr(7, 47)
    assert learning_rate(10, 50, "constant", 3) == LEARNING_RATE
    assert [learning_rate(e, 50, "cosine") for e in range(50)] == [
        cosine_lr(e, 50) for e in range(50)
    ]


@pytest.mark.slow
def test_label_smoothing_and_warmup_train_save_and_record(synth, tmp_path):
    from tinyhar.lite.keras_file import load_keras
    from tinyhar.model.train import train

    run = tmp_path / "R"
    cfg = TrainConfig(
        data=synth, run=run, epochs=2, label_smoothing=0.1, warmup_epochs=1,
        size={"width": 8, "pool": 4, "norm": "bn_relu", "attention": "pool", "stats": "mad"},
    )  # fmt: skip
    result = train(cfg, log=lambda _: None)
    m = json.loads((run / runs.METRICS_JSON).read_text())
    assert m["label_smoothing"] == 0.1 and m["warmup_epochs"] == 1
    assert m["size"]["stats"] == "mad" and result.metrics.params > 0
    assert (
        load_keras(run / runs.KERAS_MODEL).count_params() > 0
    )  # saved and loadable as quantize loads it
    with pytest.raises(TinyharError, match="label-smoothing"):
        train(TrainConfig(data=synth, run=tmp_path / "S", label_smoothing=1.0, size={"width": 8}))


def test_train_stride_makes_denser_training_windows_and_leaves_val_and_test_as_they_were(loaded):
    sparse = prepare(TrainConfig(train_stride=50), loaded)
    dense = prepare(TrainConfig(), loaded)  # tiny's default: every 10 samples
    assert dense.dataset.train_stride == 10 and sparse.dataset.train_stride == 50
    assert prepare(TrainConfig(arch="paper"), loaded).dataset.train_stride == 25
    assert dense.dataset.stride == 50  # what the firmware and evaluate cut at
    n_sparse, n_dense = len(sparse.split.train), len(dense.split.train)
    assert 4.5 * n_sparse < n_dense < 5.5 * n_sparse
    assert dense.dataset.counts["train"] == n_dense
    for part in ("val", "test"):
        a, b = getattr(sparse.split, part), getattr(dense.split, part)
        assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert set(np.unique(dense.split.train.subject)) == set(dense.split.train_subjects)
    # every window at stride 50 is also one at stride 10: the sparse set is inside the dense one
    flat = {w.tobytes() for w in dense.split.train.x}
    assert all(w.tobytes() in flat for w in sparse.split.train.x)


def test_train_stride_is_refused_with_the_random_split(loaded):
    assert prepare(TrainConfig(split="random"), loaded).dataset.train_stride == 50
    assert prepare(TrainConfig(stride=10), loaded).dataset.train_stride == 10
    with pytest.raises(TinyharError, match="--train-stride needs a split by subject") as e:
        prepare(TrainConfig(split="random", train_stride=25), loaded)
    assert "\n" not in str(e.value)


def test_size_option_errors_are_one_line(synth, tmp_path):
    base = ["train", "--data", str(synth), "--run", str(tmp_path / "R"), "--epochs", "1"]
    for extra, words in (
        (["--size", "wdth=8"], "--size 'wdth=8'"),
        (["--size", "width"], "key=value"),
        (["--size", "norm=ln"], "unknown norm"),
        (["--size", "width=8", "--max-model-kb", "20"], "a budget sizes the width"),
        (["--size", "width=8", "--arch", "paper"], "--size shapes tiny"),
    ):
        res = CliRunner().invoke(main, [*base, *extra])
        assert res.exit_code == 2, (extra, res.output)
        lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in res.output
    assert not (tmp_path / "R" / runs.METRICS_JSON).exists()


@pytest.mark.slow
def test_size_option_shapes_tiny(synth, tmp_path):
    from tinyhar.lite.keras_env import keras

    run = tmp_path / "R"
    shape = "width=8,stride=2,pool=2,norm=bn_relu,attention=pool,stats=mean"
    res = CliRunner().invoke(main, ["train", "--data", str(synth), "--run", str(run),
                                    "--epochs", "1", "--stride", "100", "--train-stride", "100",
                                    "--size", shape])  # fmt: skip
    assert res.exit_code == 0, res.output
    m = json.loads((run / runs.METRICS_JSON).read_text())
    assert m["size"] == {**TINY_SIZE, "width": 8, "stride": 2, "pool": 2, "norm": "bn_relu",
                         "attention": "pool", "stats": "mean"}  # fmt: skip
    model = keras.models.load_model(run / runs.KERAS_MODEL, compile=False)
    # 100 / stride 2 / pool 2, from the default shape's 16 filters
    assert model.get_layer("lstm").input_shape == (None, 25, 16)
    assert {"conv_relu", "attention_softmax", "stats_mean"} <= {ly.name for ly in model.layers}
