"""Fault injection on the real stack: workers killed mid-run, Redis restarted mid-run.

Each run counts what it sent, what was accepted (HTTP 200) and what came back right; a call that was
accepted and never answered, or answered wrongly, is lost. Every test reports `lost=0` or fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import redis.asyncio as aioredis

from service.config import Settings
from service.models import ExecuteRequest, ExecutionResult, Job, Limits, Status
from service.queue.redis_queue import RedisQueue
from service.stack import LocalStack, free_port


@pytest.fixture(scope="module")
def fragile_stack() -> Iterator[LocalStack]:
    """A stack of its own, since these tests kill its parts; quick reclaim so the runs stay short."""
    settings = Settings(
        port=free_port(),
        worker_concurrency=4,
        reclaim_idle_s=3.0,
        heartbeat_interval_s=0.5,
        heartbeat_ttl_s=3.0,
    )
    with LocalStack(settings, workers=3, redis_url_given=False) as local:
        yield local


@dataclass
class Tally:
    sent: int = 0
    refused: int = 0  # 503 before acceptance: not lost, the client retries
    right: int = 0
    wrong: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)

    @property
    def lost(self) -> int:
        return self.sent - self.right


async def drive(url: str, calls: int, concurrency: int, code_for: object) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one(i: int) -> None:
            code, expected = code_for(i)  # type: ignore[operator]
            async with gate:
                tally.sent += 1
                while True:
                    try:
                        response = await client.post("/v1/execute", json={"language": "python", "code": code})
                    except httpx.TransportError:
                        tally.refused += 1
                        await asyncio.sleep(0.2)
                        continue
                    if response.status_code in (429, 503):
                        tally.refused += 1
                        await asyncio.sleep(float(response.headers.get("retry-after", "0.2")))
                        continue
                    break
            result = response.json() if response.status_code == 200 else {"http": response.status_code}
            if result.get("status") == "ok" and result.get("stdout") == expected:
                tally.right += 1
                tally.ids.add(result["id"])
            else:
                tally.wrong.append(str(result)[:300])

        await asyncio.gather(*(one(i) for i in range(calls)))
    return tally


MAX_KILLS = 4


def square(i: int) -> tuple[str, str]:
    return f"import time\ntime.sleep(0.05)\nprint({i} * {i})", f"{i * i}\n"


class Load(threading.Thread):
    """The calls run in a thread; the faults come from the main thread, because a child started by
    LocalStack gets PR_SET_PDEATHSIG, which fires when the *thread* that started it ends."""

    def __init__(self, url: str, calls: int, concurrency: int) -> None:
        super().__init__()
        self.args_ = (url, calls, concurrency)
        self.tally: Tally | None = None

    def run(self) -> None:
        self.tally = asyncio.run(drive(*self.args_, square))

    def finish(self) -> Tally:
        self.join(240)
        assert self.tally is not None, "the load did not finish"
        return self.tally


def test_workers_killed_at_random_during_a_2000_call_run_lose_nothing(fragile_stack: LocalStack) -> None:
    load = Load(fragile_stack.url, 2000, 200)
    load.start()
    rng = random.Random(7)
    kills = 0
    while kills < MAX_KILLS and load.is_alive():
        time.sleep(2.0)
        fragile_stack.restart(rng.choice(fragile_stack.processes("worker")), signal.SIGKILL)
        kills += 1
    tally = load.finish()
    print(f"sent={tally.sent} right={tally.right} kills={kills} lost={tally.lost}")
    assert kills >= 2
    assert tally.wrong == []
    assert tally.lost == 0
    assert len(tally.ids) == 2000


def test_redis_restart_during_a_run_loses_nothing(fragile_stack: LocalStack) -> None:
    readiness: list[int] = []

    def watch_readiness() -> None:
        deadline = time.monotonic() + 1.8
        while time.monotonic() < deadline:
            try:
                readiness.append(httpx.get(f"{fragile_stack.url}/readyz", timeout=2).status_code)
            except httpx.HTTPError:
                readiness.append(0)
            time.sleep(0.2)

    load = Load(fragile_stack.url, 600, 100)
    load.start()
    time.sleep(1.0)
    watcher = threading.Thread(target=watch_readiness)
    watcher.start()
    fragile_stack.restart(fragile_stack.processes("redis")[0], signal.SIGTERM, pause_s=2.0)
    watcher.join()
    tally = load.finish()
    print(f"sent={tally.sent} right={tally.right} refused_while_down={tally.refused} lost={tally.lost}")
    assert 503 in readiness, readiness
    assert tally.wrong == []
    assert tally.lost == 0
    assert httpx.get(f"{fragile_stack.url}/readyz").status_code == 200


def wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError("the stack did not become ready")


def test_async_jobs_survive_their_gateway_being_killed(fragile_stack: LocalStack) -> None:
    url = fragile_stack.url
    wait_ready(url)
    submitted = {}
    for i in range(50):
        code, expected = square(i)
        response = httpx.post(f"{url}/v1/jobs", json={"language": "python", "code": code}, timeout=30)
        assert response.status_code in (200, 202), response.text
        submitted[response.json()["id"]] = expected
    fragile_stack.restart(fragile_stack.processes("gateway")[0], signal.SIGKILL)
    wait_ready(url)
    lost = 0
    for job_id, expected in submitted.items():
        info = httpx.get(f"{url}/v1/jobs/{job_id}", params={"wait": 30}, timeout=60).json()
        result = info.get("result") or {}
        if (info.get("state"), result.get("status"), result.get("stdout")) != ("done", "ok", expected):
            lost += 1
    print(f"jobs={len(submitted)} lost={lost}")
    assert lost == 0


def test_job_whose_caller_gave_up_while_queued_is_expired_not_run(fragile_stack: LocalStack) -> None:
    now = time.time()
    request = ExecuteRequest(language="python", code="open('/workspace/ran', 'w')\nprint('ran')")
    limits = Limits(timeout_s=5, memory_mb=256, output_bytes=1024, compile_timeout_s=5, compile_memory_mb=256)
    job = Job(id=uuid.uuid4().hex, request=request, limits=limits, enqueued_at=now - 120, start_by=now - 60)

    async def enqueue_and_wait() -> ExecutionResult:
        client = aioredis.Redis.from_url(fragile_stack.settings.redis_url)
        queue = RedisQueue(client, fragile_stack.settings.key_prefix)
        try:
            await queue.enqueue(job)
            for _ in range(200):
                raw = await queue.get_raw_results([job.id])
                if raw:
                    return ExecutionResult.model_validate_json(raw[0])
                await asyncio.sleep(0.1)
            raise AssertionError("no result")
        finally:
            await client.aclose()

    result = asyncio.run(enqueue_and_wait())
    assert result.status == Status.expired
    assert result.stdout == ""
