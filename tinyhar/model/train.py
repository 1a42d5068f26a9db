"""Train a model on a dataset's windows and write the run folder's training artifacts atomically."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinyhar.data.classes import case_duplicates, choose_classes, shown
from tinyhar.data.dataset import Dataset, load_dataset
from tinyhar.data.download import default_data_dir
from tinyhar.data.windows import (
    REPRESENTATIVE_WINDOWS,
    Split,
    make_windows,
    normalization,
    normalize,
    split_windows,
)
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_path, atomic_write_bytes, atomic_write_json, remove
from tinyhar.log import inf, wrn
from tinyhar.model import plots
from tinyhar.model.architectures import LEARNING_RATE, TINY_SIZE, build_model
from tinyhar.model.augment import augment, sensor_groups
from tinyhar.model.budget import (
    PARAMS_NOTE,
    Budget,
    InstructionCounter,
    fit_tiny_to_budget,
    int8_params,
)
from tinyhar.model.config import (
    DEFAULT_TRAIN_STRIDE,
    LR_SCHEDULES,
    TrainConfig,
)
from tinyhar.model.dataset_spec import dataset_spec
from tinyhar.model.distill import distilled_targets, teacher_probs
from tinyhar.model.metrics import classification_metrics
from tinyhar.model.selection import best_epoch, selection_callback
from tinyhar.run import folder as runs
from tinyhar.run.firmware import FIRMWARE_DIR
from tinyhar.run.records import DatasetContract, TrainMetrics

DEFAULT_BUDGET = Budget()  # bytes a budget option leaves unset: 64 KB model, 32 KB arena
# The training files metrics.json holds the digests of: what quantize and build read.
TRAINED = (runs.KERAS_MODEL, runs.DATASET_JSON, runs.WINDOWS_NPZ)
# Artifacts made from an earlier model: a retrain removes them before it writes anything.
DOWNSTREAM = (
    runs.INT8_MODEL,
    runs.QUANTIZE_JSON,
    runs.BUILD_JSON,
    *(runs.verify_json(m) for m in runs.VERIFY_MODES),
    *(runs.verify_png(m) for m in runs.VERIFY_MODES),
    FIRMWARE_DIR,
    runs.EVALUATE_JSON,
    runs.EVALUATE_PNG,
)


@dataclass
class Prepared:
    """Windows split and described, ready to train on."""

    split: Split
    mean: np.ndarray
    std: np.ndarray
    dataset: DatasetContract
    class_names: list[str]


@dataclass
class TrainResult:
    run: Path
    metrics: TrainMetrics
    dataset: DatasetContract
    files: list[Path] = field(default_factory=list)


def resolve_data(data: Path | None) -> Path:
    """The --data folder, or the downloaded MHEALTH cache when none is given."""
    if data is not None:
        if not Path(data).exists():
            raise TinyharError(
                f"--data {data} does not exist: run `tinyhar data download` or "
                "`tinyhar data synth --out DIR` and pass that folder"
            )
        return Path(data)
    try:
        cache = Path(default_data_dir())
    except ImportError:
        cache = None
    if cache is not None and cache.is_dir() and any(cache.iterdir()):
        return cache
    raise TinyharError(
        "no --data given and no downloaded MHEALTH found: run `tinyhar data download` "
        "(or `tinyhar data synth --out DIR` for synthetic data) and pass --data"
    )


def prepare(cfg: TrainConfig, data: Dataset, warn: Callable[[str], None] = wrn) -> Prepared:
    """Window, split, choose the classes of and normalise a loaded dataset for `cfg`."""
    if cfg.include_null and data.null_code is None:
        raise TinyharError(f"--include-null keeps MHEALTH's null class; {data.name} has none")
    drop = () if cfg.include_null or data.null_code is None else (data.null_code,)
    chans = data.model_channels(cfg.sensors)
    w = make_windows(data.recordings, [c.column for c in chans], cfg.window, cfg.stride, drop)
    split = split_windows(
        w,
        cfg.split,
        cfg.train_subjects,
        cfg.val_subjects,
        cfg.test_subjects,
        seed=cfg.seed,
        window=cfg.window,
        stride=cfg.stride,
    )
    train_stride = training_stride(cfg)
    if train_stride != cfg.stride:
        dense = [r for r in data.recordings if int(r.subject) in set(split.train_subjects)]
        cols = [c.column for c in chans]
        split = replace(split, train=make_windows(dense, cols, cfg.window, train_stride, drop))
    codes = choose_classes(split, data.labels, cfg.classes, warn)
    split = split.with_classes(codes)
    names = [data.labels[c] for c in codes]
    for a, b in case_duplicates(names):
        warn(f"classes {shown(a)} and {shown(b)} differ only in case: two classes to the model")
    mean, std = normalization(split.train.x)
    spec = dataset_spec(
        name=data.name,
        synthetic=data.synthetic,
        source=data.source,
        sensors=sensors_of(cfg, data),
        channels=chans,
        window=cfg.window,
        stride=cfg.stride,
        train_stride=train_stride,
        include_null=cfg.include_null,
        labels=names,
        label_ids=codes,
        mean=mean,
        std=std,
        split=split,
    )
    return Prepared(split, mean, std, spec, names)


def training_stride(cfg: TrainConfig) -> int:
    """Samples between training windows: --train-stride, else the architecture's
    DEFAULT_TRAIN_STRIDE (or --stride when that is smaller). The random split cuts one set of
    windows for all three sets, so it takes --stride alone."""
    if cfg.split == "random":
        if cfg.train_stride not in (None, cfg.stride):
            raise TinyharError(
                "--train-stride needs a split by subject: the random split shuffles one set of "
                "windows into train, val and test; leave --train-stride out or use --split "
                "subjects"
            )
        return cfg.stride
    if cfg.train_stride is None:
        return min(cfg.stride, DEFAULT_TRAIN_STRIDE.get(cfg.arch, DEFAULT_TRAIN_STRIDE["paper"]))
    if cfg.train_stride < 1:
        raise TinyharError(f"--train-stride {cfg.train_stride}: give at least 1 sample")
    return cfg.train_stride


def sensors_of(cfg: TrainConfig, data: Dataset) -> str:
    """MHEALTH's sensor set, or "all" (every channel of a dataset folder)."""
    return (cfg.sensors or "arm") if data.is_mhealth else "all"


