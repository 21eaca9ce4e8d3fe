"""Capacity apart from cores: a batch of looping programs is normal RL traffic, not an attack.

One worker with its default number of slots (far above this machine's two cores) on the real stack:
looping calls share the CPU and each ends at its own wall-clock timeout, so a hundred of them answer
within one timeout, and trivial calls sent among hundreds of loops still answer right and are not
starved. How fast they answer is a speed target: `make bench`'s `mixed` scenario checks it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import aiohttp
import pytest

from service.config import Settings, default_concurrency
from service.stack import LocalStack, free_port

pytestmark = pytest.mark.timeout(240)

LOOP = "while True:\n    pass\n"
TRIVIAL = "print(1 + 1)\n"
# A trivial call answered later than this after it was sent was starved, not merely slow.
STARVED_S = 10.0


@pytest.fixture(scope="module")
def roomy_stack() -> Iterator[LocalStack]:
    """`sandpit up` as a user runs it: one worker, its slot count left to the default."""
    with LocalStack(Settings(port=free_port()), workers=1, redis_url_given=False) as local:
        yield local


def test_the_default_slot_count_is_far_above_the_cores() -> None:
    cores = os.cpu_count() or 1
    assert default_concurrency() >= min(100, 32 * cores)
    assert Settings().worker_concurrency == default_concurrency()


def client(stack: LocalStack, connections: int) -> aiohttp.ClientSession:
    """The test's HTTP client. It runs on the same two cores as the service, so it must be cheap:
    httpx's pool spent 12-23 s of CPU on the 800 calls of the mixed test (its bookkeeping grows with the
    square of the open connections), CPU the service then lacked; aiohttp spends about 0.5 s."""
    return aiohttp.ClientSession(base_url=stack.url, connector=aiohttp.TCPConnector(limit=connections))


async def run_code(session: aiohttp.ClientSession, code: str, run_timeout: float, wait_s: float) -> tuple[dict, float]:
    """One SandboxFusion-style call; the client gives up after `wait_s`, as an RL client's timeout would."""
    started = time.perf_counter()
    body = {"code": code, "language": "python", "run_timeout": run_timeout, "compile_timeout": 10}
    async with session.post("/run_code", json=body, timeout=aiohttp.ClientTimeout(total=wait_s)) as response:
        response.raise_for_status()
        answer = await response.json()
    return answer, time.perf_counter() - started


def test_a_hundred_looping_calls_all_answer_within_the_clients_wait(roomy_stack: LocalStack) -> None:
    """The client of an RL framework's SandboxFusion test suite: 100 loops with run_timeout 10 at once,
    each waiting at most compile + run + 10 = 30 s. Two at a time (one per core) would take 500 s."""

    async def batch() -> list[tuple[dict, float]]:
        async with client(roomy_stack, 200) as session:
            return await asyncio.gather(*(run_code(session, LOOP, 10, 30) for _ in range(100)))

    answers = asyncio.run(batch())
    assert len(answers) == 100
    for body, _ in answers:
        assert body["status"] == "Failed", body
        assert body["run_result"]["status"] == "TimeLimitExceeded", body


def test_trivial_calls_among_hundreds_of_loops_answer_right_and_are_not_starved(roomy_stack: LocalStack) -> None:
    """400 looping calls (timeout 2 s) sent at once, and while they run 400 print(1+1) sent at 100 calls/s
    (well under what the service can take, so latency is not queueing): every trivial call is right and
    every loop ends at its time limit. Issue 14's p99 under 2 s is a speed target, checked by `make bench`'s
    `mixed` scenario; here each trivial call must only answer within STARVED_S of being sent, a bound the
    slowest 2-core VM we had keeps (max ~5.5 s, p99 2.0-3.3 s) and a starved call does not."""

    async def mixed() -> tuple[list[tuple[dict, float]], list[tuple[dict, float]]]:
        async with client(roomy_stack, 1000) as session:
            loops = [asyncio.create_task(run_code(session, LOOP, 2, 60)) for _ in range(400)]
            trivial = []
            for _ in range(40):
                trivial += [asyncio.create_task(run_code(session, TRIVIAL, 2, 60)) for _ in range(10)]
                await asyncio.sleep(0.1)
            return await asyncio.gather(*loops), await asyncio.gather(*trivial)

    loops, trivial = asyncio.run(mixed())
    latencies = sorted(seconds for _, seconds in trivial)
    summary = (
        f"trivial p50 {latencies[len(latencies) // 2]:.2f} s, p90 {latencies[int(len(latencies) * 0.9)]:.2f} s, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.2f} s, max {latencies[-1]:.2f} s"
    )
    # Where the time went: the program's own run as its slot's init timed it, the rest is around it.
    runs = sorted((body.get("run_result") or {}).get("execution_time") or 0.0 for body, _ in trivial)
    print(f"{summary}; their runs p50 {runs[len(runs) // 2]:.2f} s, p99 {runs[int(len(runs) * 0.99) - 1]:.2f} s")
    wrong = [body for body, _ in trivial if (body["status"], body["run_result"]["stdout"]) != ("Success", "2\n")]
    assert not wrong, f"{len(wrong)} of 400 trivial calls went wrong ({summary}): {wrong[0]}"
    for body, _ in loops:
        assert body["run_result"]["status"] == "TimeLimitExceeded", body
    assert latencies[-1] < STARVED_S, f"a trivial call took {latencies[-1]:.2f} s among 400 loops ({summary})"
