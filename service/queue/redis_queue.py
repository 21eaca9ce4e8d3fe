"""The job queue on Redis Streams: enqueue, claim, keep alive, reclaim, publish the one final result.

Jobs are stream entries read through one consumer group, so an entry a worker has read stays in the
group's pending list until that worker publishes its result. Running jobs are touched on every
heartbeat; an entry nobody touched for `reclaim_idle_s` belongs to a dead worker and is claimed by a
live one. The result is written with SET NX by a Lua script that also publishes it to the waiting
gateway and acknowledges the entry, so a job redelivered after a false alarm still has exactly one
final result.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import ResponseError

from service.models import ExecutionResult, Job, JobRecord, JobState, Runtimes
from service.queue.keys import Keys

log = logging.getLogger(__name__)

JOB_FIELD = b"job"
# How long a job record outlives its enqueueing when no result ever replaces it.
RECORD_TTL_S = 3600

# KEYS: result key, jobs stream, attempts hash, job record, watchers set, in-flight hash.
# ARGV: result JSON, TTL seconds, group, stream entry id ('' if none), reply channel ('' if none), job id,
#       reply channel prefix (a watcher's channel is the prefix and its gateway id), tenant ('' if none).
# A tenant's in-flight count drops when its stream entry is acknowledged, whichever path publishes.
PUBLISH_RESULT = """
local first = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
if first and ARGV[5] ~= '' then
  redis.call('PUBLISH', ARGV[5], ARGV[1])
end
if first then
  for _, gateway in ipairs(redis.call('SMEMBERS', KEYS[5])) do
    redis.call('PUBLISH', ARGV[7] .. gateway, ARGV[1])
  end
  redis.call('DEL', KEYS[4], KEYS[5])
end
if ARGV[4] ~= '' then
  local acked = redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
  redis.call('XDEL', KEYS[2], ARGV[4])
  if acked == 1 and ARGV[8] ~= '' and redis.call('HINCRBY', KEYS[6], ARGV[8], -1) < 0 then
    redis.call('HSET', KEYS[6], ARGV[8], 0)
  end
