"""Run one claimed job the way it asks (plain call or judging), and stop it when it is cancelled.

Every worker listens on each shard's cancel channel. A cancel of a job this worker runs cancels the
job's task, which kills its process tree; a cancel of a job it does not run (yet) is remembered for a
while, so the job ends as `cancelled` without starting if this worker claims it later. A tracked job
(one with a record) is also marked running before it starts, by a script that checks its cancel flag,
so a cancel sent while no worker was listening still wins. Every cancelled job ends through the same
exactly-once publish as every other result; the gateway that cancelled it has already written
`cancelled`, so that result stands either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from redis.exceptions import RedisError

from service.config import Settings
from service.models import ExecutionResult, Job, Status
from service.queue.errors import REDIS_DOWN
from service.queue.jobs import JobStore
from service.queue.keys import ShardKeys
from service.queue.redis_queue import RedisQueue
from service.queue.tasks import wait_briefly
from service.sandbox.executor import Sandbox
from service.worker.judge import judge
from service.worker.slots import SlotLender

log = logging.getLogger(__name__)

RECONNECT_DELAY_S = 0.5
# How many cancels of jobs not running here are remembered, and for how long.
REMEMBERED_CANCELS = 100_000
REMEMBER_CANCEL_S = 900.0


def cancelled(job: Job) -> ExecutionResult:
    return ExecutionResult(id=job.id, status=Status.cancelled, reason="cancelled by request")


class JobRunner:
    def __init__(
        self, settings: Settings, queue: RedisQueue, sandbox: Sandbox, worker_id: str, free_slots: list[int]
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.store = JobStore(queue)
        self.sandbox = sandbox
        self.worker_id = worker_id
        self.running: dict[str, asyncio.Task[ExecutionResult]] = {}
        # Jobs between `begin` and having a task: a cancel heard then is remembered, not lost.
        self.starting: set[str] = set()
        # Job id -> when a cancel of it was heard while it did not run here.
        self.cancels_heard: OrderedDict[str, float] = OrderedDict()
        self.lender = SlotLender(free_slots)

    async def run(self, job: Job, slot: int) -> ExecutionResult:
        self.starting.add(job.id)
        try:
            started = await self._begin(job)
        finally:
            self.starting.discard(job.id)
        if not started or self.cancels_heard.pop(job.id, None) is not None:
            return cancelled(job)
        task = asyncio.create_task(self._execute(job, slot), name=f"run-{job.id}")
        self.running[job.id] = task
        try:
            await asyncio.wait([task])
        finally:
            self.running.pop(job.id, None)
            task.cancel()
        return cancelled(job) if task.cancelled() else task.result()

    async def _begin(self, job: Job) -> bool:
        try:
            return await self.store.begin(job, self.worker_id, self.settings.result_ttl_s)
        except REDIS_DOWN as exc:
            # Running without the record only costs the job's `running` state and an early cancel.
            log.warning("could not mark %s running (%s); running it anyway", job.id, exc)
            return True

    async def _execute(self, job: Job, slot: int) -> ExecutionResult:
        if job.judge is not None:
            return await judge(self.sandbox, job, job.judge, slot, self.lender)
        return await self.sandbox.execute(job, slot)

    def cancel(self, job_id: str) -> None:
        task = self.running.get(job_id)
        if task is not None:
            task.cancel()
            return
        self._remember_cancel(job_id)

    def _remember_cancel(self, job_id: str) -> None:
        now = time.monotonic()
        self.cancels_heard[job_id] = now
        self.cancels_heard.move_to_end(job_id)
        while self.cancels_heard:
            oldest, heard = next(iter(self.cancels_heard.items()))
            if len(self.cancels_heard) <= REMEMBERED_CANCELS and now - heard < REMEMBER_CANCEL_S:
                break
            del self.cancels_heard[oldest]

    async def watch_cancels(self) -> None:
        """Cancel the jobs named on the shards' cancel channels, until this task is cancelled."""
        watchers = [
            asyncio.create_task(self._watch_shard(shard), name=f"cancel-watcher-{shard.index}")
            for shard in self.queue.shards
        ]
        try:
            await asyncio.gather(*watchers)
        finally:
            for watcher in watchers:
                watcher.cancel()
            await wait_briefly(*watchers)

    async def _watch_shard(self, shard: ShardKeys) -> None:
        while True:
            try:
                async with self.queue.subscription(shard, shard.cancel_channel) as pubsub:
                    # Cancels sent while we were not subscribed are still flagged.
                    for job_id in await self.store.cancelled_among(list(self.running) + list(self.starting)):
                        self.cancel(job_id)
                    async for message in pubsub.listen():
                        if message["type"] in ("message", "smessage"):
                            self.cancel(message["data"].decode())
            except (RedisError, *REDIS_DOWN) as exc:
                log.warning("cancel watcher lost shard %d (%s)", shard.index, exc)
                await asyncio.sleep(RECONNECT_DELAY_S)
                try:
                    await self.queue.refresh_topology()
                except (RedisError, *REDIS_DOWN) as again:
                    log.debug("topology refresh failed: %s", again)
