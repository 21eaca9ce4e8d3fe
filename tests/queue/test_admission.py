"""Admission under a burst: calls arriving together are held to the queue's depth, not let in on one read."""

from __future__ import annotations

import asyncio

from service.queue.admission import Admission, Refusal
from service.queue.redis_queue import RedisQueue
from tests.queue.test_shards import make_job


async def admit_and_enqueue(admission: Admission, queue: RedisQueue, max_depth: int) -> Refusal | None:
    """What the gateway does per call: admit, enqueue, and say the job has entered the queue."""
    job = make_job(0)
    refusal = await admission.admit("t", [0], max_depth, quota=0)
    if refusal is None:
        try:
            await queue.enqueue(job)
        finally:
            admission.entered([0])
    return refusal


async def test_a_burst_is_held_to_the_queue_depth(queue: RedisQueue) -> None:
    admission = Admission(queue)
    refusals = await asyncio.gather(*(admit_and_enqueue(admission, queue, 20) for _ in range(60)))
    admitted = refusals.count(None)
    assert admitted == 20 and refusals.count(Refusal.queue_full) == 40
    assert await queue.depth() == 20
    assert +admission.in_transit == {}
    # Nothing in transit is left over: once the queue drains, a call is admitted again.
    await queue.redis.delete(queue.shards[0].jobs)
    await queue.ensure_group()
    assert await admit_and_enqueue(admission, queue, 20) is None


async def test_a_call_over_its_quota_is_refused_as_such_when_the_queue_is_full_too(queue: RedisQueue) -> None:
    admission = Admission(queue)
    await queue.enqueue_many([make_job(0), make_job(0)])
    assert await admission.admit("t", [0], 2, quota=1) == Refusal.queue_full
    assert await queue.redis.hget(queue.keys.in_flight, "t") == b"0"
    assert await admission.admit("t", [0, 0], 100, quota=1) == Refusal.tenant_quota
    assert await queue.redis.hget(queue.keys.in_flight, "t") == b"0"
    assert await admission.admit("t", [0, 0], 2, quota=1) == Refusal.tenant_quota
    assert +admission.in_transit == {}
