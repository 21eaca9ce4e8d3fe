"""`/mcp`: the tool registry as a Model Context Protocol server (streamable HTTP), built on the `mcp` SDK.

`tools/list` answers what `GET /v1/tools` lists (`state.tools`); `tools/call` validates the arguments
against the tool's schema and runs the tool as an ordinary job on the queue, exactly as
`POST /v1/tools/{name}` does. The server is stateless (no MCP session lives in one gateway), so any
gateway behind a load balancer answers any request. Every request is authenticated and rate-limited by
the same dependency as the REST routes before the SDK sees it; quotas apply where the job is enqueued.
Arguments that break a schema, an unknown tool, or a call the service cannot take (quota, queue
down) are JSON-RPC errors; a tool that ran and failed is a result with `isError`, as MCP asks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
from fastapi import FastAPI, HTTPException, Request
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from service.gateway.auth import Tenant, TooManyRequests, authenticate, current_tenant
from service.gateway.calls import NoLiveWorker, QueueUnavailable
from service.gateway.cancel import ClientGone
from service.gateway.limits import LimitError
from service.gateway.state import GatewayState
from service.gateway.tools import run_tool

log = logging.getLogger(__name__)
PATH = "/mcp"
# JSON-RPC's range for server errors: the service could not take or finish the call.
SERVICE_UNAVAILABLE = -32001
TOO_MANY_REQUESTS = -32002
NO_RESULT = -32003


def create_server() -> Server[Any]:
    return Server(
        "sandpit",
        version="0.1.0",
        instructions="Sandboxed tools: each call runs in its own sandbox on a Sandpit worker.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def list_tools(ctx: ServerRequestContext[Any], _: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    state = gateway_of(ctx)
    return types.ListToolsResult(tools=[types.Tool.model_validate(tool.listing()) for tool in state.tools.values()])


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    http = http_request(ctx)
    state: GatewayState = http.app.state.gateway
    tool = state.tools.get(params.name)
    if tool is None:
        raise MCPError(types.INVALID_PARAMS, f"no tool {params.name!r}; tools/list lists them")
    arguments = params.arguments if params.arguments is not None else {}
    errors = tool.argument_errors(arguments)
    if errors:
        message = f"arguments of {tool.spec.name!r} break its input schema: {errors[0]['msg']}"
        raise MCPError(types.INVALID_PARAMS, message, {"errors": errors, "schema": tool.spec.input_schema})
    # The tenant that `McpEndpoint` authenticated, whichever task the SDK runs this handler in.
    current_tenant.set(http.state.tenant)
    try:
        result = await run_tool(state, tool, arguments, http)
    except (LimitError, TooManyRequests, QueueUnavailable, NoLiveWorker, HTTPException, ClientGone) as exc:
        raise protocol_error(exc) from None
    return types.CallToolResult.model_validate(result.model_dump(by_alias=True, exclude={"execution"}))


def protocol_error(exc: Exception) -> MCPError:
    """What a REST route answers with an HTTP status, as a JSON-RPC error carrying that status."""
    if isinstance(exc, LimitError):
        return MCPError(types.INVALID_PARAMS, str(exc), {"status": 422})
    if isinstance(exc, TooManyRequests):
        data = {"status": 429, "reason": exc.reason, "retry_after": exc.retry_after}
        return MCPError(TOO_MANY_REQUESTS, f"too many requests ({exc.reason}), retry after {exc.retry_after} s", data)
    if isinstance(exc, QueueUnavailable):
        log.warning("queue unavailable: %s: %s", type(exc.__cause__).__name__, exc.__cause__)
        return MCPError(SERVICE_UNAVAILABLE, "queue unavailable, retry later", {"status": 503, "retry_after": "1"})
    if isinstance(exc, NoLiveWorker):
        log.warning("no live worker to take the call")
        return MCPError(SERVICE_UNAVAILABLE, "no live worker, retry later", {"status": 503, "retry_after": "1"})
    if isinstance(exc, HTTPException):
        return MCPError(NO_RESULT, "no result within the call's deadline", {"status": exc.status_code})
    return MCPError(types.INTERNAL_ERROR, "the caller disconnected before the result")


def http_request(ctx: ServerRequestContext[Any]) -> Request:
    if not isinstance(ctx.request, Request):
        raise MCPError(types.INTERNAL_ERROR, "this server answers over streamable HTTP only")
    return ctx.request


def gateway_of(ctx: ServerRequestContext[Any]) -> GatewayState:
    state: GatewayState = http_request(ctx).app.state.gateway
    return state


class McpEndpoint:
    """The ASGI app at `/mcp`: authenticate like every route, then hand the request to the SDK's transport.

    The SDK's session manager runs once per lifespan (`running`), so a new one is made for each.
    """

    def __init__(self, max_body_bytes: int) -> None:
        self.server = create_server()
        self.max_body_bytes = max_body_bytes
        self.manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        manager = StreamableHTTPSessionManager(
            app=self.server,
            json_response=True,
            stateless=True,
            max_request_body_size=self.max_body_bytes,
            # API keys guard this endpoint as they guard /v1/execute; Host checks would refuse real clients.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        ready = asyncio.Event()
        stop = asyncio.Event()

        async def serve() -> None:
            async with manager.run():
                ready.set()
                await stop.wait()

        # In a task of its own: the manager's task group must be left by the task that entered it, and a
        # lifespan may be entered and left by different tasks (pytest-asyncio fixtures do).
        task = asyncio.create_task(serve(), name="mcp-session-manager")
        started = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait((task, started), return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if task.done():
            task.result()
        self.manager = manager
        try:
            yield
        finally:
            self.manager = None
            stop.set()
            await task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        # Raises 401 / 429, answered by the app's handlers as on every other route.
        tenant: Tenant = await authenticate(request)
        request.state.tenant = tenant
        if self.manager is None:
            raise HTTPException(503, "the MCP server is not running")
        await self.manager.handle_request(scope, receive, send)


def mount(app: FastAPI, endpoint: McpEndpoint) -> None:
    app.router.routes.append(Route(PATH, endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False))
