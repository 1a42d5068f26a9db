"""Faults injected on a virtual board's wire (corrupt, drop, delay, reset): verify recovers or
stops with one line, within a bounded time, and never reports a partial run as a pass.

The board is served by a thread of this process and verify runs in-process (what `tinyhar sim`
and `tinyhar verify` run); one test runs both as commands, for the exit code and the one line."""

from __future__ import annotations

import time

import pytest
from helpers.boards import sim_board, virtual_board
from helpers.commands import one_error_line, tinyhar, verify_history, verify_quietly

from tinyhar.device.verify import VerifyReport
from tinyhar.device.virtual_board import Faults
from tinyhar.errors import TinyharError
from tinyhar.files import read_json
from tinyhar.run import folder as runs


def _assert_clean_pass(report: VerifyReport, run, windows: int) -> VerifyReport:
    assert report.passed is True and report.complete is True and report.windows == windows
    assert report.top1_agreement == 1.0 and report.max_abs_diff_lsb == 0
    assert read_json(run / runs.verify_json(report.mode)) == report.to_json()
    assert verify_history(run)[-1]["run_id"] == report.run_id
    return report


def test_heavy_corruption_both_ways_stops_in_one_line_naming_corruption(tiny_run) -> None:
    # 3% of bytes corrupted both ways: a 265-byte piece of a window crosses whole once in 3,000
    # tries, so a request fails every attempt. verify stops within seconds, says
    # the line corrupts, and keeps what it compared in the history. (At 1%, pieces get through.)
    before = verify_history(tiny_run)
    t0 = time.monotonic()
    with virtual_board(tiny_run, Faults(corrupt=0.03, seed=3)) as (vb, _):
        with pytest.raises(TinyharError, match=r"failed after \d+ attempts .*corrupt"):
            verify_quietly(vb.path, tiny_run, windows=10, timeout=0.5)
    assert time.monotonic() - t0 < 10
    assert vb.resets == 0
    history = verify_history(tiny_run)
    assert len(history) == len(before) + 1
    line = history[-1]
    assert line["passed"] is False and line["complete"] is False and line["mode"] == "model"
    assert 0 <= line["windows"] < 10
    assert "the line corrupts data" in line["error"]


def test_light_corruption_is_retried_to_the_same_result(tiny_run) -> None:
    with virtual_board(tiny_run, Faults(corrupt=0.0005, seed=1)) as (vb, _):
        report = verify_quietly(vb.path, tiny_run, windows=30, timeout=0.5, retries=8)
    _assert_clean_pass(report, tiny_run, 30)
    assert report.retries > 0  # bytes were corrupted, and the link recovered


def test_dropped_bytes_are_retried_to_the_same_result(tiny_run) -> None:
    with virtual_board(tiny_run, Faults(drop=0.0002, seed=2)) as (vb, _):
        report = verify_quietly(vb.path, tiny_run, raw=True, windows=15, timeout=0.5, retries=8)
    _assert_clean_pass(report, tiny_run, 15)
    assert report.retries > 0 and report.preprocess_mismatch_windows == 0


def test_delayed_replies_within_the_timeout_pass(tiny_run) -> None:
    with virtual_board(tiny_run, Faults(delay_ms=150)) as (vb, _):
        report = verify_quietly(vb.path, tiny_run, windows=6, timeout=1)
    _assert_clean_pass(report, tiny_run, 6)
    assert report.retries == 0
    assert report.windows_per_second < 1 / 0.15  # every reply came 150 ms late


def test_replies_later_than_the_timeout_end_in_one_line(tiny_run) -> None:
    """The command line: `tinyhar sim --delay` and `tinyhar verify` as a user runs them."""
    with sim_board(tiny_run, "--delay", "2000") as sim:
        t0 = time.monotonic()
        proc = tinyhar("verify", "--port", sim.port, "--run", tiny_run, "--timeout", "0.3",
                       "--retries", "1", check=False, timeout=120)  # fmt: skip
        seconds = time.monotonic() - t0
    assert proc.returncode == 2 and seconds < 30
    line = one_error_line(proc.stderr)
    assert "HELLO" in line and "2 attempts" in line
    line = verify_history(tiny_run)[-1]
    assert line["passed"] is False and line["windows"] == 0 and "HELLO" in line["error"]


def test_reset_mid_run_is_detected_and_the_window_resent(tiny_run) -> None:
    # request 12 is inside the third raw window (RESET_BUFFER, SAMPLES, INFER_RAW each)
    with virtual_board(tiny_run, Faults(reset_after=12)) as (vb, sim_log):
        report = verify_quietly(vb.path, tiny_run, raw=True, windows=8, timeout=0.5)
    assert vb.resets == 1 and any("reset (fault injection)" in ln for ln in sim_log)
    _assert_clean_pass(report, tiny_run, 8)
    assert report.device_resets_recovered >= 1
    assert report.preprocess_mismatch_windows == 0


def test_reset_in_model_mode_is_counted_as_in_raw_mode(tiny_run) -> None:
    # requests: HELLO, RESET_BUFFER + SAMPLES (the mark), LOAD of window 1's first piece, LOAD of
    # its second <- reset: the device answers the resent piece with WINDOW_NOT_FULL (it holds 0
    # bytes), the host resumes the window from 0, and the RESULT's sample count shows the reset
    with virtual_board(tiny_run, Faults(reset_after=5)) as (vb, _):
        report = verify_quietly(vb.path, tiny_run, windows=10, timeout=0.5)
    assert vb.resets == 1
    assert _assert_clean_pass(report, tiny_run, 10).retries >= 1
    assert report.device_resets_recovered == 1
