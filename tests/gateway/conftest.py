"""Fixtures of the gateway tests that need a gateway without the whole stack."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from service.config import Settings
from service.gateway.app import create_app
from service.queue.redis_queue import RedisQueue, connect


@pytest.fixture
async def gateway_without_workers(redis_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, RedisQueue]]:
    """A real gateway on the session's Redis, under a prefix no worker has ever written to."""
    prefix = f"test{uuid.uuid4().hex[:8]}"
    app: FastAPI = create_app(Settings(redis_url=redis_url, key_prefix=prefix))
    redis = connect(redis_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client, RedisQueue(redis, prefix)
    await redis.aclose()
