"""Job records, cancels, watchers and idempotency keys against a real redis-server."""

from __future__ import annotations

import asyncio
import time

from service.models import ExecuteRequest, ExecutionResult, Job, JobState, Limits, Status
from service.queue.jobs import JobStore
from service.queue.keys import new_job_id
from service.queue.redis_queue import RedisQueue
from tests.queue.conftest import listening

LIMITS = Limits(timeout_s=1, memory_mb=64, output_bytes=1024, compile_timeout_s=1, compile_memory_mb=64)


def make_job() -> Job:
    """A tracked job (as `/v1/jobs` makes): it has a record and may have watchers."""
    now = time.time()
    request = ExecuteRequest(language="python", code="print(1)")
    return Job(id=new_job_id(0, tracked=True), request=request, limits=LIMITS, enqueued_at=now, start_by=now + 60)


async def test_a_job_is_queued_then_running_then_done(queue: RedisQueue) -> None:
    store, job = JobStore(queue), make_job()
    await queue.enqueue(job)
    assert (await store.snapshot(job.id)).info(job.id).state == JobState.queued  # type: ignore[union-attr]
    assert await store.begin(job, "w1", 60)
    info = (await store.snapshot(job.id)).info(job.id)
    assert info is not None and (info.state, info.worker) == (JobState.running, "w1")
    await queue.publish_final(ExecutionResult(id=job.id, status=Status.ok), None, None, 60)
    snapshot = await store.snapshot(job.id)
    assert snapshot.record is None  # the publish script removed it: the result is the truth now
    assert snapshot.info(job.id).state == JobState.done  # type: ignore[union-attr]


async def test_a_cancelled_job_does_not_begin(queue: RedisQueue) -> None:
    store, job = JobStore(queue), make_job()
    await queue.enqueue(job)
    await store.request_cancel([job.id], 60)
    assert not await store.begin(job, "w1", 60)
    assert await store.cancelled_among([job.id, "other"]) == {job.id}


async def test_watchers_hear_the_result_and_only_the_first_one_counts(queue: RedisQueue) -> None:
    store, job = JobStore(queue), make_job()
    async with listening(queue, "gateway-b") as listener:
        first, second = listener.expect(job.id), listener.expect(job.id)
        await store.watch(job.id, "gateway-b", 60)
        assert await queue.publish_final(ExecutionResult(id=job.id, status=Status.cancelled), None, None, 60)
        assert not await queue.publish_final(ExecutionResult(id=job.id, status=Status.ok), None, None, 60)
        raw = await asyncio.wait_for(first, 5)
        assert raw is await asyncio.wait_for(second, 5)
        assert ExecutionResult.model_validate_json(raw).status == Status.cancelled


async def test_an_idempotency_key_keeps_its_first_job(queue: RedisQueue) -> None:
    store = JobStore(queue)
    assert await store.claim_idempotency_key("key", "job-1", 60) is None
    assert await store.claim_idempotency_key("key", "job-2", 60) == "job-1"
