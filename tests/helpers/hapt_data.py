"""The real HAPT recordings beside the repository (../shared/data/hapt), in small subsets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tinyhar.cli import main

HAPT = Path(__file__).resolve().parents[3] / "shared" / "data" / "hapt"
HAPT_CLASSES = [
    "LAYING",
    "SITTING",
    "STANDING",
    "WALKING",
    "WALKING_DOWNSTAIRS",
    "WALKING_UPSTAIRS",
]
HAPT_IMPORT = ["--gyro-unit", "rad/s", "--drop", "*_TO_*"]  # the README's command


def hapt_subset(dest: Path, subjects: tuple[int, ...] = (1, 3)) -> Path:
    """Some real HAPT sessions in a folder of their own (hard links); skips without HAPT."""
    if not HAPT.is_dir():
        pytest.skip(f"{HAPT} is absent (the shared HAPT data sits beside the repository)")
    dest.mkdir(parents=True)
    for s in subjects:
        for f in sorted(HAPT.glob(f"subject{s:02d}_session*.csv.gz")):
            try:
                os.link(f, dest / f.name)
            except OSError:
                shutil.copy(f, dest / f.name)
    return dest


def import_cli(src: Path, out: Path, *args: str) -> Result:
    """`tinyhar data import SRC --out OUT [args]` in-process."""
    return CliRunner().invoke(main, ["data", "import", str(src), "--out", str(out), *args])


def hapt_folder(root: Path, subjects: tuple[int, ...]) -> Path:
    """An imported dataset folder of HAPT's `subjects`, made with the README's command."""
    src = hapt_subset(root / "src", subjects)
    result = import_cli(src, root / "hapt", *HAPT_IMPORT)
    assert result.exit_code == 0, result.output + result.stderr
    return root / "hapt"
