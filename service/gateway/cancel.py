"""Cancelling jobs: on `DELETE /v1/jobs/{id}`, and when the HTTP client waiting for them goes away.

A cancel flags each job (a worker checks the flag before starting it), names it on the cancel channel
(the worker running it kills its process tree) and writes its final `cancelled` result through the
exactly-once publish script, so a result that won the race stands. A request that waits for its calls
watches its connection with one task (`unless_client_leaves`); when the client disconnects, its
unfinished jobs are cancelled and its idempotency key released, so a retry with that key runs again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from fastapi import Request
from redis.exceptions import RedisError
from starlette.types import Receive

from service import logs
from service.gateway.state import GatewayState
from service.models import ExecutionResult, Job, Status

log = logging.getLogger(__name__)

CLIENT_GONE = "the caller disconnected before the result"
T = TypeVar("T")


class ClientGone(Exception):
    """The HTTP client of a call disconnected before its result: there is no one to answer."""


async def cancel_jobs(state: GatewayState, cancelled: list[ExecutionResult], reply_to: str | None) -> None:
    """Flag the jobs cancelled, tell the workers, and publish their final `cancelled` results."""
    ttl_s = state.settings.result_ttl_s
    # Result first: the worker that stops the job then finds it written and its own `cancelled` loses.
    await state.queue.publish_finals(cancelled, reply_to, ttl_s)
    await state.jobs.request_cancel([result.id for result in cancelled], ttl_s)


async def until_disconnect(receive: Receive) -> None:
    # Once the body is read, the server's next message for this request is its disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(http: Request, awaited: asyncio.Future[T], timeout_s: float | None) -> T:
    """`awaited`'s result; TimeoutError after `timeout_s`, ClientGone if the client disconnects first."""
    gone = asyncio.create_task(until_disconnect(http.receive), name="client-watch")
    try:
        done, _ = await asyncio.wait((awaited, gone), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if awaited.done():
        return awaited.result()
    if gone in done:
        raise ClientGone
    raise TimeoutError


async def abandon(state: GatewayState, jobs: list[Job], idempotency_key: str | None = None) -> None:
    """Cancel the unfinished jobs of a client that went away and free its idempotency key for a retry."""
    if not jobs:
        return
    job_ids = [job.id for job in jobs]
    log.info("client of request %s went away; cancelling job(s) %s", logs.request_id.get(), " ".join(job_ids))
    cancelled = [ExecutionResult(id=job_id, status=Status.cancelled, reason=CLIENT_GONE) for job_id in job_ids]
    try:
        # Released first: a retry that sees the `cancelled` result then finds the key free.
        if idempotency_key is not None:
            await state.jobs.release_idempotency_key(idempotency_key, job_ids[0])
        # The jobs of a waiting call reply to this gateway.
        await cancel_jobs(state, cancelled, state.id)
    except (RedisError, OSError) as exc:
        log.warning("could not cancel the jobs of a client that went away (%s); they run to the end", exc)
