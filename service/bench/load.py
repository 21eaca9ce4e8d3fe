"""A closed-loop HTTP load generator: N outstanding calls for a fixed time, every answer checked.

Each of `concurrency` tasks sends a call, waits for its answer, checks it and sends the next, until
the duration is over; calls still running then may finish within the drain time, and those that do
not are counted as `unfinished`. All tasks share pooled keep-alive connections. Above ~25,000
connections one source address runs out of ephemeral ports, so large pools spread their connections
over several loopback source addresses (127.0.0.2, 127.0.0.3, ...).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from service.bench.workloads import Workload

CONNECTIONS_PER_SOURCE = 20_000
EXAMPLE_CHARS = 300
JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    # The start of one answer per kind of error, to tell why without rerunning.
    examples: dict[str, str] = field(default_factory=dict)
    unfinished: int = 0
    elapsed_s: float = 0.0

    def record(self, latency_ms: float, problem: str | None, answer: str = "") -> None:
        if problem is None:
            self.latencies_ms.append(latency_ms)
            return
        self.errors[problem] += 1
        self.examples.setdefault(problem, answer[:EXAMPLE_CHARS])

    @property
    def error_count(self) -> int:
        return sum(self.errors.values()) + self.unfinished


def _subclass_names(cls: type) -> set[str]:
    names = {cls.__name__}
    subclass: type
    for subclass in cls.__subclasses__():
        names |= _subclass_names(subclass)
    return names


# Error kinds (exception names) that mean the connection failed under a call: refused, reset or closed.
# Timeouts are told apart: those are a slow server, not a lost connection.
CONNECTION_FAILURES = frozenset(
    name
    for name in _subclass_names(aiohttp.ClientConnectionError) | {"ConnectionResetError", "OSError"}
    if "Timeout" not in name
)


# Error kinds of a request that came back with final results, only not the right ones (a timeout on a
# starved machine, say): answered, so not lost.
ANSWERED_KINDS = ("status ", "wrong stdout", "wrong result count", "malformed result", "verdict ")


def answered_wrong(outcome: Outcome) -> int:
    return sum(count for kind, count in outcome.errors.items() if kind.startswith(ANSWERED_KINDS))


def wrong_example(outcome: Outcome) -> str | None:
    """The first answer that came back but was not right (an error without an answer is no example)."""
    return next((text for kind, text in outcome.examples.items() if kind.startswith(ANSWERED_KINDS)), None)


def tally(outcome: Outcome, calls: int, right: str = "right") -> dict[str, Any]:
    """How many of `calls` answered right (counted under the name `right`), wrong, or not at all (a
    failed request, or none recorded), with the first wrong answer."""
    answered_right, wrong = len(outcome.latencies_ms), answered_wrong(outcome)
    return {
        right: answered_right,
        "wrong": wrong,
        "lost": calls - answered_right - wrong,
        "wrong_example": wrong_example(outcome),
    }


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def latency_summary(latencies_ms: list[float]) -> dict[str, float | None]:
    ordered = sorted(latencies_ms)
    summary = {
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1] if ordered else math.nan,
    }
    return {key: None if math.isnan(value) else round(value, 2) for key, value in summary.items()}


def _source_addresses(url: str, connections: int) -> list[str | None]:
    sources = math.ceil(connections / CONNECTIONS_PER_SOURCE)
    if sources <= 1 or urlsplit(url).hostname != "127.0.0.1":
        return [None]
    return [f"127.0.0.{index + 2}" for index in range(sources)]


class Pool:
    """HTTP sessions to one server, together holding up to `connections` keep-alive connections."""

    def __init__(self, url: str, connections: int, request_timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.sessions: list[aiohttp.ClientSession] = []
        sources = _source_addresses(url, connections)
        per_session = math.ceil(connections / len(sources))
        for source in sources:
            connector = aiohttp.TCPConnector(
                limit=per_session,
                limit_per_host=per_session,
                local_addr=(source, 0) if source else None,
                enable_cleanup_closed=True,
            )
            timeout = aiohttp.ClientTimeout(total=request_timeout_s)
            self.sessions.append(aiohttp.ClientSession(connector=connector, timeout=timeout))

    def session(self, index: int) -> aiohttp.ClientSession:
        return self.sessions[index % len(self.sessions)]

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()

    async def get_json(self, path: str) -> Any:
        text = await self.get_text(path)
        return None if text is None else orjson.loads(text)

    async def get_text(self, path: str) -> str | None:
        """The body of a GET, or None unless it answered 200."""
        async with self.sessions[0].get(self.url + path) as response:
            if response.status != 200:
                return None
            return await response.text()


@asynccontextmanager
async def open_pool(url: str, connections: int, request_timeout_s: float = 600.0) -> Any:
    pool = Pool(url, connections, request_timeout_s)
    try:
        yield pool
    finally:
        await pool.close()


async def call_once(pool: Pool, index: int, workload: Workload) -> tuple[float, str | None, str]:
    """Send one request; return its latency, why its answer is wrong (None when right) and the answer."""
    start = time.perf_counter()
    body = b""
    try:
        session = pool.session(index)
        async with session.post(pool.url + workload.path, data=workload.payload, headers=JSON_HEADERS) as response:
            body = await response.read()
        problem = f"http {response.status}" if response.status != 200 else workload.check(orjson.loads(body))
    except (aiohttp.ClientError, orjson.JSONDecodeError, TimeoutError, OSError) as exc:
        problem, body = type(exc).__name__, str(exc).encode()
    latency_ms = (time.perf_counter() - start) * 1000
    # The whole answer: a caller may look into it (a batch's wrong results); `Outcome` keeps its start.
    return latency_ms, problem, body.decode(errors="replace") if problem else ""


async def closed_loop(pool: Pool, workload: Workload, concurrency: int, duration_s: float, drain_s: float) -> Outcome:
    outcome = Outcome()
    start = time.monotonic()
    stop_at = start + duration_s

    async def user(index: int) -> None:
        while time.monotonic() < stop_at:
            outcome.record(*await call_once(pool, index, workload))

    tasks = [asyncio.create_task(user(index)) for index in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=duration_s + drain_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    outcome.unfinished = len(pending)
    outcome.elapsed_s = time.monotonic() - start
    return outcome


def chunks(total: int, size: int) -> Iterator[int]:
    while total > 0:
        yield min(size, total)
        total -= size
