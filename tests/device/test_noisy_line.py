"""verify over a line that corrupts and drops bytes it chose itself (tests/helpers/noisy_line.py):
light noise is retried to the clean result, heavy noise stops in one line that names corruption."""

from __future__ import annotations

import time

import pytest
from helpers.boards import virtual_board
from helpers.commands import verify_quietly
from helpers.noisy_line import Direction, NoisyLine

from tinyhar.errors import TinyharError


def test_the_line_mangles_at_its_rates_and_passes_the_rest():
    line = NoisyLine("/dev/null", corrupt=0.01, drop=0.02, seed=1)
    data = bytes(range(256)) * 400
    out = line.mangle(data, line.to_host)
    counts = line.to_host
    assert counts.passed + counts.dropped == len(data) == 102_400
    assert len(out) == counts.passed
    assert (
        0.008 < counts.corrupted / len(data) < 0.012 and 0.017 < counts.dropped / len(data) < 0.023
    )


@pytest.mark.parametrize("raw", [False, True], ids=["model", "raw"])
@pytest.mark.parametrize("rate", [1e-4, 1e-3])
def test_noise_both_ways_is_retried_to_the_clean_result(tiny_run, rate, raw):
    with virtual_board(tiny_run) as (vb, _):
        clean = verify_quietly(vb.path, tiny_run, windows=60, raw=raw)
        with NoisyLine(vb.path, corrupt=rate, drop=rate, seed=7) as line:
            noisy = verify_quietly(line.port, tiny_run, windows=60, raw=raw)
    assert clean.passed and noisy.passed and noisy.complete
    assert noisy.windows == clean.windows == 60
    assert (noisy.top1_agreement, noisy.max_abs_diff_lsb) == (clean.top1_agreement, 0)
    assert noisy.retries > 0  # the line did corrupt: the same result came through retries
    assert line.to_device.corrupted + line.to_host.corrupted + line.to_host.dropped > 0


@pytest.mark.parametrize("raw", [False, True], ids=["model", "raw"])
def test_heavy_noise_stops_within_ten_seconds_naming_corruption(tiny_run, raw):
    with virtual_board(tiny_run) as (vb, _):
        with NoisyLine(vb.path, corrupt=1e-2, drop=1e-2, seed=5) as line:
            t0 = time.monotonic()
            with pytest.raises(TinyharError) as e:
                verify_quietly(line.port, tiny_run, windows=60, raw=raw)
            took = time.monotonic() - t0
    msg = str(e.value)
    assert took < 10, msg
    assert "\n" not in msg and "corrupt" in msg and "cable" in msg
    assert "nothing came back" not in msg


class LosesDelimiters(NoisyLine):
    """A line that drops every 7th 0x00 byte each way (a frame's delimiter), and nothing else."""

    def mangle(self, data: bytes, counts: Direction) -> bytes:
        out = bytearray()
        for b in data:
            if b == 0:
                counts.corrupted += 1  # here: the delimiters seen
                if counts.corrupted % 7 == 0:
                    counts.dropped += 1
                    continue
            counts.passed += 1
            out.append(b)
        return bytes(out)


@pytest.mark.parametrize("raw", [False, True], ids=["model", "raw"])
def test_a_lost_delimiter_costs_no_retry(tiny_run, raw):
    """Both sides end every frame with two delimiters: losing one still ends the frame, so no
    attempt waits in silence for the next (one in seven frames' only delimiter, before)."""
    with virtual_board(tiny_run) as (vb, _):
        with LosesDelimiters(vb.path) as line:
            t0 = time.monotonic()
            report = verify_quietly(line.port, tiny_run, windows=30, raw=raw)
            took = time.monotonic() - t0
    assert report.passed and report.windows == 30
    assert line.to_device.dropped > 10 and line.to_host.dropped > 10
    assert report.retries == 0, f"{report.retries} retries in {took:.1f} s"
