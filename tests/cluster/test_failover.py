"""kill -9 of a Redis Cluster primary in the middle of 5,000 calls through three gateways and three
workers: its replica takes over, and every call still gets exactly one right answer. Clients send a call
again, with its Idempotency-Key, when it fails in transit or gets 503 or 504; gateways enqueue again the
jobs they wait on whose writes the failover lost."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import orjson
import pytest
import redis.cluster

from service.queue.keys import Keys
from tests.cluster.conftest import services_on
from tests.cluster.drive import Run, drive
from tests.cluster_fixture import LocalCluster

pytestmark = pytest.mark.timeout(900)

CALLS = 5000
IN_FLIGHT = 48
SHARDS = 3
TIME_LIMIT_S = 400
KILL_AFTER = 0.3
# A job whose result the failover lost is run again once its entry is reclaimed: soon, here.
QUICK_RECLAIM = {"reclaim_idle_s": 5.0, "heartbeat_interval_s": 1.0, "heartbeat_ttl_s": 4.0}
# Long enough for the workers to reclaim (after reclaim_idle_s) a job whose result the failover lost.
STORED_WAIT_S = 30.0


async def run_and_kill(cluster: LocalCluster, urls: list[str]) -> tuple[Run, float]:
    run = Run(CALLS)
    calls = asyncio.create_task(drive(urls, CALLS, IN_FLIGHT, TIME_LIMIT_S, keyed=True, run=run))
    while len(run.answers) < CALLS * KILL_AFTER and not calls.done():
        await asyncio.sleep(0.05)
    victim = cluster.primaries()[0]
    killed_at = time.monotonic()
    await asyncio.to_thread(cluster.kill, victim)
    await asyncio.to_thread(cluster.wait_ok, 30.0, 3)
    failover_s = time.monotonic() - killed_at
    return await calls, failover_s


def test_a_primary_killed_mid_run_loses_no_call(cluster: LocalCluster, tmp_path: Path) -> None:
    # Each process's output goes to a file under tmp_path: after a failure, it says what went wrong.
    with services_on(cluster, SHARDS, tmp_path, **QUICK_RECLAIM) as stacks:
        urls = [stack.url for stack in stacks]
        warm = asyncio.run(drive(urls, 100, IN_FLIGHT, 60))
        assert warm.lost == 0, warm.wrong[:5]
        run, failover_s = asyncio.run(run_and_kill(cluster, urls))
        summary = {"calls": CALLS, "lost": run.lost, "wrong": len(run.wrong), "retries": run.retries}
        print(json.dumps({**summary, "failover_s": round(failover_s, 2), "elapsed_s": round(run.elapsed_s, 1)}))
        assert cluster.killed, "no primary was killed"
        assert run.lost == 0 and not run.wrong, run.wrong[:5]
        # Exactly one final result each: every call was answered by its own job, and the result stored
        # for that job (the one SET NX let through) says what its client was told. A result the failover
        # lost is written again by the job's redelivery (its deleted entry was lost with it): the workers
        # still run, and the check waits for those.
        job_ids = [answer["id"] for answer in run.answers.values()]
        assert len(set(job_ids)) == CALLS
        told = {answer["id"]: (answer["status"], answer["stdout"]) for answer in run.answers.values()}
        missing, differing = check_stored(cluster, Keys(stacks[0].settings.key_prefix, SHARDS, tagged=True), told)
    assert (missing, differing) == ([], []), f"{len(missing)} missing, {len(differing)} differing"


def check_stored(cluster: LocalCluster, keys: Keys, told: dict[str, tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The jobs without a stored result (after waiting for redeliveries), and those whose stored result
    is not what their client was told."""
    client = redis.cluster.RedisCluster.from_url(cluster.url)
    try:
        deadline = time.monotonic() + STORED_WAIT_S
        while True:
            stored = stored_results(client, keys, list(told))
            missing = [job_id for job_id in told if job_id not in stored]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        client.close()
    return missing, [job_id for job_id, result in stored.items() if result != told[job_id]]


def stored_results(client: redis.cluster.RedisCluster, keys: Keys, job_ids: list[str]) -> dict[str, tuple[str, str]]:
    with client.pipeline() as pipe:
        for job_id in job_ids:
            pipe.get(keys.result(job_id))
        raws = pipe.execute()
    results = [orjson.loads(raw) for raw in raws if raw is not None]
    return {result["id"]: (result["status"], result["stdout"]) for result in results}
