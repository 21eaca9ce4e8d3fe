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
        counts = Counter(shards)
        # Counted before the depth checks' first await, so admissions running alongside see these jobs.
        self.in_transit.update(counts)
        full = True
        try:
            full = await self._any_full(sorted(counts), max_depth)
        finally:
            if full:
                self.in_transit.subtract(counts)
                if quota > 0:
                    await self.release(tenant, jobs)
        return Refusal.queue_full if full else None

    def entered(self, shards: list[int]) -> None:
        """Admitted jobs were enqueued (their shards' depth as this gateway sees it holds them now), or
        failed to be."""
        self.in_transit.subtract(Counter(shards))

    async def release(self, tenant: str, jobs: int) -> None:
        """Undo a counted `admit` for jobs that never reached the stream."""
        await self.queue.redis.hincrby(self.queue.keys.in_flight, tenant, -jobs)

    async def _any_full(self, shards: list[int], max_depth: int) -> bool:
        for shard in shards:
            if await self._shard_full(shard, max_depth):
                return True
        return False

    async def _shard_full(self, shard: int, max_depth: int) -> bool:
        if max_depth <= 0:
            return False
        share = math.ceil(max_depth / len(self.queue.shards))
        depth = self.queue.depth_seen(shard)
        if depth is None or depth + self.in_transit[shard] > share / 2:
            depth = await self.queue.shard_depth(shard)
        return depth + self.in_transit[shard] > share