def _epoch_logger(log: Callable[[str], None], epochs: int, seconds: list[float]):
    from tinyhar.lite.keras_env import keras  # lazy: TensorFlow takes seconds to import

    class EpochLine(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            dt = time.perf_counter() - self.t0
            seconds.append(dt)
            log(
                f"epoch {epoch + 1:>3}/{epochs}  loss {logs.get('loss', float('nan')):.4f}  "
                f"acc {logs.get('accuracy', float('nan')):.4f}  "
                f"val_loss {logs.get('val_loss', float('nan')):.4f}  "
                f"val_acc {logs.get('val_accuracy', float('nan')):.4f}  "
                f"val_f1 {logs.get('val_macro_f1', float('nan')):.4f}  {dt:.1f}s"
            )

    return EpochLine()


def sized_to_budget(cfg: TrainConfig) -> bool:
    """Whether a budget option was given (else tiny is the default shape as it is)."""
    return any(v is not None for v in (cfg.max_model_kb, cfg.max_arena_kb, cfg.max_instructions))


def size_model(
    cfg: TrainConfig,
    shape: tuple[int, int],
    n_classes: int,
    log: Callable[[str], None],
    count_instructions: InstructionCounter | None = None,
) -> tuple[dict, dict]:
    """(size params, budget) for build_model: tiny's default shape, or its largest width within
    the budget options; nothing for paper."""
    if cfg.arch != "tiny":
        return {}, {}
    if not sized_to_budget(cfg):
        if cfg.size is not None:
            return TINY_SIZE | cfg.size, {}  # recorded whole: the default shape may change
        log(
            f"tiny: the default shape ({_size_text(TINY_SIZE)}); --max-model-kb, "
            "--max-arena-kb or --max-instructions size its width to a budget"
        )
        return dict(TINY_SIZE), {}
    if cfg.size is not None and "width" in cfg.size:
        raise TinyharError(
            "--size width=... and a budget option: a budget sizes the width; give one or the other"
        )
    want = Budget(
        max_model_kb=cfg.max_model_kb or DEFAULT_BUDGET.max_model_kb,
        max_arena_kb=cfg.max_arena_kb or DEFAULT_BUDGET.max_arena_kb,
        max_instructions=cfg.max_instructions,
    )
    log(f"sizing tiny to {want.describe()}")
    fit = fit_tiny_to_budget(
        shape,
        n_classes,
        want,
        log=log,
        shape=TINY_SIZE | (cfg.size or {}),
        count_instructions=count_instructions,
    )
    budget: dict[str, Any] = {
        "max_model_kb": want.max_model_kb,
        "max_arena_kb": want.max_arena_kb,
        "int8_model_bytes_untrained": fit.model_bytes,
        "arena_bytes_untrained": fit.arena_bytes,
    }
    counted = ""
    if want.max_instructions is not None:
        budget |= {
            "max_instructions": want.max_instructions,
            "board": want.board,
            "instructions_untrained": fit.instructions,
        }
        counted = f", {fit.instructions:,} instructions on the emulated {want.board}"
    log(
        f"tiny width {fit.size['width']}: int8 {fit.model_bytes} B, arena {fit.arena_bytes} B"
        f"{counted}"
    )
    return fit.size, budget


def _size_text(size: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in size.items())


def fit(
    cfg: TrainConfig,
    prep: Prepared,
    log: Callable[[str], None] = inf,
    count_instructions: InstructionCounter | None = None,
):
    """Size (tiny; `--max-instructions` counted by `count_instructions`), build and train the
    model; returns (model, history, size params, budget)."""
    from tinyhar.lite.keras_env import keras  # lazy: TensorFlow takes seconds to import

    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise TinyharError("--epochs and --batch-size must be at least 1")
    if not 0 <= cfg.label_smoothing < 1 or cfg.warmup_epochs < 0:
        raise TinyharError(
            f"--label-smoothing {cfg.label_smoothing} / --warmup-epochs {cfg.warmup_epochs}: "
            "give a smoothing from 0 to below 1 and at least 0 warm-up epochs"
        )
    n_classes = len(prep.class_names)
    shape = (cfg.window, len(prep.dataset.channels))
    size, budget = size_model(cfg, shape, n_classes, log, count_instructions)
    keras.backend.clear_session()
    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg.arch, shape, n_classes, **size)
    s = prep.split
    y_train, y_val = s.train.y, s.val.y
    if cfg.teachers:
        if cfg.augment.active:
            raise TinyharError(
                "distillation takes the teachers' outputs on fixed training "
                "windows: leave out the augmentation options"
            )
        probs = teacher_probs(cfg.teachers, s.train.x, prep.class_names)
        y_train = distilled_targets(s.train.y, probs, cfg.distill, cfg.distill_temperature)
        y_val = np.eye(n_classes, dtype=np.float32)[s.val.y]
        log(
            f"distilling from {len(cfg.teachers)} teacher(s): targets {cfg.distill:g} theirs "
            f"at temperature {cfg.distill_temperature:g}"
        )
    if cfg.label_smoothing or cfg.teachers:
        compile_soft(model, n_classes, cfg.label_smoothing, onehot=not cfg.teachers)
    x_val = normalize(s.val.x, prep.mean, prep.std)
    seconds: list[float] = []
    rule = cfg.select
    callbacks = [
        selection_callback(rule, x_val, s.val.y, prep.class_names),
        _epoch_logger(log, cfg.epochs, seconds),
    ]
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise TinyharError(
            f"unknown --lr-schedule {cfg.lr_schedule!r}: use {' or '.join(LR_SCHEDULES)}"
        )
    if cfg.lr_schedule == "cosine" or cfg.warmup_epochs:
        callbacks.append(
            keras.callbacks.LearningRateScheduler(
                lambda e: learning_rate(e, cfg.epochs, cfg.lr_schedule, cfg.warmup_epochs)
            )
        )
    params = int8_params(cfg.arch, shape, n_classes, **size)
    log(
        f"training {cfg.arch} ({params} params, as int8) on {len(s.train)} windows, "
        f"validating on {len(s.val)}, up to {cfg.epochs} epochs; keeping {rule.describe()}"
    )
    if cfg.augment.active:
        log(f"augmenting the training windows: {cfg.augment.describe()}")
    t0 = time.perf_counter()
    hist = model.fit(
        *_training_data(cfg, prep, y_train),
        validation_data=(x_val, y_val),
        epochs=cfg.epochs,
        batch_size=None if cfg.augment.active else cfg.batch_size,
        shuffle=not cfg.augment.active,
        verbose=0,
        callbacks=callbacks,
    )
    history: dict[str, Any] = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    ran = len(history.get("loss", []))
    best = best_epoch(history[rule.metric], rule)
    stopped = f"stopped after epoch {ran}; " if ran < cfg.epochs else ""
    log(
        f"{stopped}keeping the weights of epoch {best} ({rule.metric} "
        f"{history[rule.metric][best - 1]:.4f})"
    )
    history["epoch_seconds"] = [round(t, 3) for t in seconds]
    history["train_seconds"] = round(time.perf_counter() - t0, 2)
    return model, history, size, budget


