"""A worker's next read of new jobs sent after its results, on one connection in one round trip
(`RedisQueue.deliver_and_claim`), against a real redis-server and a real local Redis Cluster: the results
land at once, the read waits for jobs as a blocking read does, and a read nobody waits for takes none."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from service.models import ExecuteRequest, ExecutionResult, Job, Limits, Status
from service.queue.keys import new_job_id
from service.queue.redis_queue import Claimed, ClaimOrder, Delivery, RedisQueue
from tests.queue.conftest import SHARDS, listening

LIMITS = Limits(timeout_s=1, memory_mb=64, output_bytes=1024, compile_timeout_s=1, compile_memory_mb=64)
BLOCK_MS = 5000


def make_job(shard: int = 0, reply_to: str | None = None) -> Job:
    now = time.time()
    request = ExecuteRequest(language="python", code="print(1)")
    job_id = new_job_id(shard, tracked=False)
    return Job(id=job_id, request=request, limits=LIMITS, enqueued_at=now, start_by=now + 60, reply_to=reply_to)


def order(shard: int = 0, consumer: str = "w1", block_ms: int = BLOCK_MS) -> ClaimOrder:
    return ClaimOrder(consumer, 10, block_ms, shard, asyncio.get_running_loop().create_future())


async def claimed_one(queue: RedisQueue, shard: int = 0, reply_to: str | None = "gw") -> Claimed:
    await queue.enqueue(make_job(shard, reply_to))
    [claimed] = await queue.claim_jobs("w1", 1, 100, shard)
    return claimed


def answer(claimed: Claimed) -> Delivery:
    job = claimed.job
    return Delivery(ExecutionResult(id=job.id, status=Status.ok, stdout=job.id), job.reply_to, claimed.entry_id)


async def test_results_land_at_once_and_the_read_after_them_waits_for_the_next_job(queue: RedisQueue) -> None:
    async with listening(queue, "gw") as listener:
        done = await claimed_one(queue)
        heard = listener.expect(done.job.id)
        read = order()
        assert await queue.deliver_and_claim([answer(done)], 60, read) == [True]
        assert ExecutionResult.model_validate_json(await asyncio.wait_for(heard, 5)).stdout == done.job.id
        assert await queue.depth() == 0
        await asyncio.sleep(0.05)
        assert not read.jobs.done()  # blocked in Redis: nothing to read yet
        later = make_job()
        await queue.enqueue(later)
        assert [item.job for item in await asyncio.wait_for(read.jobs, 5)] == [later]


async def test_the_read_after_results_goes_in_their_round_trip_on_their_connection(queue: RedisQueue) -> None:
    done = await claimed_one(queue)
    read = order(block_ms=100)
    async with queue.redis.monitor() as monitor:
        await queue.deliver_and_claim([answer(done)], 60, read)
        assert await asyncio.wait_for(read.jobs, 5) == []
        seen: list[dict[str, Any]] = []
        while not any(command["command"].startswith("XREADGROUP") for command in seen):
            command = await asyncio.wait_for(monitor.next_command(), 5)
            if queue.keys.prefix in command["command"]:
                seen.append(command)
    assert [command["command"].split()[0] for command in seen] == ["SET", "XACK", "XDEL", "PUBLISH", "XREADGROUP"]
    assert len({(command["client_address"], command["client_port"]) for command in seen}) == 1


async def test_the_read_after_results_takes_the_jobs_already_waiting(queue: RedisQueue) -> None:
    done = await claimed_one(queue)
    waiting = [make_job(), make_job()]
    await queue.enqueue_many(waiting)
    read = order()
    assert await queue.deliver_and_claim([answer(done)], 60, read) == [True]
    assert [item.job for item in await asyncio.wait_for(read.jobs, 1)] == waiting


async def test_the_read_after_results_ends_empty_when_its_block_runs_out(queue: RedisQueue) -> None:
    done = await claimed_one(queue)
    read = order(block_ms=50)
    await queue.deliver_and_claim([answer(done)], 60, read)
    assert await asyncio.wait_for(read.jobs, 5) == []


async def test_a_read_nobody_waits_for_any_more_takes_no_job(queue: RedisQueue) -> None:
    done = await claimed_one(queue)
    read = order()
    await queue.deliver_and_claim([answer(done)], 60, read)
    read.jobs.cancel()
    # The read's connection is dropped, and Redis unblocks it, before the next job comes.
    deadline = time.monotonic() + 5
    while any(client.get("cmd") == "xreadgroup" for client in await queue.redis.client_list()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    later = make_job()
    await queue.enqueue(later)
    assert [item.job for item in await queue.claim_jobs("w2", 10, 100)] == [later]


async def test_a_shards_results_carry_a_read_of_that_shard(sharded_queue: RedisQueue) -> None:
    shard = SHARDS - 1
    done = await claimed_one(sharded_queue, shard)
    read = order(shard)
    assert await sharded_queue.deliver_and_claim([answer(done)], 60, read) == [True]
    later = make_job(shard)
    await sharded_queue.enqueue(later)
    assert [item.job for item in await asyncio.wait_for(read.jobs, 5)] == [later]
    assert await sharded_queue.get_raw_results([done.job.id]) != []
    assert await sharded_queue.depth() == 1  # `later`, read and running; `done`'s entry is gone


@pytest.mark.parametrize("shard", range(SHARDS))
async def test_only_a_cluster_keeps_other_shards_results_off_a_shards_connection(
    sharded_queue: RedisQueue, shard: int
) -> None:
    delivery = Delivery(ExecutionResult(id=make_job(0).id, status=Status.ok), "gw")
    assert sharded_queue.shares_node(delivery, shard) is (shard == 0 or not sharded_queue.cluster)
