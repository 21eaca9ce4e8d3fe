"""Build the FastAPI application: lifespan (Redis, result listener), middleware, error shapes."""

from __future__ import annotations

import gc
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from service import metrics
from service.config import Settings
from service.gateway import (
    batch,
    health,
    jobs,
    judge,
    jupyter,
    languages,
    routes,
    run_code,
    sessions,
    telemetry,
    tools,
)
from service.gateway.auth import Tenants, TooManyRequests, authenticate
from service.gateway.body_limit import BodyLimitMiddleware
from service.gateway.calls import NoLiveWorker, QueueUnavailable
from service.gateway.cancel import ClientGone
from service.gateway.fast_path import FastPathMiddleware
from service.gateway.limits import LimitError
from service.gateway.mcp import McpEndpoint, mount
from service.gateway.openapi import declare_shared_answers
from service.gateway.state import GatewayState
from service.queue.admission import Admission
from service.queue.jobs import JobStore
from service.queue.keys import ShardTurns
from service.queue.listener import ResultListener
from service.queue.redis_queue import RedisQueue, connect
from service.tools.registry import load_tools, tool_pack_dirs

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    tool_registry = load_tools(settings.tools_path, tool_pack_dirs(settings.tool_packs))
    tools.check_tool_limits(tool_registry, settings)
    tenants = Tenants(settings)
    mcp_endpoint = McpEndpoint(settings.max_body_bytes)
    if tenants.open and settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("no API keys configured and listening on %s: anyone who can reach it can run code", settings.host)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect(settings)
        queue = RedisQueue.for_settings(redis, settings)
        gateway_id = uuid.uuid4().hex[:12]
        listener = ResultListener(queue, gateway_id)
        state = GatewayState(
            settings=settings,
            queue=queue,
            listener=listener,
            id=gateway_id,
            jobs=JobStore(queue),
            tenants=tenants,
            admission=Admission(queue),
            tools=tool_registry,
            shard_turns=ShardTurns(settings.queue_shards),
        )
        await state.listener.start()
        app.state.gateway = state
        metrics.WAITING_CALLS.set_function(lambda: len(listener.waiting))
        # What start-up made lives as long as the process: frozen, a full collection (about one per 3,000
        # calls) no longer walks its ~125,000 objects, tens of milliseconds each time. Unfrozen on the way
        # out, so a process that starts another (the tests) leaves nothing uncollectable behind.
        gc.collect()
        gc.freeze()
        try:
            async with telemetry.queue_sampler(queue, settings), mcp_endpoint.running():
                yield
        finally:
            gc.unfreeze()
            await state.listener.stop()
            await redis.aclose()

    app = FastAPI(
        title="Sandpit",
        version="0.1.0",
        summary="Sandboxed code and tool execution for RL rollouts",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(telemetry.router)
    authenticated = [Depends(authenticate)]
    for module in (routes, batch, jobs, judge, run_code, jupyter, tools, languages, sessions):
        app.include_router(module.router, dependencies=authenticated)
    mount(app, mcp_endpoint)
    declare_shared_answers(app, public=[health.router, telemetry.router])
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(FastPathMiddleware, api=app, max_bytes=settings.max_body_bytes)
    # Added last, so outermost: it also times and counts requests the body limit refuses.
    app.add_middleware(telemetry.TelemetryMiddleware)

    @app.exception_handler(LimitError)
    async def limit_error(_: Request, exc: LimitError) -> JSONResponse:
        detail = [{"loc": ["body", *exc.loc], "msg": str(exc), "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(TooManyRequests)
    async def too_many_requests(_: Request, exc: TooManyRequests) -> JSONResponse:
        metrics.REJECTED.labels(exc.reason, exc.tenant).inc()
        body = {"detail": f"too many requests ({exc.reason}), retry after {exc.retry_after} s", "reason": exc.reason}
        return JSONResponse(body, status_code=429, headers={"Retry-After": exc.retry_after})

    @app.exception_handler(ClientGone)
    async def client_gone(_: Request, __: ClientGone) -> Response:
        # No one reads it (the server drops what is sent after a disconnect); the status is for the metrics:
        # 499 is nginx's "client closed request".
        return Response(status_code=499)

    @app.exception_handler(QueueUnavailable)
    async def queue_unavailable(_: Request, exc: QueueUnavailable) -> JSONResponse:
        cause = exc.__cause__
        log.warning("queue unavailable: %s: %s", type(cause).__name__, cause)
        return JSONResponse({"detail": "queue unavailable, retry later"}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(NoLiveWorker)
    async def no_live_worker(_: Request, __: NoLiveWorker) -> JSONResponse:
        log.warning("no live worker to take the call")
        return JSONResponse({"detail": "no live worker, retry later"}, status_code=503, headers={"Retry-After": "1"})

    return app
