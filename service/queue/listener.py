"""One pub/sub listener per gateway that hands each finished result to the request waiting for it.

A request registers a future under its job id *before* the job is enqueued, then awaits it. Workers
publish results on this gateway's reply channel; the listener resolves the matching future with the
raw JSON bytes (the gateway returns them as they are). Pub/sub drops messages while disconnected, so
after every (re)subscribe the listener reads the stored result keys of everything still waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.queue.redis_queue import RedisQueue
from service.queue.tasks import wait_briefly

log = logging.getLogger(__name__)

RECONNECT_DELAY_S = (0.05, 0.2, 0.5, 1.0, 2.0)


class ResultListener:
    def __init__(self, queue: RedisQueue, gateway_id: str) -> None:
        self.queue = queue
        self.channel = queue.keys.reply_channel(gateway_id)
        self.waiting: dict[str, asyncio.Future[bytes]] = {}
        # Several requests may wait on one job (a call and long-polls of it): they share its future.
        self.waiters: dict[str, int] = {}
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float = 10.0) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="result-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await wait_briefly(self._task)

    def expect(self, job_id: str) -> asyncio.Future[bytes]:
        future = self.waiting.get(job_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self.waiting[job_id] = future
        self.waiters[job_id] = self.waiters.get(job_id, 0) + 1
        return future

    def discard(self, job_id: str) -> None:
        left = self.waiters.pop(job_id, 1) - 1
        if left > 0:
            self.waiters[job_id] = left
        else:
            self.waiting.pop(job_id, None)

    def resolve(self, raw: bytes) -> None:
        job_id = orjson.loads(raw).get("id")
        future = self.waiting.pop(job_id, None)
        if future is not None and not future.done():
            future.set_result(raw)

    async def _listen_forever(self) -> None:
        failures = 0
        while True:
            pubsub = self.queue.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                failures = 0
                await self._recover_missed()
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self.resolve(message["data"])
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.subscribed.clear()
                delay = RECONNECT_DELAY_S[min(failures, len(RECONNECT_DELAY_S) - 1)]
                failures += 1
                log.warning("result listener lost Redis (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _recover_missed(self) -> None:
        for raw in await self.queue.get_raw_results(list(self.waiting)):
            self.resolve(raw)
