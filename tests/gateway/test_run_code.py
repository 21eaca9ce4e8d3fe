"""`POST /run_code` answers in SandboxFusion's shapes, over the real stack."""

from __future__ import annotations

import base64

import httpx
import pytest


def run_code(api: httpx.Client, **body: object) -> dict[str, object]:
    response = api.post("/run_code", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    assert set(answer) == {"status", "message", "compile_result", "run_result", "executor_pod_name", "files"}
    return answer


def run_result(answer: dict[str, object]) -> dict[str, object]:
    result = answer["run_result"]
    assert isinstance(result, dict)
    assert set(result) == {"status", "execution_time", "cpu_time", "return_code", "stdout", "stderr"}
    return result


def test_python_success(api: httpx.Client) -> None:
    answer = run_code(api, code="print(input()[::-1])", language="python", stdin="abc")
    assert answer["status"] == "Success"
    assert answer["compile_result"] is None
    result = run_result(answer)
    assert result["status"] == "Finished"
    assert result["return_code"] == 0
    assert result["stdout"] == "cba\n"
    assert 0 < float(result["execution_time"]) < 5  # type: ignore[arg-type]


def test_nonzero_exit_is_failed_with_its_return_code(api: httpx.Client) -> None:
    answer = run_code(api, code="import sys; sys.exit(3)", language="python")
    assert answer["status"] == "Failed"
    assert run_result(answer)["return_code"] == 3


def test_timeout_is_time_limit_exceeded(api: httpx.Client) -> None:
    answer = run_code(api, code="while True: pass", language="python", run_timeout=0.5)
    assert answer["status"] == "Failed"
    assert run_result(answer)["status"] == "TimeLimitExceeded"


def test_cpp_has_a_compile_result(api: httpx.Client) -> None:
    answer = run_code(api, code='#include <cstdio>\nint main(){puts("hi");}', language="cpp")
    assert answer["status"] == "Success"
    compile_result = answer["compile_result"]
    assert isinstance(compile_result, dict)
    assert (compile_result["status"], compile_result["return_code"]) == ("Finished", 0)
    assert run_result(answer)["stdout"] == "hi\n"


def test_cpp_compile_error_is_failed_without_run_result(api: httpx.Client) -> None:
    answer = run_code(api, code="int main(){ return nope; }", language="cpp")
    assert answer["status"] == "Failed"
    assert answer["run_result"] is None
    compile_result = answer["compile_result"]
    assert isinstance(compile_result, dict) and compile_result["return_code"] != 0
    assert "nope" in str(compile_result["stderr"])


def test_files_and_fetch_files_are_base64(api: httpx.Client) -> None:
    code = "open('out.txt', 'w').write(open('in.txt').read().upper())"
    files = {"in.txt": base64.b64encode(b"hello").decode()}
    answer = run_code(api, code=code, language="python", files=files, fetch_files=["out.txt"])
    assert answer["files"] == {"out.txt": base64.b64encode(b"HELLO").decode()}


def test_memory_limit_is_enforced(api: httpx.Client) -> None:
    answer = run_code(api, code="x = bytearray(300 * 2**20)", language="python", memory_limit_MB=64)
    assert answer["status"] == "Failed"
    assert run_result(answer)["return_code"] != 0


def test_unsupported_language_is_sandbox_error(api: httpx.Client) -> None:
    answer = run_code(api, code="PROCEDURE DIVISION.", language="klingon")
    assert answer["status"] == "SandboxError"
    assert "klingon" in str(answer["message"])


def test_unknown_fields_are_ignored_like_sandbox_fusion(api: httpx.Client) -> None:
    assert run_code(api, code="print(1)", language="python", args=["-v"])["status"] == "Success"


@pytest.mark.parametrize("body", [{"language": "python"}, {"code": "print(1)"}, {"code": "", "language": "python"}])
def test_malformed_request_is_422(api: httpx.Client, body: dict[str, object]) -> None:
    assert api.post("/run_code", json=body).status_code == 422
