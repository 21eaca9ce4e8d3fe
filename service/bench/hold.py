"""The hold scenario: tens of thousands of calls outstanding at one gateway, all answered correctly.

Single calls each hold a connection of their own; when the server offers batches, part of the load
goes as 1,000-call batches instead, the way a training step fans out. Connections are opened at a
steady pace so the test measures holding calls, not surviving a connection storm. The gateway's RSS
is read before, at its peak and after.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from service.bench import workloads
from service.bench.load import Outcome, call_once, latency_summary, open_pool
from service.bench.procstat import Components, peak_rss_bytes, rss_bytes

BATCH_SIZE = 1000
# Share of the calls sent one per connection when batches are available; the rest go in batches.
SINGLE_SHARE = 0.2
# 1,000 new connections a second: a burst of 20,000/s overflows the listen backlog while the gateway
# is busy, and connections it never accepts are reset (see benchmarks/results/hold-20261123-053322.json).
OPEN_STEP = 100
OPEN_PAUSE_S = 0.1
SAMPLE_EVERY_S = 1.0


def split(total: int, use_batches: bool) -> tuple[int, int]:
    """How many single calls and how many batches carry `total` calls."""
    if not use_batches:
        return total, 0
    batches = int(total * (1 - SINGLE_SHARE)) // BATCH_SIZE
    return total - batches * BATCH_SIZE, batches


def _mib(pid: int | None, read: Any) -> float | None:
    return None if pid is None else round(read(pid) / 2**20, 1)


async def hold_calls(url: str, total: int, use_batches: bool, components: Components, drain_s: float) -> dict[str, Any]:
    singles, batches = split(total, use_batches)
    gateway = components.pids.get("gateway")
    rss_before = _mib(gateway, rss_bytes)
    outcome, batch_outcome = Outcome(), Outcome()
    in_flight = 0
    peak = 0

    async def one(index: int, workload: workloads.Workload, into: Outcome) -> None:
        nonlocal in_flight, peak
        in_flight += workload.items
        peak = max(peak, in_flight)
        into.record(*await call_once(pool, index, workload))
        in_flight -= workload.items

    start = time.monotonic()
    async with open_pool(url, singles + batches, request_timeout_s=drain_s) as pool:
        tasks: list[asyncio.Task[None]] = []
        batch = workloads.batch_of(BATCH_SIZE)
        jobs = [(workloads.TRIVIAL, outcome)] * singles + [(batch, batch_outcome)] * batches
        for index, (workload, into) in enumerate(jobs):
            tasks.append(asyncio.create_task(one(index, workload, into)))
            if index % OPEN_STEP == OPEN_STEP - 1:
                await asyncio.sleep(OPEN_PAUSE_S)
        _, pending = await asyncio.wait(tasks, timeout=max(1.0, drain_s - (time.monotonic() - start)))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    elapsed = time.monotonic() - start
    # Still waiting, connection open and no error, when the time bound hit: not lost, not yet answered.
    unfinished = in_flight
    errors = outcome.error_count + batch_outcome.error_count * BATCH_SIZE
    return {
        "scenario": "hold",
        "calls": total,
        "via_connections": singles,
        "via_batches": batches * BATCH_SIZE,
        "peak_outstanding": peak,
        "duration_s": round(elapsed, 1),
        "calls_per_s": round((total - unfinished) / elapsed, 1),
        "correct": len(outcome.latencies_ms) + len(batch_outcome.latencies_ms) * BATCH_SIZE,
        "errors": errors,
        "error_kinds": {**outcome.errors, **{f"batch {kind}": n for kind, n in batch_outcome.errors.items()}},
        "error_examples": {**outcome.examples, **{f"batch {kind}": e for kind, e in batch_outcome.examples.items()}},
        "unfinished": unfinished,
        "latency_ms": latency_summary(outcome.latencies_ms),
        "batch_latency_ms": latency_summary(batch_outcome.latencies_ms),
        "gateway_rss_mib": {
            "before": rss_before,
            "peak": _mib(gateway, peak_rss_bytes),
            "after": _mib(gateway, rss_bytes),
        },
    }
