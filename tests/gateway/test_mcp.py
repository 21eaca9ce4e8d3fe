"""`/mcp` over the real stack, driven by the `mcp` SDK's own client: list, call, schema errors, keys."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from service.config import Settings
from service.gateway.app import create_app
from service.queue.redis_queue import RedisQueue, connect
from service.stack import LocalStack
from tests.conftest import OPS_KEY, THROTTLED_KEY

# One valid call of each shipped tool and what its structured answer holds.
CALLS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "python": ({"code": "print(sum(range(int(input()))))", "stdin": "10"}, {"stdout": "45\n", "exit_code": 0}),
    "bash": ({"command": "echo hi; exit 3"}, {"stdout": "hi\n", "exit_code": 3}),
    "calculator": ({"expression": "2^10 + sqrt(16)"}, {"result": 1028}),
    "math_verify": ({"answer": "so \\boxed{\\frac{2}{4}}", "reference": "0.5"}, {"equivalent": True, "reward": 1.0}),
}
# Both ways the SDK's client speaks: the initialize handshake, and the probe that falls back to it.
MODES = ["legacy", "auto"]


def mcp_url(stack: LocalStack) -> str:
    return f"{stack.url}/mcp"


@pytest.mark.parametrize("mode", MODES)
async def test_tools_list_is_the_registry(stack: LocalStack, api: httpx.Client, mode: str) -> None:
    async with Client(mcp_url(stack), mode=mode) as client:  # type: ignore[arg-type]
        listed = await client.list_tools()
    rest = api.get("/v1/tools").json()["tools"]
    assert [tool.model_dump(by_alias=True, exclude_none=True) for tool in listed.tools] == rest
    assert {tool.name for tool in listed.tools} >= set(CALLS)


@pytest.mark.parametrize("mode", MODES)
async def test_every_shipped_tool_runs_in_the_sandbox(stack: LocalStack, mode: str) -> None:
    async with Client(mcp_url(stack), mode=mode) as client:  # type: ignore[arg-type]
        for name, (arguments, expected) in CALLS.items():
            result = await client.call_tool(name, arguments)
            assert result.is_error is False, (name, result)
            assert result.structured_content is not None
            assert expected.items() <= result.structured_content.items(), (name, result.structured_content)
            text = result.content[0]
            assert isinstance(text, types.TextContent) and text.text.strip().startswith("{")


async def test_a_failing_tool_is_an_error_result_not_a_protocol_error(stack: LocalStack) -> None:
    async with Client(mcp_url(stack), mode="legacy") as client:
        result = await client.call_tool("calculator", {"expression": "__import__('os')"})
    assert result.is_error is True
    assert "not allowed" in str(result.structured_content)


async def test_arguments_breaking_the_schema_are_an_invalid_params_error(stack: LocalStack) -> None:
    async with Client(mcp_url(stack), mode="legacy") as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("calculator", {"expression": 7, "extra": True})
    assert raised.value.code == types.INVALID_PARAMS
    assert "input schema" in raised.value.message
    errors = raised.value.data["errors"]
    assert {error["type"] for error in errors} == {"schema.type", "schema.additionalProperties"}


async def test_unknown_tool_is_an_invalid_params_error(stack: LocalStack) -> None:
    async with Client(mcp_url(stack), mode="legacy") as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("no_such_tool", {})
    assert raised.value.code == types.INVALID_PARAMS
    assert "no_such_tool" in raised.value.message


def test_raw_json_rpc_initialize_list_call(stack: LocalStack) -> None:
    """The wire as any framework's client sends it, without the SDK."""
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=60) as http:
        params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
        initialized = http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
        assert initialized.status_code == 200, initialized.text
        assert initialized.json()["result"]["serverInfo"]["name"] == "sandpit"
        assert "tools" in initialized.json()["result"]["capabilities"]
        listed = http.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).json()
        assert "calculator" in {tool["name"] for tool in listed["result"]["tools"]}
        call = {"name": "calculator", "arguments": {"expression": "6*7"}}
        called = http.post("/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call}).json()
        assert called["result"]["structuredContent"] == {"result": 42}
        assert called["result"]["isError"] is False


def keyed_client(stack: LocalStack, key: str | None) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    return Client(streamable_http_client(mcp_url(stack), http_client=http), mode="legacy")


async def test_a_key_is_needed_where_keys_are_configured(observed_stack: LocalStack) -> None:
    async with keyed_client(observed_stack, OPS_KEY) as client:
        result = await client.call_tool("calculator", {"expression": "1+1"})
    assert result.structured_content == {"result": 2}
    with httpx.Client(base_url=observed_stack.url) as http:
        refused = http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert refused.status_code == 401
        wrong = http.post("/mcp", headers={"X-API-Key": "nope"}, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert wrong.status_code == 401


def test_a_tenant_over_its_rate_is_refused_with_429(observed_stack: LocalStack) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"X-API-Key": THROTTLED_KEY, "Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=observed_stack.url, headers=headers) as http:
        statuses = [http.post("/mcp", json=body).status_code for _ in range(3)]
    assert 429 in statuses


async def test_a_tenant_over_its_quota_gets_the_quota_error_as_on_rest(redis_url: str) -> None:
    prefix = f"test{uuid.uuid4().hex[:8]}"
    app = create_app(Settings(redis_url=redis_url, key_prefix=prefix, tenant_max_in_flight=1))
    redis = connect(redis_url)
    # One job of the anonymous tenant is already in flight: its quota of one is used up.
    await redis.hset(RedisQueue(redis, prefix).keys.in_flight, "anonymous", 1)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
                async with Client(streamable_http_client("http://gateway/mcp", http_client=http), mode="legacy") as c:
                    with pytest.raises(MCPError) as raised:
                        await c.call_tool("calculator", {"expression": "1+1"})
                rest = await http.post("/v1/tools/calculator", json={"expression": "1+1"})
    finally:
        await redis.aclose()
    assert raised.value.data == {"status": 429, "reason": "tenant_quota", "retry_after": "1"}
    assert (rest.status_code, rest.json()["reason"]) == (429, "tenant_quota")
