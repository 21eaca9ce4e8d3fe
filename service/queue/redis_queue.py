"""The job queue on Redis Streams: enqueue, claim, keep alive, reclaim, publish the one final result.

Jobs are stream entries read through one consumer group per shard, so an entry a worker has read stays
in the group's pending list until that worker publishes its result. Running jobs are touched on every
heartbeat; an entry nobody touched for `reclaim_idle_s` belongs to a dead worker and is claimed by a
live one. A result is final when its SET NX wins. A tracked job's result goes through a Lua script that
stores it, acknowledges and deletes the entry and, only if it won, publishes it to its record's
watchers, so a job redelivered after a false alarm still has exactly one final result. A synchronous
call's result (no record, no watchers) takes the same steps as plain commands, without the cost of a
script (see `_plain_publish`). Round trips, not commands, are most of what Redis spends per call, so
the jobs one process enqueues at the same moment share one, and so do results finished together; and a
worker's next read of new jobs can go out after its results, on their connection (`deliver_and_claim`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from service.config import REDIS_SOCKET_TIMEOUT_S, Settings
from service.models import ExecutionResult, Job, JobRecord, JobState, Runtimes
from service.queue.batching import Coalescer
from service.queue.keys import Keys, ShardKeys, is_tracked

log = logging.getLogger(__name__)

JOB_FIELD = b"job"
# How long a job record outlives its enqueueing when no result ever replaces it.
RECORD_TTL_S = 3600
# Admission trusts a shard depth this gateway read this recently (and far enough below the limit).
DEPTH_FRESH_S = 1.0
# An enqueue reads the depth of each of its shards whose depth is older than this, in its own round trip:
# while a gateway sends a shard jobs, admission then never needs a round trip of its own for the depth.
DEPTH_RIDE_S = DEPTH_FRESH_S / 2

Client = aioredis.Redis | RedisCluster

# KEYS: result, jobs stream, attempts hash, job record, watchers set (all in the job's shard).
# ARGV: result JSON, TTL seconds, group, stream entry id ('' if none), reply channel ('' if none), job id,
#       reply channel prefix (a watcher's channel is the prefix and its gateway id), tracked ('1': the
#       job may have a record and watchers), reclaimed ('1': drop its retry count), PUBLISH or SPUBLISH.
# Returns {1 if this result is the first (the final one), 1 if this acknowledged the entry}. Only what
# the job has is touched. A synchronous call's result takes plain commands instead (`_plain_publish`).
PUBLISH_RESULT = """
local first = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
local acked = 0
if ARGV[4] ~= '' then
  acked = redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
  redis.call('XDEL', KEYS[2], ARGV[4])
end
if ARGV[9] == '1' then redis.call('HDEL', KEYS[3], ARGV[6]) end
if first and ARGV[5] ~= '' then redis.call(ARGV[10], ARGV[5], ARGV[1]) end
if ARGV[8] == '1' then
  if first then
    for _, gateway in ipairs(redis.call('SMEMBERS', KEYS[5])) do
      redis.call(ARGV[10], ARGV[7] .. gateway, ARGV[1])
    end
  end
  redis.call('DEL', KEYS[4], KEYS[5])
end
if first then return {1, acked} end
return {0, acked}
"""


@dataclass(frozen=True)
class Claimed:
    entry_id: bytes
    job: Job
    shard: int = 0
    # Redelivered after its worker went silent: its retry count is dropped when it is published.
    reclaimed: bool = False


@dataclass(frozen=True)
class Reclaimed:
    claimed: list[Claimed]
    # Jobs redelivered more than max_attempts times: they get a sandbox_error, not another run.
    exhausted: list[Claimed]


@dataclass(frozen=True)
class ClaimOrder:
    """A worker's read of new jobs (as `claim_jobs`), to be sent after results (`deliver_and_claim`)."""

    consumer: str
    count: int
    block_ms: int
    shard: int
    # Resolved with the jobs read (an empty list if the block timed out), or with the read's error.
    jobs: asyncio.Future[list[Claimed]]


@dataclass(frozen=True)
class Delivery:
    """A final result and what publishing it involves: who waits, which entry it acknowledges."""

    result: ExecutionResult
    reply_to: str | None
    entry_id: bytes | None = None
    # Set when the job counts against its tenant's quota until its entry is acknowledged.
    tenant: str | None = None
    reclaimed: bool = False


