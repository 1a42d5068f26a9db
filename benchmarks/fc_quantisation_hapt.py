"""What per-tensor FULLY_CONNECTED weight quantisation costs in accuracy, on REAL data (UCI HAPT).

tinyhar converts with one weight scale per FULLY_CONNECTED tensor by default, because the
Arduino TFLM libraries' CMSIS-NN FC kernels read one scale. This script measures the cost against
per-channel FC weights on real signals:

1. rewrites UCI HAPT (waist smartphone, 21 subjects, 50 Hz; six basic activities) into the MHEALTH
   log layout tinyhar reads: the phone's accelerometer (g -> m/s^2) and gyroscope (rad/s -> deg/s)
   go into the arm accelerometer / gyroscope columns, every other column is 0; transitions and
   unlabelled rows become label 0 (null), which tinyhar drops, and one label-0 row separates a
   subject's sessions so no window spans two sessions or a gap;
2. trains the `tiny` arm model with tinyhar's own training code (default subject-independent split);
3. converts the Keras model twice, FC per channel and FC per tensor, with the run's representative
   windows exactly as `tinyhar quantize` does, and runs both int8 models in the TFLM interpreter on
   the test windows.

    python benchmarks/fc_quantisation_hapt.py [--epochs N] [--out DIR] [--hapt DIR] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tinyhar import runs
from tinyhar.data.mhealth import LABEL_NAMES, N_SENSOR_COLUMNS
from tinyhar.deploy.quantize import load_run_inputs, normalise, quantise_input
from tinyhar.lite.arena import measure_arena
from tinyhar.lite.convert import to_int8_tflite
from tinyhar.lite.reference import TflmReference
from tinyhar.lite.tflite_inspect import inspect_tflite, per_channel_fc_layers
from tinyhar.model.metrics import classification_metrics
from tinyhar.model.train import DEFAULT_EPOCHS, TrainConfig, train

HAPT_DIR = Path("/work/shared/data/hapt")
DEFAULT_OUT = Path(tempfile.gettempdir()) / "tinyhar_fc_quantisation_hapt"
STANDARD_GRAVITY = 9.80665  # m/s^2 per g
ARM_ACC = 14  # 0-based first column of the arm accelerometer (columns 15-17, 1-based)
ARM_GYRO = 17  # 0-based first column of the arm gyroscope (columns 18-20, 1-based)

# HAPT activity -> the MHEALTH label id it is stored under (tinyhar will print MHEALTH's names).
HAPT_TO_MHEALTH: dict[str, int] = {
    "STANDING": 1,
    "SITTING": 2,
    "LAYING": 3,
    "WALKING": 4,
    "WALKING_UPSTAIRS": 5,
    "WALKING_DOWNSTAIRS": 6,
}
_FILE = re.compile(r"^subject(\d+)_session(\d+)\.csv(\.gz)?$")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def hapt_name(class_index: int) -> str:
    """The HAPT activity stored as class index `class_index` (MHEALTH label id - 1)."""
    for name, label in HAPT_TO_MHEALTH.items():
        if label - 1 == class_index:
            return name
    return f"(unused MHEALTH class {class_index + 1}: {LABEL_NAMES[class_index + 1]})"


def write_mhealth_logs(hapt: Path, out: Path) -> dict:
    """HAPT sessions -> out/mHealth_subject<N>.log, one per subject, sessions in order."""
    sessions: dict[int, list[tuple[int, Path]]] = {}
    for f in sorted(hapt.iterdir()):
        m = _FILE.match(f.name)
        if m:
            sessions.setdefault(int(m.group(1)), []).append((int(m.group(2)), f))
    if not sessions:
        raise SystemExit(f"{hapt}: no subject<NN>_session<K>.csv.gz files")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("mHealth_subject*.log*"):
        old.unlink()
    rows = {"kept": 0, "null (transition/unlabelled)": 0, "session separators": 0}
    per_activity = dict.fromkeys(HAPT_TO_MHEALTH, 0)
    for subject, files in sorted(sessions.items()):
        blocks = []
        for k, (_, f) in enumerate(sorted(files)):
            df = pd.read_csv(f)
            n = len(df)
            block = np.zeros((n, N_SENSOR_COLUMNS + 1), np.float64)
            block[:, ARM_ACC : ARM_ACC + 3] = (
                df[["acc_x", "acc_y", "acc_z"]].to_numpy(np.float64) * STANDARD_GRAVITY
            )
            block[:, ARM_GYRO : ARM_GYRO + 3] = np.rad2deg(
                df[["gyro_x", "gyro_y", "gyro_z"]].to_numpy(np.float64)
            )
            labels = df["activity"].map(HAPT_TO_MHEALTH).fillna(0).to_numpy(np.int64)
            block[:, -1] = labels
            if k > 0:  # one null row: no window may run from one session into the next
                blocks.append(np.zeros((1, N_SENSOR_COLUMNS + 1), np.float64))
                rows["session separators"] += 1
            blocks.append(block)
            rows["kept"] += int((labels > 0).sum())
            rows["null (transition/unlabelled)"] += int((labels == 0).sum())
            for name, label in HAPT_TO_MHEALTH.items():
                per_activity[name] += int((labels == label).sum())
        table = pd.DataFrame(np.concatenate(blocks))
        table[N_SENSOR_COLUMNS] = table[N_SENSOR_COLUMNS].astype(np.int64)
        table.to_csv(
            out / f"mHealth_subject{subject}.log",
            sep="\t",
            header=False,
            index=False,
            float_format="%.6g",
        )
    return {
        "subjects": sorted(sessions),
        "sessions": sum(len(v) for v in sessions.values()),
        "rows": rows,
        "rows_per_activity": per_activity,
    }


def evaluate_int8(model, x_rep, x_test, y_test, class_names, fc_per_channel: bool) -> dict:
    """Convert as `tinyhar quantize` does (except the FC option) and run TFLM on the test set."""
    data = to_int8_tflite(model, x_rep, fc_per_channel=fc_per_channel)
    info = inspect_tflite(data)
    arena = measure_arena(data)
    inp = info.inputs[0]
    xq = quantise_input(x_test, inp.scale, inp.zero_point)
    out = TflmReference(data, arena).predict(xq)
    pred = out.reshape(len(out), -1).argmax(axis=1)
    return {
        "bytes": len(data),
        "arena": int(arena),
        "fc_ops": int(info.op_counts.get("FULLY_CONNECTED", 0)),
        "fc_per_channel_ops": per_channel_fc_layers(data),
        "out": out.reshape(len(out), -1).astype(np.int32),
        "pred": pred,
        "scores": classification_metrics(y_test, pred, class_names),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--epochs",
        type=int,
        default=DEFAULT_EPOCHS,
        help=f"max epochs, early stopping on val_loss (default {DEFAULT_EPOCHS})",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"work folder: data/ (MHEALTH logs) and run/ (default {DEFAULT_OUT})",
    )
    ap.add_argument("--hapt", type=Path, default=HAPT_DIR, help="the HAPT CSV folder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t_start = time.monotonic()
    data_dir, run_dir = args.out / "data", args.out / "run"
    log(f"rewriting {args.hapt} as MHEALTH logs in {data_dir}")
    conv = write_mhealth_logs(args.hapt, data_dir)
    t_data = time.monotonic() - t_start

    cfg = TrainConfig(
        data=data_dir, sensors="arm", arch="tiny", epochs=args.epochs, run=run_dir, seed=args.seed
    )
    t0 = time.monotonic()
    result = train(cfg, log=log)
    t_train = time.monotonic() - t0
    m = result.metrics

    from tinyhar.lite.keras_env import keras

    t0 = time.monotonic()
    ds, arr = load_run_inputs(run_dir)
    x_test = normalise(arr["x_test"], ds["_mean"], ds["_std"])
    x_rep = normalise(arr["x_rep"], ds["_mean"], ds["_std"])
    y_test = np.asarray(arr["y_test"]).astype(np.int64)
    class_names = list(ds["labels"])
    model = keras.models.load_model(run_dir / runs.KERAS_MODEL, compile=False)
    float_pred = model.predict(x_test, batch_size=256, verbose=0).argmax(axis=1)
    fp = classification_metrics(y_test, float_pred, class_names)
    log("converting with FC weights per channel, then per tensor; TFLM on the test windows")
    pc = evaluate_int8(model, x_rep, x_test, y_test, class_names, fc_per_channel=True)
    pt = evaluate_int8(model, x_rep, x_test, y_test, class_names, fc_per_channel=False)
    t_quant = time.monotonic() - t0

    split = ds["split"]
    counts = ds["counts"]
    present = sorted(HAPT_TO_MHEALTH.values())
    agree = float(np.mean(pc["pred"] == pt["pred"]))
    diff = np.abs(pc["out"] - pt["out"])
    n_unused = {
        k: int((~np.isin(r["pred"], [i - 1 for i in present])).sum())
        for k, r in (("float", {"pred": float_pred}), ("per-channel", pc), ("per-tensor", pt))
    }

    p = print
    p("")
    p("=" * 96)
    p("FC weight quantisation: per channel vs per tensor, on REAL data (UCI HAPT, not MHEALTH,")
    p("not synthetic); subject-independent split; 6 classes (the six basic HAPT activities)")
    p("=" * 96)
    p(f"data: {args.hapt} -> {data_dir}")
    p(
        f"  {len(conv['subjects'])} subjects, {conv['sessions']} sessions; rows: "
        f"{conv['rows']['kept']} labelled with a basic activity, "
        f"{conv['rows']['null (transition/unlabelled)']} transitions/unlabelled -> label 0"
    )
    p(f"  (dropped by tinyhar), {conv['rows']['session separators']} label-0 separator rows "
      "between a subject's sessions")  # fmt: skip
    p("  waist phone acc (g x 9.80665 -> m/s^2) -> MHEALTH arm_acc cols 15-17;")
    p("  gyro (rad/s -> deg/s) -> arm_gyro cols 18-20; the other 17 columns 0")
    p("")
    p("label mapping (tinyhar's own output names the MHEALTH label, which is wrong for HAPT):")
    p(f"  {'HAPT activity':<20} {'MHEALTH id':>10}  {'name tinyhar prints':<22} "
      f"{'rows':>7} {'train':>6} {'val':>5} {'test':>5}")  # fmt: skip
    with np.load(run_dir / runs.WINDOWS_NPZ) as npz:
        test_counts = np.bincount(npz["y_test"], minlength=len(class_names))
    # train/val per class are not in the run folder: recount from the logs' windows
    per_split = _split_class_counts(data_dir, ds, len(class_names))
    for name, label in HAPT_TO_MHEALTH.items():
        c = label - 1
        p(f"  {name:<20} {label:>10}  {LABEL_NAMES[label]:<22} "
          f"{conv['rows_per_activity'][name]:>7} {per_split['train'][c]:>6} "
          f"{per_split['val'][c]:>5} {test_counts[c]:>5}")  # fmt: skip
    p(f"  (the model still has {len(class_names)} outputs: tinyhar's classes are MHEALTH's 12; "
      "6 never occur)")  # fmt: skip
    p("")
    p(f"split ({split['kind']}): train subjects {_ids(split['train'])}")
    p(f"                      val subjects   {_ids(split['val'])}")
    p(f"                      TEST subjects  {_ids(split['test'])}")
    p(f"windows: train {counts['train']}, val {counts['val']}, test {counts['test']} "
      f"(window {ds['window']} samples = {ds['window'] / ds['rate_hz']:g} s, stride "
      f"{ds['stride']}); representative windows {min(len(x_rep), 500)}")  # fmt: skip
    p(f"model: tiny / arm (6 channels), {m.params} params, width {m.size.get('width')}; "
      f"{m.epochs_run} epochs run (max {args.epochs}), best epoch {m.best_epoch}, "
      f"training {m.train_seconds:.0f} s")  # fmt: skip
    p("")
    rows = [
        ("", "float (Keras)", "int8 FC per-channel", "int8 FC per-tensor"),
        ("test subjects", _ids(split["test"]), "", ""),
        ("test windows", str(len(y_test)), str(len(y_test)), str(len(y_test))),
        ("accuracy", f"{fp['accuracy']:.4f}", f"{pc['scores']['accuracy']:.4f}",
         f"{pt['scores']['accuracy']:.4f}"),
        ("macro-F1 (6 classes)", f"{fp['macro_f1']:.4f}", f"{pc['scores']['macro_f1']:.4f}",
         f"{pt['scores']['macro_f1']:.4f}"),
        ("delta acc vs float", "", f"{pc['scores']['accuracy'] - fp['accuracy']:+.4f}",
         f"{pt['scores']['accuracy'] - fp['accuracy']:+.4f}"),
        ("model bytes", "", f"{pc['bytes']}", f"{pt['bytes']}"),
        ("TFLM arena bytes", "", f"{pc['arena']}", f"{pt['arena']}"),
        ("FC ops with per-channel weights", "", f"{pc['fc_per_channel_ops']} of {pc['fc_ops']}",
         f"{pt['fc_per_channel_ops']} of {pt['fc_ops']}"),
        ("top-1 agreement with float", "", f"{np.mean(pc['pred'] == float_pred):.4f}",
         f"{np.mean(pt['pred'] == float_pred):.4f}"),
        ("predictions in unused classes", str(n_unused["float"]), str(n_unused["per-channel"]),
         str(n_unused["per-tensor"])),
    ]  # fmt: skip
    _table(rows)
    p(
        f"top-1 agreement, int8 per-channel FC vs int8 per-tensor FC: {agree:.4f} "
        f"({int((pc['pred'] != pt['pred']).sum())} of {len(y_test)} windows differ)"
    )
    p(f"int8 output difference between them: mean {diff.mean():.2f} LSB, "
      f"max {int(diff.max(initial=0))} LSB")  # fmt: skip
    p(f"(train's own float evaluation: accuracy {m.accuracy:.4f}, macro-F1 "
      f"{m.macro_f1:.4f})")  # fmt: skip
    p("")
    p("per-class recall on the test subjects:")
    rrows = [("activity", "support", "float", "int8 FC/ch", "int8 FC/tensor")]
    for label in present:
        name = LABEL_NAMES[label]
        rrows.append((
            hapt_name(label - 1), str(fp["per_class"][name]["support"]),
            f"{fp['per_class'][name]['recall']:.3f}",
            f"{pc['scores']['per_class'][name]['recall']:.3f}",
            f"{pt['scores']['per_class'][name]['recall']:.3f}",
        ))  # fmt: skip
    _table(rrows)
    for title, scores in (("float", fp), ("int8 FC per-tensor", pt["scores"])):
        p("")
        p(f"confusion, {title} (rows true, columns predicted; only the 6 HAPT classes shown):")
        _confusion(np.asarray(scores["confusion"]), [i - 1 for i in present])
    p("")
    p(f"run time: data rewrite {t_data:.0f} s, training {t_train:.0f} s, conversions + TFLM "
      f"{t_quant:.0f} s, total {time.monotonic() - t_start:.0f} s")  # fmt: skip
    p(f"run folder: {run_dir}")

    report = {
        "data": "UCI HAPT (real), rewritten as MHEALTH logs",
        "label_map": HAPT_TO_MHEALTH,
        "split": split,
        "counts": counts,
        "float": {"accuracy": fp["accuracy"], "macro_f1": fp["macro_f1"]},
        **{
            key: {
                "accuracy": r["scores"]["accuracy"],
                "macro_f1": r["scores"]["macro_f1"],
                "model_bytes": r["bytes"],
                "arena_bytes": r["arena"],
                "fc_per_channel_ops": r["fc_per_channel_ops"],
                "confusion": r["scores"]["confusion"],
            }
            for key, r in (("int8_fc_per_channel", pc), ("int8_fc_per_tensor", pt))
        },
        "int8_top1_agreement": agree,
        "epochs_max": args.epochs,
        "epochs_run": m.epochs_run,
        "seconds": round(time.monotonic() - t_start, 1),
    }
    (args.out / "fc_quantisation_hapt.json").write_text(json.dumps(report, indent=2))
    return 0


def _split_class_counts(data_dir: Path, ds: dict, n_classes: int) -> dict[str, np.ndarray]:
    """Windows per class in train / val, windowed exactly as training did."""
    from tinyhar.data.mhealth import load_mhealth
    from tinyhar.data.windows import make_windows

    data = load_mhealth(data_dir)
    w = make_windows(
        data.recordings, [c["column"] for c in ds["channels"]], ds["window"], ds["stride"],
        ds["include_null"],
    )  # fmt: skip
    return {
        part: np.bincount(w.y[np.isin(w.subject, ds["split"][part])], minlength=n_classes)
        for part in ("train", "val")
    }


def _ids(ids) -> str:
    return ", ".join(map(str, ids))


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        rest = [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        cells = [r[0].ljust(widths[0]), *rest]
        print("  " + "  ".join(cells).rstrip())
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _confusion(cm: np.ndarray, classes: list[int]) -> None:
    short = [hapt_name(c).replace("WALKING_", "W_") for c in classes]
    width = max(len(s) for s in short)
    print("  " + " " * width + "  " + " ".join(f"{s[:9]:>9}" for s in short))
    for c, s in zip(classes, short, strict=True):
        print(f"  {s:<{width}}  " + " ".join(f"{cm[c, j]:>9}" for j in classes))


if __name__ == "__main__":
    sys.exit(main())
