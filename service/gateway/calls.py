"""Submitting jobs and waiting for their results: what every endpoint that runs code shares.

A job is built from a validated request (`new_job`), given a shard (`ShardTurns`), enqueued in one
round trip, and awaited through the shared result listener while the client's connection is watched: a
client that goes away has its job cancelled (`cancel.py`). Only tracked jobs (`/v1/jobs`, and calls with an
`Idempotency-Key`) get a record in Redis; this gateway holds every other one itself. A caller that did not
submit a job (a long-poll, a repeated idempotency key) registers as a watcher so the worker that
publishes the result notifies this gateway too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

import orjson
from fastapi import HTTPException, Request

from service import logs, metrics
from service.gateway.auth import TooManyRequests, current_tenant
from service.gateway.cancel import ClientGone, abandon, unless_client_leaves
from service.gateway.limits import check_judge, judge_run_s, resolve_limits, run_budget_s
from service.gateway.state import GatewayState
from service.gateway.telemetry import note_job, note_outcome, rename_job
from service.models import ExecuteRequest, ExecutionResult, Job, JudgeSpec, Status
from service.queue.errors import REDIS_DOWN
from service.queue.jobs import JobSnapshot
from service.queue.keys import as_tracked, new_job_id
from service.queue.redis_queue import Delivery

log = logging.getLogger(__name__)
T = TypeVar("T")

# Time beyond its own limits a call may take to come back: queue hand-off, sandbox start, a redelivery.
RESULT_GRACE_S = 5.0
MAX_IDEMPOTENCY_KEY = 200
# What a refused caller is told to wait: about the time the queue takes to drain a little.
QUEUE_FULL_RETRY_S = 1.0
# How long the gateway keeps trying to withdraw the jobs of an enqueue cut off part-way, and how often.
WITHDRAW_FOR_S = 3.0
WITHDRAW_RETRY_S = 0.2


class QueueUnavailable(Exception):
    """Redis did not answer (the cause is chained): every route answers 503 through one handler."""


class NoLiveWorker(Exception):
    """No worker has sent a heartbeat lately: nothing could run the call (503, not a queue outage)."""


async def call_redis(awaitable: Awaitable[T]) -> T:
    """`awaitable`'s result, with "Redis is down" turned into the one exception routes answer 503 for."""
    try:
        return await awaitable
    except REDIS_DOWN as exc:
        raise QueueUnavailable from exc


def new_job(
    state: GatewayState,
    request: ExecuteRequest,
    reply_to: str | None,
    queue_wait_s: float,
    judge: JudgeSpec | None = None,
) -> Job:
    limits = resolve_limits(request, state.settings)
    if judge is not None:
        check_judge(judge, limits, state.settings)
    now = time.time()
    job = Job(
        id=new_job_id(next(state.shard_turns), tracked=reply_to is None),
        request=request,
        limits=limits,
        judge=judge,
        enqueued_at=now,
        start_by=now + queue_wait_s,
        reply_to=reply_to,
        request_id=logs.request_id.get(),
    )
    note_job(job)
    return job


def wait_budget_s(state: GatewayState, job: Job) -> float:
    """How long the caller of `job` should wait before the gateway gives up on it."""
    settings = state.settings
    judge_s = judge_run_s(job.judge, job.limits) if job.judge is not None else None
    run_s = run_budget_s(job.request, job.limits, judge_s)
    return max(0.0, job.start_by - time.time()) + run_s + settings.reclaim_idle_s + RESULT_GRACE_S


