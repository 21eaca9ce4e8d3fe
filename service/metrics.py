"""Every Prometheus metric Sandpit exports, named in one place.

Two registries: what a gateway serves on its `/metrics` and what a worker serves on its own port, so
neither exports the other's empty series. Recording is an in-memory increment (no Redis round trip);
queue-wide gauges are sampled from Redis every `metrics_sample_interval_s` by the gateway.

The gateway is one uvicorn process, so prometheus-client's default single-process mode is right: run
more gateways as replicas, each scraped on its own, never as uvicorn `--workers` sharing a port
(their counters would be scraped from whichever process answered). docs/operations.md lists them all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

# From 1 ms (a warm trivial call) to 2 minutes (the longest call plus its compile).
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

GATEWAY = CollectorRegistry()
WORKER = CollectorRegistry()
ProcessCollector(registry=GATEWAY)
ProcessCollector(registry=WORKER)

# Gateway: HTTP.
HTTP_REQUESTS = Counter(
    "sandpit_http_requests",
    "HTTP requests answered, by route template and status code",
    ["route", "code"],
    registry=GATEWAY,
)
HTTP_DURATION = Histogram(
    "sandpit_http_request_duration_seconds",
    "Time from request to the end of the response, by route template and language of the code it ran",
    ["route", "language"],
    buckets=SECONDS,
    registry=GATEWAY,
)
REJECTED = Counter(
    "sandpit_rejected",
    "Calls refused with 429, by reason (queue_full, tenant_quota, rate_limit) and tenant",
    ["reason", "tenant"],
    registry=GATEWAY,
)
RESULTS = Counter(
    "sandpit_gateway_results",
    "Results of the calls this gateway enqueued, as they arrived, by language and status",
    ["language", "status"],
    registry=GATEWAY,
)
RESULT_SECONDS = Histogram(
    "sandpit_gateway_result_seconds",
    "Time from enqueue to the result reaching this gateway, by language",
    ["language"],
    buckets=SECONDS,
    registry=GATEWAY,
)
JOBS_ENQUEUED = Counter("sandpit_jobs_enqueued", "Jobs put on the stream, by language", ["language"], registry=GATEWAY)
WAITING_CALLS = Gauge(
    "sandpit_gateway_waiting_calls", "Calls this gateway holds open, awaiting results", registry=GATEWAY
)

# Gateway: sampled from Redis (the whole deployment, as seen by this gateway).
QUEUE_DEPTH = Gauge("sandpit_queue_depth", "Jobs in the stream: waiting plus running", registry=GATEWAY)
QUEUE_WAITING = Gauge("sandpit_queue_waiting", "Jobs not yet handed to a worker", registry=GATEWAY)
QUEUE_RUNNING = Gauge("sandpit_queue_running", "Jobs handed to a worker and not yet answered", registry=GATEWAY)
QUEUE_OLDEST_AGE = Gauge(
    "sandpit_queue_oldest_age_seconds", "Age of the oldest unanswered job (waiting or running)", registry=GATEWAY
)
QUEUE_OLDEST_WAITING_AGE = Gauge(
    "sandpit_queue_oldest_waiting_age_seconds", "Age of the oldest job no worker has taken yet", registry=GATEWAY
)
WORKERS_LIVE = Gauge("sandpit_workers_live", "Workers whose heartbeat is fresh", registry=GATEWAY)
SLOTS = Gauge("sandpit_slots", "Sandbox slots of the live workers, by state (busy, free)", ["state"], registry=GATEWAY)
LIVE_WORKER_SLOTS = Gauge(
    "sandpit_live_worker_slots",
    "Sandbox slots of each live worker, by state (busy, free)",
    ["worker", "state"],
    registry=GATEWAY,
)

# Worker.
JOBS_DONE = Counter(
    "sandpit_worker_jobs", "Jobs this worker finished, by language and status", ["language", "status"], registry=WORKER
)
QUEUE_WAIT = Histogram(
    "sandpit_worker_queue_wait_seconds",
    "Time from enqueue to a worker starting the job (queued_ms)",
    ["language"],
    buckets=SECONDS,
    registry=WORKER,
)
EXECUTION = Histogram(
    "sandpit_worker_execution_seconds",
    "Time a worker spent on a job: marking it running, sandbox, compile, run, cleanup",
    ["language"],
    buckets=SECONDS,
    registry=WORKER,
)
SLOTS_BUSY = Gauge("sandpit_worker_slots_busy", "Sandbox slots of this worker running a job", registry=WORKER)
SLOTS_TOTAL = Gauge("sandpit_worker_slots", "Sandbox slots of this worker", registry=WORKER)
RECLAIMED = Counter(
    "sandpit_worker_reclaimed_jobs", "Jobs taken over from a dead worker and run again (redeliveries)", registry=WORKER
)
EXHAUSTED = Counter(
    "sandpit_worker_exhausted_jobs",
    "Jobs abandoned by dead workers max_attempts times, ended as sandbox_error",
    registry=WORKER,
)
SANDBOX_LAUNCH = Histogram(
    "sandpit_sandbox_launch_seconds",
    "Wall time of one sandboxed process (start, run, teardown), by path: warm (zygote fork) or cold (bubblewrap)",
    ["path"],
    buckets=SECONDS,
    registry=WORKER,
)
ZYGOTE_FAILURES = Counter(
    "sandpit_sandbox_zygote_failures", "Calls whose warm zygote failed, so they ran cold", registry=WORKER
)


def per_labels(metric: M) -> Callable[..., M]:
    """`metric.labels`, remembering the child of each combination of label values: `labels()` checks,
    converts and joins the values and takes a lock on every call, several times per call on the hot path.
    Only for metrics whose children are never removed (`clear`, `remove`), or a remembered child would
    count where no scrape sees it."""
    return functools.cache(metric.labels)


# The children recorded on every call, by label values.
HTTP_REQUESTS_BY = per_labels(HTTP_REQUESTS)
JOBS_ENQUEUED_BY = per_labels(JOBS_ENQUEUED)
HTTP_DURATION_BY = per_labels(HTTP_DURATION)
RESULTS_BY = per_labels(RESULTS)
RESULT_SECONDS_BY = per_labels(RESULT_SECONDS)
JOBS_DONE_BY = per_labels(JOBS_DONE)
QUEUE_WAIT_BY = per_labels(QUEUE_WAIT)
EXECUTION_BY = per_labels(EXECUTION)


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(registry)