@dataclass
class PublishPlan:
    """The commands that publish some deliveries, and how many of them (and whether a script) each takes."""

    commands: list[tuple[Any, ...]] = field(default_factory=list)
    spans: list[int] = field(default_factory=list)
    scripted: list[bool] = field(default_factory=list)


@dataclass(frozen=True)
class Enqueued:
    """A job on its shard's stream, as the gateway that waits for it remembers it."""

    job: Job
    shard: int
    entry_id: bytes


# Connections one process opens to Redis at most; beyond that a command waits for a free one
# (up to POOL_WAIT_S) instead of failing, so a burst of requests queues here, not in errors.
# 64 ran dry for over 10 s in a gateway taking 1,000 new calls/s on a busy host and in a 512-slot worker
# (the 503s of benchmarks/results/hold-20261129-225043.json); Redis serves 10,000 clients by default.
POOL_SIZE = 256
POOL_WAIT_S = 30.0
# The cluster client has no waiting pool (past its limit a command fails), so it may open more, per node.
CLUSTER_POOL_SIZE = 1024


# What redis-py 8.1's asyncio cluster client raises when a node's connection closes while it is being
# opened (seen killing a primary mid-run: the writer is gone, or uvloop's transport is closed).
TORN_CONNECTION = (AttributeError, RuntimeError)


