"""`POST /v1/judge`: run a program against test cases and answer per-case verdicts and the pass ratio.

The judge is one job on the same queue: a worker compiles once, runs every case in a fresh workspace
and compares outputs itself (never inside the sandbox).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from service.gateway.calls import new_job, run_and_wait
from service.gateway.routes import CALL_RESPONSES, IdempotencyKey
from service.gateway.state import GatewayState, gateway_state
from service.models import ExecutionResult, JudgeRequest, JudgeResult

router = APIRouter()
State = Annotated[GatewayState, Depends(gateway_state)]


@router.post(
    "/v1/judge",
    response_model=JudgeResult,
    response_model_exclude_none=True,
    summary="Compile once, run every test case, compare outputs in the worker; verdicts and pass ratio",
    responses=CALL_RESPONSES,
)
async def judge(
    request: JudgeRequest, state: State, http: Request, idempotency_key: IdempotencyKey = None
) -> JudgeResult:
    job = new_job(state, request.program(), state.id, state.settings.queue_wait_s, judge=request.spec())
    raw = await run_and_wait(state, job, http, idempotency_key)
    return JudgeResult.from_execution(ExecutionResult.model_validate_json(raw))
