"""`POST /run_jupyter` on Sandpit's sessions, in SandboxFusion's exact shapes, over the real stack.

Driven both with raw JSON (the body SandboxFusion's SDK sends, every field of its model) and with the
SDK's own `run_jupyter`, unchanged.
"""

from __future__ import annotations

import base64

import httpx
import sandbox_fusion

from service.stack import LocalStack

CELL_KEYS = {"stdout", "stderr", "display", "error"}
RESPONSE_KEYS = {"status", "message", "driver", "cells", "executor_pod_name", "files"}


def run_jupyter(api: httpx.Client, cells: list[str], **fields: object) -> dict[str, object]:
    # What `RunJupyterRequest(cells=...).dict()` of SandboxFusion's SDK sends.
    body = {"cells": cells, "cell_timeout": 0, "total_timeout": 45, "kernel": "python3", "files": {}, "fetch_files": []}
    response = api.post("/run_jupyter", json={**body, **fields})
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    assert set(answer) == RESPONSE_KEYS
    return answer


def cells_of(answer: dict[str, object]) -> list[dict[str, object]]:
    cells = answer["cells"]
    assert isinstance(cells, list)
    for cell in cells:
        assert set(cell) == CELL_KEYS
    return cells


def test_cells_share_one_interpreter_and_show_values_as_display(api: httpx.Client) -> None:
    answer = run_jupyter(api, ["a = 'hello'", "a", "print(a)", "import sys; sys.stderr.write('warn\\n')"])
    assert answer["status"] == "Success"
    driver = answer["driver"]
    assert isinstance(driver, dict) and (driver["status"], driver["return_code"]) == ("Finished", 0)
    cells = cells_of(answer)
    assert cells[0] == {"stdout": "", "stderr": "", "display": [], "error": []}
    assert cells[1]["display"] == [{"text/plain": "'hello'"}] and cells[1]["stdout"] == ""
    assert cells[2]["stdout"] == "hello\n"
    assert cells[3]["stderr"] == "warn\n"


def test_an_error_is_reported_in_its_cell_and_later_cells_still_run(api: httpx.Client) -> None:
    answer = run_jupyter(api, ["x = 1", "assert x == 2, 'x is not two'", "print(x + 1)", "def f(:"])
    assert answer["status"] == "Success"
    cells = cells_of(answer)
    error = cells[1]["error"]
    assert isinstance(error, list) and len(error) == 1
    assert (error[0]["ename"], error[0]["evalue"]) == ("AssertionError", "x is not two")
    assert "assert x == 2" in "".join(error[0]["traceback"])
    assert "AssertionError: x is not two" in str(cells[1]["stderr"])
    assert cells[2]["stdout"] == "2\n"
    syntax = cells[3]["error"]
    assert isinstance(syntax, list) and syntax[0]["ename"] == "SyntaxError"


def test_files_in_and_out(api: httpx.Client) -> None:
    files = {"data/in.txt": base64.b64encode(b"3 4").decode()}
    cells = ["a, b = map(int, open('data/in.txt').read().split())", "open('out.txt', 'w').write(str(a * b))"]
    answer = run_jupyter(api, cells, files=files, fetch_files=["out.txt", "missing.txt"])
    assert answer["status"] == "Success"
    assert answer["files"] == {"out.txt": base64.b64encode(b"12").decode()}


def test_cell_timeout_fails_the_notebook(api: httpx.Client) -> None:
    answer = run_jupyter(api, ["print('before')", "while True: pass", "print('never')"], cell_timeout=0.5)
    assert answer["status"] == "Failed"
    driver = answer["driver"]
    assert isinstance(driver, dict) and driver["status"] == "TimeLimitExceeded"
    cells = cells_of(answer)
    assert len(cells) == 2 and cells[0]["stdout"] == "before\n"
    assert cells[1]["error"] == [{"ename": "TimeoutError", "evalue": "the cell ran out of time", "traceback": []}]


def test_total_timeout_bounds_all_cells(api: httpx.Client) -> None:
    answer = run_jupyter(api, ["import time", "time.sleep(0.6)", "time.sleep(0.6)", "print('never')"], total_timeout=1)
    assert answer["status"] == "Failed"
    assert len(cells_of(answer)) < 4


def test_malformed_requests_are_422(api: httpx.Client) -> None:
    for body in ({}, {"cells": "print(1)"}, {"cells": [], "kernel": "ruby"}, {"cells": [], "fetch_files": ["../x"]}):
        assert api.post("/run_jupyter", json=body).status_code == 422, body


def test_sandbox_fusion_sdk_run_jupyter_works_unchanged(stack: LocalStack) -> None:
    request = sandbox_fusion.RunJupyterRequest(cells=["a = 123", "a", "print(a)", "raise RuntimeError('oops')"])
    response = sandbox_fusion.run_jupyter(request, endpoint=stack.url, max_attempts=1)
    assert response.status == sandbox_fusion.RunStatus.Success
    assert [cell.stdout for cell in response.cells] == ["", "", "123\n", ""]
    assert response.cells[1].display == [{"text/plain": "123"}]
    assert response.cells[3].error[0]["ename"] == "RuntimeError"


def test_a_file_over_the_output_cap_is_left_out_not_cut_short(api: httpx.Client) -> None:
    cells = ["open('big.bin', 'wb').write(b'x' * 2**20)", "open('small.txt', 'w').write('ok')"]
    answer = run_jupyter(api, cells, fetch_files=["big.bin", "small.txt"], memory_limit_MB=10**6)
    assert answer["status"] == "Success"
    assert answer["files"] == {"small.txt": base64.b64encode(b"ok").decode()}
