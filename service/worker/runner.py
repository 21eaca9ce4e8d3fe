"""Run one claimed job the way it asks (plain call or judging), and stop it when it is cancelled.

Before starting, the job is marked running unless its cancel flag is set (one script, so a cancel is
seen either here or by the watcher). While it runs, `watch_cancels` listens on the cancel channel and
cancels the job's task, which kills its process tree; the job then ends as `cancelled`, published
through the same exactly-once script as every other result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from service.config import Settings
from service.models import ExecutionResult, Job, Status
from service.queue.errors import REDIS_DOWN
from service.queue.jobs import JobStore
from service.queue.redis_queue import RedisQueue
from service.sandbox.executor import Sandbox
from service.worker.judge import judge
from service.worker.slots import SlotLender

log = logging.getLogger(__name__)

RECONNECT_DELAY_S = 0.5


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
        self.cancelled_while_starting: set[str] = set()
        self.lender = SlotLender(free_slots)

    async def run(self, job: Job, slot: int) -> ExecutionResult:
        self.starting.add(job.id)
        try:
            started = await self._begin(job)
        finally:
            self.starting.discard(job.id)
        if not started or job.id in self.cancelled_while_starting:
            self.cancelled_while_starting.discard(job.id)
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
        if job_id in self.starting:
            self.cancelled_while_starting.add(job_id)
        task = self.running.get(job_id)
        if task is not None:
            task.cancel()

    async def watch_cancels(self) -> None:
        """Cancel the running jobs named on the cancel channel, until this task is cancelled."""
        while True:
            pubsub = self.queue.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.queue.keys.cancel_channel)
                # Cancels sent while we were not subscribed are still flagged.
                for job_id in await self.store.cancelled_among(list(self.running)):
                    self.cancel(job_id)
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self.cancel(message["data"].decode())
            except REDIS_DOWN as exc:
                log.warning("cancel watcher lost Redis (%s)", exc)
                await asyncio.sleep(RECONNECT_DELAY_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
