"""The queue-capacity bench against the session's real redis-server: its gateways and workers (real
queue code, the sandbox stood in for by a fixed answer) answer every call with its own result, and
what it reports adds up."""

from __future__ import annotations

import asyncio

from service.bench.queue_capacity import Shape, measure


def test_every_call_is_answered_with_its_own_result_at_a_plain_calls_redis_cost(redis_url: str) -> None:
    record = asyncio.run(measure(redis_url, Shape(in_flight=16, gateways=4, workers=2, seconds=1.0)))
    assert record["wrong"] == 0
    assert record["calls"] > 16
    assert record["calls_per_s"] > 0
    # Enqueue, read (shared), store, ack, delete, publish: never more than the make-up stack's 8.
    assert 4 < record["commands_per_call"] <= 8, record
    assert record["script_us_per_call"] == 0.0, record
    assert record["calls_per_redis_core_s"] == round(1e6 / record["cpu_us_per_call"])
    assert {entry["command"] for entry in record["top"]} >= {"xadd", "xreadgroup", "set", "xack", "xdel", "publish"}
