"""bench/gateway.py runs against the real gateway process with several batch requests in flight
and reports what it measured (issue 11): not figures, which only a quiet host can give, but
that every batch was sent, answered and counted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_two_batches_in_flight_are_sent_answered_and_counted() -> None:
    run = subprocess.run(
        [sys.executable, "bench/gateway.py", "--single", "5", "--batches", "5", "--batch-size", "40",
         "--concurrency", "2", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["batch_events"], result["batch_size"], result["batch_concurrency"]) == (200, 40, 2)
    assert result["batch_events_per_s"] > 0 and result["batch_gateway_cpu_us_per_event"] > 0
    share = result["batch_events_per_s"] / result["ed25519_sign_per_s_one_core_libsodium"]
    assert result["batch_share_of_sign_rate"] == pytest.approx(share, abs=0.001)
    # the reference measured again after the batches, and how far it moved
    drift = (
        result["ed25519_sign_per_s_one_core_libsodium_after"]
        / result["ed25519_sign_per_s_one_core_libsodium"]
    )
    assert result["ed25519_sign_per_s_one_core_libsodium_after"] > 0
    assert result["sign_rate_drift"] == pytest.approx(drift, abs=0.001)
    assert "batch_serving_thread" not in result  # split over the pool's threads: not one thread's


def test_no_batch_in_flight_is_refused() -> None:
    run = subprocess.run(
        [sys.executable, "bench/gateway.py", "--concurrency", "0"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and "--concurrency must be at least 1" in run.stderr
