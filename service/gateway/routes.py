"""HTTP endpoints: execute a call and wait for it, health and readiness."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse, Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.gateway.limits import resolve_limits, run_budget_s
from service.gateway.state import GatewayState, gateway_state
from service.models import ExecuteRequest, ExecutionResult, Job

router = APIRouter()
State = Annotated[GatewayState, Depends(gateway_state)]
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
# Time beyond its own limits a call may take to come back: queue hand-off, sandbox start, a redelivery.
RESULT_GRACE_S = 5.0


class QueueUnavailable(Exception):
    pass


@router.post(
    "/v1/execute",
    response_model=ExecutionResult,
    summary="Run code in a sandbox and wait for the result",
    responses={
        413: {"description": "Request body too large"},
        422: {"description": "Invalid request (unknown language, empty code, limits out of range, bad JSON)"},
        503: {"description": "Queue unavailable; retry after the given delay"},
        504: {"description": "No result within the call's deadline; fetch it later by id"},
    },
)
async def execute(request: ExecuteRequest, state: State) -> Response:
    limits = resolve_limits(request, state.settings)
    now = time.time()
    job = Job(
        id=uuid.uuid4().hex,
        request=request,
        limits=limits,
        enqueued_at=now,
        start_by=now + state.settings.queue_wait_s,
        reply_to=state.id,
    )
    future = state.listener.expect(job.id)
    try:
        try:
            await state.queue.enqueue(job)
        except REDIS_DOWN as exc:
            raise QueueUnavailable from exc
        wait_s = state.settings.queue_wait_s + run_budget_s(request, limits) + state.settings.reclaim_idle_s
        raw = await asyncio.wait_for(future, wait_s + RESULT_GRACE_S)
    except TimeoutError:
        raise HTTPException(504, detail={"id": job.id, "message": "no result within the call's deadline"}) from None
    finally:
        state.listener.discard(job.id)
    return Response(raw, media_type="application/json")


@router.get("/healthz", summary="The gateway process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis answers and at least one worker has sent a heartbeat")
async def readyz(state: State) -> JSONResponse:
    try:
        workers = await state.queue.live_workers(state.settings.heartbeat_ttl_s)
        redis_ok = True
    except REDIS_DOWN:
        workers, redis_ok = 0, False
    ready = redis_ok and workers > 0
    body = {"status": "ready" if ready else "not ready", "redis": redis_ok, "workers": workers}
    return JSONResponse(body, status_code=200 if ready else 503)
