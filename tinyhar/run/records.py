"""The JSON records a run folder holds, as types: one dataclass per file, read and written here
only, so no other module spells a run file or looks a key up in its JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Self

from tinyhar import __version__
from tinyhar.crc import format_crc32
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_write_json
from tinyhar.run.folder import (
    BUILD_JSON,
    DATASET_JSON,
    METRICS_JSON,
    QUANTIZE_JSON,
    read_record,
    redo_hint,
    verify_json,
)


def parse_crc32(value: Any, where: str) -> int:
    """A CRC-32 as a record wrote it (0x-hex text, or an int in older records)."""
    try:
        crc = int(value, 16) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise TinyharError(f"{where}: model_crc32 {value!r} is not a CRC-32") from None
    if not 0 <= crc <= 0xFFFFFFFF:
        raise TinyharError(f"{where}: model_crc32 {value!r} is not a CRC-32")
    return crc


class Record:
    """A JSON file of a run folder: `load` validates it into the type, `save` writes it."""

    FILE: ClassVar[str]

    @classmethod
    def path(cls, folder: Path) -> Path:
        return Path(folder) / cls.FILE

    @classmethod
    def exists(cls, folder: Path) -> bool:
        return cls.path(folder).is_file()

    @classmethod
    def load(cls, folder: Path) -> Self:
        """The record in `folder`; one TinyharError line when it is missing or unreadable."""
        path = cls.path(folder)
        return cls.from_json(read_record(path.parent, path.name), path)

    @classmethod
    def load_if_present(cls, folder: Path) -> Self | None:
        return cls.load(folder) if cls.exists(folder) else None

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> Self:
        """The type of a parsed file; missing keys with a default take it, unknown ones are
        ignored (a newer tinyhar's additions)."""
        return cls(**_known_fields(cls, data, where))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def save(self, folder: Path) -> Path:
        """Write the record into `folder` atomically; returns its path."""
        return atomic_write_json(type(self).path(folder), self.to_json())


def _redo(where: Path) -> str:
    """What makes the record at `where` again, naming its run."""
    return redo_hint(Path(where).parent, Path(where).name)


def _known_fields(cls: type, data: dict[str, Any], where: Path) -> dict[str, Any]:
    out = {}
    for f in fields(cls):
        if not f.init:
            continue
        if f.name in data:
            out[f.name] = data[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise TinyharError(f"{where} lacks {f.name}: {_redo(where)}")
    return out


# --- dataset.json: what the model takes in --------------------------------------------------


@dataclass(frozen=True)
class Channel:
    """One model input channel: its name, 0-based column in the data, unit, kind and axis."""

    name: str
    column: int
    unit: str
    kind: str
    axis: str


@dataclass(frozen=True)
class DatasetContract(Record):
    """dataset.json: the channels, windowing, classes and normalisation a run's model takes."""

    FILE: ClassVar[str] = DATASET_JSON

    dataset: str
    synthetic: bool
    source: str
    sensors: str
    channels: tuple[Channel, ...]
    window: int
    stride: int
    train_stride: int
    rate_hz: float
    include_null: bool
    labels: tuple[str, ...]
    label_ids: tuple[int, ...]  # each class's label code in the data (MHEALTH: 0-12)
    mean: tuple[float, ...]  # per channel, in training units
    std: tuple[float, ...]
    split: dict[str, Any]  # kind, train/val/test subjects, note
    counts: dict[str, int]  # windows per set

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> Self:
        try:
            norm = data["normalization"]
            chans = tuple(
                Channel(str(c["name"]), int(c["column"]), str(c["unit"]), c["kind"], c["axis"])
                for c in data["channels"]
            )
            window = int(data["window"])
            stride = int(data.get("stride", window // 2))
            contract = cls(
                dataset=str(data.get("dataset", "MHEALTH")),
                synthetic=bool(data.get("synthetic", False)),
                source=str(data.get("source", "")),
                sensors=str(data.get("sensors", "")),
                channels=chans,
                window=window,
                stride=stride,
                train_stride=int(data.get("train_stride", stride)),
                rate_hz=float(data["rate_hz"]),
                include_null=bool(data.get("include_null", False)),
                labels=tuple(str(x) for x in data["labels"]),
                label_ids=tuple(int(i) for i in data.get("label_ids", [])),
                mean=tuple(float(v) for v in norm["mean"]),
                std=tuple(float(v) for v in norm["std"]),
                split=dict(data.get("split", {})),
                counts={str(k): int(v) for k, v in data.get("counts", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise TinyharError(f"{where} is incomplete ({e!r}): {_redo(where)}") from None
        contract.check(where)
        return contract

    def check(self, where: Path | str) -> None:
        """Refuse, in one line, a contract no firmware could be made from."""
        problems = []
        if self.window <= 0 or self.stride <= 0:
            problems.append(f"window {self.window} and stride {self.stride} must be positive")
        if not self.channels or not (len(self.mean) == len(self.std) == len(self.channels)):
            problems.append(
                f"{len(self.channels)} channels but {len(self.mean)} means and {len(self.std)} stds"
            )
        if any(s <= 0 for s in self.std):
            problems.append("a std <= 0")
        if not self.labels:
            problems.append("no classes")
        if problems:
            raise TinyharError(f"{where} has {'; '.join(problems)}: {_redo(Path(where))}")

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "synthetic": self.synthetic,
            "source": self.source,
            "sensors": self.sensors,
            "channels": [asdict(c) for c in self.channels],
            "window": self.window,
            "stride": self.stride,
            "train_stride": self.train_stride,
            "rate_hz": self.rate_hz,
            "include_null": self.include_null,
            "labels": list(self.labels),
            "label_ids": list(self.label_ids),
            "normalization": {"mean": list(self.mean), "std": list(self.std)},
            "split": self.split,
            "counts": self.counts,
        }

    @property
    def fitted_subjects(self) -> set[int]:
        """The subjects whose windows trained or validated the model."""
        return {int(s) for key in ("train", "val") for s in self.split.get(key, [])}

    @property
    def label(self) -> str:
        """How reports name the data: 'SYNTHETIC data' or '<dataset> data'."""
        return "SYNTHETIC data" if self.synthetic else f"{self.dataset} data"


# --- metrics.json: the trained model's test scores ----------------------------------------


@dataclass(frozen=True)
class TrainMetrics(Record):
    """metrics.json: test scores of the trained model and how it was trained."""

    FILE: ClassVar[str] = METRICS_JSON

    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # class -> precision, recall, f1, support
    confusion: list[list[int]]
    labels: list[str]
    split: dict[str, Any]
    counts: dict[str, int]
    params: int  # as the int8 model counts them (batch norm as MUL + ADD constants)
    params_note: str
    arch: str
    size: dict[str, Any]  # tiny's width search (empty for paper)
    budget: dict[str, Any]
    sensors: str
    epochs_run: int
    best_epoch: int
    selection: dict[str, Any]  # the rule that chose best_epoch
    lr_schedule: str
    train_stride: int  # samples between training windows (validation and test: dataset stride)
    augment: dict[str, Any]  # train-time augmentation (all 0/None: none)
    synthetic: bool
    data: str
    train_seconds: float
    seed: int
    batch_size: int
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    distillation: dict[str, Any] = field(default_factory=dict)  # teachers, weight, temperature
    outputs: dict[str, str] = field(default_factory=dict)  # file -> digest (run.folder)


# --- quantize.json: the int8 model and its accuracy ---------------------------------------


@dataclass(frozen=True)
class TensorQuantization:
    """An int8 model's input or output: scale, zero point, shape and dtype."""

    scale: float
    zero_point: int
    shape: list[int]
    dtype: str

    @classmethod
    def of(cls, tensor: Any) -> TensorQuantization:
        """From a tensor's description (`lite.tflite_inspect.TensorInfo`)."""
        return cls(float(tensor.scale), int(tensor.zero_point), list(tensor.shape), tensor.dtype)


@dataclass(frozen=True)
class QuantizeReport(Record):
    """quantize.json (and the run folder, which it does not hold)."""

    FILE: ClassVar[str] = QUANTIZE_JSON

    float_accuracy: float
    int8_accuracy: float  # the Python TFLM interpreter
    int8_accuracy_tflite: float
    tflm_tflite_top1_agreement: float
    tflm_tflite_max_abs_diff: int
    float_int8_top1_agreement: float
    board_int8: dict[str, Any]  # the board's TFLM library's accuracy, or why it is unavailable
    test_windows: int
    representative_windows: int
    model_bytes: int
    arena_bytes: int
    arena_resolution: int
    ops: list[str]
    op_counts: dict[str, int]
    macs: int
    params: int
    stateful: bool
    model_crc32: int
    input: TensorQuantization
    output: TensorQuantization
    labels: list[str] | None
    synthetic: bool
    seconds: float
    made_from: dict[str, str] = field(default_factory=dict)  # file -> digest (run.folder)
    outputs: dict[str, str] = field(default_factory=dict)
    run: str = ""  # not in quantize.json: the folder it was read from or written to

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> Self:
        values = _known_fields(cls, data, where)
        values["model_crc32"] = parse_crc32(values["model_crc32"], str(where))
        for key in ("input", "output"):
            try:
                t = values[key]
                values[key] = TensorQuantization(
                    float(t["scale"]), int(t["zero_point"]), list(t["shape"]), str(t["dtype"])
                )
            except (KeyError, TypeError, ValueError) as e:
                raise TinyharError(f"{where}: {key} lacks {e}: {_redo(where)}") from None
        values["run"] = str(Path(where).parent)
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["run"]
        out["model_crc32"] = format_crc32(self.model_crc32)
        return out


# --- build.json: the firmware a build generated -------------------------------------------


@dataclass(frozen=True)
class BuildReport(Record):
    """build.json: what `tinyhar build` generated and compiled. Its paths are for people to read;
    `run.firmware.FirmwareTree.of_build` places the firmware relative to the file."""

    FILE: ClassVar[str] = BUILD_JSON

    board: str
    fqbn: str
    model: str
    model_bytes: int
    arena_bytes: int
    arena_measured: int
    arena_margin: int
    model_crc32: int
    ops: list[str]
    tflm_library: dict[str, str]
    kernels: dict[str, str]  # op -> the library that runs it, or "tinyhar"
    resolver_methods: list[str]
    footprint: dict[str, Any]
    flash_budget: int
    ram_budget: int
    sketch_flash_max: int
    sketch_ram_max: int
    sketch_dir: str
    sketch_kept: bool
    library_dir: str
    sketch_name: str
    synthetic: bool
    origin: dict[str, str]
    config: dict[str, Any]
    made_from: dict[str, str]  # the model file (relative to build.json) and its digest
    tinyhar_version: str = __version__
    compiled: bool = False
    flash_used: int | None = None
    ram_used: int | None = None
    flash_max: int | None = None
    ram_max: int | None = None
    build_dir: str | None = None
    seconds: float = 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> Self:
        values = _known_fields(cls, data, where)
        values["model_crc32"] = parse_crc32(values["model_crc32"], str(where))
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["model_crc32"] = format_crc32(self.model_crc32)
        return out

    @property
    def library_name(self) -> str:
        """The Arduino TFLM library the firmware compiles against ('' in a broken record)."""
        return str(self.tflm_library.get("name", ""))

    @property
    def library_title(self) -> str:
        """'Chirale_TensorFLowLite 2.0.0': that library and its version."""
        return f"{self.library_name} {self.tflm_library.get('version', '')}".strip()


# --- verify_<mode>.json: the last verify run of each mode ---------------------------------


# Sections a report holds only in some runs (device: after HELLO; emulated: on the emulated board;
# preprocess_*: in raw mode; error, stopped_at: on failure); any other field is None only in a
# failed run.
_SOMETIMES = (
    "device",
    "emulated",
    "preprocess_mismatch_windows",
    "preprocess_mismatch_values",
    "error",
    "stopped_at",
    "profile",
    "python_tflm",
)


@dataclass
class VerifyReport(Record):
    """What verify_<mode>.json holds. A run that stopped after comparing some windows
    (`complete` False) has the figures for those windows, `stopped_at` and `error`; a run that
    stopped before comparing any writes no report, only its line in verify_history.jsonl."""

    passed: bool
    complete: bool
    mode: str  # "model" | "raw"
    port: str
    run: str
    synthetic: bool
    windows_requested: int
    run_id: str = ""  # also in the png's metadata and the history line: they are the same run
    started: str = ""  # local time, ISO 8601
    device: dict[str, Any] | None = None  # what HELLO said (`_info_dict`)
    # the figures (`compare`)
    windows: int | None = None
    top1_agreement: float | None = None
    max_abs_diff_lsb: int | None = None
    mean_abs_diff_lsb: float | None = None
    windows_differing: int | None = None
    device_accuracy: float | None = None
    host_accuracy: float | None = None
    tflite_accuracy: float | None = None
    tflite_top1_agreement: float | None = None
    tflite_device_top1_agreement: float | None = None
    tflite_max_abs_diff_lsb: int | None = None
    latency_us: dict[str, float] | None = None  # min, median, max
    seconds: float | None = None
    windows_per_second: float | None = None
    reference: dict[str, Any] | None = None  # name, exact, proves, note
    # second opinion (`second_opinion`); absent when the Python interpreter is the reference
    python_tflm: dict[str, Any] | None = None
    emulated: dict[str, Any] | None = None  # `emulated_timing`
    profile: dict[str, Any] | None = None  # per-op counts (`--profile`; device/profile.py)
    preprocess_mismatch_windows: int | None = None
    preprocess_mismatch_values: int | None = None
    bytes_sent: int | None = None
    bytes_received: int | None = None
    bytes_per_window: float | None = None
    retries: int | None = None
    device_resets_recovered: int | None = None
    thresholds: dict[str, Any] | None = None  # min_agreement, max_lsb, why
    error: str | None = None
    stopped_at: str | None = None  # where a failed or interrupted run stopped

    @classmethod
    def path(cls, folder: Path, mode: str = "model") -> Path:
        return Path(folder) / verify_json(mode)

    @classmethod
    def load_mode(cls, folder: Path, mode: str) -> VerifyReport:
        """The last report of `mode` verify in `folder` (verify_<mode>.json)."""
        path = cls.path(folder, mode)
        return cls.from_json(read_record(path.parent, path.name), path)

    def set(self, **figures: Any) -> None:
        """Set fields by name (a dict of figures); an unknown name is a bug."""
        names = {f.name for f in fields(self)}
        for k, v in figures.items():
            if k not in names:
                raise AttributeError(f"VerifyReport has no field {k!r}")
            setattr(self, k, v)

    def save(self, folder: Path) -> Path:
        return atomic_write_json(self.path(folder, self.mode), self.to_json())

    def to_json(self) -> dict[str, Any]:
        """verify_<mode>.json's content: the sections the run has."""
        return {
            k: v
            for k, v in asdict(self).items()
            if v is not None or (self.complete and k not in _SOMETIMES)
        }