end
redis.call('HDEL', KEYS[3], ARGV[6])
if first then return 1 end
return 0
"""


@dataclass(frozen=True)
class Claimed:
    entry_id: bytes
    job: Job


@dataclass(frozen=True)
class Reclaimed:
    claimed: list[Claimed]
    # Jobs redelivered more than max_attempts times: they get a sandbox_error, not another run.
    exhausted: list[Claimed]


# Connections one process opens to Redis at most; beyond that a command waits for a free one
# (up to POOL_WAIT_S) instead of failing, so a burst of requests queues here, not in errors.
POOL_SIZE = 64
POOL_WAIT_S = 10.0


def connect(redis_url: str) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT_S,
        health_check_interval=30,
        socket_keepalive=True,
    )
    return aioredis.Redis(connection_pool=pool)


class RedisQueue:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.keys = Keys(prefix)
        self._publish = redis.register_script(PUBLISH_RESULT)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.jobs, self.keys.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def enqueue(self, job: Job, record_ttl_s: int = RECORD_TTL_S) -> None:
        await self.enqueue_many([job], record_ttl_s)

    async def enqueue_many(self, jobs: list[Job], record_ttl_s: int = RECORD_TTL_S) -> None:
        """Add the jobs and their `queued` records in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                record = JobRecord(state=JobState.queued, reply_to=job.reply_to)
                pipe.set(self.keys.job(job.id), record.model_dump_json(exclude_none=True), ex=record_ttl_s)
                pipe.xadd(self.keys.jobs, {JOB_FIELD: job.model_dump_json(exclude_defaults=True)})
            await pipe.execute()

    async def depth(self) -> int:
        return int(await self.redis.xlen(self.keys.jobs))

    async def claim_jobs(self, consumer: str, count: int, block_ms: int) -> list[Claimed]:
        # RESP2 reply: [[stream, [(entry_id, {field: value}), ...]]] or None when the block timed out.
        reply = cast(
            Any,
            await self.redis.xreadgroup(self.keys.group, consumer, {self.keys.jobs: ">"}, count=count, block=block_ms),
        )
        if not reply:
            return []
        _stream, entries = reply[0]
        return await self._parse_entries(entries)

    async def reclaim_stale(self, consumer: str, idle_s: float, count: int, max_attempts: int) -> Reclaimed:
        reply = cast(
            Any,
            await self.redis.xautoclaim(
                self.keys.jobs, self.keys.group, consumer, min_idle_time=int(idle_s * 1000), count=count
            ),
        )
        claimed = await self._parse_entries(reply[1])
        fresh: list[Claimed] = []
        exhausted: list[Claimed] = []
        for item in claimed:
            retries = await self.redis.hincrby(self.keys.attempts, item.job.id, 1)
            (exhausted if retries >= max_attempts else fresh).append(item)
        return Reclaimed(fresh, exhausted)

    async def touch(self, consumer: str, entry_ids: list[bytes]) -> None:
        """Reset the idle time of the entries a live worker is still running."""
        if entry_ids:
            await self.redis.xclaim(
                self.keys.jobs,
                self.keys.group,
                consumer,
                min_idle_time=0,
                message_ids=list[Any](entry_ids),
                justid=True,
            )

    async def publish_result(self, result: ExecutionResult, job: Job, entry_id: bytes | None, ttl_s: int) -> bool:
        """Store the final result unless one exists, notify the waiting gateway, ack the job."""
        return await self.publish_final(result, job.reply_to, entry_id, ttl_s, job.tenant)

    async def publish_final(
        self,
        result: ExecutionResult,
        reply_to: str | None,
        entry_id: bytes | None,
        ttl_s: int,
        tenant: str | None = None,
    ) -> bool:
        """`publish_result` for callers without the job itself (a cancel): True if this was the one result."""
        keys, args = self._publish_arguments(result, reply_to, entry_id, ttl_s, tenant)
        return bool(await self._publish(keys=keys, args=args))

    async def publish_finals(self, results: list[ExecutionResult], reply_to: str | None, ttl_s: int) -> None:
        """`publish_final` of many results without their stream entries, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for result in results:
                keys, args = self._publish_arguments(result, reply_to, None, ttl_s, None)
                await self._publish(keys=keys, args=args, client=pipe)
            await pipe.execute()

    def _publish_arguments(
        self, result: ExecutionResult, reply_to: str | None, entry_id: bytes | None, ttl_s: int, tenant: str | None
    ) -> tuple[list[Any], list[Any]]:
        keys = [
            self.keys.result(result.id),
            self.keys.jobs,
            self.keys.attempts,
            self.keys.job(result.id),
            self.keys.watchers(result.id),
            self.keys.in_flight,
        ]
        args = [
            result.model_dump_json(),
            ttl_s,
            self.keys.group,
            entry_id or b"",
            self.keys.reply_channel(reply_to) if reply_to else "",
            result.id,
            self.keys.reply_channel_prefix,
            tenant or "",
        ]
        return keys, args

    async def get_raw_results(self, job_ids: list[str]) -> list[bytes]:
        """The stored result JSON of those of `job_ids` that have finished."""
        if not job_ids:
            return []
        raws = await self.redis.mget([self.keys.result(job_id) for job_id in job_ids])
        return [cast(bytes, raw) for raw in raws if raw]

    async def heartbeat(self, worker_id: str, ttl_s: float) -> None:
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.workers, {worker_id: now})
            pipe.zremrangebyscore(self.keys.workers, "-inf", now - 10 * ttl_s)
            await pipe.execute()

    async def forget_worker(self, worker_id: str) -> None:
        await self.redis.zrem(self.keys.workers, worker_id)

    async def live_workers(self, ttl_s: float) -> int:
        return int(await self.redis.zcount(self.keys.workers, time.time() - ttl_s, "+inf"))

    async def publish_runtimes(self, runtimes: Runtimes, ttl_s: int) -> None:
        await self.redis.set(self.keys.runtimes, runtimes.model_dump_json(), ex=ttl_s)

    async def read_runtimes(self) -> Runtimes | None:
        """The last probe a worker published, or None before any (or if it is unreadable)."""
        raw = await self.redis.get(self.keys.runtimes)
        if raw is None:
            return None
        try:
            return Runtimes.model_validate_json(raw)
        except ValidationError:
            # A worker of another version may name a language this gateway does not know.
            log.warning("unreadable runtimes report under %s", self.keys.runtimes)
            return None

    async def _parse_entries(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Claimed]:
        claimed: list[Claimed] = []
        for entry_id, fields in entries:
            if not fields:
                continue  # the entry was deleted while pending: its job already has a result
            try:
                claimed.append(Claimed(entry_id, Job.model_validate_json(fields[JOB_FIELD])))
            except (KeyError, ValidationError):
                # Only a foreign writer puts such an entry on our stream; it has no one to answer.
                log.error("dropping malformed stream entry %r", entry_id)
                await self.redis.xack(self.keys.jobs, self.keys.group, entry_id)
                await self.redis.xdel(self.keys.jobs, entry_id)
        return claimed
