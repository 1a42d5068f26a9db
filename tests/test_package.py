"""A plain (not editable) install carries every module, the board files, firmware templates and
data lists; `python -m tinyhar` is the command."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import tinyhar

SRC = Path(tinyhar.__file__).parent
REPO = SRC.parent
# Distributions that each install the `tensorflow` package: two of them write over one folder.
TENSORFLOWS = {"tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos",
               "tensorflow-aarch64", "tf-nightly", "tf-nightly-cpu"}  # fmt: skip


def test_the_wheel_carries_boards_templates_and_checksums(tmp_path: Path) -> None:
    # A copy of the sources alone: an egg-info left by an editable install would list the files.
    src = tmp_path / "src"
    shutil.copytree(SRC, src / "tinyhar", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("boards", "firmware_templates"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("tinyhar-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [
        *REPO.glob("boards/**/*.toml"),
        *(p for p in REPO.glob("firmware_templates/**/*") if p.is_file()),
    ]
    modules = [p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts]
    wanted = [*shipped, *modules, SRC / "data" / "mhealth_sha256.txt"]
    assert len([p for p in wanted if p.suffix == ".toml"]) >= 3
    assert any(p.name == "tinyhar_core.c" for p in wanted)
    assert SRC / "search" / "tune.py" in modules  # every subpackage, not only the listed ones

    def in_wheel(p: Path) -> str:  # boards/ and firmware_templates/ land inside the package
        rel = str(p.relative_to(REPO))
        return rel if rel.startswith("tinyhar/") else f"tinyhar/{rel}"

    missing = [in_wheel(p) for p in wanted if in_wheel(p) not in names]
    assert missing == []
    assert "tinyhar/cli.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tinyhar = tinyhar.__main__:run" in zipfile.ZipFile(wheel).read(entry).decode()


def test_python_m_tinyhar_is_the_tinyhar_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "tinyhar", "--version"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == f"tinyhar, version {tinyhar.__version__}"


def _tensorflows(requirements: list[str]) -> set[str]:
    """The TensorFlow distributions among requirement strings (extras' requirements left out)."""
    reqs = [Requirement(r) for r in requirements]
    names = {canonicalize_name(r.name) for r in reqs if r.marker is None or r.marker.evaluate()}
    return names & TENSORFLOWS


def test_one_tensorflow_is_asked_for_and_installed() -> None:
    """tinyhar asks for the TensorFlow distribution tf-keras requires (not tensorflow-cpu beside
    it), and the environment holds one distribution of the `tensorflow` package."""
    ours = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert _tensorflows(ours) == _tensorflows(metadata.requires("tf-keras")) == {"tensorflow"}
    installed = [Requirement(r) for r in metadata.requires("tinyhar") or []]
    core = {str(r) for r in installed if r.marker is None or "extra" not in str(r.marker)}
    if core != {str(Requirement(r)) for r in ours}:
        pytest.skip("this environment was installed from another pyproject.toml: "
                    "`pip install -e .[dev]` to check what it installs")  # fmt: skip
    providers = {canonicalize_name(d) for d in metadata.packages_distributions()["tensorflow"]}
    assert providers == {"tensorflow"}, (
        f"{sorted(providers)} all install the tensorflow package; keep tensorflow only: "
        "`pip uninstall -y tensorflow-cpu && pip install --force-reinstall --no-deps "
        "tensorflow==2.21.0`"
    )


def test_what_commands_write_into_a_checkout_is_ignored_and_the_package_is_not() -> None:
    """`tinyhar data import ... --out data/hapt` and every run stay out of `git status`."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["data/hapt/subject01.csv", "runs/demo/model.keras", "tinyhar/data/windows.py"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.stdout.split() == paths[:2]
