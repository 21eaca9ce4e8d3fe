"""Admission control: refuse new jobs when their shard is full or their tenant is over its quota.

A tenant with a quota has a counter (a field of one hash, so it holds across shards and gateways):
HINCRBY returns the new count, which is undone when it is over the quota (checked first, so such a call
is refused as over its quota even when the queue is full too) or when the queue is full. The count drops when a
worker acknowledges the job, so it survives worker deaths (a reclaimed job is still in flight). Tenants
without a quota are not counted at all. If Redis loses jobs (a crash without persistence), their counts
stay; `redis-cli DEL <prefix>:in-flight` resets them all.

The deployment's maximum depth is split evenly over the shards. While the depth this gateway last read
for a shard (plus the jobs it enqueued there since) is under a second old and below half the shard's
share, admission trusts it; otherwise it reads the depth (XLEN) first. So a call costs no admission
command until the queue is half full. Jobs this gateway admitted and has not yet seen enqueued count too,
from before admission's first await, so a burst of calls arriving together cannot all be let in on one
depth read. Near the limit several gateways may each admit a few jobs past it: backpressure, not an exact
bound.
"""

from __future__ import annotations

import math
from collections import Counter
from enum import StrEnum

from service.queue.redis_queue import RedisQueue


class Refusal(StrEnum):
    queue_full = "queue_full"
    tenant_quota = "tenant_quota"


class Admission:
    def __init__(self, queue: RedisQueue) -> None:
        self.queue = queue
        # Per shard, the jobs admitted here (or being admitted) that no depth this gateway holds includes yet.
        self.in_transit: Counter[int] = Counter()

    async def admit(self, tenant: str, shards: list[int], max_depth: int, quota: int) -> Refusal | None:
        """Count new jobs of `tenant`, one per entry of `shards` (each job's shard), in against its quota
        if it has one; or say why not. Admitted jobs stay in transit until `entered` is called for them."""
        jobs = len(shards)
        if quota > 0:
            held = int(await self.queue.redis.hincrby(self.queue.keys.in_flight, tenant, jobs))
            if held > quota:
                await self.release(tenant, jobs)
                return Refusal.tenant_quota
        reserved: Counter[int] = Counter()
        admitted = False
        try:
            for shard, shard_jobs in sorted(Counter(shards).items()):
                if not await self._reserve(shard, shard_jobs, max_depth):
                    break
                reserved[shard] = shard_jobs
            else:
                admitted = True
        finally:
            if not admitted:
                self.in_transit.subtract(reserved)
                if quota > 0:
                    await self.release(tenant, jobs)
        return None if admitted else Refusal.queue_full

    def entered(self, shards: list[int]) -> None:
        """Admitted jobs were enqueued (their shards' depth as this gateway sees it holds them now), or
        failed to be."""
        self.in_transit.subtract(Counter(shards))

    async def release(self, tenant: str, jobs: int) -> None:
        """Undo a counted `admit` for jobs that never reached the stream."""
        await self.queue.redis.hincrby(self.queue.keys.in_flight, tenant, -jobs)

    async def _reserve(self, shard: int, jobs: int, max_depth: int) -> bool:
        """Hold room for `jobs` in the shard if it has it: checked and held with no wait in between, so
        admissions running alongside each count what the others let in."""
        if max_depth > 0:
            share = math.ceil(max_depth / len(self.queue.shards))
            depth = self.queue.depth_seen(shard)
            if depth is None or depth + self.in_transit[shard] + jobs > share / 2:
                depth = await self.queue.shard_depth(shard)
            if depth + self.in_transit[shard] + jobs > share:
                return False
        self.in_transit[shard] += jobs
        return True
