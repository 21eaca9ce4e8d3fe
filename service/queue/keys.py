"""Every Redis key and channel Sandpit uses, named in one place.

All keys start with the deployment's prefix (`sandpit` by default), so two deployments can share one
Redis and `redis-cli --scan --pattern '*sandpit*'` shows everything of one.

The queue is split into `shards`. Everything one job touches (its stream entry, result, record,
watchers, cancel flag, retries) lives in its shard, and with more than one shard or on a Redis Cluster
a shard's keys share one hash tag, so each command or script of a job touches one slot. Shard k's tag is
picked so that its slot lies in the k-th n-th of the slot range: n shards land on n different primaries
of a cluster whose primaries split the slots evenly (as `redis-cli --cluster create` does). One shard on
one Redis keeps the plain names (`sandpit:jobs`, `sandpit:result:<id>`).

A job id names its shard: 32 hex digits, the first four the shard number, the fifth `1` when the job
is tracked (it has a record and may have long-poll watchers: `/v1/jobs` and calls with an
`Idempotency-Key`), the rest random. Quota counters and everything that is not about one job
(heartbeats, runtimes, sessions, idempotency keys) hash on their own names.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cached_property

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from service.config import SHARD_DIGITS

TRACKED = "1"
# Jobs in a row that `ShardTurns` sends to one shard.
SHARD_RUN = 64
UNTRACKED = "0"


def new_job_id(shard: int, tracked: bool) -> str:
    flag = TRACKED if tracked else UNTRACKED
    return f"{shard:0{SHARD_DIGITS}x}{flag}{secrets.token_hex(14)[:27]}"


def as_tracked(job_id: str) -> str:
    """The same job id (same shard), marked tracked."""
    return f"{job_id[:SHARD_DIGITS]}{TRACKED}{job_id[SHARD_DIGITS + 1 :]}"


def is_tracked(job_id: str) -> bool:
    """Whether the job may have a record and watchers (see the module docstring)."""
    return job_id[SHARD_DIGITS : SHARD_DIGITS + 1] == TRACKED


def shard_tag(prefix: str, shard: int, shards: int) -> str:
    """A hash tag for shard `shard` of `shards` whose slot lies in the shard's share of the slot range."""
    low = shard * REDIS_CLUSTER_HASH_SLOTS // shards
    high = (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // shards
    salt = 0
    while not low <= key_slot(f"{{{prefix}:{shard}.{salt}}}".encode()) < high:
        salt += 1
    return f"{{{prefix}:{shard}.{salt}}}"


class ShardTurns:
    """The shard each new job of one process goes to: runs of `run` jobs on one shard, the shards in
    turn, from a random one. Jobs sent at the same moment then mostly share a shard, and so share its
    round trips (the enqueue, a worker's read, the publish) as they would with one shard, while runs
    of a few dozen still spread a process's jobs evenly over every shard."""

    def __init__(self, shards: int, run: int = SHARD_RUN) -> None:
        self.shards = shards
        self.run = run
        self._sent = secrets.randbelow(shards * run)

    def __iter__(self) -> ShardTurns:
        return self

    def __next__(self) -> int:
        self._sent += 1
        return (self._sent // self.run) % self.shards


@dataclass(frozen=True)
class ShardKeys:
    """The keys and channels of one queue shard; `base` carries its hash tag (or is the plain prefix)."""

    base: str
    index: int

    @property
    def jobs(self) -> str:
        """Stream of queued jobs; entries are deleted once their result is published."""
        return f"{self.base}:jobs"

    @property
    def attempts(self) -> str:
        """Hash: job id -> deliveries beyond the first (worker died while running it)."""
        return f"{self.base}:attempts"

    def result(self, job_id: str) -> str:
        """The final result of one job, JSON, with a TTL."""
        return f"{self.base}:result:{job_id}"

    def job(self, job_id: str) -> str:
        """A tracked job's `JobRecord` (queued or running, who runs it), JSON, until its result exists."""
        return f"{self.base}:job:{job_id}"

    def watchers(self, job_id: str) -> str:
        """Set of gateway ids long-polling a tracked job they did not submit; each hears its result."""
        return f"{self.base}:watchers:{job_id}"

    def cancel(self, job_id: str) -> str:
        """Flag that a job was cancelled; read by a worker before it starts a tracked job."""
        return f"{self.base}:cancel:{job_id}"

    def reply_channel(self, gateway_id: str) -> str:
        """Channel on which one gateway hears the results of this shard's calls it waits on."""
        return f"{self.base}:reply:{gateway_id}"

    @property
    def cancel_channel(self) -> str:
        """Channel of this shard's cancelled job ids; every worker listens and stops the ones it runs."""
        return f"{self.base}:cancels"


@dataclass(frozen=True)
class Keys:
    prefix: str
    shards: int = 1
    # Hash tags on shard keys: needed on a cluster, and kept on one Redis when there are several shards.
    tagged: bool = False

    @cached_property
    def all_shards(self) -> list[ShardKeys]:
        if not self.tagged and self.shards == 1:
            return [ShardKeys(self.prefix, 0)]
        return [ShardKeys(shard_tag(self.prefix, k, self.shards), k) for k in range(self.shards)]

    def shard(self, index: int) -> ShardKeys:
        return self.all_shards[index]

    def shard_of(self, job_id: str) -> ShardKeys:
        """The shard a job id names; an id not made by `new_job_id` still maps to one, deterministically."""
        head = job_id[:SHARD_DIGITS]
        try:
            index = int(head, 16)
        except ValueError:
            index = key_slot(job_id.encode())
        return self.all_shards[index % self.shards]

    @property
    def jobs(self) -> str:
        """Shard 0's job stream: with one shard, the only one."""
        return self.all_shards[0].jobs

    def result(self, job_id: str) -> str:
        return self.shard_of(job_id).result(job_id)

    def job(self, job_id: str) -> str:
        return self.shard_of(job_id).job(job_id)

    def watchers(self, job_id: str) -> str:
        return self.shard_of(job_id).watchers(job_id)

    def cancel(self, job_id: str) -> str:
        return self.shard_of(job_id).cancel(job_id)

    @property
    def group(self) -> str:
        """Consumer group of the workers on each shard's jobs stream (a name, not a key)."""
        return f"{self.prefix}:workers"

    @property
    def workers(self) -> str:
        """Sorted set: worker id -> time of its last heartbeat."""
        return f"{self.prefix}:heartbeats"

    def worker_slots(self, worker_id: str) -> str:
        """A worker's "busy total" sandbox slots, refreshed with its heartbeat and expiring with it."""
        return f"{self.prefix}:worker-slots:{worker_id}"

    @property
    def in_flight(self) -> str:
        """Hash: tenant with a quota -> its jobs in any shard not yet acknowledged (queued or running)."""
        return f"{self.prefix}:in-flight"

    def idempotency(self, key: str) -> str:
        """The job id a caller's `Idempotency-Key` was first used for."""
        return f"{self.prefix}:idempotency:{key}"

    def session(self, session_id: str) -> str:
        """A session's `SessionRecord` (which worker holds it), JSON, expiring when idle."""
        return f"{self.prefix}:session:{session_id}"

    def tenant_sessions(self, tenant: str) -> str:
        """Sorted set: a tenant's session ids (branches included) -> when each was last used."""
        return f"{self.prefix}:tenant-sessions:{tenant}"

    def session_commands(self, worker_id: str) -> str:
        """List of `SessionCommand`s for one worker: only that worker reads it."""
        return f"{self.prefix}:session-commands:{worker_id}"

    @property
    def runtimes(self) -> str:
        """The `Runtimes` (language versions, Python packages) a worker probed, JSON, rewritten by each worker."""
        return f"{self.prefix}:runtimes"
