"""Verify throughput against the virtual or the emulated board: windows per second and bytes on
the wire per window, in model mode (int8 windows) and raw mode (float32 samples + the device's int8
window back); on the emulated board also the instructions per inference.

    python benchmarks/verify_throughput.py --run runs/<run>            # all test windows
    python benchmarks/verify_throughput.py --run runs/R --windows 100 --repeats 3 --json out.json
    python benchmarks/verify_throughput.py --run runs/R --emulate      # the firmware on QEMU

Starts `tinyhar sim --board nano33ble --run R` in the background exactly as a user would, runs
verify's device loop against its pty (the host reference is computed too, as in `tinyhar verify`).
Note: it overwrites R/verify_model.json/.png and R/verify_raw.json/.png with the last run's, and
appends its runs to R/verify_history.jsonl.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

from tinyhar.device.verify import VerifyOptions, verify_device


def start_sim(run: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("tinyhar") or "tinyhar"
    proc = subprocess.Popen(
        [exe, "sim", "--board", "nano33ble", "--run", str(run), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    port = proc.stdout.readline().strip()
    if not port.startswith("/dev/"):
        proc.kill()
        sys.exit(f"tinyhar sim did not start (printed {port!r})")
    return proc, port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a quantized run folder")
    ap.add_argument("--windows", type=int, default=None, help="test windows per pass [all]")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sim-args", default="", help="extra `tinyhar sim` options, e.g. '--delay 5'")
    ap.add_argument(
        "--emulate", action="store_true", help="the emulated board (sim --emulate; a built run)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    extra = args.sim_args.split() + (["--emulate"] if args.emulate else [])
    proc, port = start_sim(args.run, extra)
    rows = []
    try:
        for mode in ("model", "raw"):
            wps, bpw, sent, recv, lat = [], [], [], [], []
            for _ in range(args.repeats):
                opts = VerifyOptions(
                    port=port,
                    run=args.run,
                    windows=args.windows,
                    raw=mode == "raw",
                    progress=False,
                    timeout=30.0 if args.emulate else 1.0,
                )
                r = verify_device(opts, log=lambda _m: None)
                if not r.passed:
                    sys.exit(f"verify did not pass in {mode} mode: {r}")
                wps.append(r.windows_per_second)
                bpw.append(r.bytes_per_window)
                sent.append(r.bytes_sent / r.windows)
                recv.append(r.bytes_received / r.windows)
                lat.append(r.latency_us["median"])
            rows.append(
                {
                    "mode": mode,
                    "windows": r.windows,
                    "repeats": args.repeats,
                    "windows_per_second_median": statistics.median(wps),
                    "windows_per_second_all": wps,
                    "bytes_per_window": statistics.median(bpw),
                    "host_to_device_bytes_per_window": round(statistics.median(sent), 1),
                    "device_to_host_bytes_per_window": round(statistics.median(recv), 1),
                    "device_latency_us_median": statistics.median(lat),
                    "instructions_per_inference": (r.emulated or {}).get(
                        "instructions_per_inference"
                    ),
                    "max_abs_diff_lsb": r.max_abs_diff_lsb,
                    "reference": r.reference["name"],
                }
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)

    board = "emulated board (QEMU mps2-an386)" if args.emulate else "virtual board"
    print(f"verify throughput against the {board} ({port}), run {args.run}")
    print(f"reference: {rows[0]['reference']}, max difference {rows[0]['max_abs_diff_lsb']} LSB")
    print(
        f"{'mode':<6} {'windows':>7} {'win/s':>8} {'B/win':>8} {'host->dev':>10} "
        f"{'dev->host':>10} {'latency us':>11}"
    )
    for r in rows:
        print(
            f"{r['mode']:<6} {r['windows']:>7} {r['windows_per_second_median']:>8.1f} "
            f"{r['bytes_per_window']:>8.1f} {r['host_to_device_bytes_per_window']:>10.1f} "
            f"{r['device_to_host_bytes_per_window']:>10.1f} {r['device_latency_us_median']:>11.0f}"
        )
    if args.emulate and rows[0]["instructions_per_inference"]:
        print(
            f"instructions per inference (measured, -icount): "
            f"{rows[0]['instructions_per_inference']:,}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
