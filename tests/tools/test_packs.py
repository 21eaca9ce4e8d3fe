"""The example tool packs through the real stack: listed by /v1/tools, called alone and in a batch, their
bundled files in the workspace, their errors as error results, bad arguments as 422."""

from __future__ import annotations

import httpx
from mcp import Client


def test_pack_tools_are_listed_beside_the_shipped_ones(tools_api: httpx.Client) -> None:
    tools = {tool["name"]: tool for tool in tools_api.get("/v1/tools").json()["tools"]}
    assert list(tools)[-2:] == ["shop_sql", "convert_units"]
    assert {"python", "bash", "calculator", "math_verify"} <= set(tools)
    assert tools["shop_sql"]["inputSchema"]["required"] == ["query"]
    assert "customers(id, name, city, joined)" in tools["shop_sql"]["description"]


def test_sql_tool_queries_the_bundled_database(tools_api: httpx.Client) -> None:
    query = "SELECT category, COUNT(*) AS n FROM products GROUP BY category ORDER BY category"
    answer = tools_api.post("/v1/tools/shop_sql", json={"query": query}).json()
    assert answer["isError"] is False, answer
    assert answer["structuredContent"] == {
        "columns": ["category", "n"],
        "rows": [["electronics", 4], ["food", 3], ["home", 2], ["stationery", 3]],
        "truncated": False,
    }
    assert answer["execution"]["status"] == "ok"


def test_sql_tool_cannot_change_the_database(tools_api: httpx.Client) -> None:
    for query in ("DELETE FROM products", "ATTACH DATABASE 'x.db' AS x", "SELECT 1; DROP TABLE orders"):
        answer = tools_api.post("/v1/tools/shop_sql", json={"query": query}).json()
        assert answer["isError"] is True, query
        assert "error" in answer["structuredContent"]
    count = tools_api.post("/v1/tools/shop_sql", json={"query": "SELECT COUNT(*) FROM products"}).json()
    assert count["structuredContent"]["rows"] == [[12]]


def test_pack_tools_run_in_one_batch_in_request_order(tools_api: httpx.Client) -> None:
    calls = [
        {"name": "convert_units", "arguments": {"value": 100, "from": "C", "to": "F"}},
        {"name": "shop_sql", "arguments": {"query": "SELECT id FROM orders ORDER BY id", "max_rows": 2}},
        {"name": "convert_units", "arguments": {"value": 1, "from": "kg", "to": "km"}},
        {"name": "calculator", "arguments": {"expression": "6*7"}},
    ]
    response = tools_api.post("/v1/tools/batch", json={"calls": calls})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["structuredContent"] for result in results] == [
        {"value": 212.0, "unit": "F", "dimension": "temperature"},
        {"columns": ["id"], "rows": [[1], [2]], "truncated": True},
        {"error": "cannot convert mass to length"},
        {"result": 42},
    ]
    assert [result["isError"] for result in results] == [False, False, True, False]


def test_a_batch_with_an_unknown_tool_or_bad_arguments_is_422_naming_the_call(tools_api: httpx.Client) -> None:
    calls = [
        {"name": "convert_units", "arguments": {"value": 1, "from": "kg", "to": "lb"}},
        {"name": "nope", "arguments": {}},
        {"name": "convert_units", "arguments": {"value": "one", "from": "parsec", "to": "lb"}},
    ]
    response = tools_api.post("/v1/tools/batch", json={"calls": calls})
    assert response.status_code == 422
    locations = [error["loc"] for error in response.json()["detail"]]
    assert ["body", "calls", 1, "name"] in locations
    assert ["body", "calls", 2, "arguments", "value"] in locations
    assert ["body", "calls", 2, "arguments", "from"] in locations
    assert all(location[2] != 0 for location in locations)


def test_an_empty_batch_is_422(tools_api: httpx.Client) -> None:
    assert tools_api.post("/v1/tools/batch", json={"calls": []}).status_code == 422
    assert tools_api.post("/v1/tools/batch", json={"calls": [{"arguments": {}}]}).status_code == 422


def test_unit_tool_arguments_outside_its_schema_are_422(tools_api: httpx.Client) -> None:
    response = tools_api.post("/v1/tools/convert_units", json={"value": 1, "from": "kg", "to": "stone"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "to"]


async def test_pack_tools_are_listed_and_called_over_mcp(tools_api: httpx.Client) -> None:
    async with Client(f"{tools_api.base_url}/mcp") as client:  # type: ignore[arg-type]
        listed = await client.list_tools()
        result = await client.call_tool("convert_units", {"value": 2, "from": "km", "to": "m"})
    assert [tool.name for tool in listed.tools][-2:] == ["shop_sql", "convert_units"]
    assert result.is_error is False
    assert result.structured_content == {"value": 2000.0, "unit": "m", "dimension": "length"}
