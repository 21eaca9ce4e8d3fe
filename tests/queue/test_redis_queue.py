"""The queue against a real redis-server: claiming, redelivery, and exactly one final result."""

from __future__ import annotations

import asyncio
import time
import uuid

from service.models import ExecuteRequest, ExecutionResult, Job, Limits, Status
from service.queue.keys import new_job_id
from service.queue.listener import ResultListener
from service.queue.redis_queue import Delivery, RedisQueue, connect
from tests.queue.conftest import listening

LIMITS = Limits(timeout_s=1, memory_mb=64, output_bytes=1024, compile_timeout_s=1, compile_memory_mb=64)


def make_job(reply_to: str | None = None) -> Job:
    now = time.time()
    request = ExecuteRequest(language="python", code="print(1)")
    return Job(
        id=new_job_id(0, tracked=False),
        request=request,
        limits=LIMITS,
        enqueued_at=now,
        start_by=now + 60,
        reply_to=reply_to,
    )


async def test_claimed_job_round_trips_intact(queue: RedisQueue) -> None:
    job = make_job()
    await queue.enqueue(job)
    claimed = await queue.claim_jobs("w1", 10, 100)
    assert [c.job for c in claimed] == [job]
    assert await queue.claim_jobs("w2", 10, 50) == []


async def test_second_result_for_a_job_is_refused(queue: RedisQueue) -> None:
    job = make_job()
    await queue.enqueue(job)
    [claimed] = await queue.claim_jobs("w1", 1, 100)
    first = ExecutionResult(id=job.id, status=Status.ok, stdout="first")
    second = ExecutionResult(id=job.id, status=Status.ok, stdout="second")
    assert await queue.publish_result(first, job, claimed.entry_id, 60) is True
    assert await queue.publish_result(second, job, claimed.entry_id, 60) is False
    stored = await queue.get_raw_results([job.id])
    assert [ExecutionResult.model_validate_json(raw).stdout for raw in stored] == ["first"]
    assert await queue.depth() == 0


async def test_job_of_a_silent_worker_is_reclaimed_then_exhausted(queue: RedisQueue) -> None:
    job = make_job()
    await queue.enqueue(job)
    await queue.claim_jobs("dead-worker", 1, 100)
    await asyncio.sleep(0.15)
    first = await queue.reclaim_stale("live-worker", 0.1, 10, max_attempts=2)
    assert [c.job.id for c in first.claimed] == [job.id] and first.exhausted == []
    await asyncio.sleep(0.15)
    second = await queue.reclaim_stale("live-worker", 0.1, 10, max_attempts=2)
    assert second.claimed == [] and [c.job.id for c in second.exhausted] == [job.id]


async def test_touched_job_is_not_reclaimed(queue: RedisQueue) -> None:
    job = make_job()
    await queue.enqueue(job)
    [claimed] = await queue.claim_jobs("busy-worker", 1, 100)
    await asyncio.sleep(0.15)
    await queue.touch("busy-worker", [claimed])
    reclaimed = await queue.reclaim_stale("other-worker", 0.1, 10, max_attempts=3)
    assert reclaimed.claimed == [] and reclaimed.exhausted == []


async def test_malformed_entry_is_dropped_not_delivered(queue: RedisQueue) -> None:
    await queue.redis.xadd(queue.keys.jobs, {b"job": b"{not json"})
    assert await queue.claim_jobs("w1", 10, 100) == []
    assert await queue.depth() == 0


async def test_heartbeats_count_live_workers(queue: RedisQueue) -> None:
    assert await queue.live_workers(5) == 0
    await queue.heartbeat("a", 5)
    await queue.heartbeat("b", 5)
    assert await queue.live_workers(5) == 2
    await queue.forget_worker("a")
    assert await queue.live_workers(5) == 1


async def test_listener_resolves_the_waiting_future(queue: RedisQueue) -> None:
    async with listening(queue, "gw1") as listener:
        job = make_job(reply_to="gw1")
        future = listener.expect(job.id)
        await queue.enqueue(job)
        [claimed] = await queue.claim_jobs("w1", 1, 100)
        await queue.publish_result(ExecutionResult(id=job.id, status=Status.ok, stdout="hi"), job, claimed.entry_id, 60)
        raw = await asyncio.wait_for(future, 5)
        assert ExecutionResult.model_validate_json(raw).stdout == "hi"
        assert job.id not in listener.waiting


