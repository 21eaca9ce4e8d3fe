"""What the queue looks like right now, over all its shards: depth, ages, live workers and their slots.

Read in two round trips by the gateway's metrics sampler and by `sandpit top`, never per request.
Entries are deleted from the stream once answered, so its first entry is the oldest unanswered job,
and the first entry after the group's last-delivered id is the oldest one no worker has taken yet.
Workers report their busy slots with every heartbeat, under a key that expires with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from service.queue.keys import Keys
from service.queue.redis_queue import Client


@dataclass(frozen=True)
class WorkerSlots:
    id: str
    busy: int
    total: int


@dataclass(frozen=True)
class QueueStats:
    depth: int
    waiting: int
    running: int
    oldest_age_s: float
    oldest_waiting_age_s: float
    workers: list[WorkerSlots] = field(default_factory=list)

    @property
    def slots_busy(self) -> int:
        return sum(worker.busy for worker in self.workers)

    @property
    def slots_total(self) -> int:
        return sum(worker.total for worker in self.workers)


def entry_age_s(entry_id: bytes | str, now: float) -> float:
    """Stream entry ids start with their creation time in milliseconds."""
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return max(0.0, now - int(raw.split("-", 1)[0]) / 1000)


async def report_slots(redis: Client, keys: Keys, worker_id: str, busy: int, total: int, ttl_s: float) -> None:
    await redis.set(keys.worker_slots(worker_id), f"{busy} {total}", px=int(ttl_s * 1000))


async def read_stats(redis: Client, keys: Keys, heartbeat_ttl_s: float) -> QueueStats:
    """The queue summed over its shards: depths and counts add up, ages are the oldest of any shard."""
    now = time.time()
    shards = keys.all_shards
    async with redis.pipeline(transaction=False) as pipe:
        for shard in shards:
            pipe.xlen(shard.jobs)
            pipe.xinfo_groups(shard.jobs)
            pipe.xrange(shard.jobs, count=1)
        pipe.zrangebyscore(keys.workers, now - heartbeat_ttl_s, "+inf")
        replies = await pipe.execute(raise_on_error=False)
    # Before the first job a stream does not exist, and XINFO answers with an error.
    replies = [None if isinstance(r, ResponseError) else r for r in replies]
    live = replies.pop()
    per_shard = [replies[i : i + 3] for i in range(0, len(replies), 3)]
    worker_ids = [_text(worker) for worker in live or []]
    groups = [next((g for g in groups or [] if _text(g["name"]) == keys.group), None) for _, groups, _ in per_shard]
    async with redis.pipeline(transaction=False) as pipe:
        for shard, group in zip(shards, groups, strict=True):
            pipe.xrange(shard.jobs, min=f"({_text(group['last-delivered-id'])}" if group else "-", count=1)
        for worker in worker_ids:
            pipe.get(keys.worker_slots(worker))
        second = await pipe.execute()
    next_waiting, slots = second[: len(shards)], second[len(shards) :]
    depth = running = waiting = 0
    oldest_age_s = oldest_waiting_age_s = 0.0
    for (depth_reply, _, first), group, after in zip(per_shard, groups, next_waiting, strict=True):
        shard_depth = int(depth_reply or 0)
        shard_running = int(group["pending"]) if group else 0
        shard_waiting = max(0, shard_depth - shard_running)
        depth, running, waiting = depth + shard_depth, running + shard_running, waiting + shard_waiting
        if first:
            oldest_age_s = max(oldest_age_s, entry_age_s(first[0][0], now))
        if after and shard_waiting:
            oldest_waiting_age_s = max(oldest_waiting_age_s, entry_age_s(after[0][0], now))
    return QueueStats(
        depth=depth,
        waiting=waiting,
        running=running,
        oldest_age_s=oldest_age_s,
        oldest_waiting_age_s=oldest_waiting_age_s,
        workers=[_slots(worker, raw) for worker, raw in zip(worker_ids, slots, strict=False)],
    )


def _slots(worker_id: str, raw: bytes | None) -> WorkerSlots:
    busy, _, total = (raw or b"0 0").decode().partition(" ")
    return WorkerSlots(worker_id, int(busy), int(total or 0))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
