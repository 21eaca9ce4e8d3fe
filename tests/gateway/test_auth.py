"""API keys, quotas, rate limits and backpressure on a stack of its own with keys configured."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from service.config import Settings
from service.gateway.auth import hash_key
from service.stack import LocalStack, free_port

KEYS = {"alpha": "key-alpha", "beta": "key-beta", "gamma": "key-gamma", "delta": "key-delta"}
QUOTA = 8
MAX_DEPTH = 20


@pytest.fixture(scope="module")
def keyed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    keys_file = tmp_path_factory.mktemp("keys") / "tenants.json"
    tenants = [
        {"name": "alpha", "key_sha256": hash_key(KEYS["alpha"]), "max_in_flight": QUOTA},
        {"name": "beta", "key_sha256": hash_key(KEYS["beta"]), "max_in_flight": QUOTA},
        {"name": "gamma", "key_sha256": hash_key(KEYS["gamma"]), "rate_per_s": 2},
        {"name": "delta", "key_sha256": hash_key(KEYS["delta"])},
    ]
    keys_file.write_text(json.dumps({"tenants": tenants}))
    settings = Settings(port=free_port(), worker_concurrency=2, api_keys_file=keys_file, max_queue_depth=MAX_DEPTH)
    with LocalStack(settings, workers=1, redis_url_given=False) as local:
        yield local


def body(code: str = "print('hi')", timeout_s: float = 10) -> dict[str, object]:
    return {"language": "python", "code": code, "timeout_s": timeout_s}


def headers(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


def test_missing_or_wrong_key_is_401_and_health_stays_open(keyed_stack: LocalStack) -> None:
    url = keyed_stack.url
    missing = httpx.post(f"{url}/v1/execute", json=body())
    assert missing.status_code == 401
    assert "missing API key" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = httpx.post(f"{url}/v1/execute", json=body(), headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "invalid API key")
    assert httpx.post(f"{url}/run_code", json={"code": "print(1)", "language": "python"}).status_code == 401
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/readyz").status_code == 200


def test_key_works_in_either_header(keyed_stack: LocalStack) -> None:
    bearer = httpx.post(f"{keyed_stack.url}/v1/execute", json=body(), headers=headers("alpha"), timeout=60)
    x_api_key = httpx.post(
        f"{keyed_stack.url}/v1/execute", json=body(), headers={"X-API-Key": KEYS["beta"]}, timeout=60
    )
    assert bearer.json()["stdout"] == x_api_key.json()["stdout"] == "hi\n"


async def fire(url: str, tenant: str, calls: int, code: str) -> list[tuple[int, float, httpx.Response]]:
    async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers(tenant)) as client:

        async def one(i: int) -> tuple[int, float, httpx.Response]:
            started = time.perf_counter()
            response = await client.post("/v1/execute", json=body(code))
            return i, time.perf_counter() - started, response

        return await asyncio.gather(*(one(i) for i in range(calls)))


def test_tenant_over_its_quota_gets_429_with_retry_after(keyed_stack: LocalStack) -> None:
    answers = asyncio.run(fire(keyed_stack.url, "alpha", 30, "import time\ntime.sleep(1)\nprint('done')"))
    refused = [(elapsed, r) for _, elapsed, r in answers if r.status_code == 429]
    accepted = [r for _, _, r in answers if r.status_code == 200]
    assert len(accepted) >= QUOTA and len(refused) >= 30 - 2 * QUOTA
    assert all(r.json()["stdout"] == "done\n" for r in accepted)
    assert all(r.json()["reason"] == "tenant_quota" and int(r.headers["retry-after"]) >= 1 for _, r in refused)
    slowest_refusal_ms = max(elapsed for elapsed, _ in refused) * 1000
    print(f"refused={len(refused)} accepted={len(accepted)} slowest_429_ms={slowest_refusal_ms:.1f}")


def test_full_queue_gets_429_queue_full(keyed_stack: LocalStack) -> None:
    answers = asyncio.run(fire(keyed_stack.url, "delta", 40, "import time\ntime.sleep(0.5)\nprint('done')"))
    refused = [r for _, _, r in answers if r.status_code == 429]
    assert refused and {r.json()["reason"] for r in refused} == {"queue_full"}
    assert all(r.json()["stdout"] == "done\n" for _, _, r in answers if r.status_code == 200)


def test_rate_limited_tenant_gets_429_rate_limit(keyed_stack: LocalStack) -> None:
    answers = asyncio.run(fire(keyed_stack.url, "gamma", 6, "print('ok')"))
    limited = [r for _, _, r in answers if r.status_code == 429]
    assert limited and {r.json()["reason"] for r in limited} == {"rate_limit"}
    assert sum(r.status_code == 200 for _, _, r in answers) >= 2


def test_a_flooding_tenant_does_not_starve_another(keyed_stack: LocalStack) -> None:
    async def scenario() -> tuple[list[httpx.Response], int, int]:
        beta_done = asyncio.Event()
        flood_sent = 0
        flood_finished = 0

        async def flood() -> None:
            nonlocal flood_sent, flood_finished
            async with httpx.AsyncClient(base_url=keyed_stack.url, timeout=120, headers=headers("alpha")) as client:

                async def caller() -> None:
                    nonlocal flood_sent, flood_finished
                    while not beta_done.is_set():
                        flood_sent += 1
                        response = await client.post("/v1/execute", json=body("import time\ntime.sleep(0.3)"))
                        if response.status_code == 429:
                            await asyncio.sleep(0.05)
                        else:
                            flood_finished += 1

                await asyncio.gather(*(caller() for _ in range(40)))

        async def beta() -> list[httpx.Response]:
            await asyncio.sleep(1.0)
            async with httpx.AsyncClient(base_url=keyed_stack.url, timeout=120, headers=headers("beta")) as client:
                answers = [await client.post("/v1/execute", json=body(f"print({i})")) for i in range(6)]
            beta_done.set()
            return answers

        flooding = asyncio.create_task(flood())
        answers = await beta()
        await flooding
        return answers, flood_sent, flood_finished

    answers, flood_sent, flood_finished = asyncio.run(scenario())
    assert [r.status_code for r in answers] == [200] * 6
    assert [r.json()["stdout"] for r in answers] == [f"{i}\n" for i in range(6)]
    print(f"beta 6/6 while alpha sent {flood_sent} calls and finished {flood_finished}")
    assert flood_sent > flood_finished  # alpha was being refused the whole time beta was served


def test_in_flight_counts_return_to_zero(keyed_stack: LocalStack) -> None:
    client = redis.Redis.from_url(keyed_stack.settings.redis_url)
    deadline = time.monotonic() + 30
    counts: dict[bytes, bytes] = {}
    while time.monotonic() < deadline:
        counts = client.hgetall(f"{keyed_stack.settings.key_prefix}:in-flight")  # type: ignore[assignment]
        if all(int(value) == 0 for value in counts.values()):
            break
        time.sleep(0.2)
    assert all(int(value) == 0 for value in counts.values()), counts
