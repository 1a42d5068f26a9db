"""Ray tasks: a task that raises is reported and the others finish."""

from __future__ import annotations

import pytest

from tinyhar.parallel.ray_env import Cluster, ray_session
from tinyhar.parallel.tasks import run_tasks


@pytest.mark.slow
def test_a_failed_task_is_reported_and_the_others_finish():
    def _square_but_not_two(x: int) -> int:  # local: pickled by value, workers need no tests/
        if x == 2:
            raise ValueError("two is refused")
        return x * x

    lines: list[str] = []
    with ray_session(Cluster(None, 2, 1)) as ray:
        out = run_tasks(ray, _square_but_not_two, [(k, (k,)) for k in (1, 2, 3)],
                        line=lambda o: lines.append(str(o.key)) or "", desc="t",
                        progress=False)  # fmt: skip
    assert [o.value for o in out] == [1, None, 9]
    assert out[1].error == "ValueError: two is refused"
    assert sorted(lines) == ["1", "2", "3"]
