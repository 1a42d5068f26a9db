"""`tinyhar record`: the board's IMU samples, as its firmware streams them, into a dataset folder.

The firmware sends every sample it would feed the model (board units and axes, resampled to the
model's rate) in RECORDING frames. The host writes one CSV per recording
(`subject03_session2.csv`: `time_s`, one column per IMU reading, `activity`) beside a
`dataset.toml` that `train`, `evaluate` and `data info` read as they are.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinyhar.board import protocol as P
from tinyhar.board.boards import Board, resolve_board
from tinyhar.board.preprocess import channel_map
from tinyhar.data.manifest import (
    AXES,
    MANIFEST,
    Manifest,
    ManifestChannel,
    manifest_toml,
    read_manifest,
)
from tinyhar.device.link import Link, LinkError
from tinyhar.device.live_plot import LivePlot
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_write_text
from tinyhar.log import Log, inf, wrn
from tinyhar.run import folder as runs
from tinyhar.run.records import Channel, DatasetContract

LABEL_COLUMN = "activity"
TIME_COLUMN = "time_s"
SUBJECT_PATTERN = r"subject(?P<subject>\d+)_session\d+"
_SLOT_NAMES = [(kind, axis) for kind in ("acc", "gyro") for axis in AXES]  # the IMU's six readings
_UNIT_SUFFIX = {"g": "g", "mg": "mg", "m/s^2": "m/s2", "deg/s": "dps", "rad/s": "rad/s"}


@dataclass
class RecordOptions:
    port: str
    label: str
    out: Path
    subject: int
    seconds: float = 60.0
    session: int | None = None  # None: the next free one for this subject
    run: Path | None = None  # its dataset.json says which IMU reading each channel is
    board: str | None = None  # None: the board HELLO names
    timeout: float = 1.0
    retries: int = 3
    trace: bool = False
    progress: bool = True
    plot: bool = True  # a live plot where a display exists


@dataclass
class RecordReport:
    file: Path
    samples: int
    rate_hz: float
    lost: int  # samples the device sent that never arrived
    stopped: str | None  # why the recording ended early, or None

    @property
    def seconds(self) -> float:
        return self.samples / self.rate_hz


def recording_columns(
    channels: Sequence[Channel], board: Board
) -> list[tuple[int, ManifestChannel]]:
    """(index into the device's raw sample, its column) for each IMU reading the samples hold,
    once each, in the board's own axes and units."""
    slots = [m.imu_slot for m in channel_map([(c.kind, c.axis, c.unit) for c in channels], board)]
    out, seen = [], set()
    for i, slot in enumerate(slots):
        if slot in seen:
            continue
        seen.add(slot)
        kind, axis = _SLOT_NAMES[slot]
        unit = board.imu.acc_unit if kind == "acc" else board.imu.gyro_unit
        out.append((i, ManifestChannel(f"{kind}_{axis}_{_UNIT_SUFFIX[unit]}", kind, axis, unit)))
    return out


def recording_manifest(
    out: Path,
    rate_hz: float,
    columns: list[ManifestChannel],
    label: str,
    source: str,
    synthetic: bool = False,
) -> Manifest:
    """The folder's manifest with `label` among its classes: the one there, if its rate and
    columns are these, else a new one; a folder of another layout is refused."""
    chans = list(columns)
    if (out / MANIFEST).is_file():
        m = read_manifest(out / MANIFEST)
        if abs(m.rate_hz - rate_hz) > 1e-6 or m.channels != chans:
            raise TinyharError(
                f"{out} holds recordings at {m.rate_hz:g} Hz of "
                f"{', '.join(c.column for c in m.channels)}; this board sends {rate_hz:g} Hz of "
                f"{', '.join(c.column for c in chans)}: record into another --out folder"
            )
        if label in m.classes:
            return m
        return Manifest(**{**m.__dict__, "classes": [*m.classes, label], "path": None})
    return Manifest(
        name=out.name,
        rate_hz=rate_hz,
        channels=chans,
        label_column=LABEL_COLUMN,
        classes=[label],
        subject_pattern=SUBJECT_PATTERN,
        time_column=TIME_COLUMN,
        files=["*.csv"],
        source=source,
        synthetic=synthetic,
    )


def next_session(out: Path, subject: int) -> int:
    """1 + the highest session recorded for `subject` in `out` (1 for the first)."""
    pat = re.compile(rf"subject0*{subject}_session(\d+)\.csv$")
    found = [int(m.group(1)) for p in out.glob("subject*_session*.csv") if (m := pat.match(p.name))]
    return max(found, default=0) + 1


def recording_csv(samples: np.ndarray, rate_hz: float, names: list[str], label: str) -> str:
    """The CSV text: time from the first sample, the readings, the label on every row."""
    t = np.arange(len(samples)) / rate_hz
    rows = [",".join([TIME_COLUMN, *names, LABEL_COLUMN])]
    rows += [
        ",".join([f"{ti:.4f}", *(f"{v:.7g}" for v in row), label])
        for ti, row in zip(t, samples, strict=True)
    ]
    return "\n".join(rows) + "\n"


def record_imu(opts: RecordOptions, log: Log = inf) -> RecordReport:
    """Record --seconds of the board's IMU into --out; keeps what came when the board goes away
    or Ctrl-C stops it (and says so)."""
    if not opts.label or any(ch in opts.label for ch in ',"\n'):
        raise TinyharError(f"--label {opts.label!r}: give a name without commas or quotes")
    run_dir = runs.require_run(opts.run, runs.DATASET_JSON)
    dataset = DatasetContract.load(run_dir)
    channels = dataset.channels
    opts.out.mkdir(parents=True, exist_ok=True)
    with Link(opts.port, timeout=opts.timeout, retries=opts.retries, trace=opts.trace) as link:
        info = link.hello()
        if info.channels != len(channels):
            raise TinyharError(
                f"the device on {opts.port} sends {info.channels} channels, run {run_dir} has "
                f"{len(channels)}: pass the --run its firmware was built from"
            )
        board = resolve_board(opts.board, info.board, f"the device on {opts.port}")
        columns = recording_columns(channels, board)
        if info.device_kind == P.DeviceKind.VIRTUAL:  # it replays the run's data
            source = f"tinyhar record, virtual {board.name} replaying {run_dir}"
            synthetic = dataset.synthetic
        else:
            source, synthetic = f"tinyhar record, {board.title}", False
        manifest = recording_manifest(
            opts.out, info.rate_hz, [c for _, c in columns], opts.label, source, synthetic
        )
        session = opts.session or next_session(opts.out, opts.subject)
        path = opts.out / f"subject{opts.subject:02d}_session{session}.csv"
        if path.exists():
            raise TinyharError(f"{path} exists: choose another --session (or leave it out)")
        want = max(1, round(opts.seconds * info.rate_hz))
        log(
            f"recording {opts.label!r} from {info.board} on {opts.port}: {want} samples at "
            f"{info.rate_hz:g} Hz into {path}"
        )
        samples, lost, stopped = _collect(link, want, info.rate_hz, columns, opts)
    if not len(samples):
        why = stopped or "no samples came"
        raise TinyharError(f"nothing was recorded ({why}); {path} was not written")
    raw = samples[:, [i for i, _ in columns]]
    atomic_write_text(
        path, recording_csv(raw, info.rate_hz, [c.column for _, c in columns], opts.label)
    )
    atomic_write_text(opts.out / MANIFEST, manifest_toml(manifest))
    report = RecordReport(path, len(raw), info.rate_hz, lost, stopped)
    if stopped:
        wrn(
            f"the recording stopped early ({stopped}): kept {report.samples} samples "
            f"({report.seconds:.1f} s) in {path}"
        )
    if stopped == "interrupted":
        raise KeyboardInterrupt
    return report


def _collect(
    link: Link, want: int, rate_hz: float, columns: list, opts: RecordOptions
) -> tuple[np.ndarray, int, str | None]:
    """RECORD_START, RECORDING frames until `want` samples, RECORD_STOP: (samples, samples lost,
    why it stopped early or None). A board that goes away or Ctrl-C ends it with what came."""
    got: list[np.ndarray] = []
    n = lost = 0
    stopped = None
    wait = max(2.0, 20.0 / rate_hz) + opts.timeout
    plot = LivePlot.if_display([c.column for _, c in columns], rate_hz) if opts.plot else None
    bar = tqdm(
        total=want,
        desc="record",
        unit="sample",
        file=sys.stderr,
        disable=not opts.progress,
        mininterval=0.5,
    )
    try:
        link.record_start()
        with bar:
            while n < want:
                came = False
                for r in link.read_recorded(wait):
                    came = True
                    if r.first > n:
                        lost += r.first - n  # frames lost on the way: the gap is not filled
                    fresh = r.samples[max(0, n - r.first) :] if r.first < n else r.samples
                    got.append(fresh)
                    n = max(n, r.first) + len(fresh)
                    bar.update(len(fresh))
                    if plot is not None:
                        plot.add(fresh[:, [i for i, _ in columns]])
                    if n >= want:
                        break
                if not came:
                    raise LinkError(
                        f"no samples from {opts.port} for {wait:.0f} s after RECORD_START: is "
                        "the IMU working?"
                    )
    except LinkError as e:
        stopped = str(e)
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        if stopped is None or stopped == "interrupted":
            _stop(link)
        if plot is not None:
            plot.close()
    samples = np.concatenate(got)[:want] if got else np.zeros((0, 0), np.float32)
    return samples, lost, stopped


def _stop(link: Link) -> None:
    """RECORD_STOP; its last RECORDING frame holds samples past `want`, and is dropped."""
    try:
        link.record_stop()
    except TinyharError:
        pass
