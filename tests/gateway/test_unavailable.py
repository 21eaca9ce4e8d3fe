"""The two ways a gateway cannot take a call: Redis does not answer, or no worker is alive. Each is a
503 with Retry-After, through one handler, and the log line names the real cause."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import cast

import httpx
import orjson
import pytest
from fastapi import FastAPI
from redis.asyncio.client import PubSub

from service.config import Settings
from service.gateway.app import create_app
from service.gateway.calls import new_job, withdraw
from service.gateway.state import GatewayState
from service.models import ExecuteRequest, ExecutionResult, Status
from service.queue.redis_queue import RedisQueue, connect
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


# Holds Redis (every client) for ARGV[1] microseconds, as a Redis too busy to read its sockets would.
HOLD_REDIS = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) >= tonumber(ARGV[1])
"""


async def test_an_enqueue_cut_off_after_redis_took_it_is_withdrawn_before_the_503(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The enqueue's reply does not come within the socket timeout, but Redis takes the job once it is
    free: the caller is told 503 only after that job was withdrawn, so sending the call again does not
    run it twice (the job's final result is the withdrawal; workers are told to skip or stop it)."""
    prefix = f"test{uuid.uuid4().hex[:8]}"
    settings = Settings(redis_url=redis_url, key_prefix=prefix, redis_socket_timeout_s=0.3, max_queue_depth=0)
    app: FastAPI = create_app(settings)
    admin = connect(redis_url)
    queue = RedisQueue(admin, prefix)
    shard = queue.shards[0]
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
            queue.subscription(shard, shard.cancel_channel) as cancels,
        ):
            hold = asyncio.create_task(admin.eval(HOLD_REDIS, 0, 1_200_000))
            await asyncio.sleep(0.1)
            with caplog.at_level(logging.WARNING):
                response = await client.post("/v1/execute", json={"language": "python", "code": "print(1)"})
            await hold
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            # Redis did take the job: the enqueue's outcome was in doubt, not a refusal.
            [(_, fields)] = await admin.xrange(shard.jobs)
            job_id = orjson.loads(fields[b"job"])["id"]
            [raw] = await queue.get_raw_results([job_id])
            result = orjson.loads(raw)
            assert result["status"] == "cancelled" and "withdrawn" in result["reason"], result
            assert await admin.exists(queue.keys.cancel(job_id))
            assert await next_message(cancels, within_s=2.0) == job_id.encode()
            assert "1 withdrawn, 0 had run" in caplog.text
    finally:
        await admin.aclose()


async def test_a_cut_off_enqueue_whose_job_already_ran_keeps_its_result(redis_url: str) -> None:
    """If the job of an enqueue that failed part-way has its result already, it ran: the withdrawal
    loses, nothing is cancelled, and the caller gets that result rather than a 503."""
    prefix = f"test{uuid.uuid4().hex[:8]}"
    app: FastAPI = create_app(Settings(redis_url=redis_url, key_prefix=prefix))
    async with app.router.lifespan_context(app):
        state: GatewayState = app.state.gateway
        ran = new_job(state, ExecuteRequest(language="python", code="print(1)"), state.id, queue_wait_s=10)
        unrun = new_job(state, ExecuteRequest(language="python", code="print(2)"), state.id, queue_wait_s=10)
        result = ExecutionResult(id=ran.id, status=Status.ok, stdout="1\n")
        await state.queue.publish_final(result, ran.reply_to, None, state.settings.result_ttl_s)

        assert await withdraw(state, [ran], None, TimeoutError("cut off")) == 0
        assert await withdraw(state, [ran, unrun], None, TimeoutError("cut off")) == 1

        [kept, withdrawn] = [orjson.loads(raw) for raw in await state.queue.get_raw_results([ran.id, unrun.id])]
        assert kept == orjson.loads(result.model_dump_json())
        assert withdrawn["status"] == "cancelled"
        assert await state.jobs.cancelled_among([ran.id, unrun.id]) == {unrun.id}


async def next_message(pubsub: PubSub, within_s: float) -> bytes | None:
    """The next message published on `pubsub`'s channels (its subscribe confirmations skipped)."""
    give_up_at = asyncio.get_running_loop().time() + within_s
    while (left := give_up_at - asyncio.get_running_loop().time()) > 0:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None:
            return cast(bytes, message["data"])
    return None
