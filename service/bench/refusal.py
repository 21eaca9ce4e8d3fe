"""How fast an overloaded Sandpit says no: the latency of a 429 (`queue_full`).

Starts its own local stack whose queue holds at most `QUEUE_DEPTH` jobs, fills it with slow calls,
then sends `REFUSED_CALLS` calls one after another, each of which must come back 429 with
`Retry-After` and reason `queue_full`. Prints one JSON line with p50/p99/max against the brief's
50 ms, and saves it under benchmarks/results/. Run by `make bench`; loopback only, bounded.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import httpx
import orjson

from service.bench.machine import describe_machine, save_results
from service.config import load_settings
from service.stack import LocalStack, free_port

QUEUE_DEPTH = 8
REFUSED_CALLS = 300
TARGET_MS = 50.0
SLOW = {"language": "python", "code": "import time\ntime.sleep(3)", "timeout_s": 10}
QUICK = {"language": "python", "code": "print(1)"}


def percentile(sorted_ms: list[float], fraction: float) -> float:
    return round(sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * fraction))], 2)


async def measure_refusals(url: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=QUEUE_DEPTH + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        slow = [asyncio.create_task(client.post("/v1/execute", json=SLOW)) for _ in range(QUEUE_DEPTH)]
        await asyncio.sleep(1.0)
        latencies: list[float] = []
        wrong = 0
        for _ in range(REFUSED_CALLS):
            started = time.perf_counter()
            response = await client.post("/v1/execute", json=QUICK)
            latencies.append((time.perf_counter() - started) * 1000)
            refused = response.status_code == 429 and response.headers.get("retry-after")
            wrong += not (refused and response.json().get("reason") == "queue_full")
        await asyncio.gather(*slow)
    latencies.sort()
    p99 = percentile(latencies, 0.99)
    return {
        "scenario": "refusal_429",
        "calls": REFUSED_CALLS,
        "errors": wrong,
        "latency_ms": {"p50": percentile(latencies, 0.5), "p99": p99, "max": round(latencies[-1], 2)},
        "target_ms": TARGET_MS,
        "met": wrong == 0 and p99 <= TARGET_MS,
    }


def main() -> int:
    settings = load_settings(port=free_port(), worker_concurrency=2, max_queue_depth=QUEUE_DEPTH)
    machine = describe_machine()
    with LocalStack(settings, workers=1, redis_url_given=False) as stack:
        record = asyncio.run(measure_refusals(stack.url))
    print(orjson.dumps(record).decode())
    path = save_results("refusal", machine, [record])
    print(f"saved {path}", file=sys.stderr)
    return 0 if record["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
