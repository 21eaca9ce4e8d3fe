"""`POST /v1/execute/batch`: many calls in one request, enqueued in one round trip, answered in order.

Every call is its own job on the same queue, so workers run them in parallel and a slow call holds up
only its own slot. With `?stream=true` each result is sent as one NDJSON line the moment it arrives;
otherwise the body is all results in request order. A call that outlives its deadline gets a final
`sandbox_error` through the same exactly-once publish as a worker's result, so the batch never hangs.
When the client disconnects, every call of the batch not yet finished is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.background import BackgroundTask

from service.gateway.calls import enqueue, give_up, new_job, wait_budget_s
from service.gateway.cancel import ClientGone, abandon, unless_client_leaves
from service.gateway.limits import LimitError
from service.gateway.openapi import component_schema
from service.gateway.state import GatewayState, gateway_state
from service.gateway.telemetry import note_outcome
from service.models import BatchRequest, ExecutionResult, Job

router = APIRouter()
State = Annotated[GatewayState, Depends(gateway_state)]


class BatchResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {"id": "5f0c6b1e8f6a4c39b1b9f3f1a2d4e6c8", "status": "ok", "stdout": "1\n"},
                        {"id": "0b6f0b1c1e6d4f0e9f2f7f3f0a1b2c3d", "status": "ok", "stdout": "2\n"},
                    ]
                }
            ]
        }
    )

    results: list[ExecutionResult]


class BatchLine(BaseModel):
    """One line of the NDJSON stream: the call's position in the request and its result."""

    index: int
    result: ExecutionResult


@router.post(
    "/v1/execute/batch",
    response_model=BatchResult,
    summary="Run up to 1,000 calls; results in request order, or streamed as NDJSON as they finish",
    responses={
        200: {
            "description": "All results in request order; with `stream=true`, one `BatchLine` per line as each ends",
            "content": {
                "application/x-ndjson": {
                    "schema": component_schema(BatchLine),
                    "example": '{"index":1,"result":{"id":"…","status":"ok","stdout":"2\\n"}}',
                }
            },
        },
        422: {"description": "Invalid call; `loc` names its index in `calls`"},
        503: {"description": "Queue unavailable; retry after the given delay"},
    },
)
async def execute_batch(
    body: BatchRequest,
    state: State,
    http: Request,
    stream: Annotated[bool, Query(description="Send each result as an NDJSON line as soon as it finishes")] = False,
) -> Response:
    jobs = build_jobs(state, body)
    futures = [state.listener.expect(job.id) for job in jobs]
    try:
        await enqueue(state, jobs)
    except BaseException:
        discard_all(state, jobs)
        raise
    if stream:
        # Starlette stops the stream when the client disconnects, even before it started; the background
        # task runs after the stream either way and cancels what it left unfinished.
        return StreamingResponse(
            stream_lines(state, jobs, futures),
            media_type="application/x-ndjson",
            background=BackgroundTask(abandon_unfinished, state, jobs, futures),
        )
    gathered = asyncio.gather(*(await_result(state, job, future) for job, future in zip(jobs, futures, strict=True)))
    try:
        raws = await unless_client_leaves(http, gathered, None)
    except ClientGone:
        gathered.cancel()
        await abandon(state, unfinished(jobs, futures))
        raise
    finally:
        discard_all(state, jobs)
    return Response(b'{"results":[' + b",".join(raws) + b"]}", media_type="application/json")


def build_jobs(state: GatewayState, body: BatchRequest) -> list[Job]:
    jobs: list[Job] = []
    for index, call in enumerate(body.calls):
        try:
            jobs.append(new_job(state, call, reply_to=state.id, queue_wait_s=state.settings.queue_wait_s))
        except LimitError as exc:
            raise LimitError(exc.field, str(exc), ("calls", index)) from None
    return jobs


async def await_result(state: GatewayState, job: Job, future: asyncio.Future[bytes]) -> bytes:
    try:
        raw = await asyncio.wait_for(asyncio.shield(future), wait_budget_s(state, job))
    except TimeoutError:
        return await give_up(state, job)
    note_outcome(job, raw)
    return raw


async def stream_lines(
    state: GatewayState, jobs: list[Job], futures: list[asyncio.Future[bytes]]
) -> AsyncIterator[bytes]:
    async def indexed(index: int) -> tuple[int, bytes]:
        return index, await await_result(state, jobs[index], futures[index])

    pending = [asyncio.ensure_future(indexed(index)) for index in range(len(jobs))]
    try:
        for next_done in asyncio.as_completed(pending):
            index, raw = await next_done
            yield b'{"index":%d,"result":%b}\n' % (index, raw)
    finally:
        for task in pending:
            task.cancel()
        discard_all(state, jobs)


async def abandon_unfinished(state: GatewayState, jobs: list[Job], futures: list[asyncio.Future[bytes]]) -> None:
    await abandon(state, unfinished(jobs, futures))


def unfinished(jobs: list[Job], futures: list[asyncio.Future[bytes]]) -> list[Job]:
    return [job for job, future in zip(jobs, futures, strict=True) if not future.done()]


def discard_all(state: GatewayState, jobs: list[Job]) -> None:
    for job in jobs:
        state.listener.discard(job.id)
