"""Named tools over HTTP: `GET /v1/tools` lists them as MCP's `tools/list` does, `POST /v1/tools/{name}`
validates the arguments against the tool's JSON schema and runs the tool as an ordinary sandboxed job.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from service.gateway.calls import new_job, run_and_wait
from service.gateway.routes import CALL_RESPONSES, IdempotencyKey
from service.gateway.state import GatewayState, gateway_state
from service.models import ExecutionResult, Status, TextContent, ToolCallResult

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
    job = new_job(state, tool.request(arguments), state.id, state.settings.queue_wait_s)
    result = ExecutionResult.model_validate_json(await run_and_wait(state, job, http, idempotency_key))
    return tool_result(result)


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


def parse_object(text: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
