"""Driving many trivial calls through one or more gateways, the way rollout clients do, and counting.

Call i runs `print(i)`, so every answer can be checked. A client whose call fails in transit, or gets
429, 503 or 504, sends it again (to the next gateway) with the same `Idempotency-Key`, as the client
library does; a call is lost if it never gets its right answer within the run's time limit.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_STATUSES = (429, 503, 504)
RETRY_DELAY_S = 0.2


@dataclass
class Run:
    calls: int
    right: int = 0
    retries: int = 0
    wrong: list[str] = field(default_factory=list)
    # call index -> the result it was answered with
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def lost(self) -> int:
        return self.calls - self.right


async def drive(
    gateway_urls: list[str], calls: int, in_flight: int, time_limit_s: float, keyed: bool = True, run: Run | None = None
) -> Run:
    """Send `calls` calls, `in_flight` at a time, round robin over the gateways; `run` (if given) is
    filled in as answers arrive, for a caller that acts on progress."""
    run = run if run is not None else Run(calls)
    gate = asyncio.Semaphore(in_flight)
    limits = httpx.Limits(max_connections=in_flight + 8, max_keepalive_connections=in_flight + 8)
    deadline = time.monotonic() + time_limit_s
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0), limits=limits) as client:

        async def one(index: int) -> None:
            headers = {"Idempotency-Key": uuid.uuid4().hex} if keyed else {}
            # A generous limit: on a machine loaded by other work, even `print` can take seconds.
            body = {"language": "python", "code": f"print({index})", "timeout_s": 30}
            attempt = 0
            async with gate:
                while time.monotonic() < deadline:
                    url = gateway_urls[(index + attempt) % len(gateway_urls)]
                    attempt += 1
                    try:
                        response = await client.post(f"{url}/v1/execute", json=body, headers=headers)
                    except httpx.TransportError:
                        run.retries += 1
                        await asyncio.sleep(RETRY_DELAY_S)
                        continue
                    if response.status_code in RETRY_STATUSES:
                        run.retries += 1
                        await asyncio.sleep(RETRY_DELAY_S)
                        continue
                    result = response.json()
                    run.answers[index] = result
                    if response.status_code == 200 and (result.get("status"), result.get("stdout")) == (
                        "ok",
                        f"{index}\n",
                    ):
                        run.right += 1
                    else:
                        run.wrong.append(f"{index}: {response.status_code} {response.text[:200]}")
                    return

        await asyncio.gather(*(one(index) for index in range(calls)))
    run.elapsed_s = time.monotonic() - started
    return run
