"""Named tools over HTTP: `GET /v1/tools` lists them as MCP's `tools/list` does, `POST /v1/tools/{name}`
validates the arguments against the tool's JSON schema and runs the tool as an ordinary sandboxed job.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from service.config import Settings
from service.gateway import batch
from service.gateway.calls import new_job, run_and_wait
from service.gateway.limits import LimitError, resolve_limits
from service.gateway.routes import CALL_RESPONSES, IdempotencyKey
from service.gateway.state import GatewayState, gateway_state
from service.models import BatchRequest, ExecutionResult, Status, TextContent, ToolCallResult
from service.tools.registry import Tool, ToolPackError

router = APIRouter(tags=["tools"])
State = Annotated[GatewayState, Depends(gateway_state)]
LIST_EXAMPLE = {
    "tools": [
        {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression",
            "inputSchema": {"type": "object", "properties": {"expression": {"type": "string"}}},
        }
    ]
}


@router.get(
    "/v1/tools",
    summary="The tools this deployment offers, in MCP's tools/list shape",
    responses={200: {"content": {"application/json": {"example": LIST_EXAMPLE}}}},
)
async def list_tools(state: State) -> dict[str, list[dict[str, Any]]]:
    return {"tools": [tool.listing() for tool in state.tools.values()]}


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: Any = Field(default_factory=dict)


class ToolBatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "calls": [
                        {"name": "calculator", "arguments": {"expression": "2^10"}},
                        {"name": "math_verify", "arguments": {"answer": "\\boxed{\\frac12}", "reference": "0.5"}},
                    ]
                }
            ]
        },
    )

    calls: list[ToolCall] = Field(min_length=1, max_length=1000)


class ToolBatchResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "content": [{"type": "text", "text": '{"result": 1024}'}],
                            "structuredContent": {"result": 1024},
                            "isError": False,
                            "execution": {"id": "5f0c6b1e8f6a4c39b1b9f3f1a2d4e6c8", "status": "ok"},
                        }
                    ]
                }
            ]
        }
    )

    results: list[ToolCallResult]


# Registered before `/v1/tools/{name}`, which would otherwise take "batch" for a tool's name.
@router.post(
    "/v1/tools/batch",
    response_model=ToolBatchResult,
    response_model_by_alias=True,
    summary="Call up to 1,000 tools at once, as `/v1/execute/batch` runs calls; results in request order",
    responses={
        422: {"description": "An unknown tool or arguments that break its schema; `loc` names the call's index"},
        503: {"description": "Queue unavailable; retry after the given delay"},
    },
)
async def call_tools_batch(body: ToolBatchRequest, state: State, http: Request) -> Any:
    requests, errors = [], []
    for index, call in enumerate(body.calls):
        tool = state.tools.get(call.name)
        if tool is None:
            errors.append(
                {"loc": ["body", "calls", index, "name"], "msg": f"no tool {call.name!r}", "type": "value_error"}
            )
            continue
        for error in tool.argument_errors(call.arguments):
            errors.append({**error, "loc": ["body", "calls", index, "arguments", *error["loc"][1:]]})
        requests.append(tool.request(call.arguments))
    if errors:
        return JSONResponse({"detail": errors}, status_code=422)
    response = await batch.execute_batch(BatchRequest(calls=requests), state, http, stream=False)
    results = orjson.loads(response.body)["results"]
    return ToolBatchResult(results=[tool_result(ExecutionResult.model_validate(result)) for result in results])


@router.post(
    "/v1/tools/{name}",
    response_model=ToolCallResult,
    response_model_by_alias=True,
    summary="Call a tool with JSON arguments; 422 names what breaks its input schema",
    responses={**CALL_RESPONSES, 404: {"description": "No such tool"}},
)
async def call_tool(
    name: str,
    state: State,
    http: Request,
    arguments: Annotated[Any, Body(examples=[{"expression": "2^10 + sqrt(16)"}])],
    idempotency_key: IdempotencyKey = None,
) -> Any:
    tool = state.tools.get(name)
    if tool is None:
        raise HTTPException(404, detail=f"no tool {name!r}; GET /v1/tools lists them")
    errors = tool.argument_errors(arguments)
    if errors:
        return JSONResponse({"detail": errors, "schema": tool.spec.input_schema}, status_code=422)
    return await run_tool(state, tool, arguments, http, idempotency_key)


async def run_tool(
    state: GatewayState, tool: Tool, arguments: Any, http: Request, idempotency_key: str | None = None
) -> ToolCallResult:
    """A tool call with valid arguments as a job on the queue, and its answer (REST and MCP alike)."""
    job = new_job(state, tool.request(arguments), state.id, state.settings.queue_wait_s)
    return tool_result(ExecutionResult.model_validate_json(await run_and_wait(state, job, http, idempotency_key)))


def tool_result(result: ExecutionResult) -> ToolCallResult:
    """The program's JSON output as structured content; any failure, or output that is not a JSON
    object, is an error result (MCP reports tool failures in the result, not as protocol errors)."""
    structured = parse_object(result.stdout)
    text = result.stdout if result.stdout else (result.reason or result.stderr)
    return ToolCallResult(
        content=[TextContent(text=text)],
        structured_content=structured,
        is_error=result.status != Status.ok or structured is None,
        execution=result,
    )


def check_tool_limits(tools: dict[str, Tool], settings: Settings) -> None:
    """At start-up: a tool whose own limits or extra files this deployment would refuse on every call
    is a broken pack, named as such, not a 4xx for its callers later."""
    for tool in tools.values():
        try:
            resolve_limits(tool.request({}), settings)
        except LimitError as exc:
            raise ToolPackError(tool.origin, f"tool {tool.spec.name!r}: {exc}") from None


def parse_object(text: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
