"""The worker: claim jobs from every shard, run each in its own sandbox slot, publish results, heartbeat.

One asyncio loop per process, with one claim loop per queue shard. A claim loop reads a share of the
free slots that no other loop's read asks for in one XREADGROUP (blocking while its shard is empty), so
the loops together never claim more jobs than there are free slots; each job runs in a task that owns
one slot (a sandbox uid and a share of the machine) until its run ends. Results that finish together
are published together (`Outbox`), and while jobs run, a claim loop's next read goes out in the same
round trip as the next results instead of on its own (on a cluster, each node's results carry their
shard's waiting read). A slot is free again when its run ends, before its result is published, and
its shard's loop is woken first: on a busy worker the read that fills the slot goes out with that
result. A heartbeat task announces the worker and keeps its jobs (running or being published) from
being reclaimed; the claim loops also pick up jobs abandoned by dead workers. SIGTERM stops intake and
lets running calls finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable

from redis.exceptions import ResponseError

from service import logs, metrics
from service.config import Settings
from service.models import ExecutionResult, Status
from service.queue.batching import Coalescer
from service.queue.errors import REDIS_DOWN
from service.queue.redis_queue import Claimed, ClaimOrder, Delivery, RedisQueue
from service.queue.stats import report_slots
from service.queue.tasks import wait_briefly
from service.sandbox.executor import Sandbox
from service.worker.runner import JobRunner
from service.worker.sessions import SessionHost

log = logging.getLogger(__name__)

CLAIM_BLOCK_MS = 1000
# The block of a read that takes the last free slots while another claim loop waits for one: if its
# shard is empty, the slots go back to the other loops this soon instead of after CLAIM_BLOCK_MS. (With
# fewer free slots than shards and the shards empty, the loops then read in turn, 10 reads a second.)
SCARCE_BLOCK_MS = 100
RETRY_DELAY_S = 0.5
# How long a claim loop whose worker runs jobs waits for a batch of their results to carry its next read
# (`Outbox.carry_read`) before it sends the read alone. A lone call's own result carries the read that
# waits for the next call, so this adds nothing to its latency; under load a job that arrives meanwhile
# waits at most this long before it is read.
CARRY_WAIT_S = 0.005


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Outbox:
    """Publishes results: those finished while the previous batch was being sent (or in the same turn of
    the event loop) go together in one round trip, which also carries a claim loop's next read if one
    waits for it (`carry_read`). Retries through a Redis outage; if the worker stops first, the entry
    stays pending and is redelivered."""

    def __init__(self, queue: RedisQueue, ttl_s: int, stopping: asyncio.Event) -> None:
        self.queue = queue
        self.ttl_s = ttl_s
        self.stopping = stopping
        self._batches = Coalescer(self._send, "outbox")
        # shard -> the read of new jobs its claim loop waits to send with the next batch.
        self._orders: dict[int, ClaimOrder] = {}

    async def publish(self, delivery: Delivery) -> None:
        await self._batches.submit_many([delivery])

    async def carry_read(
        self, consumer: str, shard: int, count: int, wait_s: float, block_ms: int = CLAIM_BLOCK_MS
    ) -> list[Claimed] | None:
        """Read up to `count` new jobs of `shard` in the round trip of the next batch of results, if one
        leaves within `wait_s`: the jobs (after a block of `block_ms`, as `claim_jobs`); None if no batch
        left in time."""
        jobs = asyncio.get_running_loop().create_future()
        order = ClaimOrder(consumer, count, block_ms, shard, jobs)
        self._orders[shard] = order
        try:
            await asyncio.wait([order.jobs], timeout=wait_s)
            if not order.jobs.done() and self._orders.get(shard) is order:
                del self._orders[shard]
                return None
            return await order.jobs
        except BaseException:
            if self._orders.get(shard) is order:
                del self._orders[shard]
            order.jobs.cancel()
            raise

    def _take_order(self, deliveries: list[Delivery]) -> ClaimOrder | None:
        """The waiting read that can go with the most of `deliveries` (all of them on one Redis)."""
        if not self._orders:
            return None
        riding, shard = max((self._riding(deliveries, shard), shard) for shard in self._orders)
        if riding == 0:
            return None
        return self._orders.pop(shard)

    def _riding(self, deliveries: list[Delivery], shard: int) -> int:
        return sum(self.queue.shares_node(delivery, shard) for delivery in deliveries)

    async def _send(self, deliveries: list[Delivery]) -> list[None]:
        count = len(deliveries)
        # Each node's results carry the waiting read of their shard (on one Redis: one read, all results).
        carrying: list[tuple[ClaimOrder, list[Delivery]]] = []
        while (order := self._take_order(deliveries)) is not None:
            riding: list[Delivery] = []
            apart: list[Delivery] = []
            for delivery in deliveries:
                (riding if self.queue.shares_node(delivery, order.shard) else apart).append(delivery)
            carrying.append((order, riding))
            deliveries = apart
        sent = await asyncio.gather(
            *(self.queue.deliver_and_claim(riding, self.ttl_s, order) for order, riding in carrying),
            return_exceptions=True,
        )
        for (_, riding), outcome in zip(carrying, sent, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, REDIS_DOWN):
                    raise outcome
                # The order's claim loop hears the error; its results are sent again below.
                deliveries += riding
        while deliveries:
            try:
                await self.queue.deliver(deliveries, self.ttl_s)
                break
            except REDIS_DOWN as exc:
                if self.stopping.is_set():
                    log.error("could not publish %d result(s) before stopping: %s", len(deliveries), exc)
                    break
                await asyncio.sleep(RETRY_DELAY_S)
        return [None] * count


class Worker:
    def __init__(self, settings: Settings, queue: RedisQueue, sandbox: Sandbox) -> None:
        self.settings = settings
        self.queue = queue
        self.sandbox = sandbox
        self.id = new_worker_id()
        self.free_slots = list(range(settings.worker_concurrency))
        # Job id -> the claimed job and the task running it.
        self.running: dict[str, tuple[Claimed, asyncio.Task[None]]] = {}
        # Claimed beyond the free slots (lent to a judging job while the read was out): started as slots free up.
        self.backlog: deque[Claimed] = deque()
        # Per shard: set when its claim loop may find slots that no read asks for (see `_claim_and_start`).
        self.slot_freed = [asyncio.Event() for _ in queue.shards]
        # Per shard: the jobs its claim loop's read in progress asks for.
        self.claiming = [0] * len(queue.shards)
        self.stopping = asyncio.Event()
        self.runner = JobRunner(settings, queue, sandbox, self.id, self.free_slots)
        self.sessions = SessionHost(settings, queue, sandbox, self.id)
        self.outbox = Outbox(queue, settings.result_ttl_s, self.stopping)
        self._last_reclaim = [0.0] * len(queue.shards)
        metrics.SLOTS_TOTAL.set(settings.worker_concurrency)
        metrics.SLOTS_BUSY.set_function(lambda: self.busy_slots)

    @property
    def busy_slots(self) -> int:
        return self.settings.worker_concurrency - len(self.free_slots)

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("worker %s stopping: no new jobs, running ones finish", self.id)
        self.stopping.set()
        self._wake_claims()

    async def run(self) -> None:
        await self._until_redis_answers(self.queue.ensure_group)
        heartbeat = asyncio.create_task(self._heartbeat_forever(), name="heartbeat")
        cancels = asyncio.create_task(self.runner.watch_cancels(), name="cancel-watcher")
        sessions = asyncio.create_task(self.sessions.serve(), name="sessions")
        claims = [
            asyncio.create_task(self._claim_forever(shard), name=f"claim-{shard}")
            for shard in range(len(self.queue.shards))
        ]
        log.info("worker %s ready with %d slots", self.id, len(self.free_slots))
        try:
            await asyncio.gather(*claims)
        finally:
            for claim in claims:
                claim.cancel()
            while self.running or self.backlog:
                tasks = [task for _, task in self.running.values()]
                await (asyncio.wait(tasks) if tasks else asyncio.sleep(0.05))
            heartbeat.cancel()
            cancels.cancel()
            self.sessions.stop()
            await wait_briefly(sessions, heartbeat, cancels)
            forget = asyncio.create_task(self.queue.forget_worker(self.id), name="forget-worker")
            await wait_briefly(forget)
            log.info("worker %s stopped", self.id)

    async def _claim_forever(self, shard: int) -> None:
        while not self.stopping.is_set():
            await self._claim_and_start(shard)

    async def _claim_and_start(self, shard: int) -> None:
        # Slots that no claim loop's read asks for: one loop's read never counts on another's slots, so
        # jobs are not claimed past the free slots (to wait in `backlog` while another worker has room).
        available = len(self.free_slots) - len(self.backlog) - sum(self.claiming)
        if available <= 0:
            self.slot_freed[shard].clear()
            await self.slot_freed[shard].wait()
            return
        # Shared with the loops that have no read out yet, this one included.
        unread = sum(1 for asked in self.claiming if asked == 0)
        count = min(max(1, available // unread), self.settings.worker_batch)
        block_ms = CLAIM_BLOCK_MS if count < available or unread == 1 else SCARCE_BLOCK_MS
        self.claiming[shard] = count
        try:
            for claimed in await self._claim(shard, count, block_ms):
                self._start(claimed)
            if not self.backlog:
                self.runner.lender.lend_idle()
        except REDIS_DOWN as exc:
            # First: a cluster's CLUSTERDOWN, MOVED and TRYAGAIN are ResponseErrors too.
            log.warning("worker lost Redis on shard %d (%s)", shard, exc)
            await asyncio.sleep(RETRY_DELAY_S)
            with contextlib.suppress(*REDIS_DOWN):
                await self.queue.refresh_topology()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis came back without its data: the stream and group are gone, make them again.
            await self.queue.ensure_group()
        finally:
            self.claiming[shard] = 0
            # Slots this read asked for and did not fill are for the other loops again.
            self._wake_claims()
        # The loops just woken go first.
        await asyncio.sleep(0)

    def _wake_claims(self, first: int | None = None) -> None:
        """Wake the claim loops waiting for slots; `first` (the shard whose job just ended) before the
        others, so its read takes the slot and goes out with that job's result."""
        if first is not None:
            self.slot_freed[first].set()
        for freed in self.slot_freed:
            freed.set()

    async def _claim(self, shard: int, count: int, block_ms: int = CLAIM_BLOCK_MS) -> list[Claimed]:
        claimed: list[Claimed] = []
        now = time.monotonic()
        if now - self._last_reclaim[shard] > self.settings.reclaim_idle_s / 3:
            self._last_reclaim[shard] = now
            reclaimed = await self.queue.reclaim_stale(
                self.id, self.settings.reclaim_idle_s, count, self.settings.max_attempts, shard
            )
            metrics.RECLAIMED.inc(len(reclaimed.claimed))
            metrics.EXHAUSTED.inc(len(reclaimed.exhausted))
            for item in reclaimed.exhausted:
                log.warning("job %s abandoned %d times, giving up", item.job.id, self.settings.max_attempts)
                reason = f"abandoned by a dead worker {self.settings.max_attempts} times"
                await self._publish(item, ExecutionResult(id=item.job.id, status=Status.sandbox_error, reason=reason))
            claimed += reclaimed.claimed
        if len(claimed) < count:
            claimed += await self._read_new(shard, count - len(claimed), block_ms)
        return claimed

    async def _read_new(self, shard: int, count: int, block_ms: int) -> list[Claimed]:
        if self.running and CARRY_WAIT_S > 0:
            # Results are on their way: the next batch of them carries this read.
            carried = await self.outbox.carry_read(self.id, shard, count, CARRY_WAIT_S, block_ms)
            if carried is not None:
                return carried
        return await self.queue.claim_jobs(self.id, count, block_ms, shard)

    def _start(self, claimed: Claimed) -> None:
        if not self.free_slots:
            self.backlog.append(claimed)
            return
        slot = self.free_slots.pop()
        task = asyncio.create_task(self._handle(claimed, slot), name=f"job-{claimed.job.id}")
        self.running[claimed.job.id] = (claimed, task)
        # Running until its result is published: touched by the heartbeat, and awaited when stopping.
        task.add_done_callback(lambda _: self.running.pop(claimed.job.id, None))

    def _free_slot(self, slot: int, shard: int) -> None:
        self.free_slots.append(slot)
        if self.backlog:
            self._start(self.backlog.popleft())
        self._wake_claims(first=shard)

    async def _handle(self, claimed: Claimed, slot: int) -> None:
        job = claimed.job
        # This task's own context: every line logged while it runs names the job and its request.
        logs.job_id.set(job.id)
        logs.request_id.set(job.request_id)
        started = time.time()
        try:
            if started > job.start_by:
                reason = "its caller stopped waiting while queued"
                result = ExecutionResult(id=job.id, status=Status.expired, reason=reason)
            else:
                result = await self.runner.run(job, slot)
        finally:
            # The slot is free once the run ends, before the result is published: the read that fills it
            # again can then go out in the same round trip as this result (`Outbox.carry_read`).
            self._free_slot(slot, claimed.shard)
        result.queued_ms = round(max(0.0, started - job.enqueued_at) * 1000, 3)
        result.worker = self.id
        await self._publish(claimed, result)
        record_job(job.request.language, result, time.time() - started)

    async def _publish(self, claimed: Claimed, result: ExecutionResult) -> None:
        job = claimed.job
        await self.outbox.publish(Delivery(result, job.reply_to, claimed.entry_id, job.tenant, claimed.reclaimed))

    async def _heartbeat_forever(self) -> None:
        while True:
            with contextlib.suppress(*REDIS_DOWN):
                await self.queue.heartbeat(self.id, self.settings.heartbeat_ttl_s)
                await report_slots(
                    self.queue.redis,
                    self.queue.keys,
                    self.id,
                    self.busy_slots,
                    self.settings.worker_concurrency,
                    self.settings.heartbeat_ttl_s,
                )
                held = [claimed for claimed, _ in self.running.values()] + list(self.backlog)
                await self.queue.touch(self.id, held)
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    async def _until_redis_answers(self, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await action()
                return
            except REDIS_DOWN as exc:
                log.warning("waiting for Redis (%s)", exc)
                await asyncio.sleep(RETRY_DELAY_S)


def record_job(language: str, result: ExecutionResult, handled_s: float) -> None:
    metrics.JOBS_DONE_BY(language, result.status).inc()
    metrics.QUEUE_WAIT_BY(language).observe(result.queued_ms / 1000)
    metrics.EXECUTION_BY(language).observe(handled_s)
    if not log.isEnabledFor(logging.DEBUG):
        # Its fields are built before `log.debug` could say it drops them.
        return
    log.debug(
        "job done",
        extra={
            "language": language,
            "status": result.status.value,
            "queued_ms": result.queued_ms,
            "duration_ms": result.duration_ms,
        },
    )
