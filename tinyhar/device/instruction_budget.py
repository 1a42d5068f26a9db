"""Instructions per inference of an untrained `tiny` on a board's emulated firmware: the counter
budget sizing (`train --max-instructions`) and the search's bound take."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tinyhar.board.boards import Board
from tinyhar.deploy.build import BuildOptions
from tinyhar.device.emulator import emulation_missing, measure_instructions
from tinyhar.errors import TinyharError
from tinyhar.log import Log
from tinyhar.model.budget import (
    InstructionCounter,
    read_sizes,
    remember,
    size_key,
    sizing_cache,
    untrained_int8,
)

_INSTRUCTIONS: dict[str, int] = {}


def instruction_counter(board: Board) -> InstructionCounter:
    """The counter of `board`'s emulated firmware; one line when this machine cannot run it."""
    missing = emulation_missing(board)
    if missing:
        raise TinyharError(
            f"--max-instructions counts on the emulated {board.name}, which this "
            f"machine cannot run: {missing}"
        )

    def count(input_shape: tuple[int, int], n_classes: int, size: dict, _name: str) -> int:
        return measure_tiny_instructions(input_shape, n_classes, size, board)

    return count


def measure_tiny_instructions(
    input_shape: tuple[int, int],
    n_classes: int,
    size: dict,
    board: Board,
    log: Log | None = None,
) -> int:
    """Instructions per inference of an untrained `tiny` of `size` in `board`'s firmware on the
    emulated board. Trained weights move the count by about 1 % (ReLU zeros, requantization);
    cached in memory and on disk."""
    key = f"{board.name}:{size_key(input_shape, n_classes, size)}"
    path = sizing_cache("instructions")
    if key not in _INSTRUCTIONS:
        known = read_sizes(path).get(key)
        if known:
            _INSTRUCTIONS[key] = int(known[0])
    if key not in _INSTRUCTIONS:
        missing = emulation_missing(board)
        if missing:
            raise TinyharError(f"instructions are counted on the emulated {board.name}: {missing}")
        with tempfile.TemporaryDirectory(prefix="tinyhar_budget_") as tmp:
            model = Path(tmp) / "model_int8.tflite"
            model.write_bytes(untrained_int8("tiny", input_shape, n_classes, **size))
            labels = ",".join(f"class{k}" for k in range(int(n_classes)))
            opts = BuildOptions(
                board=board, model=model, out=Path(tmp) / "build", model_options={"labels": labels}
            )
            _INSTRUCTIONS[key] = int(measure_instructions(opts, log=log or _quiet)["instructions"])
        remember(path, key, [_INSTRUCTIONS[key]])
    return _INSTRUCTIONS[key]


def _quiet(_line: str) -> None:
    pass
