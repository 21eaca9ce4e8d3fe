"""Asynchronous jobs: submit now, ask later (optionally long-polling), or cancel.

`POST /v1/jobs` enqueues and answers at once with the job id. `GET /v1/jobs/{id}` reports
queued / running / done (with the result) for any job, including ones sent to `/v1/execute`;
`?wait=S` holds the request until the result exists or S seconds pass, through the shared result
listener. `DELETE /v1/jobs/{id}` cancels the job (`cancel.py`). A job submitted here runs whether or
not its submitter stays connected.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from service.gateway.calls import call_redis, claim_idempotency_key, enqueue, new_job, wait_for_job
from service.gateway.cancel import cancel_jobs
from service.gateway.openapi import QUEUE_UNAVAILABLE
from service.gateway.routes import IdempotencyKey
from service.gateway.state import GatewayState, gateway_state
from service.models import ExecuteRequest, ExecutionResult, JobInfo, JobState, Status
from service.queue.jobs import JobSnapshot

router = APIRouter()
State = Annotated[GatewayState, Depends(gateway_state)]
JobId = Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="The id `POST /v1/jobs` or a result gave")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such job, or its result has expired"}}


@router.post(
    "/v1/jobs",
    status_code=202,
    response_model=JobInfo,
    summary="Queue a call and answer at once with its id",
    responses={422: {"description": "Invalid request"}, 503: {"description": "Queue unavailable; retry later"}},
)
async def submit_job(request: ExecuteRequest, state: State, idempotency_key: IdempotencyKey = None) -> JobInfo:
    job = new_job(state, request, reply_to=None, queue_wait_s=state.settings.job_queue_wait_s)
    earlier = await claim_idempotency_key(state, idempotency_key, job)
    if earlier is not None:
        return await job_info(state, earlier)
    await enqueue(state, [job], idempotency_key)
    return JobInfo(id=job.id, state=JobState.queued)


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobInfo,
    response_model_exclude_none=True,
    summary="A job's state (queued, running, done) and, once done, its result",
    responses={**NOT_FOUND, **QUEUE_UNAVAILABLE},
)
async def get_job(
    job_id: JobId,
    state: State,
    wait: Annotated[float, Query(ge=0, description="Seconds to wait for the result before answering")] = 0.0,
) -> JobInfo:
    info = await job_info(state, job_id)
    if info.state == JobState.done or wait <= 0:
        return info
    await wait_for_job(state, job_id, min(wait, state.settings.max_long_poll_s))
    return await job_info(state, job_id)


@router.delete(
    "/v1/jobs/{job_id}",
    response_model=JobInfo,
    response_model_exclude_none=True,
    summary="Cancel a queued or running job; answers its final state",
    responses={**NOT_FOUND, **QUEUE_UNAVAILABLE},
)
async def cancel_job(job_id: JobId, state: State) -> JobInfo:
    snapshot = await read_snapshot(state, job_id)
    info = found(snapshot.info(job_id), job_id)
    if info.state == JobState.done or snapshot.record is None:
        return info
    cancelled = ExecutionResult(id=job_id, status=Status.cancelled, reason="cancelled by request", worker=info.worker)
    await call_redis(cancel_jobs(state, [cancelled], snapshot.record.reply_to))
    return await job_info(state, job_id)


async def job_info(state: GatewayState, job_id: str) -> JobInfo:
    return found((await read_snapshot(state, job_id)).info(job_id), job_id)


async def read_snapshot(state: GatewayState, job_id: str) -> JobSnapshot:
    return await call_redis(state.jobs.snapshot(job_id))


def found(info: JobInfo | None, job_id: str) -> JobInfo:
    if info is None:
        raise HTTPException(404, detail=f"no job {job_id}")
    return info
