"""Redis's cost per call on the `make up` shape (one Redis, one gateway, one worker), measured the way
the issue measured it: INFO commandstats and INFO cpu before and after 2,000 trivial calls at 32 in
flight. The brief holds it to at most 8 commands per call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from service.bench.redis_stats import RedisMeter, cost_per_call
from service.config import Settings
from service.stack import LocalStack, free_port
from tests.cluster.drive import Run, drive

pytestmark = pytest.mark.timeout(240)

CALLS = 2000
IN_FLIGHT = 32
MAX_COMMANDS_PER_CALL = 8


@pytest.fixture(scope="module")
def make_up_stack() -> Iterator[LocalStack]:
    settings = Settings(port=free_port(), sandbox_uid_base=76000)
    with LocalStack(settings, workers=1, redis_url_given=False) as local:
        yield local


async def measured(stack: LocalStack) -> tuple[Run, dict[str, Any]]:
    urls = [stack.url]
    warm = await drive(urls, 100, IN_FLIGHT, 60, keyed=False)
    assert warm.lost == 0, warm.wrong[:5]
    meter = RedisMeter([stack.settings.redis_url])
    try:
        before = await meter.snapshot()
        run = await drive(urls, CALLS, IN_FLIGHT, 180, keyed=False)
        return run, cost_per_call(before, await meter.snapshot(), CALLS)
    finally:
        await meter.close()


def test_a_trivial_call_costs_at_most_8_redis_commands(make_up_stack: LocalStack) -> None:
    run, cost = asyncio.run(measured(make_up_stack))
    assert run.lost == 0, run.wrong[:5]
    print(json.dumps({"calls_per_s": round(CALLS / run.elapsed_s, 1), **cost}))
    assert cost["commands"] <= MAX_COMMANDS_PER_CALL * CALLS, cost
    # A synchronous call runs no script at all: its admission, start and publish are plain commands.
    # (`top` holds the 16 commands sent most: one left out was sent less than those, which fit in 8 per call.)
    evalsha = next((entry["per_call"] for entry in cost["top"] if entry["command"] == "evalsha"), 0.0)
    assert evalsha <= 0.01, cost