async def test_listener_recovers_results_published_while_it_was_away(queue: RedisQueue) -> None:
    job = make_job(reply_to="gw2")
    await queue.publish_result(ExecutionResult(id=job.id, status=Status.ok, stdout="late"), job, None, 60)
    listener = ResultListener(queue, "gw2")
    future = listener.expect(job.id)
    await listener.start()
    try:
        raw = await asyncio.wait_for(future, 5)
        assert ExecutionResult.model_validate_json(raw).stdout == "late"
    finally:
        await listener.stop()


async def evalsha_calls(queue: RedisQueue) -> int:
    stats = await queue.redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_synchronous_calls_result_is_stored_acked_and_heard_without_a_script(queue: RedisQueue) -> None:
    async with listening(queue, "gw") as listener:
        job = make_job(reply_to="gw")
        job.tenant = "t1"
        await queue.redis.hincrby(queue.keys.in_flight, "t1", 1)
        await queue.enqueue(job)
        [claimed] = await queue.claim_jobs("w1", 1, 100)
        future = listener.expect(job.id)
        scripts = await evalsha_calls(queue)
        result = ExecutionResult(id=job.id, status=Status.ok, stdout="2\n")
        assert await queue.publish_result(result, job, claimed.entry_id, 60) is True
        assert ExecutionResult.model_validate_json(await asyncio.wait_for(future, 5)).stdout == "2\n"
        assert await evalsha_calls(queue) == scripts
        assert await queue.get_raw_results([job.id]) == [result.model_dump_json().encode()]
        assert await queue.depth() == 0
        assert await queue.redis.xpending(queue.keys.jobs, queue.keys.group) == {
            "pending": 0,
            "min": None,
            "max": None,
            "consumers": [],
        }
        # The quota comes back once, from the publish that acknowledged the entry.
        late = ExecutionResult(id=job.id, status=Status.ok, stdout="late\n")
        assert await queue.publish_result(late, job, claimed.entry_id, 60) is False
        assert int(await queue.redis.hget(queue.keys.in_flight, "t1")) == 0


async def test_a_reclaimed_synchronous_call_still_drops_its_retry_count(queue: RedisQueue) -> None:
    job = make_job(reply_to="gw")
    await queue.enqueue(job)
    await queue.claim_jobs("dead-worker", 1, 100)
    await asyncio.sleep(0.15)
    [claimed] = (await queue.reclaim_stale("live-worker", 0.1, 10, max_attempts=5)).claimed
    assert claimed.reclaimed and await queue.redis.hget(queue.keys.shard(0).attempts, job.id) == b"1"
    result = ExecutionResult(id=job.id, status=Status.ok)
    delivery = Delivery(result, job.reply_to, claimed.entry_id, reclaimed=claimed.reclaimed)
    assert await queue.deliver([delivery], 60) == [True]
    assert await queue.redis.hget(queue.keys.shard(0).attempts, job.id) is None


async def test_jobs_enqueued_at_the_same_moment_each_get_their_own_entry(queue: RedisQueue) -> None:
    jobs = [make_job() for _ in range(20)]
    enqueued = await asyncio.gather(*(queue.enqueue(job) for job in jobs))
    assert [item.job for item in enqueued] == jobs
    assert len({item.entry_id for item in enqueued}) == len(jobs)
    claimed = await queue.claim_jobs("w1", 100, 100)
    assert {item.entry_id: item.job.id for item in claimed} == {item.entry_id: item.job.id for item in enqueued}


async def test_a_redis_on_a_unix_socket_carries_the_queue(redis_unix_url: str) -> None:
    client = connect(redis_unix_url)
    try:
        queue = RedisQueue(client, f"unix{uuid.uuid4().hex[:8]}")
        await queue.ensure_group()
        job = make_job()
        await queue.enqueue(job)
        [claimed] = await queue.claim_jobs("w1", 1, 100)
        assert claimed.job == job
    finally:
        await client.aclose()
        await client.connection_pool.disconnect()
