"""Shared fixtures: one tiny trained and quantized run per test session, and virtual boards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers.boards import Sim, sim_board
from helpers.commands import require_tools, tinyhar

if TYPE_CHECKING:
    pass


@pytest.fixture
def host_gcc() -> None:
    require_tools("gcc", "g++", apt="gcc g++")


@pytest.fixture
def arm_gcc() -> None:
    require_tools("arm-none-eabi-gcc", apt="gcc-arm-none-eabi libnewlib-arm-none-eabi")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder built the way a user does: data synth -> train (tiny, 1 epoch) -> quantize."""
    root = tmp_path_factory.mktemp("tiny_run")
    data, run = root / "synth", root / "run"
    tinyhar("data", "synth", "--out", data, "--subjects", "3")
    tinyhar("train", "--data", data, "--arch", "tiny", "--epochs", "1", "--run", run)
    tinyhar("quantize", "--run", run)
    return run


# --- virtual boards (`tinyhar sim` in the background, as a user starts it) ----------------------


@pytest.fixture(scope="session")
def clean_sim(tiny_run: Path) -> Iterator[Sim]:
    """One fault-free virtual board for the session's device tests."""
    with sim_board(tiny_run) as sim:
        yield sim