def cosine_lr(epoch: int, epochs: int) -> float:
    """Adam's learning rate in 0-based `epoch` of `epochs`: a half cosine, LEARNING_RATE to 0."""
    return float(LEARNING_RATE * 0.5 * (1 + np.cos(np.pi * epoch / epochs)))


def learning_rate(epoch: int, epochs: int, schedule: str, warmup: int = 0) -> float:
    """Adam's rate in 0-based `epoch`: a linear climb to LEARNING_RATE over `warmup` epochs, then
    constant or a half cosine to 0 over the remaining epochs."""
    if epoch < warmup:
        return LEARNING_RATE * (epoch + 1) / (warmup + 1)
    if schedule == "constant":
        return LEARNING_RATE
    return cosine_lr(epoch - warmup, max(1, epochs - warmup))


def compile_soft(model, n_classes: int, smoothing: float, onehot: bool = True) -> None:
    """Compile `model` as build_model does, for label smoothing on integer targets (`onehot`)
    or for probability targets (distillation), with cross-entropy."""
    from tinyhar.lite.keras_env import keras, tf  # lazy: TensorFlow takes seconds to import

    def soft_crossentropy(y_true, y_pred):
        if onehot:
            y_true = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), n_classes)
        return keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=smoothing)

    accuracy = (
        keras.metrics.SparseCategoricalAccuracy if onehot else keras.metrics.CategoricalAccuracy
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss=soft_crossentropy,
        metrics=[accuracy(name="accuracy")],
    )


