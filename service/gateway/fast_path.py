"""The hot calls (`POST /v1/execute`, `POST /run_code`) served without FastAPI's routing and dependency solving.

Finding the route, solving its dependencies and parsing the body took most of the gateway's CPU per
trivial call. `FastPathMiddleware` serves an ordinary call itself, through the same steps: the body read
under the same cap, parsed as FastAPI parses it (`json.loads`, then the route's model), the same API-key
lookup and rate limit, the route's own endpoint function, its response serialized as FastAPI does, and
any exception answered by the app's own handler. Anything unusual (a body that does not parse or
validate, another content type, an unknown key, an oversize or interrupted body) goes to the FastAPI app
with the body already read replayed, so every refusal keeps FastAPI's exact shape. It sits inside
`TelemetryMiddleware`, which times, counts and labels both paths alike.
"""

from __future__ import annotations

import inspect
import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.routing import APIRoute, serialize_response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.gateway import routes, run_code
from service.gateway.auth import Tenant, admit, presented_key
from service.gateway.body_limit import declared_too_large
from service.gateway.state import GatewayState
from service.models import ExecuteRequest

JSON = "application/json"
Handler = Callable[[Request, Any], Response | Awaitable[Response]]
IDEMPOTENCY_KEY = "idempotency-key"


async def serve_execute(_: APIRoute, request: ExecuteRequest, state: GatewayState, http: Request) -> Response:
    return await routes.execute(request, state, http, http.headers.get(IDEMPOTENCY_KEY))


async def serve_run_code(
    route: APIRoute, request: run_code.RunCodeRequest, state: GatewayState, http: Request
) -> Response:
    answer = await run_code.run_code(request, state, http)
    # FastAPI's own serialization of a route's return value, so the bytes are the same.
    content = await serialize_response(field=route.response_field, response_content=answer, dump_json=True)
    return Response(content, media_type=JSON)


@dataclass(frozen=True)
class HotRoute:
    router: APIRouter
    model: type[BaseModel]
    serve: Callable[[APIRoute, Any, GatewayState, Request], Awaitable[Response]]


HOT_ROUTES = {
    "/v1/execute": HotRoute(routes.router, ExecuteRequest, serve_execute),
    "/run_code": HotRoute(run_code.router, run_code.RunCodeRequest, serve_run_code),
}


def post_route(router: APIRouter, path: str) -> APIRoute:
    return next(
        route
        for route in router.routes
        if isinstance(route, APIRoute) and route.path == path and "POST" in (route.methods or ())
    )


class FastPathMiddleware:
    def __init__(self, app: ASGIApp, api: FastAPI, max_bytes: int) -> None:
        self.app = app
        self.api = api
        self.max_bytes = max_bytes
        self.routes = {path: (post_route(hot.router, path), hot) for path, hot in HOT_ROUTES.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if hot is None or scope.get("root_path") or declared_too_large(scope, self.max_bytes):
            await self.fall_back(scope, receive, send)
            return
        route, call = hot
        messages, body = await read_body(receive, self.max_bytes)
        # The body is read: what `receive` gives next is the client's disconnect, which the endpoint watches for.
        http = Request(scope, receive)
        state: GatewayState = self.api.state.gateway
        request = parsed(call.model, body, http.headers.get("content-type"))
        tenant = known_tenant(state, http) if request is not None else None
        if request is None or tenant is None:
            await self.fall_back(scope, replaying(messages, receive), send)
            return
        # From here on the call counts against its tenant's rate, as in the full path: it is answered here.
        scope["route"] = route
        try:
            admit(state.tenants, tenant)
            response = await call.serve(route, request, state, http)
        except Exception as exc:
            handler = exception_handler(self.api.exception_handlers, exc)
            if handler is None:
                raise
            answer = handler(http, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

    async def fall_back(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


async def read_body(receive: Receive, max_bytes: int) -> tuple[list[Message], bytes | None]:
    """The messages received, and the whole body; None if it is over `max_bytes` or the client left."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            return messages, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives `messages` again, then what the server sends next."""
    pending = deque(messages)

    async def replay() -> Message:
        return pending.popleft() if pending else await receive()

    return replay


def parsed(model: type[BaseModel], body: bytes | None, content_type: str | None) -> BaseModel | None:
    """The body as FastAPI parses a JSON body for `model`, or None where FastAPI would refuse it or parse
    it another way."""
    if not body or content_type != JSON:
        return None
    try:
        return model.model_validate(json.loads(body))
    except Exception:
        return None


def known_tenant(state: GatewayState, http: Request) -> Tenant | None:
    try:
        return state.tenants.authenticate(presented_key(http))
    except HTTPException:
        return None


def exception_handler(handlers: Mapping[Any, Handler], exc: Exception) -> Handler | None:
    """The app's handler for `exc`, looked up as Starlette's ExceptionMiddleware looks it up; the handler of
    500 and `Exception` belongs to the outermost middleware, which the exception then reaches."""
    if isinstance(exc, StarletteHTTPException) and exc.status_code != 500 and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls is not Exception and cls in handlers:
            return handlers[cls]
    return None
