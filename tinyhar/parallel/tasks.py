"""Run one function over many inputs as Ray tasks: one line per finished task, an overall bar,
and a failed task reported without stopping the others."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm


@dataclass
class Outcome:
    """What one task gave back, or why it failed."""

    key: Any
    value: Any = None
    error: str | None = None


def run_tasks(
    ray,
    fn: Callable[..., Any],
    jobs: Sequence[tuple[Any, tuple]],
    line: Callable[[Outcome], str],
    desc: str,
    progress: bool = True,
) -> list[Outcome]:
    """fn(*args) for each (key, args) in `jobs` on Ray, one CPU each; outcomes in job order."""
    remote = ray.remote(num_cpus=1, max_retries=0)(fn)
    refs = {remote.remote(*args): key for key, args in jobs}
    done: dict[Any, Outcome] = {}
    bar = tqdm(total=len(jobs), desc=desc, unit="run", file=sys.stderr, disable=not progress)
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            key = refs[ready[0]]
            try:
                out = Outcome(key, value=ray.get(ready[0]))
            except Exception as e:  # a worker that died or raised: report it, keep going
                out = Outcome(key, error=_one_line(e))
            done[key] = out
            bar.write(line(out), file=sys.stderr)
            bar.update(1)
    finally:
        bar.close()
    return [done[key] for key, _ in jobs]


def _one_line(e: Exception) -> str:
    cause = getattr(e, "cause", None) or e
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"
