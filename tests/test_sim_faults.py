"""Faults injected by `tinyhar sim` (corrupt, drop, delay, reset): verify recovers or stops with
one line, within a bounded time, and never reports a partial run as a pass."""

from __future__ import annotations

import time

from conftest import one_error_line, sim_board, tinyhar

from tinyhar.files import read_json


def _verify(port: str, run, *args: str, timeout: float = 120):
    t0 = time.monotonic()
    proc = tinyhar("verify", "--port", port, "--run", run, *args, check=False, timeout=timeout)
    return proc, time.monotonic() - t0


def _assert_clean_pass(run, windows: int) -> dict:
    report = read_json(run / "verify.json")
    assert report["passed"] is True and report["windows"] == windows
    assert report["top1_agreement"] == 1.0 and report["max_abs_diff_lsb"] == 0
    return report


def test_one_percent_corruption_both_ways_recovers_or_stops_cleanly(tiny_run) -> None:
    with sim_board(tiny_run, "--corrupt", "0.01", "--seed", "3") as sim:
        proc, seconds = _verify(sim.port, tiny_run, "--windows", "10", "--timeout", "0.5")
    assert seconds < 90  # bounded: 4 attempts of 0.5 s (+ transfer) per request at most
    if proc.returncode == 0:
        _assert_clean_pass(tiny_run, 10)
    else:
        line = one_error_line(proc.stderr)
        assert "failed after" in line or "could not read" in line
        report = read_json(tiny_run / "verify.json")
        assert report["passed"] is False and report["complete"] is False


def test_light_corruption_is_retried_to_the_same_result(tiny_run) -> None:
    with sim_board(tiny_run, "--corrupt", "0.0005", "--seed", "1") as sim:
        proc, _ = _verify(
            sim.port, tiny_run, "--windows", "30", "--timeout", "0.5", "--retries", "8"
        )
    assert proc.returncode == 0, proc.stderr
    report = _assert_clean_pass(tiny_run, 30)
    assert report["retries"] > 0  # bytes were corrupted, and the link recovered


def test_dropped_bytes_are_retried_to_the_same_result(tiny_run) -> None:
    with sim_board(tiny_run, "--drop", "0.0002", "--seed", "2") as sim:
        proc, _ = _verify(
            sim.port, tiny_run, "--raw", "--windows", "15", "--timeout", "0.5", "--retries", "8"
        )
    assert proc.returncode == 0, proc.stderr
    report = _assert_clean_pass(tiny_run, 15)
    assert report["retries"] > 0 and report["preprocess_mismatch_windows"] == 0


def test_delayed_replies_within_the_timeout_pass(tiny_run) -> None:
    with sim_board(tiny_run, "--delay", "150") as sim:
        proc, seconds = _verify(sim.port, tiny_run, "--windows", "6", "--timeout", "1")
    assert proc.returncode == 0, proc.stderr
    report = _assert_clean_pass(tiny_run, 6)
    assert report["retries"] == 0
    assert report["windows_per_second"] < 1 / 0.15  # every reply came 150 ms late


def test_replies_later_than_the_timeout_end_in_one_line(tiny_run) -> None:
    with sim_board(tiny_run, "--delay", "2000") as sim:
        proc, seconds = _verify(sim.port, tiny_run, "--timeout", "0.3", "--retries", "1")
    assert proc.returncode == 2 and seconds < 30
    line = one_error_line(proc.stderr)
    assert "HELLO" in line and "2 attempts" in line
    assert read_json(tiny_run / "verify.json")["passed"] is False


def test_reset_mid_run_is_detected_and_the_window_resent(tiny_run) -> None:
    # request 12 is inside the third raw window (RESET_BUFFER, SAMPLES, INFER_RAW each)
    with sim_board(tiny_run, "--reset-after", "12") as sim:
        proc, _ = _verify(sim.port, tiny_run, "--raw", "--windows", "8", "--timeout", "0.5")
        sim.proc.terminate()
        sim.proc.wait(timeout=10)
        sim_log = sim.proc.stderr.read()
    assert "reset (fault injection)" in sim_log
    assert proc.returncode == 0, proc.stderr
    report = _assert_clean_pass(tiny_run, 8)
    assert report["device_resets_recovered"] >= 1
    assert report["preprocess_mismatch_windows"] == 0


def test_reset_in_model_mode_costs_one_retry(tiny_run) -> None:
    with sim_board(tiny_run, "--reset-after", "5") as sim:
        proc, _ = _verify(sim.port, tiny_run, "--windows", "10", "--timeout", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert _assert_clean_pass(tiny_run, 10)["retries"] >= 1
