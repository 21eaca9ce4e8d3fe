"""Fresh queues, each under its own key prefix: on the session's real redis-server, and sharded over
a real local Redis Cluster (started once for the queue tests that ask for it)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from service.config import Settings
from service.queue.listener import ResultListener
from service.queue.redis_queue import RedisQueue, connect
from tests.cluster_fixture import LocalCluster, local_cluster

SHARDS = 3


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[RedisQueue]:
    client = aioredis.Redis.from_url(redis_url)
    queue = RedisQueue(client, f"test{uuid.uuid4().hex[:8]}")
    await queue.ensure_group()
    yield queue
    await client.aclose()


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    with local_cluster() as started:
        yield started


@pytest.fixture(params=["single", "cluster"])
async def sharded_queue(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[RedisQueue]:
    """A queue of SHARDS shards: on one Redis, then on the cluster."""
    prefix = f"test{uuid.uuid4().hex[:8]}"
    if request.param == "single":
        settings = Settings(redis_url=redis_url, key_prefix=prefix, queue_shards=SHARDS)
    else:
        cluster: LocalCluster = request.getfixturevalue("cluster")
        settings = Settings(redis_url=cluster.url, key_prefix=prefix, queue_shards=SHARDS, redis_cluster=True)
    client = connect(settings)
    queue = RedisQueue.for_settings(client, settings)
    await queue.ensure_group()
    yield queue
    await client.aclose()


@contextlib.asynccontextmanager
async def listening(queue: RedisQueue, gateway_id: str) -> AsyncIterator[ResultListener]:
    """A gateway's result listener on `queue`, subscribed for the duration."""
    listener = ResultListener(queue, gateway_id)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()
