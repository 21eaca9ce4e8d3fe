"""The whole path over HTTP: gateway -> Redis -> worker -> sandbox -> back, per language and status."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.stack import LocalStack
from tests.calls import execute


@pytest.mark.parametrize(
    ("language", "code", "stdout"),
    [
        ("python", "print(1+1)", "2\n"),
        ("bash", "echo $((6*7))", "42\n"),
        ("cpp", "#include <iostream>\nint main(){std::cout<<6*7<<std::endl;}", "42\n"),
    ],
)
def test_each_language_runs_and_prints(api: httpx.Client, language: str, code: str, stdout: str) -> None:
    result = execute(api, language=language, code=code)
    assert result["status"] == "ok"
    assert result["exit_code"] == 0
    assert result["stdout"] == stdout
    assert isinstance(result["id"], str) and len(result["id"]) == 32


def test_python_has_numpy_and_sympy(api: httpx.Client) -> None:
    code = "import numpy as np, sympy as sp\nprint(int(np.arange(5).sum()), sp.factor(sp.Symbol('x')**2-1))"
    result = execute(api, language="python", code=code)
    assert result["status"] == "ok", result
    assert result["stdout"] == "10 (x - 1)*(x + 1)\n"


@pytest.mark.parametrize("language", ["python", "bash", "cpp"])
def test_stdin_reaches_the_program(api: httpx.Client, language: str) -> None:
    code = {
        "python": "import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))",
        "bash": "read a b; echo $((a+b))",
        "cpp": "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<'\\n';}",
    }[language]
    result = execute(api, language=language, code=code, stdin="40 2\n")
    assert result["status"] == "ok", result
    assert result["stdout"] == "42\n"


def test_nonzero_exit_is_error_with_stderr(api: httpx.Client) -> None:
    result = execute(api, language="python", code="import sys\nprint('bad', file=sys.stderr)\nsys.exit(3)")
    assert result["status"] == "error"
    assert result["exit_code"] == 3
    assert result["stderr"] == "bad\n"


def test_uncaught_exception_is_error_with_traceback(api: httpx.Client) -> None:
    result = execute(api, language="python", code="1/0")
    assert result["status"] == "error"
    assert "ZeroDivisionError" in str(result["stderr"])


def test_infinite_loop_is_timeout(api: httpx.Client) -> None:
    result = execute(api, language="python", code="while True: pass", timeout_s=1)
    assert result["status"] == "timeout"
    assert 900 <= float(result["duration_ms"]) < 3000  # type: ignore[arg-type]


def test_sleep_past_timeout_is_timeout(api: httpx.Client) -> None:
    result = execute(api, language="bash", code="sleep 30", timeout_s=0.5)
    assert result["status"] == "timeout"


def test_allocation_over_the_cap_is_memory_limit(api: httpx.Client) -> None:
    result = execute(api, language="python", code="x = bytearray(400 * 2**20)", memory_mb=128)
    assert result["status"] == "memory_limit", result


def test_cpp_allocation_over_the_cap_is_memory_limit(api: httpx.Client) -> None:
    code = "#include <vector>\nint main(){std::vector<char> v(1ul<<31); return v[5];}"
    result = execute(api, language="cpp", code=code, memory_mb=256)
    assert result["status"] == "memory_limit", result


def test_large_output_is_truncated_and_flagged(api: httpx.Client) -> None:
    result = execute(api, language="python", code="import sys\nsys.stdout.write('x' * (5 * 2**20))")
    assert result["status"] == "ok"
    assert result["truncated"] is True
    assert result["stdout_bytes"] == 5 * 2**20
    assert len(str(result["stdout"])) == 2**20


def test_large_output_with_strict_output_is_output_limit(api: httpx.Client) -> None:
    code = "import sys\nsys.stdout.write('x' * (5 * 2**20))"
    result = execute(api, language="python", code=code, strict_output=True)
    assert result["status"] == "output_limit"


def test_cpp_compile_failure_is_compile_error_with_message(api: httpx.Client) -> None:
    result = execute(api, language="cpp", code="int main() { return undeclared; }")
    assert result["status"] == "compile_error"
    assert "undeclared" in str(result["stderr"])
    compile_stage = result["compile"]
    assert isinstance(compile_stage, dict) and compile_stage["exit_code"] != 0


def test_cpp_segfault_is_error_with_signal(api: httpx.Client) -> None:
    result = execute(api, language="cpp", code="int main(){ volatile int* p = nullptr; return *p; }")
    assert result["status"] == "error"
    assert result["signal"] == 11


def test_invalid_utf8_output_comes_back_as_replacement_characters(api: httpx.Client) -> None:
    result = execute(api, language="python", code="import sys\nsys.stdout.buffer.write(b'ok\\xff\\xfe\\n')")
    assert result["status"] == "ok"
    assert result["stdout"] == "ok\ufffd\ufffd\n"


async def test_two_hundred_concurrent_calls_all_answer_correctly(stack: LocalStack) -> None:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=stack.url, timeout=120, limits=limits) as client:

        async def call(i: int) -> dict[str, object]:
            response = await client.post("/v1/execute", json={"language": "python", "code": f"print({i} * {i})"})
            assert response.status_code == 200, response.text
            result: dict[str, object] = response.json()
            return result

        results = await asyncio.gather(*(call(i) for i in range(200)))
    for i, result in enumerate(results):
        assert result["status"] == "ok", result
        assert result["stdout"] == f"{i * i}\n"
    assert len({result["id"] for result in results}) == 200


def test_healthz_and_readyz(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["redis"] is True
    assert ready.json()["workers"] == 2
