"""The default `tiny`'s figures the README quotes: int8 model bytes, TFLM arena bytes and the
instructions per inference of its firmware on the emulated board (an untrained model of the
default shape: trained weights move the count by about 1 %). Prints them and, with --write,
records them in benchmarks/results/readme_figures.txt with the date, commit and machine;
tests/test_readme.py checks the README quotes that file's figures.

    python benchmarks/readme_figures.py --write      # about a minute (QEMU)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recorded import stamp

from tinyhar.board.boards import default_board
from tinyhar.device.instruction_budget import measure_tiny_instructions
from tinyhar.model.architectures import TINY_SIZE
from tinyhar.model.budget import measure_tiny

RESULTS = Path(__file__).parent / "results" / "readme_figures.txt"
SHAPE, CLASSES = (100, 6), 6  # the README's model: HAPT's six classes, acc + gyro


def figures() -> dict[str, int]:
    """{figure name: value} of the default tiny on the default board."""
    board = default_board()
    shape = {k: v for k, v in TINY_SIZE.items() if k != "width"}
    model_bytes, arena = measure_tiny(SHAPE, CLASSES, TINY_SIZE["width"], **shape)
    instructions = measure_tiny_instructions(SHAPE, CLASSES, dict(TINY_SIZE), board)
    return {
        "int8 model bytes": model_bytes,
        "TFLM arena bytes": arena,
        f"instructions per inference ({board.name}, emulated)": instructions,
    }


def readme_number(n: int) -> str:
    """As the README writes it: thousands set apart by a space (15 072)."""
    return f"{n:,}".replace(",", " ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"record them in {RESULTS}")
    args = ap.parse_args()
    lines = [f"{name}: {readme_number(value)}" for name, value in figures().items()]
    print("\n".join(lines))
    if args.write:
        head = [
            "# benchmarks/readme_figures.py: the default tiny, (100, 6) windows, 6 classes",
            f"# {stamp()}",
        ]
        RESULTS.write_text("\n".join([*head, *lines]) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
