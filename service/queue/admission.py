"""Admission control: refuse new jobs when the queue is full or their tenant is over its quota.

One Lua script checks the stream's length (queued plus running jobs) against the deployment's maximum
and the tenant's unacknowledged jobs against its quota, and counts the new jobs in if both allow it.
The count drops when a worker acknowledges a job (the publish script), so a quota holds across all
gateways and survives worker deaths (a reclaimed job is still in flight). If Redis loses jobs (a
crash without persistence), their counts stay; `redis-cli DEL <prefix>:in-flight` resets them all.
"""

from __future__ import annotations

from enum import StrEnum

from service.queue.redis_queue import RedisQueue

# KEYS: jobs stream, in-flight hash. ARGV: tenant, number of jobs, max stream length, tenant quota
# (0 = no limit).
ADMIT = """
local depth = redis.call('XLEN', KEYS[1])
local n = tonumber(ARGV[2])
if tonumber(ARGV[3]) > 0 and depth + n > tonumber(ARGV[3]) then return 'queue_full' end
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[4]) > 0 and held + n > tonumber(ARGV[4]) then return 'tenant_quota' end
redis.call('HINCRBY', KEYS[2], ARGV[1], n)
return 'ok'
"""


class Refusal(StrEnum):
    queue_full = "queue_full"
    tenant_quota = "tenant_quota"


class Admission:
    def __init__(self, queue: RedisQueue) -> None:
        self.queue = queue
        self._admit = queue.redis.register_script(ADMIT)

    async def admit(self, tenant: str, jobs: int, max_depth: int, quota: int) -> Refusal | None:
        """Count `jobs` new jobs of `tenant` in, or say why not."""
        keys = self.queue.keys
        verdict = await self._admit(keys=[keys.jobs, keys.in_flight], args=[tenant, jobs, max_depth, quota])
        text = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
        return None if text == "ok" else Refusal(text)

    async def release(self, tenant: str, jobs: int) -> None:
        """Undo `admit` for jobs that never reached the stream."""
        await self.queue.redis.hincrby(self.queue.keys.in_flight, tenant, -jobs)
