"""Sessions in Redis: where each lives, and the per-worker command lists that route calls to it.

A session is pinned to the worker that holds its interpreter, so its calls cannot go through the
shared stream: each worker has its own command list (LPUSH by gateways, BRPOP by that worker only).
A session's record says which worker holds it and expires when the session is idle; a record whose
worker stopped sending heartbeats belongs to a lost session.
"""

from __future__ import annotations

import random
import time
from typing import Any, cast

from service.models import SessionCommand, SessionRecord
from service.queue.redis_queue import RedisQueue


class SessionStore:
    def __init__(self, queue: RedisQueue) -> None:
        self.redis = queue.redis
        self.keys = queue.keys

    async def live_workers(self, heartbeat_ttl_s: float) -> list[str]:
        """The live workers in random order: sessions spread over workers as calls do."""
        live = cast(
            list[bytes], await self.redis.zrangebyscore(self.keys.workers, time.time() - heartbeat_ttl_s, "+inf")
        )
        return random.sample([worker.decode() for worker in live], len(live))

    async def worker_alive(self, worker_id: str, heartbeat_ttl_s: float) -> bool:
        last = await self.redis.zscore(self.keys.workers, worker_id)
        return last is not None and float(last) > time.time() - heartbeat_ttl_s

    async def send(self, worker_id: str, command: SessionCommand, ttl_s: float) -> None:
        # The list expires with its worker: nobody else would ever read it.
        key = self.keys.session_commands(worker_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(key, command.model_dump_json(exclude_defaults=True))
            pipe.expire(key, max(1, int(ttl_s)))
            await pipe.execute()

    async def next_command(self, worker_id: str, block_s: float) -> SessionCommand | None:
        reply = cast(Any, await self.redis.brpop([self.keys.session_commands(worker_id)], timeout=block_s))
        return SessionCommand.model_validate_json(reply[1]) if reply else None

    async def save(self, session_id: str, record: SessionRecord, idle_s: float) -> None:
        await self.redis.set(self.keys.session(session_id), record.model_dump_json(), ex=max(1, int(idle_s)))

    async def find(self, session_id: str, idle_s: float) -> SessionRecord | None:
        """The session's record, its idle clock restarted; None if it ended or expired."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.session(session_id))
            pipe.expire(self.keys.session(session_id), max(1, int(idle_s)))
            raw, _ = await pipe.execute()
        return SessionRecord.model_validate_json(raw) if raw else None

    async def forget(self, session_id: str) -> None:
        await self.redis.delete(self.keys.session(session_id))
