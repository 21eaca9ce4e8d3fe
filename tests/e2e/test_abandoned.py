"""Calls whose HTTP client goes away stop: queued ones never start, running ones are killed, and the
pool is free for the next call at once. Jobs (`/v1/jobs`) are unaffected by their submitter leaving."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from service.gateway.cancel import CLIENT_GONE
from service.models import Job
from service.queue.keys import Keys
from service.queue.redis_queue import JOB_FIELD
from service.stack import LocalStack
from tests.hostile.test_attacks import settled_footprint

pytestmark = pytest.mark.timeout(30)

SLEEP = "import time\ntime.sleep(60)"
LEAVE_AFTER_S = 1.0
# Every sandbox slot of the test stack (2 workers x 4), so the abandoned calls would hold all of them.
SLOTS = 8


@pytest.fixture(scope="module")
def footprint(stack: LocalStack) -> Iterator[tuple[int, int]]:
    """The workers' process count at rest; after the module, cancel whatever a failed test left running."""
    yield settled_footprint(stack)
    asyncio.run(cancel_leftovers(stack))


LEFT_BEHIND: set[str] = set()


async def cancel_leftovers(stack: LocalStack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        for job_id in LEFT_BEHIND:
            await client.delete(f"/v1/jobs/{job_id}")


@contextlib.asynccontextmanager
async def queue_redis(stack: LocalStack) -> AsyncIterator[tuple[aioredis.Redis, Keys]]:
    client = aioredis.Redis.from_url(stack.settings.redis_url)
    try:
        yield client, Keys(stack.settings.key_prefix)
    finally:
        await client.aclose()


async def sleeping_jobs(stack: LocalStack, request_ids: set[str], count: int) -> list[str]:
    """The ids of the `count` sleeping jobs of these requests, read from the job stream while they are
    queued or running (before their clients leave)."""
    job_ids: list[str] = []
    deadline = time.monotonic() + LEAVE_AFTER_S * 0.8
    async with queue_redis(stack) as (client, keys):
        while len(job_ids) < count and time.monotonic() < deadline:
            jobs = [Job.model_validate_json(fields[JOB_FIELD]) for _, fields in await client.xrange(keys.jobs)]
            job_ids = [job.id for job in jobs if job.request_id in request_ids and job.request.code == SLEEP]
            await asyncio.sleep(0.05)
    LEFT_BEHIND.update(job_ids)
    assert len(job_ids) == count, f"only {len(job_ids)} of {count} jobs seen in the stream"
    return job_ids


async def results_of(stack: LocalStack, job_ids: list[str], timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The stored results of `job_ids`, waiting up to `timeout_s` for all of them to exist."""
    deadline = time.monotonic() + timeout_s
    async with queue_redis(stack) as (client, keys):
        while True:
            raws = await client.mget([keys.result(job_id) for job_id in job_ids])
            if all(raws) or time.monotonic() > deadline:
                return [orjson.loads(raw) if raw else {} for raw in raws]
            await asyncio.sleep(0.1)


async def post_and_leave(client: httpx.AsyncClient, path: str, body: object, request_id: str) -> None:
    """Send a call and hang up after LEAVE_AFTER_S, as a rollout client with a read timeout does."""
    timeout = httpx.Timeout(10.0, read=LEAVE_AFTER_S)
    with contextlib.suppress(httpx.ReadTimeout):
        response = await client.post(path, json=body, headers={"X-Request-ID": request_id}, timeout=timeout)
        raise AssertionError(f"answered before its client left: {response.status_code} {response.text}")


async def abandon_calls(stack: LocalStack, path: str, bodies: list[object]) -> list[str]:
    """Send the calls, leave them all after LEAVE_AFTER_S; return their job ids."""
    tag = uuid.uuid4().hex[:8]
    request_ids = [f"abandon-{tag}-{index}" for index in range(len(bodies))]
    limits = httpx.Limits(max_connections=len(bodies) + 10)
    async with httpx.AsyncClient(base_url=stack.url, limits=limits) as client:
        calls = [post_and_leave(client, path, body, rid) for body, rid in zip(bodies, request_ids, strict=True)]
        job_ids, *_ = await asyncio.gather(sleeping_jobs(stack, set(request_ids), len(bodies)), *calls)
    return job_ids


async def assert_pool_is_free(stack: LocalStack) -> None:
    """A call on every slot answers within a second: none is held by an abandoned call."""
    body = {"language": "python", "code": "print(1)"}
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        started = time.monotonic()
        responses = await asyncio.gather(*(client.post("/v1/execute", json=body) for _ in range(SLOTS)))
        elapsed = time.monotonic() - started
    assert [(r.status_code, r.json()["stdout"]) for r in responses] == [(200, "1\n")] * SLOTS
    assert elapsed < 1.0, f"the next calls took {elapsed:.2f}s"


async def assert_all_cancelled(stack: LocalStack, job_ids: list[str], footprint: tuple[int, int]) -> None:
    results = await results_of(stack, job_ids)
    assert [(r.get("status"), r.get("reason")) for r in results] == [("cancelled", CLIENT_GONE)] * len(job_ids)
    # A killed slot's zygote is restarted on its next call, so there may be fewer processes, never more.
    processes, _fds = await asyncio.to_thread(settled_footprint, stack)
    assert processes <= footprint[0], "a sandbox of an abandoned call is still running"
    LEFT_BEHIND.difference_update(job_ids)


async def test_abandoned_execute_calls_are_cancelled_and_free_the_pool(
    stack: LocalStack, footprint: tuple[int, int]
) -> None:
    body = {"language": "python", "code": SLEEP, "timeout_s": 60}
    job_ids = await abandon_calls(stack, "/v1/execute", [body] * 50)
    await assert_pool_is_free(stack)
    await assert_all_cancelled(stack, job_ids, footprint)


async def test_abandoned_run_code_calls_are_cancelled(stack: LocalStack, footprint: tuple[int, int]) -> None:
    body = {"language": "python", "code": SLEEP, "run_timeout": 60}
    job_ids = await abandon_calls(stack, "/run_code", [body] * (SLOTS + 4))
    await assert_pool_is_free(stack)
    await assert_all_cancelled(stack, job_ids, footprint)


@pytest.mark.parametrize("stream", [False, True])
async def test_abandoned_batch_cancels_every_unfinished_call(
    stack: LocalStack, footprint: tuple[int, int], stream: bool
) -> None:
    sleepers = SLOTS + 2
    calls = [{"language": "python", "code": "print('quick')"}]
    calls += [{"language": "python", "code": SLEEP, "timeout_s": 60}] * sleepers
    request_id = f"abandon-batch-{uuid.uuid4().hex[:8]}"
    path = f"/v1/execute/batch?stream={str(stream).lower()}"
    async with httpx.AsyncClient(base_url=stack.url) as client:
        leave = leave_stream if stream else post_and_leave
        job_ids, _ = await asyncio.gather(
            sleeping_jobs(stack, {request_id}, sleepers), leave(client, path, {"calls": calls}, request_id)
        )
    await assert_pool_is_free(stack)
    await assert_all_cancelled(stack, job_ids, footprint)


async def leave_stream(client: httpx.AsyncClient, path: str, body: object, request_id: str) -> None:
    """Read the streamed batch's first line (the quick call), then hang up while the rest still run."""
    async with client.stream("POST", path, json=body, headers={"X-Request-ID": request_id}) as response:
        # Kept in a name: an iterator dropped mid-stream would close the connection early.
        lines = response.aiter_lines()
        first = orjson.loads(await anext(lines))
        assert first["index"] == 0 and first["result"]["status"] == "ok", first
        await asyncio.sleep(LEAVE_AFTER_S)


async def test_abandoned_judge_is_cancelled(stack: LocalStack, footprint: tuple[int, int]) -> None:
    body = {"language": "python", "code": SLEEP, "timeout_s": 20, "cases": [{"expected_stdout": ""}] * 3}
    job_ids = await abandon_calls(stack, "/v1/judge", [body])
    await assert_pool_is_free(stack)
    await assert_all_cancelled(stack, job_ids, footprint)


async def test_retry_with_the_same_idempotency_key_runs_the_call_again(stack: LocalStack) -> None:
    body = {"language": "python", "code": "import time\ntime.sleep(2)\nprint('done')", "timeout_s": 10}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/execute", json=body, headers=key, timeout=httpx.Timeout(10, read=0.5))
        await asyncio.sleep(0.2)
        retried = (await client.post("/v1/execute", json=body, headers=key)).json()
        again = (await client.post("/v1/execute", json=body, headers=key)).json()
    assert (retried["status"], retried["stdout"]) == ("ok", "done\n"), retried
    assert again["id"] == retried["id"]


async def test_a_job_runs_to_the_end_when_its_submitter_and_poller_leave(stack: LocalStack) -> None:
    body = {"language": "python", "code": "import time\ntime.sleep(2)\nprint('done')", "timeout_s": 10}
    key = uuid.uuid4().hex
    await submit_and_hang_up(stack, body, key)
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        job_id = (await client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})).json()["id"]
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"/v1/jobs/{job_id}", params={"wait": 5}, timeout=httpx.Timeout(10, read=0.3))
        info = (await client.get(f"/v1/jobs/{job_id}", params={"wait": 5})).json()
    assert info["state"] == "done", info
    assert (info["result"]["status"], info["result"]["stdout"]) == ("ok", "done\n"), info


async def submit_and_hang_up(stack: LocalStack, body: object, key: str) -> None:
    """POST /v1/jobs on a raw connection and close it without reading the answer."""
    payload = orjson.dumps(body)
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: {stack.settings.host}\r\nContent-Type: application/json\r\n"
        f"Idempotency-Key: {key}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    _reader, writer = await asyncio.open_connection(stack.settings.host, stack.settings.port)
    writer.write(head.encode() + payload)
    await writer.drain()
    # Long enough for the gateway to read the request; the answer is never read.
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()
