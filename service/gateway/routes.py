"""HTTP endpoint: execute a call and wait for it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response

from service.gateway.calls import new_job, run_and_wait
from service.gateway.state import GatewayState, gateway_state
from service.models import ExecuteRequest, ExecutionResult

router = APIRouter()
State = Annotated[GatewayState, Depends(gateway_state)]
IdempotencyKey = Annotated[
    str | None,
    Header(description="Calls repeated with the same key within the result TTL get the first call's job and result."),
]

# What every endpoint that runs code and waits for it may answer besides 200.
CALL_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (when keys are configured)"},
    413: {"description": "Request body too large"},
    422: {"description": "Invalid request (unknown language, empty code, limits out of range, bad JSON)"},
    429: {"description": "Queue full, tenant quota or rate limit reached; retry after `Retry-After` seconds"},
    503: {"description": "Queue unavailable; retry after the given delay"},
    504: {"description": "No result within the call's deadline; fetch it later at /v1/jobs/{id}"},
}


@router.post(
    "/v1/execute",
    response_model=ExecutionResult,
    summary="Run code in a sandbox and wait for the result",
    responses=CALL_RESPONSES,
)
async def execute(
    request: ExecuteRequest, state: State, http: Request, idempotency_key: IdempotencyKey = None
) -> Response:
    job = new_job(state, request, reply_to=state.id, queue_wait_s=state.settings.queue_wait_s)
    return Response(await run_and_wait(state, job, http, idempotency_key), media_type="application/json")
