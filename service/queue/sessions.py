"""Sessions in Redis: where each lives, and the per-worker command lists that route calls to it.

A session is pinned to the worker that holds its interpreter, so its calls cannot go through the
shared stream: each worker has its own command list (LPUSH by gateways, BRPOP by that worker only).
A session's record says which worker holds it and expires when the session is idle; a record whose
worker stopped sending heartbeats belongs to a lost session. Each tenant's live sessions (branches
included) are counted in a sorted set scored by last use, so that one quota holds across gateways;
entries unused for longer than the idle timeout have expired with their sessions and drop out.
"""

from __future__ import annotations

import random
import time
from typing import Any, cast

from service.models import SessionCommand, SessionRecord
from service.queue.redis_queue import RedisQueue

# How a worker's answer to a fork begins when it has no room for the branches (not a failure: a 429).
NO_ROOM = "no room"

# KEYS: the tenant's sessions. ARGV: now, idle seconds, quota (0: none), then the new session ids.
ADMIT_SESSIONS = """
local now, idle, quota = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - idle)
local wanted = #ARGV - 3
if quota > 0 and redis.call('ZCARD', KEYS[1]) + wanted > quota then return 0 end
for i = 4, #ARGV do redis.call('ZADD', KEYS[1], now, ARGV[i]) end
redis.call('EXPIRE', KEYS[1], math.ceil(idle) + 1)
return 1
"""


class SessionStore:
    def __init__(self, queue: RedisQueue) -> None:
        self.redis = queue.redis
        self.keys = queue.keys
        self._admit = queue.redis.register_script(ADMIT_SESSIONS)

    async def admit(self, tenant: str, session_ids: list[str], quota: int, idle_s: float) -> bool:
        """Count new sessions against the tenant's quota; False (and nothing counted) past it."""
        args: list[str | float | int] = [time.time(), idle_s, quota, *session_ids]
        return bool(await self._admit(keys=[self.keys.tenant_sessions(tenant)], args=args))

    async def release(self, tenant: str, session_ids: list[str]) -> None:
        if session_ids:
            await self.redis.zrem(self.keys.tenant_sessions(tenant), *session_ids)

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

    async def find(self, session_id: str, idle_s: float, tenant: str | None = None) -> SessionRecord | None:
        """The session's record, its idle clock restarted (in its tenant's count too, if given); None if
        it ended or expired."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.session(session_id))
            pipe.expire(self.keys.session(session_id), max(1, int(idle_s)))
            if tenant is not None:
                pipe.zadd(self.keys.tenant_sessions(tenant), {session_id: time.time()}, xx=True)
            raw, *_ = await pipe.execute()
        return SessionRecord.model_validate_json(raw) if raw else None

    async def forget(self, session_id: str) -> None:
        await self.redis.delete(self.keys.session(session_id))
