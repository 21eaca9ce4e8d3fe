"""One pub/sub listener per gateway that hands each finished result to the request waiting for it.

A request registers a future under its job id *before* the job is enqueued, then awaits it. Workers
publish results on this gateway's reply channel of the job's shard; the listener holds one subscription
per shard (on a cluster, sharded pub/sub on the shard's primary) and resolves the matching future with
the raw JSON bytes (the gateway returns them as they are).

Pub/sub drops messages while disconnected, so after every (re)subscribe to a shard the listener reads
the stored results of that shard's jobs still waiting. A failover to a replica loses the writes the
replica had not received yet: the gateway still holds every job it waits on, so it then also enqueues
again (same id) those of its jobs that have neither a stream entry nor a result; SET NX keeps one result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from redis.exceptions import RedisError

from service.queue.errors import REDIS_DOWN
from service.queue.keys import ShardKeys
from service.queue.redis_queue import Enqueued, RedisQueue
from service.queue.tasks import wait_briefly

log = logging.getLogger(__name__)

RECONNECT_DELAY_S = (0.05, 0.2, 0.5, 1.0, 2.0)
PUBLISHED = ("message", "smessage")


class ResultListener:
    def __init__(self, queue: RedisQueue, gateway_id: str) -> None:
        self.queue = queue
        self.gateway_id = gateway_id
        self.waiting: dict[str, asyncio.Future[bytes]] = {}
        # Several requests may wait on one job (a call and long-polls of it): they share its future.
        self.waiters: dict[str, int] = {}
        # The jobs this gateway enqueued and waits on, with their stream entries (for `_recover_lost`).
        self.enqueued: dict[str, Enqueued] = {}
        self.subscribed = asyncio.Event()
        self._live: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, timeout_s: float = 10.0) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_forever(shard), name=f"result-listener-{shard.index}")
            for shard in self.queue.shards
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), timeout_s)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await wait_briefly(*self._tasks)

    def expect(self, job_id: str) -> asyncio.Future[bytes]:
        future = self.waiting.get(job_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self.waiting[job_id] = future
        self.waiters[job_id] = self.waiters.get(job_id, 0) + 1
        return future

    def remember(self, enqueued: list[Enqueued]) -> None:
        """Note where the jobs this gateway waits on were enqueued."""
        for item in enqueued:
            if item.job.id in self.waiting:
                self.enqueued[item.job.id] = item

    def discard(self, job_id: str) -> None:
        left = self.waiters.pop(job_id, 1) - 1
        if left > 0:
            self.waiters[job_id] = left
        else:
            self.waiting.pop(job_id, None)
            self.enqueued.pop(job_id, None)

    def resolve(self, raw: bytes) -> None:
        job_id = orjson.loads(raw).get("id")
        future = self.waiting.pop(job_id, None)
        self.enqueued.pop(job_id, None)
        if future is not None and not future.done():
            future.set_result(raw)

    async def _listen_forever(self, shard: ShardKeys) -> None:
        failures = 0
        channel = shard.reply_channel(self.gateway_id)
        while True:
            try:
                async with self.queue.subscription(shard, channel) as pubsub:
                    self._mark_live(shard.index)
                    failures = 0
                    await self._recover_missed(shard)
                    async for message in pubsub.listen():
                        if message["type"] in PUBLISHED:
                            self.resolve(message["data"])
            except (RedisError, *REDIS_DOWN) as exc:
                self._live.discard(shard.index)
                self.subscribed.clear()
                delay = RECONNECT_DELAY_S[min(failures, len(RECONNECT_DELAY_S) - 1)]
                failures += 1
                log.warning("result listener lost shard %d (%s); retrying in %.2fs", shard.index, exc, delay)
                await asyncio.sleep(delay)
                with contextlib.suppress(RedisError, *REDIS_DOWN):
                    await self.queue.refresh_topology()

    def _mark_live(self, shard: int) -> None:
        self._live.add(shard)
        if len(self._live) == len(self.queue.shards):
            self.subscribed.set()

    async def _recover_missed(self, shard: ShardKeys) -> None:
        mine = [job_id for job_id in self.waiting if self.queue.keys.shard_of(job_id) == shard]
        for raw in await self.queue.get_raw_results(mine):
            self.resolve(raw)
        await self._recover_lost(shard)

    async def _recover_lost(self, shard: ShardKeys) -> None:
        candidates = [item for item in self.enqueued.values() if item.shard == shard.index]
        lost = await self.queue.lost_among(candidates)
        if not lost:
            return
        log.warning("shard %d lost %d waiting job(s) (a failover?); enqueuing them again", shard.index, len(lost))
        self.remember(await self.queue.enqueue_many([item.job for item in lost]))
