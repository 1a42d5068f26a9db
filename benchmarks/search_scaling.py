"""Wall time of the same `tinyhar search` with 1 and 2 workers on this machine, and the ratio, on
a SYNTHETIC dataset made in a temp folder (each search runs as the command a user types).

    python benchmarks/search_scaling.py                       # 6 trials, 1 epoch, 4 subjects
    python benchmarks/search_scaling.py --trials 12 --epochs 3 --workers 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tinyhar(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-c", "from tinyhar.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="search-scaling-") as tmp:
        data = Path(tmp) / "synth"
        tinyhar("data", "synth", "--out", str(data), "--subjects", str(args.subjects))
        seconds = {}
        for w in (int(v) for v in args.workers.split(",")):
            run = Path(tmp) / f"search-w{w}"
            t0 = time.perf_counter()
            tinyhar(
                "-q",
                "search",
                "--data",
                str(data),
                "--trials",
                str(args.trials),
                "--workers",
                str(w),
                "--epochs",
                str(args.epochs),
                "--stride",
                "100",
                "--run",
                str(run),
            )
            seconds[w] = time.perf_counter() - t0
            s = json.loads((run / "search.json").read_text())
            done = len(s["trials"]) - len(s["failed"])
            load = os.getloadavg()[0]
            print(
                f"workers {w}: {seconds[w]:.1f} s wall for {done} trials "
                f"({len(s['failed'])} failed), load average after {load:.1f}"
            )
        one = seconds.get(1)
        for w, t in seconds.items():
            if one and w != 1:
                print(f"speed-up with {w} workers: {one / t:.2f}x ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
