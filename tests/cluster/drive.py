"""Driving many trivial calls through one or more gateways, the way rollout clients do, and counting.

Call i runs `print(i)`, so every answer can be checked. A client whose call fails in transit, or gets
429, 503 or 504, sends it again (to the next gateway) with the same `Idempotency-Key`, as the client
library does; a call is lost if it never gets its right answer within the run's time limit.

The client is aiohttp, as `sandpit bench`'s load generator: it shares the machine's two cores with the
service, and httpx spent ~3 ms of CPU per call here, enough to hold the rate below what the service
gives (and with it, how many calls share each of Redis's wake-ups).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

RETRY_STATUSES = (429, 503, 504)
RETRY_DELAY_S = 0.2
JSON_HEADERS = {"content-type": "application/json"}


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
    gateway_urls: list[str],
    calls: int,
    in_flight: int,
    time_limit_s: float,
    keyed: bool = True,
    run: Run | None = None,
    rate_per_s: float | None = None,
) -> Run:
    """Send `calls` calls, `in_flight` at a time, round robin over the gateways; `run` (if given) is
    filled in as answers arrive, for a caller that acts on progress. With `rate_per_s`, call i is not
    sent before i / rate_per_s seconds into the run."""
    run = run if run is not None else Run(calls)
    gate = asyncio.Semaphore(in_flight)
    connector = aiohttp.TCPConnector(limit=in_flight + 8)
    timeout = aiohttp.ClientTimeout(total=30.0, connect=5.0)
    deadline = time.monotonic() + time_limit_s
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def one(index: int) -> None:
            headers = {**JSON_HEADERS, "Idempotency-Key": uuid.uuid4().hex} if keyed else JSON_HEADERS
            # A generous limit: on a machine loaded by other work, even `print` can take seconds.
            body = orjson.dumps({"language": "python", "code": f"print({index})", "timeout_s": 30})
            attempt = 0
            if rate_per_s is not None:
                await asyncio.sleep(max(0.0, started + index / rate_per_s - time.monotonic()))
            async with gate:
                while time.monotonic() < deadline:
                    url = gateway_urls[(index + attempt) % len(gateway_urls)]
                    attempt += 1
                    try:
                        async with client.post(f"{url}/v1/execute", data=body, headers=headers) as response:
                            status, text = response.status, await response.read()
                    except (aiohttp.ClientError, TimeoutError):
                        run.retries += 1
                        await asyncio.sleep(RETRY_DELAY_S)
                        continue
                    if status in RETRY_STATUSES:
                        run.retries += 1
                        await asyncio.sleep(RETRY_DELAY_S)
                        continue
                    result = orjson.loads(text)
                    run.answers[index] = result
                    if status == 200 and (result.get("status"), result.get("stdout")) == ("ok", f"{index}\n"):
                        run.right += 1
                    else:
                        run.wrong.append(f"{index}: {status} {text[:200]!r}")
                    return

        await asyncio.gather(*(one(index) for index in range(calls)))
    run.elapsed_s = time.monotonic() - started
    return run
