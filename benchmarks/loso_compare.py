"""Two leave-one-subject-out runs of the same subjects side by side, fold by fold.

Reads each run's `loso.json` (`tinyhar train --split loso --folds ...`) and prints per subject the
accuracy of both and their difference, then the mean ± sd of the paired differences, how many
folds got better or worse, and each run's mean and pooled accuracy. Paired by subject, so a hard
subject weighs the same in both; this is how a training option is judged on subjects that no
selection rule saw.

    python benchmarks/loso_compare.py RUN_A RUN_B [--name-a A] [--name-b B]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from recorded import stamp


def load(run: Path) -> dict:
    path = run / "loso.json"
    if not path.is_file():
        sys.exit(f"error: {path} does not exist: pass a folder made by `tinyhar train --folds`")
    return json.loads(path.read_text())


def compare(a: dict, b: dict) -> dict:
    """Per subject (those in both runs): accuracies and B - A; the summary of the differences."""
    acc_a = {f["subject"]: f["accuracy"] for f in a["folds"]}
    acc_b = {f["subject"]: f["accuracy"] for f in b["folds"]}
    subjects = sorted(set(acc_a) & set(acc_b))
    diff = np.array([acc_b[s] - acc_a[s] for s in subjects])
    return {
        "rows": [(s, acc_a[s], acc_b[s], acc_b[s] - acc_a[s]) for s in subjects],
        "mean_diff": float(diff.mean()) if diff.size else 0.0,
        "sd_diff": float(diff.std(ddof=1)) if diff.size > 1 else 0.0,
        "better": int((diff > 0).sum()),
        "worse": int((diff < 0).sum()),
        "same": int((diff == 0).sum()),
        "mean_a": float(np.mean([acc_a[s] for s in subjects])),
        "mean_b": float(np.mean([acc_b[s] for s in subjects])),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--name-a", default="A")
    ap.add_argument("--name-b", default="B")
    args = ap.parse_args(argv)
    a, b = load(args.run_a), load(args.run_b)
    c = compare(a, b)
    na, nb = args.name_a, args.name_b
    print(f"benchmarks/loso_compare.py, {stamp()}")
    print(f"{'subject':>7}  {na:>10}  {nb:>10}  {nb + ' - ' + na:>10}")
    for s, x, y, d in c["rows"]:
        print(f"{s:>7}  {x:>10.4f}  {y:>10.4f}  {d * 100:>+9.2f}pp")
    n = len(c["rows"])
    sem = c["sd_diff"] / np.sqrt(n) if n > 1 else 0.0
    print(
        f"{n} folds: mean {na} {c['mean_a']:.4f}, {nb} {c['mean_b']:.4f}; "
        f"{nb} - {na} {c['mean_diff'] * 100:+.2f} pp (sd {c['sd_diff'] * 100:.2f}, "
        f"s.e. {sem * 100:.2f}); better in {c['better']}, worse in {c['worse']}, "
        f"same in {c['same']}"
    )
    print(f"pooled accuracy: {na} {a['pooled_accuracy']:.4f}, {nb} {b['pooled_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
