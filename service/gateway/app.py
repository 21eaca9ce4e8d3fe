"""Build the FastAPI application: lifespan (Redis, result listener), middleware, error shapes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service.config import Settings
from service.gateway import batch, jobs, judge, run_code, sessions, tools
from service.gateway.body_limit import BodyLimitMiddleware
from service.gateway.limits import LimitError
from service.gateway.routes import QueueUnavailable, router
from service.gateway.state import GatewayState
from service.queue.jobs import JobStore
from service.queue.listener import ResultListener
from service.queue.redis_queue import RedisQueue, connect
from service.tools.registry import load_tools

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    tool_registry = load_tools(settings.tools_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect(settings.redis_url)
        queue = RedisQueue(redis, settings.key_prefix)
        gateway_id = uuid.uuid4().hex[:12]
        listener = ResultListener(queue, gateway_id)
        state = GatewayState(settings, queue, listener, gateway_id, JobStore(queue), tool_registry)
        await state.listener.start()
        app.state.gateway = state
        try:
            yield
        finally:
            await state.listener.stop()
            await redis.aclose()

    app = FastAPI(
        title="Sandpit",
        version="0.1.0",
        summary="Sandboxed code and tool execution for RL rollouts",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(batch.router)
    app.include_router(jobs.router)
    app.include_router(judge.router)
    app.include_router(run_code.router)
    app.include_router(tools.router)
    app.include_router(sessions.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)

    @app.exception_handler(LimitError)
    async def limit_error(_: Request, exc: LimitError) -> JSONResponse:
        detail = [{"loc": ["body", *exc.loc], "msg": str(exc), "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(QueueUnavailable)
    async def queue_unavailable(_: Request, exc: QueueUnavailable) -> JSONResponse:
        log.warning("queue unavailable: %s", exc.__cause__)
        return JSONResponse({"detail": "queue unavailable, retry later"}, status_code=503, headers={"Retry-After": "1"})

    return app