async def enqueue(state: GatewayState, jobs: list[Job], idempotency_key: str | None = None) -> None:
    """Admit the jobs against their shards' depth and the caller's quota, then enqueue them; else 429.

    An enqueue whose round trip failed may still have reached Redis (a write or read timed out after the
    commands went out): its jobs are withdrawn (`withdraw`) before the caller is told 503, so a client
    that sends the call again does not have it run twice. If every one of them already has its result,
    the enqueue took place and the caller waits for those results as usual.
    """
    tenant = current_tenant.get(state.tenants.default)
    counted = tenant.max_in_flight > 0
    for job in jobs:
        # Only a counted job names its tenant: the worker that acknowledges it gives the count back.
        job.tenant = tenant.name if counted else None
    settings = state.settings
    shards = [state.queue.keys.shard_of(job.id).index for job in jobs]
    refusal = await call_redis(
        state.admission.admit(tenant.name, shards, settings.max_queue_depth, tenant.max_in_flight)
    )
    if refusal is not None:
        raise TooManyRequests(refusal.value, QUEUE_FULL_RETRY_S, tenant.name)
    try:
        enqueued = await state.queue.enqueue_many(jobs, settings.result_ttl_s)
    except REDIS_DOWN as exc:
        unrun = await withdraw(state, jobs, idempotency_key, exc)
        if unrun == 0:
            return
        if counted:
            await give_back(state, tenant.name, unrun)
        raise QueueUnavailable from exc
    except BaseException:
        if counted:
            await give_back(state, tenant.name, len(jobs))
        raise
    finally:
        state.admission.entered(shards)
    state.listener.remember(enqueued)
    for job in jobs:
        metrics.JOBS_ENQUEUED_BY(job.request.language).inc()


async def give_back(state: GatewayState, tenant: str, jobs: int) -> None:
    """Undo the quota count of jobs that will never reach a worker's acknowledgement (which gives it back)."""
    with contextlib.suppress(*REDIS_DOWN):
        await state.admission.release(tenant, jobs)


async def withdraw(state: GatewayState, jobs: list[Job], idempotency_key: str | None, cause: BaseException) -> int:
    """Make sure jobs whose enqueue failed part-way never deliver a result, unless they already did; the
    number withdrawn (all of them if that is unknown).

    Each job gets a final `cancelled` result through the exactly-once publish (a worker that finishes it
    later loses), and the cancel flag and channel, so a worker skips it if it is on its stream or stops
    it if it runs. The idempotency key is released first, so a retry with it starts the call again.
    None withdrawn means every job already had its result: the enqueue took place after all. Redis is
    tried for `WITHDRAW_FOR_S`; if it cannot be reached, the jobs' fate is unknown (they may run).
    """
    reason = f"the queue did not confirm the enqueue ({type(cause).__name__}); withdrawn, not run"
    deliveries = [
        Delivery(ExecutionResult(id=job.id, status=Status.cancelled, reason=reason), job.reply_to) for job in jobs
    ]
    ttl_s = state.settings.result_ttl_s
    give_up_at = time.monotonic() + WITHDRAW_FOR_S
    while True:
        try:
            if idempotency_key is not None:
                await state.jobs.release_idempotency_key(idempotency_key, jobs[0].id)
            await state.queue.deliver(deliveries, ttl_s)
            # Which results stand is read back rather than taken from the publish's answer: an earlier
            # attempt, cut off like the enqueue, may have stored the withdrawal already.
            stored = [orjson.loads(raw) for raw in await state.queue.get_raw_results([job.id for job in jobs])]
            ran = {result["id"] for result in stored if result.get("reason") != reason}
            withdrawn = [job.id for job in jobs if job.id not in ran]
            if withdrawn:
                await state.jobs.request_cancel(withdrawn, ttl_s)
            break
        except REDIS_DOWN as exc:
            if time.monotonic() >= give_up_at:
                log.warning("enqueue of %d job(s) failed (%r) and could not be withdrawn (%r)", len(jobs), cause, exc)
                return len(jobs)
            await asyncio.sleep(WITHDRAW_RETRY_S)
    log.warning(
        "enqueue of %d job(s) failed (%r): %d withdrawn, %d had run", len(jobs), cause, len(withdrawn), len(ran)
    )
    return len(withdrawn)


