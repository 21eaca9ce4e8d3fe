"""`sandpit top --once` against a real stack shows its live workers and their slots."""

from __future__ import annotations

import subprocess
import sys
import time

from service.stack import LocalStack
from tests.metrics_scrape import scrape, value

WAIT_FOR_SAMPLE_S = 30.0


def test_top_once_shows_live_workers_and_slots(observed_stack: LocalStack) -> None:
    # The gateway samples workers every metrics_sample_interval_s; wait for one that saw them all.
    deadline = time.monotonic() + WAIT_FOR_SAMPLE_S
    while value(scrape(observed_stack.url), "sandpit_workers_live") < observed_stack.workers:
        assert time.monotonic() < deadline, "the gateway never saw every worker"
        time.sleep(0.1)
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "top", "--once", "--interval", "0.2", "--url", observed_stack.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    slots = observed_stack.workers * observed_stack.settings.worker_concurrency
    assert f"{observed_stack.workers} live" in done.stdout
    assert f"/ {slots}" in done.stdout
    assert "calls/s" in done.stdout
    assert "p99" in done.stdout


def test_top_says_when_the_gateway_cannot_be_read() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "top", "--once", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot read" in done.stderr
