"""Health endpoints, open without an API key: liveness of the process, readiness of the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from service.gateway.state import GatewayState, gateway_state
from service.queue.errors import REDIS_DOWN

router = APIRouter()
State = Annotated[GatewayState, Depends(gateway_state)]


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
