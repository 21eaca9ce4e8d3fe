"""Start one worker process: connect, check the sandbox works here, report its runtimes, run until SIGTERM
or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import signal

import uvloop

from service.config import Settings
from service.queue.redis_queue import RedisQueue, connect
from service.queue.tasks import wait_briefly
from service.sandbox.executor import Sandbox
from service.stack import allow_open_files
from service.worker.loop import Worker
from service.worker.metrics_server import metrics_server
from service.worker.runtimes import report_runtimes


async def serve_worker(settings: Settings) -> None:
    allow_open_files()
    sandbox = Sandbox(settings)
    sandbox.check()
    await sandbox.start()
    redis = connect(settings)
    worker = Worker(settings, RedisQueue.for_settings(redis, settings), sandbox)
    # What start-up made lives as long as the process: frozen, a full collection (about one per 3,000
    # calls) no longer walks its ~63,000 objects, tens of milliseconds each time. Unfrozen on the way
    # out, so a process that starts another (the tests) leaves nothing uncollectable behind.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    runtimes = asyncio.create_task(
        report_runtimes(settings, worker.queue, worker.id, sandbox.limiter.mode.value), name="runtimes"
    )
    try:
        async with metrics_server(settings.worker_metrics_host, settings.worker_metrics_port):
            await worker.run()
    finally:
        gc.unfreeze()
        runtimes.cancel()
        await wait_briefly(runtimes)
        await redis.aclose()
        await sandbox.aclose()


def run_worker(settings: Settings) -> None:
    # uvloop, as the gateway: its loop costs the worker less CPU per call than asyncio's own.
    uvloop.run(serve_worker(settings))
