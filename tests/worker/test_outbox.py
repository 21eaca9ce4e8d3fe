"""The worker's `Outbox` against a real redis-server and a real local Redis Cluster: a claim loop's read
waiting to go out with the next batch of results goes with it, or comes back unsent when no batch leaves
in time; on a cluster, results of other shards go apart from it, each node's with a read of its own
shard if one waits; every result lands either way."""

from __future__ import annotations

import asyncio

import pytest

from service.queue.redis_queue import Claimed, RedisQueue
from service.worker.loop import Outbox
from tests.queue.conftest import SHARDS
from tests.queue.test_claim_after_results import answer, claimed_one, make_job

WAIT_S = 5.0


async def waiting_read(outbox: Outbox, shard: int = 0, wait_s: float = WAIT_S) -> asyncio.Task[list[Claimed] | None]:
    """A claim loop's read handed to `outbox`, once it waits there."""
    read = asyncio.create_task(outbox.carry_read("w1", shard, 10, wait_s))
    await asyncio.sleep(0)
    return read


async def test_a_waiting_read_goes_with_the_next_batch_of_results(queue: RedisQueue) -> None:
    outbox = Outbox(queue, 60, asyncio.Event())
    done = await claimed_one(queue)
    read = await waiting_read(outbox)
    await outbox.publish(answer(done))
    assert await queue.get_raw_results([done.job.id]) != []
    await asyncio.sleep(0.05)
    assert not read.done()  # sent, and blocked in Redis until a job comes
    later = make_job()
    await queue.enqueue(later)
    carried = await asyncio.wait_for(read, WAIT_S)
    assert carried is not None and [item.job for item in carried] == [later]


async def test_a_read_no_batch_carried_in_time_comes_back_unsent(queue: RedisQueue) -> None:
    outbox = Outbox(queue, 60, asyncio.Event())
    assert await (await waiting_read(outbox, wait_s=0.05)) is None
    done = await claimed_one(queue)
    # The next batch goes alone: its results land, and a job enqueued after it is nobody's yet.
    await outbox.publish(answer(done))
    assert await queue.get_raw_results([done.job.id]) != []
    later = make_job()
    await queue.enqueue(later)
    assert [item.job for item in await queue.claim_jobs("w2", 10, 100)] == [later]


async def test_a_claim_loop_that_stops_waiting_leaves_its_read_unsent(queue: RedisQueue) -> None:
    outbox = Outbox(queue, 60, asyncio.Event())
    read = await waiting_read(outbox)
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await read
    done = await claimed_one(queue)
    await outbox.publish(answer(done))
    later = make_job()
    await queue.enqueue(later)
    assert [item.job for item in await queue.claim_jobs("w2", 10, 100)] == [later]


async def test_results_of_every_shard_land_and_one_carries_a_shards_read(sharded_queue: RedisQueue) -> None:
    # On a cluster only the results of the read's shard share its connection; the others go apart.
    outbox = Outbox(sharded_queue, 60, asyncio.Event())
    done = [await claimed_one(sharded_queue, shard) for shard in range(SHARDS)]
    read = await waiting_read(outbox, shard=1)
    await asyncio.gather(*(outbox.publish(answer(item)) for item in done))
    assert len(await sharded_queue.get_raw_results([item.job.id for item in done])) == SHARDS
    assert await sharded_queue.depth() == 0
    later = make_job(1)
    await sharded_queue.enqueue(later)
    carried = await asyncio.wait_for(read, WAIT_S)
    assert carried is not None and [item.job for item in carried] == [later]


async def test_results_on_several_nodes_each_carry_a_read_of_their_shard(sharded_queue: RedisQueue) -> None:
    # On a cluster each shard's results go to its own primary, each round trip with that shard's read;
    # on one Redis a single round trip holds every result and one read, and the others go unsent.
    outbox = Outbox(sharded_queue, 60, asyncio.Event())
    done = [await claimed_one(sharded_queue, shard) for shard in range(SHARDS)]
    reads = [await waiting_read(outbox, shard, wait_s=1.0) for shard in range(SHARDS)]
    await asyncio.gather(*(outbox.publish(answer(item)) for item in done))
    assert len(await sharded_queue.get_raw_results([item.job.id for item in done])) == SHARDS
    later = [make_job(shard) for shard in range(SHARDS)]
    for job in later:
        await sharded_queue.enqueue(job)
    carried = await asyncio.wait_for(asyncio.gather(*reads), WAIT_S)
    sent = [shard for shard, jobs in enumerate(carried) if jobs is not None]
    assert len(sent) == (SHARDS if sharded_queue.cluster else 1), carried
    assert all([item.job for item in carried[shard] or []] == [later[shard]] for shard in sent), carried