def _training_data(cfg: TrainConfig, prep: Prepared, y: np.ndarray) -> tuple:
    """model.fit's training input: the normalised windows and labels, or (augmenting) a
    keras Sequence that augments the raw windows afresh each epoch (seeded) and shuffles."""
    from tinyhar.lite.keras_env import keras  # lazy: TensorFlow takes seconds to import

    train = prep.split.train
    if not cfg.augment.active:
        return normalize(train.x, prep.mean, prep.std), y
    groups = sensor_groups(prep.dataset.channels)
    rng = np.random.default_rng([cfg.seed, 9])  # a stream apart from Keras's own seeding

    class Augmented(keras.utils.Sequence):
        def __init__(self):
            super().__init__()
            self.on_epoch_end()

        def on_epoch_end(self):
            order = rng.permutation(len(train))
            x = augment(train.x[order], groups, cfg.augment, rng)
            self.x, self.y = normalize(x, prep.mean, prep.std), train.y[order]

        def __len__(self):
            return -(-len(train) // cfg.batch_size)

        def __getitem__(self, i):
            sl = slice(i * cfg.batch_size, (i + 1) * cfg.batch_size)
            return self.x[sl], self.y[sl]

    return (Augmented(),)


def evaluate(model, prep: Prepared, batch_size: int = 256) -> dict:
    """Accuracy, macro-F1, per-class scores and confusion on the test split."""

    x = normalize(prep.split.test.x, prep.mean, prep.std)
    pred = np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=1)
    return classification_metrics(prep.split.test.y, pred, prep.class_names)


