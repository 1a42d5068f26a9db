"""verify over a noisy line: outcome and throughput at several byte-error rates, both modes.

    python benchmarks/verify_noise.py --run runs/<run> [--windows 200] [--seed 0] [--chunk 256]

A virtual board (what `tinyhar sim` serves) runs in this process on a pty; between it and verify
sits tests/helpers/noisy_line.py, a proxy that corrupts and drops bytes both ways at seeded rates
that the board did not choose. Each rate is used for corruption and for drops (1e-4 means 1e-4 of
bytes corrupted and 1e-4 dropped, each way). verify runs with its default timeout and retries.
Prints a table; the run's verify reports are left as the last pass wrote them. `--chunk` sets the
most bytes of window or samples per frame (protocol.CHUNK) for this measurement, to choose it.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from noisy_line import NoisyLine  # noqa: E402

from tinyhar.board import protocol  # noqa: E402
from tinyhar.board.boards import default_board
from tinyhar.device.verify import VerifyOptions, verify_device  # noqa: E402
from tinyhar.device.virtual_board import Faults, VirtualBoard, board_image  # noqa: E402
from tinyhar.errors import TinyharError  # noqa: E402

RATES = (0.0, 1e-4, 1e-3, 1e-2)


def one(port: str, run: Path, raw: bool, windows: int | None) -> dict:
    """One verify: outcome, seconds, windows per second, retries, and the error line if any."""
    t0 = time.monotonic()
    opts = VerifyOptions(port=port, run=run, windows=windows, raw=raw, progress=False)
    try:
        r = verify_device(opts, log=lambda _m: None)
    except TinyharError as e:
        return {"outcome": "STOPPED", "seconds": time.monotonic() - t0, "error": str(e)}
    return {
        "outcome": "PASSED" if r.passed else "FAILED",
        "seconds": time.monotonic() - t0,
        "windows_per_second": r.windows_per_second,
        "retries": r.retries,
        "windows": r.windows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a quantized run folder")
    ap.add_argument("--windows", type=int, default=200, help="test windows per verify")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=protocol.CHUNK, help="bytes per piece")
    args = ap.parse_args()
    protocol.CHUNK = args.chunk  # what Link splits windows and samples by

    vb = VirtualBoard(board_image(default_board(), args.run, log=lambda _m: None), Faults())
    server = threading.Thread(target=vb.serve, daemon=True)
    server.start()
    rows = []
    try:
        for mode in ("model", "raw"):
            for rate in RATES:
                with NoisyLine(vb.path, corrupt=rate, drop=rate, seed=args.seed) as line:
                    row = one(line.port, args.run, mode == "raw", args.windows)
                rows.append({"mode": mode, "rate": rate, **row})
                print(
                    f"  {mode} {rate:g}: {row['outcome']} in {row['seconds']:.1f} s",
                    file=sys.stderr,
                )
    finally:
        vb.stop()
        server.join(timeout=5)
        vb.close()

    clean = {r["mode"]: r.get("windows_per_second") for r in rows if r["rate"] == 0}
    print(
        f"verify over a noisy line, {args.windows} windows, seed {args.seed}, pieces of "
        f"{args.chunk} B, default timeout and retries (corrupted = dropped = rate, each "
        "way)"
    )
    print(
        f"{'mode':<6} {'rate':>7} {'outcome':<8} {'seconds':>8} {'win/s':>7} {'of clean':>9} "
        f"{'retries':>8}  error"
    )
    for r in rows:
        wps = r.get("windows_per_second")
        share = f"{100 * wps / clean[r['mode']]:.0f}%" if wps and clean[r["mode"]] else "-"
        print(
            f"{r['mode']:<6} {r['rate']:>7g} {r['outcome']:<8} {r['seconds']:>8.1f} "
            f"{(f'{wps:.1f}' if wps else '-'):>7} {share:>9} {r.get('retries', '-')!s:>8}  "
            f"{r.get('error', '')}"
        )


if __name__ == "__main__":
    main()
