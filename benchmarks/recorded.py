"""When, from which commit and on what machine a benchmark ran: the line its output starts with,
so a table pasted into benchmarks/results/ says where it came from."""

from __future__ import annotations

import os
import platform
import subprocess
import time


def stamp() -> str:
    """'2026-12-05, commit 6a57b4e, x86_64 Linux, 2 cores, Python 3.11.7'."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    ).stdout.strip()
    return (
        f"{time.strftime('%Y-%m-%d')}, commit {commit or 'unknown'}, "
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
