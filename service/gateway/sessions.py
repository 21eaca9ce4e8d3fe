"""Sessions for multi-turn agents: a persistent Python interpreter pinned to one worker.

`POST /v1/sessions` asks a live worker (chosen at random) to start an interpreter and answers its id.
`POST /v1/sessions/{id}/execute` sends code to that worker's own command list; variables survive from
call to call. While waiting, the gateway watches the worker's heartbeat: if the worker dies, the call
ends as `session_lost` (written through the exactly-once publish script), never a hang. Idle sessions
expire; `DELETE /v1/sessions/{id}` ends one at once. `POST /v1/sessions/{id}/fork` asks the session's
worker for branches: new sessions on that worker whose interpreters start as exact copies of this one.
A tenant's sessions, branches included, count against `tenant_max_sessions` (429 past it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path
from fastapi.responses import Response

from service.gateway.auth import ANONYMOUS, TooManyRequests, current_tenant
from service.gateway.calls import NoLiveWorker, call_redis, no_result
from service.gateway.limits import LimitError
from service.gateway.openapi import QUEUE_UNAVAILABLE
from service.gateway.state import GatewayState, gateway_state
from service.models import (
    ExecutionResult,
    Language,
    SessionAction,
    SessionCommand,
    SessionExecuteRequest,
    SessionForkInfo,
    SessionForkRequest,
    SessionInfo,
    SessionRequest,
    Status,
)
from service.queue.sessions import NO_ROOM, SessionStore

router = APIRouter(tags=["sessions"])
State = Annotated[GatewayState, Depends(gateway_state)]
SessionId = Annotated[str, Path(pattern="^[0-9a-f]{32}$")]
# Starting a sandboxed interpreter; and how long past its timeout a call's answer may take.
OPEN_BUDGET_S = 30.0
CLOSE_BUDGET_S = 10.0
# Copying the workspace and forking, per branch.
FORK_BUDGET_S = 30.0
ANSWER_GRACE_S = 5.0
# A fork without a body makes one branch.
ONE_BRANCH = SessionForkRequest()
NO_SESSION: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such session: it was ended, or expired after being idle"}
}


@router.post(
    "/v1/sessions",
    status_code=201,
    response_model=SessionInfo,
    summary="Start a persistent Python interpreter on one worker",
    responses={
        429: {"description": "The tenant holds its maximum of sessions (`tenant_max_sessions`)"},
        503: {"description": "No live worker, or the chosen one holds its maximum of sessions"},
    },
)
async def open_session(request: SessionRequest, state: State) -> SessionInfo:
    if request.language != Language.python:
        raise LimitError("language", "sessions run python only")
    memory_mb = request.memory_mb or state.settings.default_memory_mb
    if not 16 <= memory_mb <= state.settings.max_memory_mb:
        raise LimitError("memory_mb", f"memory_mb must be between 16 and {state.settings.max_memory_mb}")
    store = SessionStore(state.queue)
    workers = await call_redis(store.live_workers(state.settings.heartbeat_ttl_s))
    if not workers:
        raise NoLiveWorker
    session_id = uuid.uuid4().hex
    async with counted_sessions(state, store, [session_id]):
        reasons: list[str] = []
        # Workers in random order: the first with room for another interpreter gets the session.
        for worker in workers:
            command = new_command(state, session_id, SessionAction.open, memory_mb=memory_mb)
            result = await send_and_wait(state, store, worker, command, OPEN_BUDGET_S)
            if result.status == Status.ok:
                return SessionInfo(id=session_id, worker=worker, idle_timeout_s=state.settings.session_idle_s)
            reasons.append(result.reason or result.status.value)
        raise HTTPException(
            503, detail=f"no worker could open a session: {'; '.join(reasons)}", headers={"Retry-After": "1"}
        )


@router.post(
    "/v1/sessions/{session_id}/fork",
    status_code=201,
    response_model=SessionForkInfo,
    summary="Branch a session: new sessions whose interpreters start as exact copies of this one now",
    responses={
        **NO_SESSION,
        **QUEUE_UNAVAILABLE,
        429: {
            "description": "The branches would take the tenant past its maximum of sessions, or the session's"
            " worker has no room for them"
        },
        503: {"description": "The fork failed (the session lives on unless it stopped answering)"},
        504: {"description": "The worker is alive but did not answer in time"},
    },
)
async def fork_session(
    session_id: SessionId, state: State, request: Annotated[SessionForkRequest, Body()] = ONE_BRANCH
) -> SessionForkInfo:
    settings = state.settings
    count = request.count
    if count > settings.max_session_forks:
        raise LimitError("count", f"count must be at most {settings.max_session_forks}")
    store = SessionStore(state.queue)
    record = await call_redis(store.find(session_id, settings.session_idle_s, tenant_name()))
    if record is None:
        raise HTTPException(404, detail=f"no session {session_id} (ended, or expired after being idle)")
    branch_ids = [uuid.uuid4().hex for _ in range(count)]
    async with counted_sessions(state, store, branch_ids):
        command = new_command(state, session_id, SessionAction.fork, branch_ids=branch_ids)
        # The fork waits for a call the session is running, then copies and forks once per branch.
        fork_budget = settings.max_timeout_s + ANSWER_GRACE_S + FORK_BUDGET_S * count
        if await call_redis(store.worker_alive(record.worker, settings.heartbeat_ttl_s)):
            result = await send_and_wait(state, store, record.worker, command, fork_budget)
        else:
            result = await declare_lost(state, command)
        if result.status == Status.session_lost:
            await call_redis(store.forget(session_id))
            raise HTTPException(404, detail=f"session {session_id} was lost: {result.reason}")
        if result.status == Status.sandbox_error and (result.reason or "").startswith(NO_ROOM):
            # Branches live on their parent's worker: only sessions ending there make room.
            raise HTTPException(429, detail=f"cannot fork the session: {result.reason}", headers={"Retry-After": "5"})
        if result.status != Status.ok:
            raise HTTPException(503, detail=f"cannot fork the session: {result.reason}", headers={"Retry-After": "1"})
        sessions = [
            SessionInfo(id=branch, worker=record.worker, idle_timeout_s=settings.session_idle_s)
            for branch in branch_ids
        ]
        return SessionForkInfo(sessions=sessions)


@router.post(
    "/v1/sessions/{session_id}/execute",
    response_model=ExecutionResult,
    summary="Run Python in a session; variables persist, the value of a last expression is printed",
    responses={
        **NO_SESSION,
        **QUEUE_UNAVAILABLE,
        504: {"description": "The worker is alive but did not answer in time"},
    },
)
async def execute_in_session(session_id: SessionId, request: SessionExecuteRequest, state: State) -> Response:
    settings = state.settings
    timeout_s = request.timeout_s or settings.default_timeout_s
    if timeout_s > settings.max_timeout_s:
        raise LimitError("timeout_s", f"timeout_s must be at most {settings.max_timeout_s:g}")
    if len(request.code.encode()) > settings.max_code_bytes:
        raise LimitError("code", f"code must be at most {settings.max_code_bytes} bytes")
    store = SessionStore(state.queue)
    record = await call_redis(store.find(session_id, settings.session_idle_s, tenant_name()))
    if record is None:
        raise HTTPException(404, detail=f"no session {session_id} (ended, or expired after being idle)")
    command = new_command(state, session_id, SessionAction.execute, code=request.code, timeout_s=timeout_s)
    if await call_redis(store.worker_alive(record.worker, settings.heartbeat_ttl_s)):
        result = await send_and_wait(state, store, record.worker, command, timeout_s + ANSWER_GRACE_S)
    else:
        result = await declare_lost(state, command)
    if result.status == Status.session_lost:
        await call_redis(store.forget(session_id))
    return Response(result.model_dump_json(), media_type="application/json")


@router.delete(
    "/v1/sessions/{session_id}",
    status_code=204,
    summary="End a session and its interpreter",
    responses={**NO_SESSION, **QUEUE_UNAVAILABLE, 504: {"description": "The worker did not confirm in time"}},
)
async def close_session(session_id: SessionId, state: State) -> Response:
    store = SessionStore(state.queue)
    record = await call_redis(store.find(session_id, state.settings.session_idle_s))
    if record is None:
        raise HTTPException(404, detail=f"no session {session_id}")
    command = new_command(state, session_id, SessionAction.close)
    # Waiting for the worker means its room for a session is free again when the 204 arrives.
    await send_and_wait(state, store, record.worker, command, CLOSE_BUDGET_S)
    await call_redis(store.forget(session_id))
    await call_redis(store.release(tenant_name(), [session_id]))
    return Response(status_code=204)


def tenant_name() -> str:
    tenant = current_tenant.get(None)
    return tenant.name if tenant is not None else ANONYMOUS


@contextlib.asynccontextmanager
async def counted_sessions(state: GatewayState, store: SessionStore, session_ids: list[str]) -> AsyncIterator[None]:
    """Count new sessions against the tenant's quota for good if the block returns, not if it raises."""
    tenant = tenant_name()
    quota = state.settings.tenant_max_sessions
    if not await call_redis(store.admit(tenant, session_ids, quota, state.settings.session_idle_s)):
        raise TooManyRequests("session_quota", 1.0, tenant)
    try:
        yield
    except BaseException:
        await call_redis(store.release(tenant, session_ids))
        raise


