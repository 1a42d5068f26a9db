"""The tinyhar command as tests run it, and what they read back from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from helpers.paths import SHARED_LIBRARIES

if TYPE_CHECKING:
    from tinyhar.device.verify import VerifyReport

# Where tinyhar looks for them (instead of arduino-cli's folder), in-process and in subprocesses.
os.environ.setdefault("TINYHAR_ARDUINO_LIBRARIES", str(SHARED_LIBRARIES))

# The installed `tinyhar` entry point of this interpreter, as a user runs it.
_SCRIPT = Path(sys.executable).with_name("tinyhar")
TINYHAR = [str(_SCRIPT)] if _SCRIPT.is_file() else [shutil.which("tinyhar") or "tinyhar"]


def tinyhar(*args: str, timeout: float = 300, check: bool = True, cwd: Path | None = None):
    """Run the real command line in a subprocess; returns the CompletedProcess."""
    proc = subprocess.run(
        [*TINYHAR, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"tinyhar {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
    return proc


def one_error_line(stderr: str) -> str:
    """The single `error:` line a failed command must end with (no traceback); returns it."""
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    return errors[0]


def verify_history(run: Path) -> list[dict]:
    """The lines of R/verify_history.jsonl, oldest first ([] when there is none)."""
    path = run / "verify_history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def verify_quietly(port: str, run: Path, **options: Any) -> VerifyReport:
    """`verify_device` in-process, without a progress bar or log lines; the report."""
    from tinyhar.device.verify import VerifyOptions, verify_device  # lazy: 0.3 s per session

    opts = VerifyOptions(port=port, run=run, progress=False, **options)
    return verify_device(opts, log=lambda _: None)


def require_tools(*tools: str, apt: str) -> None:
    """Skip a test whose compiler or emulator is missing; in CI (`CI` set) fail it instead,
    since .ci/run installs them and a skip there would hide a broken install step."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    msg = f"{', '.join(missing)} not installed (apt-get install -y {apt})"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {msg}; .ci/run must install it")
    pytest.skip(msg)
