"""HTTP endpoints: execute a call and wait for it, health and readiness."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, Response

from service.gateway.calls import REDIS_DOWN, QueueUnavailable, new_job, run_and_wait
from service.gateway.state import GatewayState, gateway_state
from service.models import ExecuteRequest, ExecutionResult

__all__ = ["QueueUnavailable", "router"]

router = APIRouter()
State = Annotated[GatewayState, Depends(gateway_state)]
IdempotencyKey = Annotated[
    str | None,
    Header(description="Calls repeated with the same key within the result TTL get the first call's job and result."),
]

# What every endpoint that runs code and waits for it may answer besides 200.
CALL_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"description": "Request body too large"},
    422: {"description": "Invalid request (unknown language, empty code, limits out of range, bad JSON)"},
    503: {"description": "Queue unavailable; retry after the given delay"},
    504: {"description": "No result within the call's deadline; fetch it later at /v1/jobs/{id}"},
}


@router.post(
    "/v1/execute",
    response_model=ExecutionResult,
    summary="Run code in a sandbox and wait for the result",
    responses=CALL_RESPONSES,
)
async def execute(request: ExecuteRequest, state: State, idempotency_key: IdempotencyKey = None) -> Response:
    job = new_job(state, request, reply_to=state.id, queue_wait_s=state.settings.queue_wait_s)
    return Response(await run_and_wait(state, job, idempotency_key), media_type="application/json")


@router.get(
    "/healthz",
    summary="The gateway process is alive",
    responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Redis answers and at least one worker has sent a heartbeat",
    responses={
        200: {"content": {"application/json": {"example": {"status": "ready", "redis": True, "workers": 2}}}},
        503: {"content": {"application/json": {"example": {"status": "not ready", "redis": True, "workers": 0}}}},
    },
)
async def readyz(state: State) -> JSONResponse:
    try:
        workers = await state.queue.live_workers(state.settings.heartbeat_ttl_s)
        redis_ok = True
    except REDIS_DOWN:
        workers, redis_ok = 0, False
    ready = redis_ok and workers > 0
    body = {"status": "ready" if ready else "not ready", "redis": redis_ok, "workers": workers}
    return JSONResponse(body, status_code=200 if ready else 503)
