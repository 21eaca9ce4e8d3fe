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
import contextlib
import multiprocessing
import multiprocessing.connection
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from service.bench.machine import describe_machine, save_results
from service.bench.redis_stats import RedisMeter, cost_per_call
from service.config import Settings
from service.gateway.limits import resolve_limits
from service.models import ExecuteRequest, ExecutionResult, Job, Limits, Status
from service.queue.keys import ShardTurns, new_job_id
from service.queue.listener import ResultListener
from service.queue.redis_queue import Claimed, Delivery, RedisQueue, connect
from service.stack import LocalStack, free_port
from service.worker.loop import CLAIM_BLOCK_MS, Outbox

RESULT_TTL_S = 60
# What a worker reads at most in one XREADGROUP (its free slots, capped as `worker_batch` caps them).
CLAIM_COUNT = 64
CALL_TIMEOUT_S = 30.0


class Gateway:
    """The Redis side of one gateway: its own connections, queue and result listener."""

    def __init__(self, settings: Settings) -> None:
        self.client = connect(settings)
        self.queue = RedisQueue.for_settings(self.client, settings)
        self.id = f"bench-{uuid.uuid4().hex[:8]}"
        self.listener = ResultListener(self.queue, self.id)
        self.turns = ShardTurns(settings.queue_shards)

    async def call(self, request: ExecuteRequest, limits: Limits) -> bool:
        """One synchronous call, as `/v1/execute` makes it: True if the answer was this call's."""
        now = time.time()
        job_id = new_job_id(next(self.turns), tracked=False)
        job = Job(id=job_id, request=request, limits=limits, enqueued_at=now, start_by=now + 60, reply_to=self.id)
        future = self.listener.expect(job.id)
        try:
            await self.queue.enqueue(job)
            raw = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        finally:
            self.listener.discard(job.id)
        return bool(orjson.loads(raw).get("id") == job.id)

    async def close(self) -> None:
        await self.listener.stop()
        await self.client.aclose()


async def gateway_side(settings: Settings, gateways: int, in_flight: int, seconds: float) -> dict[str, Any]:
    """`in_flight` calls kept going for `seconds`, spread over `gateways` that share no connection."""
    fleet = [Gateway(settings) for _ in range(gateways)]
    for gateway in fleet:
        await gateway.listener.start()
    request = ExecuteRequest(language="python", code="print(1+1)")
    limits = resolve_limits(request, settings)
    answered = wrong = 0
    stop_at = time.monotonic() + seconds

    async def caller(gateway: Gateway) -> None:
        nonlocal answered, wrong
        while time.monotonic() < stop_at:
            if await gateway.call(request, limits):
                answered += 1
            else:
                wrong += 1

    started = time.monotonic()
    await asyncio.gather(*(caller(fleet[index % gateways]) for index in range(in_flight)))
    elapsed = time.monotonic() - started
    for gateway in fleet:
        await gateway.close()
    return {"answered": answered, "wrong": wrong, "elapsed_s": elapsed}


class Worker:
    """The Redis side of one worker: its claim reads (one loop per shard) and its `Outbox`; every job is
    answered at once with a fixed result, in place of the sandbox."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = connect(settings)
        self.queue = RedisQueue.for_settings(self.client, settings)
        self.stopping = asyncio.Event()
        self.outbox = Outbox(self.queue, RESULT_TTL_S, self.stopping)
        self.consumer = f"bench-worker-{uuid.uuid4().hex[:6]}"
        self.answering: set[asyncio.Task[None]] = set()
        self.claims: list[asyncio.Task[None]] = []

    def start(self) -> None:
        shards = range(self.settings.queue_shards)
        self.claims = [asyncio.create_task(self._claim_forever(shard)) for shard in shards]

    async def _claim_forever(self, shard: int) -> None:
        while not self.stopping.is_set():
            for claimed in await self.queue.claim_jobs(self.consumer, CLAIM_COUNT, CLAIM_BLOCK_MS, shard):
                task = asyncio.create_task(self._answer(claimed))
                self.answering.add(task)
                task.add_done_callback(self.answering.discard)

    async def _answer(self, claimed: Claimed) -> None:
        job = claimed.job
        result = ExecutionResult(id=job.id, status=Status.ok, stdout="2\n", exit_code=0)
        await self.outbox.publish(Delivery(result, job.reply_to, claimed.entry_id, job.tenant, claimed.reclaimed))

    async def stop(self) -> None:
        self.stopping.set()
        for claim in self.claims:
            claim.cancel()
        await asyncio.gather(*self.claims, *self.answering, return_exceptions=True)
        await self.client.aclose()


async def worker_side(settings: Settings, workers: int, stop: multiprocessing.connection.Connection) -> None:
    fleet = [Worker(settings) for _ in range(workers)]
    await fleet[0].queue.ensure_group()
    for worker in fleet:
        worker.start()
    await asyncio.to_thread(stop.recv)
    for worker in fleet:
        await worker.stop()


def run_worker_side(settings: Settings, workers: int, stop: multiprocessing.connection.Connection) -> None:
    asyncio.run(worker_side(settings, workers, stop))


@dataclass(frozen=True)
class Shape:
    """What one run puts on Redis."""

    in_flight: int
    gateways: int = 8
    workers: int = 4
    shards: int = 1
    seconds: float = 10.0
    cluster: bool = False


async def measure(url: str, shape: Shape) -> dict[str, Any]:
    """One run: `in_flight` calls kept going for `seconds` through the queue on `url` (a node of a Redis
    Cluster if `cluster`), and what they cost its primaries."""
    prefix = f"qcap{uuid.uuid4().hex[:6]}"
    settings = Settings(redis_url=url, key_prefix=prefix, queue_shards=shape.shards, redis_cluster=shape.cluster)
    context = multiprocessing.get_context("spawn")
    stop_reader, stop_writer = context.Pipe(duplex=False)
    worker = context.Process(target=run_worker_side, args=(settings, shape.workers, stop_reader), daemon=True)
    worker.start()
    # A short warm-up: connections opened, the group made, the listeners subscribed.
    await gateway_side(settings, shape.gateways, 2 * shape.gateways, 1.0)
    meter = await RedisMeter.discover(url)
    try:
        before = await meter.snapshot()
        outcome = await gateway_side(settings, shape.gateways, shape.in_flight, shape.seconds)
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
        **asdict(shape),
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
    parser.add_argument("--gateways", type=int, default=8, help="gateways sharing no connection (default 8)")
    parser.add_argument("--workers", type=int, default=4, help="workers sharing no connection (default 4)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--redis-url", help="measure this Redis instead of starting the local stack")
    parser.add_argument("--cluster", action="store_true", help="--redis-url names a node of a Redis Cluster")
    parser.add_argument("--no-save", action="store_true", help="print only; save nothing under benchmarks/results/")
    args = parser.parse_args()
    machine = describe_machine()
    records = []
    with contextlib.ExitStack() as running:
        url = args.redis_url
        if url is None:
            # The stack's own worker (the gateway is ready only with one) reads other keys and stays idle.
            stack = running.enter_context(LocalStack(Settings(port=free_port()), workers=1, redis_url_given=False))
            url = stack.settings.redis_url
        for in_flight in args.in_flight:
            shape = Shape(in_flight, args.gateways, args.workers, args.shards, args.seconds, args.cluster)
            record = asyncio.run(measure(url, shape))
            print(orjson.dumps(record).decode(), flush=True)
            records.append(record)
    if not args.no_save:
        print(f"saved {save_results('queue-capacity', machine, records)}", file=sys.stderr)


if __name__ == "__main__":
    main()
