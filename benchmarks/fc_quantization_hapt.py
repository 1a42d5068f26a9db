"""What per-tensor FULLY_CONNECTED weight quantization costs in accuracy, on REAL data (UCI HAPT).

tinyhar converts with one weight scale per FULLY_CONNECTED tensor by default, because the
Arduino TFLM libraries' CMSIS-NN FC kernels read one scale. This script measures the cost against
per-channel FC weights on real signals:

1. imports UCI HAPT (waist smartphone, 21 subjects, 50 Hz) as `tinyhar data import` does: its six
   basic activities, with their own names, transitions (`*_TO_*`) and unlabelled rows dropped;
2. trains the `tiny` model with tinyhar's own training code (default subject-independent split);
3. converts the Keras model twice, FC per channel and FC per tensor, with the run's representative
   windows exactly as `tinyhar quantize` does, and runs both int8 models in the TFLM interpreter on
   the test windows.

    python benchmarks/fc_quantization_hapt.py [--epochs N] [--out DIR] [--hapt DIR] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from recorded import stamp

from tinyhar.data.importer import ImportOptions, import_dataset
from tinyhar.deploy.quantize import load_run_inputs, normalise, tflm_outputs
from tinyhar.lite.arena import measure_arena
from tinyhar.lite.convert import to_int8_tflite
from tinyhar.lite.tflite_inspect import inspect_tflite, per_channel_fc_layers
from tinyhar.model.config import DEFAULT_EPOCHS
from tinyhar.model.metrics import classification_metrics
from tinyhar.model.train import TrainConfig, train
from tinyhar.run import folder as runs

HAPT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "hapt"
DEFAULT_OUT = Path(tempfile.gettempdir()) / "tinyhar_fc_quantization_hapt"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def evaluate_int8(model, x_rep, x_test, y_test, class_names, fc_per_channel: bool) -> dict:
    """Convert as `tinyhar quantize` does (except the FC option) and run TFLM on the test set."""
    data = to_int8_tflite(model, x_rep, fc_per_channel=fc_per_channel)
    info = inspect_tflite(data)
    arena = measure_arena(data)
    inp = info.inputs[0]
    _, out = tflm_outputs(data, arena, x_test, inp.scale, inp.zero_point)
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
    epochs_help = f"max epochs; the selection rule may stop sooner (default {DEFAULT_EPOCHS})"
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=epochs_help)
    out_help = f"work folder: data/ (the dataset folder) and run/ (default {DEFAULT_OUT})"
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=out_help)
    ap.add_argument("--hapt", type=Path, default=HAPT_DIR, help="the HAPT CSV folder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t_start = time.monotonic()
    data_dir, run_dir = args.out / "data", args.out / "run"
    shutil.rmtree(data_dir, ignore_errors=True)
    log(f"importing {args.hapt} into {data_dir}")
    opts = ImportOptions(gyro_unit="rad/s", drop=["*_TO_*"], name="hapt")
    imported = import_dataset(args.hapt, data_dir, opts, log=log)
    t_data = time.monotonic() - t_start

    cfg = TrainConfig(data=data_dir, arch="tiny", epochs=args.epochs, run=run_dir, seed=args.seed)
    t0 = time.monotonic()
    result = train(cfg, log=log)
    t_train = time.monotonic() - t0
    m = result.metrics

    from tinyhar.lite.keras_env import keras

    t0 = time.monotonic()
    ds, arr = load_run_inputs(run_dir)
    x_test = normalise(arr["x_test"], np.asarray(ds.mean), np.asarray(ds.std))
    x_rep = normalise(arr["x_rep"], np.asarray(ds.mean), np.asarray(ds.std))
    y_test = np.asarray(arr["y_test"]).astype(np.int64)
    class_names = list(ds.labels)
    model = keras.models.load_model(run_dir / runs.KERAS_MODEL, compile=False)
    float_pred = model.predict(x_test, batch_size=256, verbose=0).argmax(axis=1)
    fp = classification_metrics(y_test, float_pred, class_names)
    log("converting with FC weights per channel, then per tensor; TFLM on the test windows")
    pc = evaluate_int8(model, x_rep, x_test, y_test, class_names, fc_per_channel=True)
    pt = evaluate_int8(model, x_rep, x_test, y_test, class_names, fc_per_channel=False)
    t_quant = time.monotonic() - t0

    split, counts = ds.split, ds.counts
    agree = float(np.mean(pc["pred"] == pt["pred"]))
    diff = np.abs(pc["out"] - pt["out"])
    kept = sum(imported.rows.get(c, 0) for c in imported.manifest.classes)

    p = print
    p("")
    p("=" * 96)
    p("FC weight quantization: per channel vs per tensor, on REAL data (UCI HAPT, not MHEALTH,")
    p("not synthetic); subject-independent split; 6 classes (the six basic HAPT activities)")
    p("=" * 96)
    p(f"benchmarks/fc_quantization_hapt.py, {stamp()}")
    p(f"data: {args.hapt} -> {data_dir} (tinyhar data import; {imported.files} recordings)")
    p(f"  rows: {kept} of the six classes; transitions and unlabelled rows dropped")
    p("  acc g -> m/s^2, gyro rad/s -> deg/s (training units)")
    p(f"split ({split['kind']}): train subjects {_ids(split['train'])}")
    p(f"                      val subjects   {_ids(split['val'])}")
    p(f"                      TEST subjects  {_ids(split['test'])}")
    p(
        f"windows: train {counts['train']}, val {counts['val']}, test {counts['test']} "
        f"(window {ds.window} samples = {ds.window / ds.rate_hz:g} s, stride "
        f"{ds.stride}); representative windows {len(x_rep)}"
    )
    p(
        f"model: tiny ({len(ds.channels)} channels), {m.params} params, width "
        f"{m.size.get('width')}; {m.epochs_run} epochs run (max {args.epochs}), best epoch "
        f"{m.best_epoch}, training {m.train_seconds:.0f} s"
    )
    p("")
    rows = [
        ("", "float (Keras)", "int8 FC per-channel", "int8 FC per-tensor"),
        ("test windows", str(len(y_test)), str(len(y_test)), str(len(y_test))),
        (
            "accuracy",
            f"{fp['accuracy']:.4f}",
            f"{pc['scores']['accuracy']:.4f}",
            f"{pt['scores']['accuracy']:.4f}",
        ),
        (
            "macro-F1",
            f"{fp['macro_f1']:.4f}",
            f"{pc['scores']['macro_f1']:.4f}",
            f"{pt['scores']['macro_f1']:.4f}",
        ),
        (
            "delta acc vs float",
            "",
            f"{pc['scores']['accuracy'] - fp['accuracy']:+.4f}",
            f"{pt['scores']['accuracy'] - fp['accuracy']:+.4f}",
        ),
        ("model bytes", "", f"{pc['bytes']}", f"{pt['bytes']}"),
        ("TFLM arena bytes", "", f"{pc['arena']}", f"{pt['arena']}"),
        (
            "FC ops with per-channel weights",
            "",
            f"{pc['fc_per_channel_ops']} of {pc['fc_ops']}",
            f"{pt['fc_per_channel_ops']} of {pt['fc_ops']}",
        ),
        (
            "top-1 agreement with float",
            "",
            f"{np.mean(pc['pred'] == float_pred):.4f}",
            f"{np.mean(pt['pred'] == float_pred):.4f}",
        ),
    ]
    _table(rows)
    p(
        f"top-1 agreement, int8 per-channel FC vs int8 per-tensor FC: {agree:.4f} "
        f"({int((pc['pred'] != pt['pred']).sum())} of {len(y_test)} windows differ)"
    )
    p(
        f"int8 output difference between them: mean {diff.mean():.2f} LSB, "
        f"max {int(diff.max(initial=0))} LSB"
    )
    p("")
    p("per-class recall on the test subjects:")
    rrows = [("activity", "support", "float", "int8 FC/ch", "int8 FC/tensor")]
    for name in class_names:
        rrows.append(
            (
                name,
                str(fp["per_class"][name]["support"]),
                f"{fp['per_class'][name]['recall']:.3f}",
                f"{pc['scores']['per_class'][name]['recall']:.3f}",
                f"{pt['scores']['per_class'][name]['recall']:.3f}",
            )
        )
    _table(rrows)
    for title, scores in (("float", fp), ("int8 FC per-tensor", pt["scores"])):
        p("")
        p(f"confusion, {title} (rows true, columns predicted):")
        _confusion(np.asarray(scores["confusion"]), class_names)
    p("")
    p(
        f"run time: import {t_data:.0f} s, training {t_train:.0f} s, conversions + TFLM "
        f"{t_quant:.0f} s, total {time.monotonic() - t_start:.0f} s"
    )
    p(f"run folder: {run_dir}")

    report = {
        "data": "UCI HAPT (real), imported with tinyhar data import",
        "split": split,
        "counts": counts,
        "labels": class_names,
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
    (args.out / "fc_quantization_hapt.json").write_text(json.dumps(report, indent=2))
    return 0


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


def _confusion(cm: np.ndarray, names: list[str]) -> None:
    short = [n.replace("WALKING_", "W_") for n in names]
    width = max(len(s) for s in short)
    print("  " + " " * width + "  " + " ".join(f"{s[:9]:>9}" for s in short))
    for i, s in enumerate(short):
        print(f"  {s:<{width}}  " + " ".join(f"{cm[i, j]:>9}" for j in range(len(names))))


if __name__ == "__main__":
    sys.exit(main())
