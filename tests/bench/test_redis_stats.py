"""Redis's cost per call as the benchmark reads it: against a real Redis and a real Redis Cluster."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from service.bench.redis_stats import RedisMeter, cost_per_call, parse_primaries, primary_urls
from tests.cluster_fixture import local_cluster

CALLS = 100
# A script that runs two commands: commandstats counts the EVALSHA and both.
TWO_COMMANDS = "redis.call('INCR', KEYS[1]); return redis.call('GET', KEYS[1])"


async def _measure_single(url: str) -> dict[str, object]:
    client = aioredis.Redis.from_url(url)
    script = client.register_script(TWO_COMMANDS)
    # Loaded before measuring: the first call of a script is a NOSCRIPT refusal and a SCRIPT LOAD.
    await script(keys=["bench-test:counter"])
    meter = RedisMeter(await primary_urls(url))
    try:
        before = await meter.snapshot()
        for index in range(CALLS):
            await client.set(f"bench-test:{index}", "x" * 100)
            await script(keys=["bench-test:counter"])
        return cost_per_call(before, await meter.snapshot(), CALLS)
    finally:
        await meter.close()
        await client.aclose()


def test_single_redis_cost_counts_script_commands_and_keeps_script_time_apart(redis_url: str) -> None:
    cost = asyncio.run(_measure_single(redis_url))
    top = {entry["command"]: entry for entry in cost["top"]}  # type: ignore[attr-defined]
    assert cost["commands_per_call"] == 4.0
    assert {name: top[name]["per_call"] for name in ("set", "evalsha", "incr", "get")} == dict.fromkeys(
        ("set", "evalsha", "incr", "get"), 1.0
    )
    assert "info" not in top
    assert cost["command_us_per_call"] > 0  # type: ignore[operator]
    assert cost["script_us_per_call"] >= top["incr"]["us_per_call"] + top["get"]["us_per_call"]
    assert cost["cpu_us_per_call"] > 0  # type: ignore[operator]
    assert cost["memory_bytes_per_call"] > 100  # type: ignore[operator]


async def _measure_cluster(any_node: str, keys: int) -> tuple[list[str], dict[str, object]]:
    cluster = RedisCluster.from_url(any_node)
    await cluster.initialize()
    meter = await RedisMeter.discover(any_node)
    try:
        before = await meter.snapshot()
        for index in range(keys):
            await cluster.set(f"bench-test:{index}", "x")
        return meter.urls, cost_per_call(before, await meter.snapshot(), keys)
    finally:
        await meter.close()
        await cluster.aclose()


def test_cluster_cost_sums_every_primary_and_no_replica() -> None:
    with local_cluster() as cluster:
        replica = next(node for node in cluster.nodes if node.client().info("replication")["role"] == "slave")
        urls, cost = asyncio.run(_measure_cluster(replica.url, 300))
    assert len(urls) == 3
    assert replica.url not in urls
    # Replicas run every SET again; summing them too would double the count.
    top = {entry["command"]: entry for entry in cost["top"]}  # type: ignore[attr-defined]
    assert top["set"]["per_call"] == 1.0


def test_primaries_exclude_failed_masters_replicas_and_masters_without_slots() -> None:
    nodes = (
        "a1 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-5460\n"
        "b2 10.0.0.2:6379@16379,node-2 master - 0 0 2 connected 5461-10922\n"
        "c3 10.0.0.3:6379@16379 master,fail - 0 0 3 connected\n"
        "d4 10.0.0.4:6379@16379 slave a1 0 0 1 connected\n"
        "e5 10.0.0.5:6379@16379 master - 0 0 5 connected\n"
    )
    assert parse_primaries(nodes) == ["10.0.0.1:6379", "10.0.0.2:6379"]
