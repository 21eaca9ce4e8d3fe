"""A fresh queue, under its own key prefix, on the session's real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from service.queue.redis_queue import RedisQueue


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[RedisQueue]:
    client = aioredis.Redis.from_url(redis_url)
    queue = RedisQueue(client, f"test{uuid.uuid4().hex[:8]}")
    await queue.ensure_group()
    yield queue
    await client.aclose()
