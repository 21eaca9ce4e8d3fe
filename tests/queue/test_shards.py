"""The sharded queue on one real Redis and on a real local Redis Cluster: shards from job ids, each
shard on its own slot, one final result under a race, quotas across shards, lost writes found again."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter

import pytest
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from service.config import Settings
from service.models import ExecuteRequest, ExecutionResult, Job, Limits, Status
from service.queue.admission import Admission, Refusal
from service.queue.health import worker_on_host_is_live
from service.queue.keys import Keys, ShardTurns, as_tracked, is_tracked, new_job_id, shard_tag
from service.queue.listener import ResultListener
from service.queue.redis_queue import Delivery, RedisQueue, connect
from tests.cluster_fixture import LocalCluster
from tests.queue.conftest import SHARDS, listening

LIMITS = Limits(timeout_s=1, memory_mb=64, output_bytes=1024, compile_timeout_s=1, compile_memory_mb=64)


def make_job(shard: int, reply_to: str | None = None, tracked: bool = False) -> Job:
    now = time.time()
    request = ExecuteRequest(language="python", code="print(1)")
    job_id = new_job_id(shard, tracked)
    return Job(id=job_id, request=request, limits=LIMITS, enqueued_at=now, start_by=now + 60, reply_to=reply_to)


def test_a_job_id_names_its_shard_and_whether_it_is_tracked() -> None:
    keys = Keys("sandpit", shards=5, tagged=True)
    for shard in range(5):
        untracked, tracked = new_job_id(shard, tracked=False), new_job_id(shard, tracked=True)
        assert len(untracked) == len(tracked) == 32 and int(untracked, 16) >= 0
        assert keys.shard_of(untracked).index == keys.shard_of(tracked).index == shard
        assert (is_tracked(untracked), is_tracked(tracked)) == (False, True)
        assert as_tracked(untracked)[:4] == untracked[:4] and is_tracked(as_tracked(untracked))


@pytest.mark.parametrize("job_id", ["", "x", "not-hex-at-all", "zzzz1" + "0" * 27, "ffff" + "1" * 28])
def test_a_malformed_job_id_still_maps_to_one_shard(job_id: str) -> None:
    keys = Keys("sandpit", shards=3, tagged=True)
    assert keys.shard_of(job_id) == keys.shard_of(job_id)
    assert 0 <= keys.shard_of(job_id).index < 3


@pytest.mark.parametrize("shards", [1, 3, 5])
def test_shard_turns_send_runs_of_jobs_to_each_shard_in_turn(shards: int) -> None:
    turns = ShardTurns(shards, run=8)
    sent = [next(turns) for _ in range(8 * shards * 10)]
    assert Counter(sent) == {shard: 80 for shard in range(shards)}
    changes = [i for i in range(1, len(sent)) if sent[i] != sent[i - 1]]
    assert all(later - earlier == 8 for earlier, later in itertools.pairwise(changes))
    assert all(sent[i] == (sent[i - 1] + 1) % shards for i in changes)


def test_shard_turns_start_anywhere() -> None:
    assert {next(ShardTurns(3, run=1)) for _ in range(200)} == {0, 1, 2}


def test_shard_count_is_validated() -> None:
    for bad in (0, -1, 16**4 + 1):
        with pytest.raises(ValidationError):
            Settings(queue_shards=bad)


@pytest.mark.parametrize("shards", [1, 2, 3, 6, 7])
def test_each_shard_tag_hashes_into_its_share_of_the_slots(shards: int) -> None:
    for shard in range(shards):
        slot = key_slot(shard_tag("sandpit", shard, shards).encode())
        assert shard * REDIS_CLUSTER_HASH_SLOTS // shards <= slot < (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // shards


def test_one_shard_on_one_redis_keeps_the_plain_names() -> None:
    keys = Keys("sandpit")
    assert (keys.jobs, keys.result("ab"), keys.shard(0).reply_channel("g")) == (
        "sandpit:jobs",
        "sandpit:result:ab",
        "sandpit:reply:g",
    )


async def test_every_key_of_a_job_is_in_its_shards_slot(sharded_queue: RedisQueue) -> None:
    for shard in sharded_queue.shards:
        job_id = new_job_id(shard.index, tracked=True)
        names = [shard.jobs, shard.attempts, shard.result(job_id), shard.job(job_id), shard.watchers(job_id)]
        names += [shard.cancel(job_id), shard.reply_channel("g"), shard.cancel_channel]
        assert len({key_slot(name.encode()) for name in names}) == 1


async def test_shards_sit_on_different_primaries(cluster: LocalCluster) -> None:
    settings = Settings(redis_url=cluster.url, redis_cluster=True, queue_shards=SHARDS, key_prefix="spread")
    client = connect(settings)
    try:
        assert isinstance(client, RedisCluster)
        await client.initialize()
        queue = RedisQueue.for_settings(client, settings)
        owners = [client.get_node_from_key(shard.jobs) for shard in queue.shards]
        assert {node.port for node in owners if node is not None} == {node.port for node in cluster.primaries()}
    finally:
        await client.aclose()


async def test_jobs_of_every_shard_are_claimed_and_answered(sharded_queue: RedisQueue) -> None:
    async with listening(sharded_queue, "gw") as listener:
        jobs = [make_job(shard, reply_to="gw") for shard in range(SHARDS) for _ in range(2)]
        futures = [listener.expect(job.id) for job in jobs]
        listener.remember(await sharded_queue.enqueue_many(jobs))
        assert await sharded_queue.depth() == len(jobs)
        claimed = []
        for shard in range(SHARDS):
            claimed += await sharded_queue.claim_jobs("w1", 10, 100, shard)
        assert sorted(item.job.id for item in claimed) == sorted(job.id for job in jobs)
        deliveries = [
            Delivery(ExecutionResult(id=item.job.id, status=Status.ok, stdout=item.job.id), "gw", item.entry_id)
            for item in claimed
        ]
        assert await sharded_queue.deliver(deliveries, 60) == [True] * len(jobs)
        answers = await asyncio.wait_for(asyncio.gather(*futures), 10)
        assert [ExecutionResult.model_validate_json(raw).stdout for raw in answers] == [job.id for job in jobs]
        assert await sharded_queue.depth() == 0
        assert listener.enqueued == {}


async def test_racing_publishers_leave_exactly_one_result(sharded_queue: RedisQueue) -> None:
    async with listening(sharded_queue, "gw") as listener:
        job = make_job(2, reply_to="gw", tracked=True)
        await sharded_queue.enqueue(job)
        [claimed] = await sharded_queue.claim_jobs("w1", 1, 100, 2)
        heard: list[bytes] = []
        future = listener.expect(job.id)
        future.add_done_callback(lambda done: heard.append(done.result()))
        racers = [
            sharded_queue.publish_final(ExecutionResult(id=job.id, status=Status.ok, stdout=str(i)), "gw", entry, 60)
            for i, entry in enumerate([claimed.entry_id] * 10 + [None] * 10)
        ]
        won = await asyncio.gather(*racers)
        assert won.count(True) == 1
        winner = str(won.index(True))
        [stored] = await sharded_queue.get_raw_results([job.id])
        assert ExecutionResult.model_validate_json(stored).stdout == winner
        await asyncio.wait_for(future, 5)
        await asyncio.sleep(0.2)  # room for any second notice to arrive, which must not exist
        assert [ExecutionResult.model_validate_json(raw).stdout for raw in heard] == [winner]
        assert await sharded_queue.depth() == 0


async def test_a_tenant_quota_holds_across_shards(sharded_queue: RedisQueue) -> None:
    admission = Admission(sharded_queue)
    assert await admission.admit("t", [0, 1], 0, quota=3) is None
    assert await admission.admit("t", [2, 0], 0, quota=3) == Refusal.tenant_quota
    assert await admission.admit("t", [2], 0, quota=3) is None
    assert await admission.admit("t", [1], 0, quota=3) == Refusal.tenant_quota
    # A job of shard 1 is acknowledged: its count is given back, wherever the counter lives.
    job = make_job(1)
    job.tenant = "t"
    await sharded_queue.enqueue(job)
    [claimed] = await sharded_queue.claim_jobs("w1", 1, 100, 1)
    await sharded_queue.publish_result(ExecutionResult(id=job.id, status=Status.ok), job, claimed.entry_id, 60)
    assert await admission.admit("t", [0], 0, quota=3) is None
    assert int(await sharded_queue.redis.hget(sharded_queue.keys.in_flight, "t")) == 3  # type: ignore[arg-type]


async def test_a_full_shard_refuses_without_counting(sharded_queue: RedisQueue) -> None:
    admission = Admission(sharded_queue)
    # The deployment's maximum of 6 gives each of the 3 shards room for 2.
    await sharded_queue.enqueue_many([make_job(1), make_job(1)])
    assert await admission.admit("t", [1], 6, quota=5) == Refusal.queue_full
    assert await admission.admit("t", [0, 2], 6, quota=5) is None
    assert await sharded_queue.redis.hget(sharded_queue.keys.in_flight, "t") == b"2"


async def test_a_lost_job_is_enqueued_again_when_the_listener_resubscribes(sharded_queue: RedisQueue) -> None:
    listener = ResultListener(sharded_queue, "gw")
    job = make_job(1, reply_to="gw")
    future = listener.expect(job.id)
    enqueued = await sharded_queue.enqueue(job)
    listener.remember([enqueued])
    # As a failover to a replica that never received the XADD leaves it: no entry, no result.
    await sharded_queue.redis.xdel(sharded_queue.shards[1].jobs, enqueued.entry_id)
    assert await sharded_queue.lost_among([enqueued]) == [enqueued]
    await listener.start()
    try:
        [claimed] = await sharded_queue.claim_jobs("w1", 1, 100, 1)
        assert claimed.job == job and claimed.entry_id != enqueued.entry_id
        await sharded_queue.publish_result(ExecutionResult(id=job.id, status=Status.ok), job, claimed.entry_id, 60)
        assert ExecutionResult.model_validate_json(await asyncio.wait_for(future, 5)).status == Status.ok
    finally:
        await listener.stop()


async def test_a_finished_job_is_never_called_lost(sharded_queue: RedisQueue) -> None:
    job = make_job(0)
    enqueued = await sharded_queue.enqueue(job)
    assert await sharded_queue.lost_among([enqueued]) == []
    [claimed] = await sharded_queue.claim_jobs("w1", 1, 100, 0)
    await sharded_queue.publish_result(ExecutionResult(id=job.id, status=Status.ok), job, claimed.entry_id, 60)
    assert await sharded_queue.lost_among([enqueued]) == []


async def test_a_malformed_entry_on_any_shard_is_dropped(sharded_queue: RedisQueue) -> None:
    await sharded_queue.redis.xadd(sharded_queue.shards[2].jobs, {b"job": b"{not json"})
    assert await sharded_queue.claim_jobs("w1", 10, 100, 2) == []
    assert await sharded_queue.depth() == 0


async def test_stats_add_up_over_shards(sharded_queue: RedisQueue) -> None:
    from service.queue.stats import read_stats

    await sharded_queue.enqueue_many([make_job(shard) for shard in range(SHARDS)])
    await sharded_queue.claim_jobs("w1", 1, 100, 0)
    await sharded_queue.heartbeat("w1", 5)
    stats = await read_stats(sharded_queue.redis, sharded_queue.keys, 5)
    assert (stats.depth, stats.running, stats.waiting, len(stats.workers)) == (3, 1, 2, 1)


async def test_the_health_check_finds_heartbeats_through_any_cluster_node(cluster: LocalCluster) -> None:
    settings = Settings(redis_url=cluster.url, redis_cluster=True, key_prefix=f"hc{time.time_ns()}")
    client = connect(settings)
    try:
        await RedisQueue.for_settings(client, settings).heartbeat("host-a-1-abc", 5)
    finally:
        await client.aclose()
    # Most nodes do not hold the heartbeats and answer MOVED; the check follows it.
    answers = [worker_on_host_is_live(node.url, settings.key_prefix, "host-a", 5) for node in cluster.live_nodes()]
    assert answers == [True] * len(answers)
    assert not worker_on_host_is_live(cluster.url, settings.key_prefix, "host-b", 5)


async def test_enqueues_keep_each_shards_depth_fresh_so_admission_reads_none(sharded_queue: RedisQueue) -> None:
    # Each enqueue reads the depth of a shard it last read over DEPTH_RIDE_S ago, in its own round trip.
    jobs = [make_job(shard, tracked=shard == 1) for shard in range(SHARDS) for _ in range(3)]
    enqueued = await sharded_queue.enqueue_many(jobs)
    assert [item.job for item in enqueued] == jobs
    assert len({(item.shard, item.entry_id) for item in enqueued}) == len(jobs)
    assert [sharded_queue.depth_seen(shard) for shard in range(SHARDS)] == [3] * SHARDS
    await sharded_queue.enqueue(make_job(0))
    assert sharded_queue.depth_seen(0) == 4  # counted in, not read again
    xlen_before = await xlen_calls(sharded_queue)
    assert await Admission(sharded_queue).admit("t", [0, 1, 2], max_depth=1000, quota=0) is None
    assert await xlen_calls(sharded_queue) == xlen_before


async def xlen_calls(queue: RedisQueue) -> int:
    """XLEN commands every primary behind `queue` has run."""
    stats = await queue.redis.info("commandstats")
    if isinstance(queue.redis, RedisCluster):
        return sum(int(node.get("cmdstat_xlen", {}).get("calls", 0)) for node in stats.values())
    return int(stats.get("cmdstat_xlen", {}).get("calls", 0))