def windows_npz(prep: Prepared, seed: int) -> bytes:
    """windows.npz: raw test windows, labels, subjects, and some raw training windows (x_rep)."""
    s = prep.split
    rng = np.random.default_rng(seed)
    rep = np.sort(rng.permutation(len(s.train))[:REPRESENTATIVE_WINDOWS])
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        x_test=s.test.x.astype(np.float32),
        y_test=s.test.y.astype(np.int64),
        subject_test=s.test.subject.astype(np.int64),
        x_rep=s.train.x[rep].astype(np.float32),
    )
    return buf.getvalue()


def train(
    cfg: TrainConfig,
    log: Callable[[str], None] = inf,
    count_instructions: InstructionCounter | None = None,
) -> TrainResult:
    """Load, window, split, size (tiny), train, evaluate; then write the run folder atomically.
    `count_instructions` counts `cfg.max_instructions` (tinyhar.device.instruction_budget)."""

    if cfg.arch not in ("tiny", "paper"):
        raise TinyharError(f"unknown architecture {cfg.arch!r}: use tiny or paper")
    data_dir = resolve_data(cfg.data)
    data = load_dataset(data_dir)
    tag = sensors_of(cfg, data) if data.is_mhealth else data.name
    run = Path(cfg.run) if cfg.run is not None else runs.new_run_dir(cfg.arch, tag)
    if run.exists() and not run.is_dir():
        raise TinyharError(f"--run {run} is a file: pass a folder")
    log(f"data: {data.source}{' (SYNTHETIC)' if data.synthetic else ''}")
    prep = prepare(cfg, data)
    c = prep.dataset.counts
    sp = prep.split
    every = prep.dataset.train_stride
    dense = f"; every {every} samples" if every != prep.dataset.stride else ""
    log(
        f"windows: train {c['train']} (subjects {_ids(sp.train_subjects)}{dense}), val {c['val']} "
        f"({_ids(sp.val_subjects)}), test {c['test']} ({_ids(sp.test_subjects)}); "
        f"{len(prep.dataset.channels)} channels, {len(prep.class_names)} classes"
    )
    log(f"classes: {', '.join(prep.class_names)}")
    if sp.kind == "random":
        log(f"note: {sp.note}")

    model, history, size, budget = fit(cfg, prep, log, count_instructions)
    metrics = train_metrics(cfg, prep, evaluate(model, prep), model, history, size, budget)
    files = write_run(run, cfg, prep, model, history, metrics, log)
    return TrainResult(run, metrics, prep.dataset, files)