class FailoverCluster(RedisCluster):
    """The cluster client, whose commands and pipelines say a connection torn by a failover as the lost
    connection it is (RedisConnectionError), so callers answer 503 and retry instead of failing."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except TORN_CONNECTION as exc:
            raise RedisConnectionError(f"cluster connection torn mid-command: {exc!r}") from exc

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)
        return FailoverPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py makes its own


class FailoverPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except TORN_CONNECTION as exc:
            raise RedisConnectionError(f"cluster connection torn mid-pipeline: {exc!r}") from exc


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)


def _as_lost_connection(exc: BaseException) -> BaseException:
    """A connection torn by a cluster failover, said as the lost connection it is (see FailoverCluster)."""
    if isinstance(exc, TORN_CONNECTION):
        return RedisConnectionError(f"connection torn mid-read: {exc!r}")
    return exc


def connect(target: Settings | str) -> Client:
    """The client gateway, worker, bench and tests use: a single Redis from a URL, or what `Settings`
    names (a Redis Cluster when `redis_cluster` is set; its URL names any one node)."""
    url = target if isinstance(target, str) else target.redis_url
    timeout_s = target.redis_socket_timeout_s if isinstance(target, Settings) else REDIS_SOCKET_TIMEOUT_S
    if isinstance(target, Settings) and target.redis_cluster:
        return FailoverCluster.from_url(
            url, max_connections=CLUSTER_POOL_SIZE, socket_keepalive=True, socket_timeout=timeout_s
        )
    # A Unix socket (a Redis on the same host, as `sandpit up` runs it) has no TCP keep-alive to ask for.
    keepalive = {} if url.startswith("unix:") else {"socket_keepalive": True}
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT_S,
        health_check_interval=30,
        socket_timeout=timeout_s,
        **keepalive,
    )
    return aioredis.Redis(connection_pool=pool)


class RedisQueue:
    def __init__(self, redis: Client, prefix: str, shards: int = 1) -> None:
        self.redis = redis
        self.cluster = isinstance(redis, RedisCluster)
        self.keys = Keys(prefix, shards, tagged=self.cluster or shards > 1)
        self.shards = self.keys.all_shards
        # A cluster routes sharded pub/sub to the primary of the channel's slot (its shard's primary);
        # plain PUBLISH would be broadcast to every node. One Redis keeps PUBLISH (any version has it).
        self.publish_command = "SPUBLISH" if self.cluster else "PUBLISH"
        self._publish_sha = hashlib.sha1(PUBLISH_RESULT.encode()).hexdigest()
        # shard -> (when, depth) of the last depth this process read, for admission.
        self._depth_seen: dict[int, tuple[float, int]] = {}
        self._enqueues = Coalescer(self._enqueue_batch, "enqueue")
        # Reads sent after results (`deliver_and_claim`) whose jobs have not come yet.
        self._reads: set[asyncio.Task[None]] = set()

    @classmethod
    def for_settings(cls, redis: Client, settings: Settings) -> RedisQueue:
        return cls(redis, settings.key_prefix, settings.queue_shards)

    async def ensure_group(self) -> None:
        for shard in self.shards:
            try:
                await self.redis.xgroup_create(shard.jobs, self.keys.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def enqueue(self, job: Job, record_ttl_s: int = RECORD_TTL_S) -> Enqueued:
        [enqueued] = await self.enqueue_many([job], record_ttl_s)
        return enqueued

    async def enqueue_many(self, jobs: list[Job], record_ttl_s: int = RECORD_TTL_S) -> list[Enqueued]:
        """Add the jobs (and the `queued` records of tracked ones) in one round trip, shared with the
        jobs other tasks of this process enqueue at the same moment."""
        return await self._enqueues.submit_many([(job, record_ttl_s) for job in jobs])

    async def _enqueue_batch(self, jobs: list[tuple[Job, int]]) -> list[Enqueued]:
        shards = [self.keys.shard_of(job.id) for job, _ in jobs]
        now = time.monotonic()
        stale = sorted({shard.index for shard in shards if self._depth_age(shard.index, now) > DEPTH_RIDE_S})
        async with self.redis.pipeline(transaction=False) as pipe:
            for (job, record_ttl_s), shard in zip(jobs, shards, strict=True):
                if is_tracked(job.id):
                    record = JobRecord(state=JobState.queued, reply_to=job.reply_to)
                    pipe.set(shard.job(job.id), record.model_dump_json(exclude_none=True), ex=record_ttl_s)
                pipe.xadd(shard.jobs, {JOB_FIELD: job.model_dump_json(exclude_defaults=True)})
            for index in stale:
                pipe.xlen(self.shards[index].jobs)
            replies = await pipe.execute()
        depths, replies = replies[len(replies) - len(stale) :], replies[: len(replies) - len(stale)]
        # Read after this batch's entries were added: they are in it already.
        for index, depth in zip(stale, depths, strict=True):
            self._depth_seen[index] = (now, int(depth))
        for shard in shards:
            if shard.index not in stale:
                self._count_in(shard.index)
        entry_ids = iter(reply for reply in replies if not isinstance(reply, bool))
        return [Enqueued(job, shard.index, next(entry_ids)) for (job, _), shard in zip(jobs, shards, strict=True)]

    def _count_in(self, shard: int) -> None:
        seen = self._depth_seen.get(shard)
        if seen is not None:
            self._depth_seen[shard] = (seen[0], seen[1] + 1)

    def _depth_age(self, shard: int, now: float) -> float:
        seen = self._depth_seen.get(shard)
        return now - seen[0] if seen is not None else float("inf")

    def depth_seen(self, shard: int) -> int | None:
        """The shard's depth as last read by this process (if recently), plus what it enqueued since."""
        seen = self._depth_seen.get(shard)
        if seen is None or time.monotonic() - seen[0] > DEPTH_FRESH_S:
            return None
        return seen[1]

    async def shard_depth(self, shard: int) -> int:
        """The shard's depth read now, unless a read sent later (an enqueue's) came back first."""
        sent = time.monotonic()
        depth = int(await self.redis.xlen(self.shards[shard].jobs))
        seen = self._depth_seen.get(shard)
        if seen is not None and seen[0] > sent:
            return seen[1]
        self._depth_seen[shard] = (sent, depth)
        return depth

    async def depth(self) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in self.shards:
                pipe.xlen(shard.jobs)
            return sum(int(depth) for depth in await pipe.execute())

    async def claim_jobs(self, consumer: str, count: int, block_ms: int, shard: int = 0) -> list[Claimed]:
        keys = self.shards[shard]
        return await self._claimed_from(keys, await self._read_group(keys.jobs, consumer, count, block_ms))

    async def _claimed_from(self, keys: ShardKeys, reply: Any) -> list[Claimed]:
        """The jobs of an XREADGROUP reply (RESP2: [[stream, [(entry_id, {field: value}), ...]]], or None
        when the block timed out)."""
        if not reply:
            return []
        _stream, entries = reply[0]
        return await self._parse_entries(keys, entries, reclaimed=False)

    async def _read_group(self, stream: str, consumer: str, count: int, block_ms: int) -> Any:
        if not isinstance(self.redis, RedisCluster):
            return await self.redis.xreadgroup(self.keys.group, consumer, {stream: ">"}, count=count, block=block_ms)
        # XREADGROUP's keys can be anywhere in it: the cluster client would ask a server where they are
        # (COMMAND GETKEYS) before every read. The stream's node is known, so the read goes straight there.
        node = self.redis.get_node_from_key(stream)
        read = self._read_group_command(stream, consumer, count, block_ms)
        return await self.redis.execute_command(*read, target_nodes=node)

    def _read_group_command(self, stream: str, consumer: str, count: int, block_ms: int) -> tuple[Any, ...]:
        group = ("GROUP", self.keys.group, consumer, "COUNT", count, "BLOCK", block_ms)
        return ("XREADGROUP", *group, "STREAMS", stream, ">")

    async def reclaim_stale(
        self, consumer: str, idle_s: float, count: int, max_attempts: int, shard: int = 0
    ) -> Reclaimed:
        keys = self.shards[shard]
        reply = cast(
            Any,
            await self.redis.xautoclaim(
                keys.jobs, self.keys.group, consumer, min_idle_time=int(idle_s * 1000), count=count
            ),
        )
        claimed = await self._parse_entries(keys, reply[1], reclaimed=True)
        if not claimed:
            return Reclaimed([], [])
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in claimed:
                pipe.hincrby(keys.attempts, item.job.id, 1)
            retries = await pipe.execute()
        fresh: list[Claimed] = []
        exhausted: list[Claimed] = []
        for item, tries in zip(claimed, retries, strict=True):
            (exhausted if int(tries) >= max_attempts else fresh).append(item)
        return Reclaimed(fresh, exhausted)

    async def touch(self, consumer: str, claimed: Iterable[Claimed]) -> None:
        """Reset the idle time of the entries a live worker is still running."""
        by_shard: defaultdict[int, list[bytes]] = defaultdict(list)
        for item in claimed:
            by_shard[item.shard].append(item.entry_id)
        if not by_shard:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, entry_ids in by_shard.items():
                pipe.xclaim(
                    self.shards[shard].jobs,
                    self.keys.group,
                    consumer,
                    min_idle_time=0,
                    message_ids=list[Any](entry_ids),
                    justid=True,
                )
            await pipe.execute()

    async def publish_result(self, result: ExecutionResult, job: Job, entry_id: bytes | None, ttl_s: int) -> bool:
        """Store the final result unless one exists, notify the waiting gateway, ack the job."""
        [first] = await self.deliver([Delivery(result, job.reply_to, entry_id, job.tenant)], ttl_s)
        return first

    async def publish_final(
        self,
        result: ExecutionResult,
        reply_to: str | None,
        entry_id: bytes | None,
        ttl_s: int,
        tenant: str | None = None,
    ) -> bool:
        """`publish_result` for callers without the job itself (a cancel): True if this was the one result."""
        [first] = await self.deliver([Delivery(result, reply_to, entry_id, tenant)], ttl_s)
        return first

    async def publish_finals(self, results: list[ExecutionResult], reply_to: str | None, ttl_s: int) -> None:
        """`publish_final` of many results without their stream entries, in one round trip."""
        await self.deliver([Delivery(result, reply_to) for result in results], ttl_s)

    async def deliver(self, deliveries: list[Delivery], ttl_s: int) -> list[bool]:
        """Publish final results in one round trip: True for each that was the first (and so the one)
        result of its job. The quota a counted job held is given back in a second one."""
        if not deliveries:
            return []
        answers = await self._publish_round_trip(deliveries, ttl_s)
        await self._release_quotas(deliveries, answers)
        return [first for first, _ in answers]

    async def deliver_and_claim(self, deliveries: list[Delivery], ttl_s: int, claim: ClaimOrder) -> list[bool]:
        """`deliver`, and the worker's next read of new jobs (`claim_jobs`) sent after the results on the
        same connection, in the same round trip. Redis answers the results at once and the read when it
        has jobs (or after the order's `block_ms`); the read's jobs, or its error, resolve `claim.jobs`.

        A worker that sent that read on its own would wake Redis once more per job for a read that
        returns nothing yet; and jobs that came in the meantime are read here at once, which costs Redis
        a fraction of serving a blocked reader. Every delivery must be on the order's node (`shares_node`).
        """
        keys = self.shards[claim.shard]
        plan = self._publish_plan(deliveries, ttl_s)
        read = self._read_group_command(keys.jobs, claim.consumer, claim.count, claim.block_ms)
        try:
            owner, connection = await self._take_connection(keys.jobs)
            try:
                await connection.send_packed_command(connection.pack_commands([*plan.commands, read]))
                replies = [await self._read_reply(owner, connection, command[0]) for command in plan.commands]
            except BaseException:
                await self._give_back(owner, connection, broken=True)
                raise
        except BaseException as exc:
            lost = _as_lost_connection(exc)
            _fail(claim.jobs, lost)
            if lost is exc:
                raise
            raise lost from exc
        reading = asyncio.create_task(self._read_claimed(owner, connection, keys, claim.jobs), name="claim-read")
        self._reads.add(reading)
        reading.add_done_callback(self._reads.discard)
        # The order's owner may stop waiting (the worker stops): then the read stops too.
        claim.jobs.add_done_callback(lambda jobs: reading.cancel() if jobs.cancelled() else None)
        answers = await self._publish_answers(deliveries, ttl_s, plan, replies)
        await self._release_quotas(deliveries, answers)
        return [first for first, _ in answers]

    def shares_node(self, delivery: Delivery, shard: int) -> bool:
        """Whether `delivery` can be published on a connection to `shard`'s node: always on one Redis, on a
        cluster only if the job is of that shard."""
        return not self.cluster or self.keys.shard_of(delivery.result.id).index == shard

    async def _read_claimed(
        self, owner: Any, connection: Connection, keys: ShardKeys, jobs: asyncio.Future[list[Claimed]]
    ) -> None:
        try:
            reply = await self._read_reply(owner, connection, "XREADGROUP")
        except BaseException as exc:
            await self._give_back(owner, connection, broken=True)
            _fail(jobs, _as_lost_connection(exc))
            return
        await self._give_back(owner, connection, broken=False)
        try:
            if isinstance(reply, Exception):
                raise reply
            claimed = await self._claimed_from(keys, reply)
        except Exception as exc:
            _fail(jobs, exc)
            return
        if not jobs.done():
            jobs.set_result(claimed)

    async def _take_connection(self, key: str) -> tuple[Any, Connection]:
        """A connection of its own to the node holding `key`, and the client (or cluster node) it came from,
        whose `parse_response` reads a reply as that client would."""
        if isinstance(self.redis, RedisCluster):
            node = self.redis.get_node_from_key(key)
            if node is None:
                raise RedisConnectionError(f"no cluster node serves {key}")
            return node, node.acquire_connection()
        pool = self.redis.connection_pool
        return self.redis, cast(Connection, await pool.get_connection())  # type: ignore[no-untyped-call]

    @staticmethod
    async def _read_reply(owner: Any, connection: Connection, command: str) -> Any:
        """One reply, parsed; an error reply is returned (as a pipeline does), not raised."""
        try:
            return await owner.parse_response(connection, command)
        except ResponseError as exc:
            return exc

    @staticmethod
    async def _give_back(owner: Any, connection: Connection, broken: bool) -> None:
        if broken:
            # Replies may still be on their way: nobody may read this connection's next reply as theirs.
            with contextlib.suppress(Exception):
                await connection.disconnect()
        if isinstance(owner, ClusterNode):
            owner.release(connection)
        else:
            await owner.connection_pool.release(connection)

    async def _release_quotas(self, deliveries: list[Delivery], answers: list[tuple[bool, bool]]) -> None:
        """Give back the quota of each counted job whose entry this publishing acknowledged."""
        releases = [
            delivery.tenant
            for delivery, (_, acked) in zip(deliveries, answers, strict=True)
            if delivery.tenant and acked
        ]
        if releases:
            async with self.redis.pipeline(transaction=False) as pipe:
                for tenant in releases:
                    pipe.hincrby(self.keys.in_flight, tenant, -1)
                await pipe.execute()

    async def _publish_round_trip(self, deliveries: list[Delivery], ttl_s: int) -> list[tuple[bool, bool]]:
        """(first, acknowledged) for each delivery, in one pipeline."""
        plan = self._publish_plan(deliveries, ttl_s)
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in plan.commands:
                pipe.execute_command(*command)
            replies = await pipe.execute(raise_on_error=False)
        return await self._publish_answers(deliveries, ttl_s, plan, replies)

    def _publish_plan(self, deliveries: list[Delivery], ttl_s: int) -> PublishPlan:
        """The commands that publish `deliveries`. A synchronous call's result (untracked, never
        reclaimed) is published by plain commands, the others by the script."""
        plan = PublishPlan()
        for delivery in deliveries:
            if self._needs_script(delivery):
                commands = [("EVALSHA", self._publish_sha, *self._publish_call(delivery, ttl_s))]
                plan.scripted.append(True)
            else:
                commands = self._plain_publish(delivery, ttl_s)
                plan.scripted.append(False)
            plan.commands += commands
            plan.spans.append(len(commands))
        return plan

    async def _publish_answers(
        self, deliveries: list[Delivery], ttl_s: int, plan: PublishPlan, replies: list[Any]
    ) -> list[tuple[bool, bool]]:
        """(first, acknowledged) for each delivery from the replies to its `plan`."""
        answers: list[tuple[bool, bool]] = []
        unscripted: list[int] = []
        at = 0
        for index, (delivery, span, scripted) in enumerate(zip(deliveries, plan.spans, plan.scripted, strict=True)):
            reply, at = replies[at : at + span], at + span
            if isinstance(reply[0], NoScriptError):
                unscripted.append(index)  # NOSCRIPT means nothing ran: run it again below
                answers.append((False, False))
                continue
            for error in reply:
                if isinstance(error, Exception):
                    raise error
            if scripted:
                answers.append((bool(reply[0][0]), bool(reply[0][1])))
            else:
                # SET NX answers True when it stored the result; XACK (if sent) 1 when it acknowledged.
                answers.append((reply[0] is True, bool(delivery.entry_id) and int(reply[1]) == 1))
        if unscripted:
            rerun = await self._run_publish_scripts([deliveries[index] for index in unscripted], ttl_s)
            for index, (first, acked) in zip(unscripted, rerun, strict=True):
                answers[index] = (bool(first), bool(acked))
        return answers

    @staticmethod
    def _needs_script(delivery: Delivery) -> bool:
        """Whether publishing takes the script: a tracked job (record, watchers) or a reclaimed one (its
        retry count)."""
        return delivery.reclaimed or is_tracked(delivery.result.id)

    def _plain_publish(self, delivery: Delivery, ttl_s: int) -> list[tuple[Any, ...]]:
        """The commands that publish a synchronous call's result: store it unless one exists, ack and
        delete the entry, tell the waiting gateway.

        Unlike the script, the message goes out even when a result was already stored: only a job run
        twice (redelivered after a false alarm) has two, and the gateway answers the first it hears and
        ignores the other. Nobody else reads a synchronous call's stored result except that gateway, if
        it missed the message. The result is stored before the entry is deleted, as `lost_among` needs.
        """
        job_id = delivery.result.id
        shard = self.keys.shard_of(job_id)
        raw = delivery.result.model_dump_json()
        commands: list[tuple[Any, ...]] = [("SET", shard.result(job_id), raw, "NX", "EX", ttl_s)]
        if delivery.entry_id:
            commands.append(("XACK", shard.jobs, self.keys.group, delivery.entry_id))
            commands.append(("XDEL", shard.jobs, delivery.entry_id))
        if delivery.reply_to:
            commands.append(self._publish_command(shard.reply_channel(delivery.reply_to), raw))
        return commands

    async def _run_publish_scripts(self, deliveries: list[Delivery], ttl_s: int) -> list[list[int]]:
        calls = [self._publish_call(delivery, ttl_s) for delivery in deliveries]
        while True:
            async with self.redis.pipeline(transaction=False) as pipe:
                for call in calls:
                    pipe.execute_command("EVALSHA", self._publish_sha, *call)
                replies = await pipe.execute(raise_on_error=False)
            if not any(isinstance(reply, NoScriptError) for reply in replies):
                break
            # A node that never saw the script (a fresh one, or a replica that took over): load it on
            # every primary and run again; NOSCRIPT means nothing ran.
            await self.redis.script_load(PUBLISH_RESULT)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return cast(list[list[int]], replies)

    def _publish_call(self, delivery: Delivery, ttl_s: int) -> list[Any]:
        job_id = delivery.result.id
        shard = self.keys.shard_of(job_id)
        keys = [shard.result(job_id), shard.jobs, shard.attempts, shard.job(job_id), shard.watchers(job_id)]
        args = [
            delivery.result.model_dump_json(),
            ttl_s,
            self.keys.group,
            delivery.entry_id or b"",
            shard.reply_channel(delivery.reply_to) if delivery.reply_to else "",
            job_id,
            shard.reply_channel(""),
            "1" if is_tracked(job_id) else "0",
            "1" if delivery.reclaimed else "0",
            self.publish_command,
        ]
        return [len(keys), *keys, *args]

    def add_publish(self, pipe: Any, channel: str, message: str | bytes) -> None:
        """Add the publishing of `message` on a shard channel to a pipeline."""
        pipe.execute_command(*self._publish_command(channel, message))

    def _publish_command(self, channel: str, message: str | bytes) -> tuple[Any, ...]:
        return (self.publish_command, channel, message)

    async def get_raw_results(self, job_ids: list[str]) -> list[bytes]:
        """The stored result JSON of those of `job_ids` that have finished."""
        if not job_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.get(self.keys.result(job_id))
            raws = await pipe.execute()
        return [cast(bytes, raw) for raw in raws if raw]

    async def lost_among(self, enqueued: list[Enqueued]) -> list[Enqueued]:
        """Those jobs whose stream entry and result are both gone: their writes were lost (a failover
        to a replica that had not received them). The publisher stores a result before it deletes the
        entry, in order on one node, so a finished job always has one of the two."""
        if not enqueued:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in enqueued:
                shard = self.shards[item.shard]
                pipe.exists(shard.result(item.job.id))
                pipe.xrange(shard.jobs, min=item.entry_id, max=item.entry_id)
            replies = await pipe.execute()
        answers = zip(replies[::2], replies[1::2], strict=True)
        return [item for item, (result, entry) in zip(enqueued, answers, strict=True) if not result and not entry]

    @contextlib.asynccontextmanager
    async def subscription(self, shard: ShardKeys, channel: str) -> AsyncIterator[PubSub]:
        """A pub/sub connection subscribed to one of `shard`'s channels, on the node that serves it."""
        node = self._node_serving(channel)
        pubsub = (node or cast(aioredis.Redis, self.redis)).pubsub(ignore_subscribe_messages=True)
        try:
            await (pubsub.subscribe(channel) if node is None else pubsub.ssubscribe(channel))
            yield pubsub
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            if node is not None:
                with contextlib.suppress(Exception):
                    await node.aclose()

    def _node_serving(self, channel: str) -> aioredis.Redis | None:
        """On a cluster, a plain client of the primary serving `channel`'s slot; None on one Redis."""
        if not isinstance(self.redis, RedisCluster):
            return None
        node = self.redis.get_node_from_key(channel)
        if node is None:
            raise RedisConnectionError(f"no cluster node serves {channel}")
        options = node.connection_kwargs
        return aioredis.Redis(
            host=node.host,
            port=int(node.port),
            username=options.get("username"),
            password=options.get("password"),
            socket_keepalive=True,
        )

    async def refresh_topology(self) -> None:
        """After losing a node: learn the cluster's slots again (a replica may have taken over)."""
        if isinstance(self.redis, RedisCluster):
            await self.redis.nodes_manager.initialize()

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

    async def _parse_entries(
        self, keys: ShardKeys, entries: list[tuple[bytes, dict[bytes, bytes]]], reclaimed: bool
    ) -> list[Claimed]:
        claimed: list[Claimed] = []
        for entry_id, fields in entries:
            if not fields:
                continue  # the entry was deleted while pending: its job already has a result
            try:
                claimed.append(Claimed(entry_id, Job.model_validate_json(fields[JOB_FIELD]), keys.index, reclaimed))
            except (KeyError, ValidationError):
                # Only a foreign writer puts such an entry on our stream; it has no one to answer.
                log.error("dropping malformed stream entry %r", entry_id)
                await self.redis.xack(keys.jobs, self.keys.group, entry_id)
                await self.redis.xdel(keys.jobs, entry_id)
        return claimed