def new_command(state: GatewayState, session_id: str, action: SessionAction, **fields: object) -> SessionCommand:
    return SessionCommand.model_validate(
        {
            "id": uuid.uuid4().hex,
            "session_id": session_id,
            "action": action,
            "reply_to": state.id,
            "output_bytes": state.settings.max_output_bytes,
            **fields,
        }
    )


async def send_and_wait(
    state: GatewayState, store: SessionStore, worker: str, command: SessionCommand, budget_s: float
) -> ExecutionResult:
    """The worker's answer; `session_lost` if the worker dies first, 504 if it lives but is too slow."""
    future = state.listener.expect(command.id)
    try:
        await call_redis(store.send(worker, command, state.settings.session_idle_s))
        deadline = time.monotonic() + budget_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(asyncio.shield(future), min(left, state.settings.heartbeat_interval_s))
                return ExecutionResult.model_validate_json(raw)
            except TimeoutError:
                if not await call_redis(store.worker_alive(worker, state.settings.heartbeat_ttl_s)):
                    return await declare_lost(state, command)
        raise no_result(command.id)
    finally:
        state.listener.discard(command.id)


async def declare_lost(state: GatewayState, command: SessionCommand) -> ExecutionResult:
    lost = ExecutionResult(id=command.id, status=Status.session_lost, reason="the session's worker died")
    await call_redis(state.queue.publish_final(lost, None, None, state.settings.result_ttl_s))
    raw = (await call_redis(state.jobs.snapshot(command.id))).raw_result
    return ExecutionResult.model_validate_json(raw) if raw else lost