def train_metrics(
    cfg: TrainConfig,
    prep: Prepared,
    scores: dict,
    model,
    history: dict,
    size: dict,
    budget: dict,
) -> TrainMetrics:
    """metrics.json's content, from the test scores (`evaluate`) and the training history."""
    return TrainMetrics(
        accuracy=scores["accuracy"],
        macro_f1=scores["macro_f1"],
        per_class=scores["per_class"],
        confusion=scores["confusion"],
        labels=prep.class_names,
        split=prep.dataset.split,
        counts=prep.dataset.counts,
        params=int8_params(
            cfg.arch, (cfg.window, len(prep.dataset.channels)), len(prep.class_names), **size
        ),
        params_note=PARAMS_NOTE,
        arch=cfg.arch,
        size=size,
        budget=budget,
        sensors=prep.dataset.sensors,
        epochs_run=len(history.get("loss", [])),
        best_epoch=best_epoch(history[cfg.select.metric], cfg.select),
        selection=cfg.select.to_json(),
        lr_schedule=cfg.lr_schedule,
        train_stride=prep.dataset.train_stride,
        augment=cfg.augment.to_json(),
        synthetic=prep.dataset.synthetic,
        data=prep.dataset.label,
        train_seconds=history["train_seconds"],
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        warmup_epochs=cfg.warmup_epochs,
        label_smoothing=cfg.label_smoothing,
        distillation={
            "teachers": [str(p) for p in cfg.teachers],
            "weight": cfg.distill,
            "temperature": cfg.distill_temperature,
        }
        if cfg.teachers
        else {},
    )


def write_run(
    run: Path,
    cfg: TrainConfig,
    prep: Prepared,
    model,
    history: dict,
    metrics: TrainMetrics,
    log: Callable[[str], None],
) -> list[Path]:
    """Plot, then write the run folder one atomic file at a time: first remove what an earlier
    model left (metrics.json, which marks a finished run, first of all), then the new files,
    metrics.json last with their digests. A crash at any moment leaves the old run, or one that
    later commands refuse (no metrics.json, or files it does not describe). Returns the files
    written."""
    title = f"{cfg.arch} / {metrics.sensors} on {metrics.data}"
    confusion = plots.confusion_png(
        metrics.confusion,
        prep.class_names,
        f"{title}: test accuracy {metrics.accuracy:.3f}, macro-F1 {metrics.macro_f1:.3f}",
    )
    history_png = plots.history_png(history, f"{title}: training history")
    npz = windows_npz(prep, cfg.seed)

    # Everything is computed: only now touch the run folder, one atomic file at a time.
    run.mkdir(parents=True, exist_ok=True)
    _remove_stale(run, log)
    with atomic_path(run / runs.KERAS_MODEL) as tmp:
        model.save(tmp)
    files = [run / runs.KERAS_MODEL]
    files.append(prep.dataset.save(run))
    files.append(atomic_write_json(run / runs.HISTORY_JSON, history))
    for name, blob in (
        (runs.WINDOWS_NPZ, npz),
        (runs.CONFUSION_PNG, confusion),
        (runs.HISTORY_PNG, history_png),
    ):
        files.append(atomic_write_bytes(run / name, blob))
    done = replace(metrics, outputs=runs.digests(run, TRAINED))
    files.append(done.save(run))  # last: the run is finished
    return files


def _remove_stale(run: Path, log: Callable[[str], None]) -> None:
    """Before a (re)training writes anything: metrics.json (the run is no longer finished), then
    everything made from the earlier model."""
    stale = [n for n in (runs.METRICS_JSON, *DOWNSTREAM) if remove(run / n)]
    made = [n for n in stale if n != runs.METRICS_JSON]
    if made:
        log(f"removed {', '.join(made)} made from the previous model")


def _ids(ids: Sequence[int]) -> str:
    return ",".join(map(str, ids))


def summary(result: TrainResult) -> str:
    """The lines `tinyhar train` prints at the end."""
    m = result.metrics
    lines = [
        f"{m.arch} / {m.sensors} on {m.data}: test accuracy {m.accuracy:.4f}, "
        f"macro-F1 {m.macro_f1:.4f}, {m.params} params (int8 model), {m.epochs_run} epochs "
        f"in {m.train_seconds:.1f} s",
    ]
    if m.synthetic:
        lines.append("these figures are on SYNTHETIC data: they say nothing about real accuracy")
    if m.split["kind"] == "random":
        lines.append(f"note: {m.split['note']}")
    lines.append(f"run folder: {result.run}  ({', '.join(p.name for p in result.files)})")
    return "\n".join(lines)
