"""The gateway's telemetry: request ids, per-request metrics, `/metrics`, and the queue sampler.

`TelemetryMiddleware` (plain ASGI, a few microseconds per request) takes the caller's `X-Request-ID`
or makes one, returns it, and counts each request by route template, status code and the language
of the code it ran (`note_language`, called where jobs are built). Queue-wide gauges come from
`sample_queue_forever`, one Redis read every `metrics_sample_interval_s`, not per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import logs, metrics
from service.config import Settings
from service.models import Job
from service.queue.redis_queue import RedisQueue
from service.queue.stats import read_stats
from service.queue.tasks import wait_briefly

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
# A caller's id is kept when it is short and printable; anything else is replaced, not echoed.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
NO_LANGUAGE = "none"
RESULT_STATUS = re.compile(rb'"status":"([a-z_]+)"')
# The debug line of a batch request names its first jobs only.
MAX_LOGGED_JOB_IDS = 10

router = APIRouter()


@dataclass
class CallLabels:
    language: str = NO_LANGUAGE
    job_ids: list[str] = field(default_factory=list)


call_labels: ContextVar[CallLabels | None] = ContextVar("call_labels", default=None)


def note_job(job: Job) -> None:
    """Label the current request with the language it runs (`mixed` for a batch of several) and its job."""
    labels = call_labels.get()
    if labels is None:
        return
    language = job.request.language
    labels.language = language if labels.language in (NO_LANGUAGE, language) else "mixed"
    if len(labels.job_ids) < MAX_LOGGED_JOB_IDS:
        labels.job_ids.append(job.id)


def rename_job(old_id: str, new_id: str) -> None:
    """A job noted by `note_job` got a new id before it was enqueued."""
    labels = call_labels.get()
    if labels is not None and old_id in labels.job_ids:
        labels.job_ids[labels.job_ids.index(old_id)] = new_id


def note_outcome(job: Job, raw: bytes) -> None:
    """Count a result where it arrives, so the gateway's /metrics alone shows what calls end as."""
    # The status is the result's second field, after the 32-character id: no need to parse the rest.
    found = RESULT_STATUS.search(raw, 0, 128)
    status = found[1].decode() if found else "unknown"
    metrics.RESULTS_BY(job.request.language, status).inc()
    metrics.RESULT_SECONDS_BY(job.request.language).observe(max(0.0, time.time() - job.enqueued_at))


def incoming_request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            text: str = value.decode("latin-1")
            if VALID_REQUEST_ID.fullmatch(text):
                return text
    return uuid.uuid4().hex


class TelemetryMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope)
        labels = CallLabels()
        request_token = logs.request_id.set(request_id)
        labels_token = call_labels.set(labels)
        code = 500
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            metrics.HTTP_REQUESTS_BY(template, str(code)).inc()
            elapsed_s = time.perf_counter() - started
            metrics.HTTP_DURATION_BY(template, labels.language).observe(elapsed_s)
            if log.isEnabledFor(logging.DEBUG):
                log_request(scope, template, code, elapsed_s, labels)
            call_labels.reset(labels_token)
            logs.request_id.reset(request_token)


def log_request(scope: Scope, route: str, code: int, elapsed_s: float, labels: CallLabels) -> None:
    fields: dict[str, object] = {"method": scope["method"], "route": route, "code": code}
    fields["duration_ms"] = round(elapsed_s * 1000, 3)
    if len(labels.job_ids) == 1:
        fields["job_id"] = labels.job_ids[0]
    elif labels.job_ids:
        fields["job_ids"] = labels.job_ids
    log.debug("%s %s %d", scope["method"], scope["path"], code, extra=fields)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(metrics.exposition(metrics.GATEWAY), media_type=CONTENT_TYPE_LATEST)


async def sample_queue(queue: RedisQueue, settings: Settings) -> None:
    stats = await read_stats(queue.redis, queue.keys, settings.heartbeat_ttl_s)
    metrics.QUEUE_DEPTH.set(stats.depth)
    metrics.QUEUE_WAITING.set(stats.waiting)
    metrics.QUEUE_RUNNING.set(stats.running)
    metrics.QUEUE_OLDEST_AGE.set(stats.oldest_age_s)
    metrics.QUEUE_OLDEST_WAITING_AGE.set(stats.oldest_waiting_age_s)
    metrics.WORKERS_LIVE.set(len(stats.workers))
    metrics.SLOTS.labels("busy").set(stats.slots_busy)
    metrics.SLOTS.labels("free").set(max(0, stats.slots_total - stats.slots_busy))
    # Only the workers alive now: a gone worker's series disappear instead of lingering.
    metrics.LIVE_WORKER_SLOTS.clear()
    for worker in stats.workers:
        metrics.LIVE_WORKER_SLOTS.labels(worker.id, "busy").set(worker.busy)
        metrics.LIVE_WORKER_SLOTS.labels(worker.id, "free").set(max(0, worker.total - worker.busy))


async def sample_queue_forever(queue: RedisQueue, settings: Settings) -> None:
    while True:
        try:
            await sample_queue(queue, settings)
        except (RedisError, OSError) as exc:
            log.debug("queue sample failed: %s", exc)
        await asyncio.sleep(settings.metrics_sample_interval_s)


@contextlib.asynccontextmanager
async def queue_sampler(queue: RedisQueue, settings: Settings) -> AsyncIterator[None]:
    task = asyncio.create_task(sample_queue_forever(queue, settings), name="queue-sampler")
    try:
        yield
    finally:
        task.cancel()
        await wait_briefly(task)
