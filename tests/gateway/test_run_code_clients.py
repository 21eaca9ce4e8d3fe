"""`POST /run_code` with the bodies RL frameworks' SandboxFusion clients really send, over the real stack.

Each answer is checked against SandboxFusion's response shape; SandboxFusion's own SDK (`sandbox_fusion`)
is driven unchanged.
"""

from __future__ import annotations

import base64

import httpx
import pytest
import sandbox_fusion

from service.stack import LocalStack

RESPONSE_KEYS = {"status", "message", "compile_result", "run_result", "executor_pod_name", "files"}
CODE = "import sys\nprint(sys.stdin.read().upper(), end='')"
# verl's `call_sandbox_api` (verl/utils/reward_score/sandbox_fusion/utils.py): every field, files empty.
VERL = {
    "compile_timeout": 10,
    "run_timeout": 10,
    "code": CODE,
    "stdin": "abc",
    "language": "python",
    "files": {},
    "fetch_files": [],
}
BODIES = {
    "verl": VERL,
    "verl with memory_limit_MB": {**VERL, "memory_limit_MB": 1024},
    "stdin null": {**VERL, "stdin": None},
    "memory_limit_MB -1 (SandboxFusion's default)": {**VERL, "memory_limit_MB": -1},
    "file with null content": {**VERL, "files": {"empty.txt": None}},
    "unknown extra fields": {**VERL, "args": [], "request_id": "r-1", "extra": {"nested": True}},
    "only code and language": {"code": CODE, "language": "python"},
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_client_bodies_are_answered_in_sandbox_fusion_shape(api: httpx.Client, body: dict[str, object]) -> None:
    response = api.post("/run_code", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == RESPONSE_KEYS
    assert (answer["status"], answer["message"], answer["compile_result"]) == ("Success", "", None)
    run_result = answer["run_result"]
    assert run_result["status"] == "Finished" and run_result["return_code"] == 0
    assert run_result["stdout"] == ("ABC" if body.get("stdin") else "")
    assert isinstance(run_result["execution_time"], float) and isinstance(run_result["cpu_time"], float | None)


def test_file_with_null_content_is_an_empty_file(api: httpx.Client) -> None:
    body = {**VERL, "code": "import os; print(os.path.getsize('empty.txt'))", "files": {"empty.txt": None}}
    assert api.post("/run_code", json=body).json()["run_result"]["stdout"] == "0\n"


def test_sandbox_fusion_sdk_run_code(stack: LocalStack) -> None:
    request = sandbox_fusion.RunCodeRequest(
        code="open('out.txt', 'w').write(input() * 2)",
        language="python",
        stdin="ab",
        files={"unused.bin": base64.b64encode(b"\0\1").decode()},
        fetch_files=["out.txt"],
    )
    response = sandbox_fusion.run_code(request, endpoint=stack.url, max_attempts=1)
    assert response.status == sandbox_fusion.RunStatus.Success
    assert response.run_result.return_code == 0
    assert response.files == {"out.txt": base64.b64encode(b"abab").decode()}


def test_sandbox_fusion_sdk_summary_of_a_failed_run(stack: LocalStack) -> None:
    request = sandbox_fusion.RunCodeRequest(code="raise SystemExit(2)", language="python")
    response = sandbox_fusion.run_code(request, endpoint=stack.url, max_attempts=1)
    summary = sandbox_fusion.summary_run_code_result(response, sandbox_fusion.SummaryMapping(RunFailed="failed"))
    assert (response.status, summary) == (sandbox_fusion.RunStatus.Failed, "failed")
