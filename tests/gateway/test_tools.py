"""Tools over the real stack: MCP-shaped listing, schema errors, each shipped tool run in the sandbox."""

from __future__ import annotations

import httpx


def call(api: httpx.Client, name: str, arguments: object) -> dict[str, object]:
    response = api.post(f"/v1/tools/{name}", json=arguments)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_tools_are_listed_in_mcp_shape(api: httpx.Client) -> None:
    tools = api.get("/v1/tools").json()["tools"]
    assert {tool["name"] for tool in tools} >= {"python", "bash", "calculator", "math_verify"}
    for tool in tools:
        assert set(tool) == {"name", "description", "inputSchema"}
        assert tool["inputSchema"]["type"] == "object"


def test_calculator(api: httpx.Client) -> None:
    answer = call(api, "calculator", {"expression": "2^10 + sqrt(16)"})
    assert answer["isError"] is False
    assert answer["structuredContent"] == {"result": 1028}
    assert answer["content"] == [{"type": "text", "text": '{"result": 1028}\n'}]
    execution = answer["execution"]
    assert isinstance(execution, dict) and execution["status"] == "ok"


def test_calculator_refusal_is_an_error_result(api: httpx.Client) -> None:
    answer = call(api, "calculator", {"expression": "__import__('os')"})
    assert answer["isError"] is True
    assert "not allowed" in str(answer["structuredContent"])


def test_math_verify_rewards_an_equivalent_answer(api: httpx.Client) -> None:
    answer = call(api, "math_verify", {"answer": "Thus \\boxed{\\frac{2}{4}}", "reference": "0.5"})
    assert answer["structuredContent"] == {
        "status": "ok",
        "equivalent": True,
        "reward": 1.0,
        "extracted": {"answer": ["1/2", "\\frac{2}{4}"], "reference": ["0.500000000000000", "0.5"]},
    }


def test_python_tool_runs_code_with_stdin(api: httpx.Client) -> None:
    answer = call(api, "python", {"code": "import sympy; print(sympy.factor(input()))", "stdin": "x**2-1"})
    assert answer["structuredContent"] == {"stdout": "(x - 1)*(x + 1)\n", "stderr": "", "exit_code": 0}


def test_bash_tool_reports_the_exit_code(api: httpx.Client) -> None:
    answer = call(api, "bash", {"command": "echo hi; exit 4"})
    assert answer["structuredContent"] == {"stdout": "hi\n", "stderr": "", "exit_code": 4}


def test_arguments_breaking_the_schema_are_422_with_the_schema_error(api: httpx.Client) -> None:
    response = api.post("/v1/tools/calculator", json={"expression": 7, "extra": True})
    assert response.status_code == 422
    body = response.json()
    messages = [error["msg"] for error in body["detail"]]
    assert "7 is not of type 'string'" in messages
    assert any("extra" in message for message in messages)
    assert body["schema"]["required"] == ["expression"]


def test_unknown_tool_is_404(api: httpx.Client) -> None:
    assert api.post("/v1/tools/nope", json={}).status_code == 404
