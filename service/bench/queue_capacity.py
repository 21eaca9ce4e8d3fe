"""How many calls one Redis core can carry: the queue's own Redis traffic, with the sandbox taken out.

`python -m service.bench.queue_capacity [--in-flight 32 256 2048] [--seconds 10] [--shards 1]` starts
the local stack as `sandpit up` does (Redis with its append-only file on), then runs two processes
against its Redis, under their own key prefix:

- a gateway side: the gateway's own `RedisQueue` and `ResultListener`, keeping N synchronous calls in
  flight (new job, enqueue, wait for the published result);
- a worker side: the worker's claim reads and its `Outbox`, answering every job at once with a fixed
  result. This stands in for the sandbox, which on this 2-core machine would cap the rate near 250
  calls/s, long before Redis; it is the only part not run as in production.

For each number in flight it prints one JSON line: calls/s, Redis CPU per call and the share of a core
Redis used, Redis commands and command time per call, and `calls_per_redis_core_s`, the calls/s one
Redis core would carry at that cost per call. Redis spends most of its CPU per round trip, not per
command, so the cost per call falls as more calls share each round trip: the figure at many calls in
flight is what a busy deployment sees, the one at 32 what a lightly loaded one does.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import sys
import time
import uuid
from typing import Any

import orjson

from service.bench.machine import describe_machine, save_results
from service.bench.redis_stats import RedisMeter, cost_per_call
from service.config import Settings
from service.gateway.limits import resolve_limits
from service.models import ExecuteRequest, ExecutionResult, Job, Status
from service.queue.keys import ShardTurns, new_job_id
from service.queue.listener import ResultListener
from service.queue.redis_queue import Claimed, Delivery, RedisQueue, connect
from service.stack import LocalStack, free_port
from service.worker.loop import CLAIM_BLOCK_MS, Outbox

RESULT_TTL_S = 60
# What a worker reads at most in one XREADGROUP (its free slots, capped as `worker_batch` caps them).
CLAIM_COUNT = 64
CALL_TIMEOUT_S = 30.0


def settings_for(url: str, prefix: str, shards: int) -> Settings:
    return Settings(redis_url=url, key_prefix=prefix, queue_shards=shards)


async def gateway_side(settings: Settings, in_flight: int, seconds: float) -> dict[str, Any]:
    client = connect(settings)
    queue = RedisQueue.for_settings(client, settings)
    gateway_id = f"bench-{uuid.uuid4().hex[:8]}"
    listener = ResultListener(queue, gateway_id)
    await listener.start()
    turns = ShardTurns(settings.queue_shards)
    request = ExecuteRequest(language="python", code="print(1+1)")
    limits = resolve_limits(request, settings)
    answered = wrong = 0
    stop_at = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal answered, wrong
        while time.monotonic() < stop_at:
            now = time.time()
            job_id = new_job_id(next(turns), tracked=False)
            job = Job(
                id=job_id, request=request, limits=limits, enqueued_at=now, start_by=now + 60, reply_to=gateway_id
            )
            future = listener.expect(job.id)
            try:
                await queue.enqueue(job)
                raw = await asyncio.wait_for(future, CALL_TIMEOUT_S)
            finally:
                listener.discard(job.id)
            if orjson.loads(raw).get("id") == job.id:
                answered += 1
            else:
                wrong += 1

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(in_flight)))
    elapsed = time.monotonic() - started
    await listener.stop()
    await client.aclose()
    return {"answered": answered, "wrong": wrong, "elapsed_s": elapsed}


async def worker_side(settings: Settings, stop: multiprocessing.connection.Connection) -> None:
    client = connect(settings)
    queue = RedisQueue.for_settings(client, settings)
    await queue.ensure_group()
    stopping = asyncio.Event()
    outbox = Outbox(queue, RESULT_TTL_S, stopping)
    consumer = f"bench-worker-{uuid.uuid4().hex[:6]}"
    answering: set[asyncio.Task[None]] = set()

    async def answer(claimed: Claimed) -> None:
        result = ExecutionResult(id=claimed.job.id, status=Status.ok, stdout="2\n", exit_code=0)
        job = claimed.job
        await outbox.publish(Delivery(result, job.reply_to, claimed.entry_id, job.tenant, claimed.reclaimed))

    async def claim_forever(shard: int) -> None:
        while not stopping.is_set():
            for claimed in await queue.claim_jobs(consumer, CLAIM_COUNT, CLAIM_BLOCK_MS, shard):
                task = asyncio.create_task(answer(claimed))
                answering.add(task)
                task.add_done_callback(answering.discard)

    claims = [asyncio.create_task(claim_forever(shard)) for shard in range(settings.queue_shards)]
    await asyncio.to_thread(stop.recv)
    stopping.set()
    for claim in claims:
        claim.cancel()
    await asyncio.gather(*claims, *answering, return_exceptions=True)
    await client.aclose()


def run_worker_side(settings: Settings, stop: multiprocessing.connection.Connection) -> None:
    asyncio.run(worker_side(settings, stop))


async def measure(url: str, shards: int, in_flight: int, seconds: float) -> dict[str, Any]:
    settings = settings_for(url, f"qcap{uuid.uuid4().hex[:6]}", shards)
    context = multiprocessing.get_context("spawn")
    stop_reader, stop_writer = context.Pipe(duplex=False)
    worker = context.Process(target=run_worker_side, args=(settings, stop_reader), daemon=True)
    worker.start()
    # A short warm-up: connections opened, the group made, the listener subscribed.
    await gateway_side(settings, 8, 1.0)
    meter = RedisMeter([url])
    try:
        before = await meter.snapshot()
        outcome = await gateway_side(settings, in_flight, seconds)
        after = await meter.snapshot()
    finally:
        await meter.close()
        stop_writer.send(True)
        worker.join(10)
        if worker.is_alive():
            worker.kill()
    calls = outcome["answered"]
    cost = cost_per_call(before, after, calls)
    cpu_us = cost["cpu_us_per_call"]
    return {
        "scenario": "queue_capacity",
        "shards": shards,
        "in_flight": in_flight,
        "calls": calls,
        "wrong": outcome["wrong"],
        "calls_per_s": round(calls / outcome["elapsed_s"], 1),
        "redis_core_share": round((after.cpu_s - before.cpu_s) / outcome["elapsed_s"], 3),
        "calls_per_redis_core_s": round(1e6 / cpu_us) if cpu_us else None,
        **{key: value for key, value in cost.items() if key != "calls"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-flight", type=int, nargs="+", default=[32, 256, 2048])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--no-save", action="store_true", help="print only; save nothing under benchmarks/results/")
    args = parser.parse_args()
    machine = describe_machine()
    records = []
    settings = Settings(port=free_port())
    # The stack's own worker (the gateway is ready only with one) reads other keys and stays idle.
    with LocalStack(settings, workers=1, redis_url_given=False) as stack:
        for in_flight in args.in_flight:
            record = asyncio.run(measure(stack.settings.redis_url, args.shards, in_flight, args.seconds))
            print(orjson.dumps(record).decode(), flush=True)
            records.append(record)
    if not args.no_save:
        print(f"saved {save_results('queue-capacity', machine, records)}", file=sys.stderr)


if __name__ == "__main__":
    main()
