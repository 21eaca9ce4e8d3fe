"""The two ways a gateway cannot take a call: Redis does not answer, or no worker is alive. Each is a
503 with Retry-After, through one handler, and the log line names the real cause."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from service.config import Settings
from service.gateway.app import create_app
from service.queue.redis_queue import RedisQueue
from service.stack import free_port


async def test_a_session_with_no_live_worker_is_503_and_says_so(
    gateway_without_workers: tuple[httpx.AsyncClient, RedisQueue], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = gateway_without_workers
    with caplog.at_level(logging.WARNING):
        response = await client.post("/v1/sessions", json={})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["detail"] == "no live worker, retry later"
    assert "no live worker" in caplog.text and "queue unavailable" not in caplog.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v1/execute", {"language": "python", "code": "print(1)"}),
        ("get", "/v1/jobs/0123456789abcdef0123456789abcdef", None),
    ],
)
async def test_redis_down_is_503_with_the_cause_in_the_log(
    method: str, path: str, body: dict[str, object] | None, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on this port: every Redis command fails to connect.
    app: FastAPI = create_app(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
    ):
        with caplog.at_level(logging.WARNING):
            response = await client.request(method, path, json=body)
    assert response.status_code == 503, response.text
    assert response.json()["detail"] == "queue unavailable, retry later"
    assert "queue unavailable: ConnectionError: Error 111 connecting to" in caplog.text