async def claim_idempotency_key(state: GatewayState, key: str | None, job: Job) -> str | None:
    """The id of the job `key` was already used for, or None after binding it to `job`."""
    if key is None:
        return None
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise HTTPException(400, detail=f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    ttl_s = state.settings.result_ttl_s
    earlier = await call_redis(state.jobs.claim_idempotency_key(key, job.id, ttl_s))
    if earlier is None:
        return None
    # A gateway (or Redis) that died between binding the key and enqueuing its job left a key that
    # names a job nobody will ever run: the retry takes the key over instead of waiting for it.
    never_enqueued = await call_redis(state.jobs.snapshot(earlier)) == JobSnapshot(None, None)
    if never_enqueued and await call_redis(state.jobs.take_over_idempotency_key(key, earlier, job.id, ttl_s)):
        log.info("idempotency key of job %s named no job; taken over by %s", earlier, job.id)
        return None
    return earlier


async def run_and_wait(state: GatewayState, job: Job, http: Request, idempotency_key: str | None = None) -> bytes:
    """Enqueue `job` (or follow the job its idempotency key names) and return its result JSON.

    If the client disconnects first, the job is cancelled and `ClientGone` raised.
    """
    budget_s = wait_budget_s(state, job)
    if idempotency_key is not None:
        track(job)
    while (earlier := await claim_idempotency_key(state, idempotency_key, job)) is not None:
        raw = await wait_for_job(state, earlier, budget_s)
        if raw is None:
            raise no_result(earlier)
        if not await key_freed_by_abandon(state, idempotency_key, earlier, raw):
            return raw
    future = state.listener.expect(job.id)
    try:
        await enqueue(state, [job], idempotency_key)
        raw = await unless_client_leaves(http, future, budget_s)
        note_outcome(job, raw)
        return raw
    except TimeoutError:
        raise no_result(job.id) from None
    except ClientGone:
        await abandon(state, [job], idempotency_key)
        raise
    finally:
        state.listener.discard(job.id)


def track(job: Job) -> None:
    """Mark a job tracked (it gets a record), as a job another caller may follow through its key."""
    tracked = as_tracked(job.id)
    rename_job(job.id, tracked)
    job.id = tracked


async def key_freed_by_abandon(state: GatewayState, key: str | None, job_id: str, raw: bytes) -> bool:
    """Whether `raw` is the `cancelled` result of a job whose caller went away and freed `key`: a retry
    with that key wants its call run again, not that result. A job cancelled by DELETE keeps its key."""
    if key is None or orjson.loads(raw).get("status") != Status.cancelled:
        return False
    return await call_redis(state.jobs.idempotency_job(key)) != job_id


async def wait_for_job(state: GatewayState, job_id: str, timeout_s: float) -> bytes | None:
    """The result of a job submitted elsewhere, waiting up to `timeout_s` for it; None if not yet."""
    future = state.listener.expect(job_id)
    try:
        await call_redis(state.jobs.watch(job_id, state.id, timeout_s + RESULT_GRACE_S))
        # Watching first, then reading, leaves no gap: a result published in between is read here.
        raw = (await call_redis(state.jobs.snapshot(job_id))).raw_result
        if raw is not None or timeout_s <= 0:
            return raw
        return await asyncio.wait_for(future, timeout_s)
    except TimeoutError:
        return None
    finally:
        state.listener.discard(job_id)


async def give_up(state: GatewayState, job: Job) -> bytes:
    """End a job its caller can wait no longer for: a `sandbox_error` unless a real result won the race."""
    reason = "no result within the call's deadline"
    result = ExecutionResult(id=job.id, status=Status.sandbox_error, reason=reason)
    await state.queue.publish_final(result, job.reply_to, None, state.settings.result_ttl_s)
    raw = (await state.jobs.snapshot(job.id)).raw_result
    return raw if raw is not None else result.model_dump_json().encode()


def no_result(job_id: str) -> HTTPException:
    return HTTPException(504, detail={"id": job_id, "message": "no result within the call's deadline"})
