"""Keeping the pool busy before a hold: the slot count read from a gateway's metrics, how long the pool
stays busy by default, and the option that sets it."""

from __future__ import annotations

import argparse

import pytest

from service.bench.busy import slots_by_state
from service.bench.hold import BUSY_MARGIN_S, default_busy_s
from tests.bench.arguments import bench_arguments

METRICS = """\
# HELP sandpit_workers_live Workers whose heartbeat is fresh
# TYPE sandpit_workers_live gauge
sandpit_workers_live 2.0
# HELP sandpit_slots Sandbox slots of the live workers, by state (busy, free)
# TYPE sandpit_slots gauge
sandpit_slots{state="busy"} 3.0
sandpit_slots{state="free"} 509.0
# HELP sandpit_live_worker_slots Sandbox slots of each live worker, by state (busy, free)
# TYPE sandpit_live_worker_slots gauge
sandpit_live_worker_slots{state="busy",worker="w-1"} 3.0
sandpit_live_worker_slots{state="free",worker="w-1"} 253.0
sandpit_live_worker_slots{state="free",worker="w-2"} 256.0
"""


def test_the_slot_count_is_the_pools_gauge_by_state_not_each_workers() -> None:
    assert slots_by_state(METRICS) == {"busy": 3.0, "free": 509.0}


def test_a_gateway_that_has_not_sampled_its_workers_yet_shows_no_slots() -> None:
    assert slots_by_state("# HELP sandpit_workers_live x\n# TYPE sandpit_workers_live gauge\n") == {}


def test_the_pool_stays_busy_twice_as_long_as_the_opener_takes_plus_a_margin() -> None:
    # 10,000 single calls and 40 batches, opened at 1,000 requests a second: 10.04 s, to a tenth.
    assert default_busy_s(50_000, use_batches=True) == pytest.approx(2 * 10.04 + BUSY_MARGIN_S, abs=0.05)
    # Without batches every call has its own connection.
    assert default_busy_s(2_000, use_batches=False) == pytest.approx(2 * 2.0 + BUSY_MARGIN_S)


def test_hold_busy_seconds_default_to_the_estimate_and_zero_turns_the_busy_pool_off() -> None:
    assert bench_arguments().hold_busy_s is None
    assert bench_arguments("--hold-busy-s", "0").hold_busy_s == 0.0
    assert bench_arguments("--hold-busy-s", "12.5").hold_busy_s == 12.5


@pytest.mark.parametrize("seconds", ["-1", "nan", "soon"])
def test_hold_busy_seconds_that_are_not_a_duration_are_refused(seconds: str) -> None:
    with pytest.raises(argparse.ArgumentError):
        bench_arguments("--hold-busy-s", seconds)
