"""The worker's claim loops against a real redis-server and a real local Redis Cluster, with a stand-in
sandbox whose runs end when the test says: the loops of several shards together claim no more jobs than
there are free slots, and the slot a finished run frees is filled by a read that goes out with that
run's result. (The sandbox is stood in for because these tests need to say when each run ends, to the
millisecond; the claim loops, Redis and the cluster are real.)"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from service.config import Settings
from service.models import ExecutionResult, Job, Status
from service.queue.redis_queue import Claimed, RedisQueue
from service.sandbox.executor import Sandbox
from service.worker.loop import Worker
from tests.queue.conftest import SHARDS
from tests.queue.test_shards import make_job

WAIT_S = 5.0


class HeldSandbox:
    """Runs every job until `finish` is called for it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: asyncio.Queue[str] = asyncio.Queue()
        self.ends: dict[str, asyncio.Event] = {}
        self.slots: dict[str, int] = {}

    async def execute(self, job: Job, slot: int) -> ExecutionResult:
        end = self.ends.setdefault(job.id, asyncio.Event())
        self.slots[job.id] = slot
        self.started.put_nowait(job.id)
        await end.wait()
        return ExecutionResult(id=job.id, status=Status.ok, stdout="done\n")

    def finish(self, job_id: str) -> None:
        self.ends.setdefault(job_id, asyncio.Event()).set()


@pytest.fixture
async def sandbox() -> AsyncIterator[HeldSandbox]:
    with tempfile.TemporaryDirectory() as root:
        yield HeldSandbox(Path(root))


@contextlib.asynccontextmanager
async def claiming(queue: RedisQueue, sandbox: HeldSandbox, slots: int) -> AsyncIterator[Worker]:
    """A worker of `slots` slots on `queue` with only its claim loops running (no heartbeat, sessions or
    cancel watcher); on exit every held run ends and its result is published."""
    settings = Settings(worker_concurrency=slots, queue_shards=len(queue.shards))
    worker = Worker(settings, queue, cast(Sandbox, sandbox))
    loops = [asyncio.create_task(worker._claim_forever(shard)) for shard in range(len(queue.shards))]
    try:
        yield worker
    finally:
        worker.stop()
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        for job_id in list(sandbox.ends):
            sandbox.finish(job_id)
        await asyncio.gather(*(task for _, task in list(worker.running.values())), return_exceptions=True)


async def pending(queue: RedisQueue) -> int:
    counts = [await queue.redis.xpending(shard.jobs, queue.keys.group) for shard in queue.shards]
    return sum(int(count["pending"]) for count in counts)


async def test_claim_loops_of_several_shards_claim_no_more_jobs_than_free_slots(
    sharded_queue: RedisQueue, sandbox: HeldSandbox
) -> None:
    await sharded_queue.enqueue_many([make_job(shard) for shard in range(SHARDS) for _ in range(3)])
    async with claiming(sharded_queue, sandbox, slots=2) as worker:
        started = {await asyncio.wait_for(sandbox.started.get(), WAIT_S) for _ in range(2)}
        # Time for any loop that would claim past the two slots to do so.
        await asyncio.sleep(0.3)
        assert not worker.backlog
        assert await pending(sharded_queue) == 2
        # The rest wait in their streams for a worker with room; a finished run frees a slot for one.
        sandbox.finish(started.pop())
        await asyncio.wait_for(sandbox.started.get(), WAIT_S)
        await asyncio.sleep(0.3)
        assert not worker.backlog
        assert await pending(sharded_queue) == 2


async def test_a_freed_slot_is_filled_by_a_read_that_goes_with_the_runs_result(
    queue: RedisQueue, sandbox: HeldSandbox
) -> None:
    first, second = make_job(0), make_job(0)
    await queue.enqueue(first)
    lone_reads: list[int] = []
    claim_jobs = queue.claim_jobs

    async def counted(consumer: str, count: int, block_ms: int, shard: int = 0) -> list[Claimed]:
        lone_reads.append(count)
        return await claim_jobs(consumer, count, block_ms, shard)

    queue.claim_jobs = counted  # type: ignore[method-assign]
    async with claiming(queue, sandbox, slots=1):
        assert await asyncio.wait_for(sandbox.started.get(), WAIT_S) == first.id
        await queue.enqueue(second)
        reads_before = len(lone_reads)
        sandbox.finish(first.id)
        assert await asyncio.wait_for(sandbox.started.get(), WAIT_S) == second.id
        assert await queue.get_raw_results([first.id]) != []
        # `second` came by the read that went with `first`'s result, not by one of its own.
        assert len(lone_reads) == reads_before


async def test_jobs_on_one_shard_reach_a_worker_with_fewer_slots_than_shards(
    sharded_queue: RedisQueue, sandbox: HeldSandbox
) -> None:
    async with claiming(sharded_queue, sandbox, slots=2):
        # The other shards' loops are blocked on their empty streams, holding the two slots.
        await asyncio.sleep(0.3)
        jobs = [make_job(SHARDS - 1) for _ in range(4)]
        await sharded_queue.enqueue_many(jobs)
        for _ in jobs:
            sandbox.finish(await asyncio.wait_for(sandbox.started.get(), WAIT_S))


async def test_a_call_gets_the_slot_freed_last(queue: RedisQueue, sandbox: HeldSandbox) -> None:
    """So a light load keeps to a few slots, and with them to one lean zygote (`ZygotePool.lean_for`)."""
    jobs = [make_job(0) for _ in range(4)]
    async with claiming(queue, sandbox, slots=8) as worker:
        for job in jobs:
            await queue.enqueue(job)
            assert await asyncio.wait_for(sandbox.started.get(), WAIT_S) == job.id
            sandbox.finish(job.id)
            async with asyncio.timeout(WAIT_S):
                while len(worker.free_slots) < 8:
                    await asyncio.sleep(0.01)
    assert [sandbox.slots[job.id] for job in jobs] == [7, 7, 7, 7]
