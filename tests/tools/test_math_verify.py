"""The `math_verify` tool is HuggingFace Math-Verify: on every labelled case (tests/tools/math_cases.py) the
library called directly and the tool called through the stack (gateway, queue, worker, sandbox) both give
the label; the library's own timeouts come back as `timeout`; the tool never mixes Debian's libraries in.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.sandbox.zygote import HEAVY_IMPORT
from tests.tools.math_cases import ALL_CASES, Case

HERE = Path(__file__).parent
PROGRAM = HERE.parents[1] / "service" / "tools" / "programs" / "math_verify.py"
LIBRARIES = "/usr/local/lib/sandpit/tool-libs/math-verify"
CHUNK = 50
RETRIES = 2


def test_the_labelled_set_covers_what_the_issue_asks_for() -> None:
    topics = {case.topic.split("_")[0] for case in ALL_CASES}
    assert len(ALL_CASES) >= 150
    assert {"fraction", "percent", "units", "set", "interval", "matrix", "equation", "text", "thousands"} <= topics
    assert {case.expected for case in ALL_CASES} == {True, False}


def library_verdicts(cases: list[Case]) -> list[bool]:
    assert Path(LIBRARIES).is_dir(), "run service/tools/install-libraries.sh (make deps does)"
    payload = [{"answer": case.answer, "reference": case.reference, "options": case.options} for case in cases]
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", str(HERE / "math_verify_direct.py"), LIBRARIES],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    verdicts: list[bool] = json.loads(done.stdout)
    return verdicts


def disagreements(cases: list[Case], verdicts: list[Any]) -> list[str]:
    return [
        f"{case.id}: got {verdict}" for case, verdict in zip(cases, verdicts, strict=True) if verdict != case.expected
    ]


def test_the_library_called_directly_gives_every_label() -> None:
    assert disagreements(ALL_CASES, library_verdicts(ALL_CASES)) == []


def timed_out(result: dict[str, Any]) -> bool:
    content = result.get("structuredContent") or {}
    return bool(result["execution"]["status"] == "timeout" or content.get("status") == "timeout")


def call_all(api: httpx.Client, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for start in range(0, len(calls), CHUNK):
        response = api.post("/v1/tools/batch", json={"calls": calls[start : start + CHUNK]})
        assert response.status_code == 200, response.text
        results += response.json()["results"]
    return results


# About 0.4 s of CPU per call (the library's import): a minute on an idle 2-core machine, more on a busy one.
@pytest.mark.timeout(1500)
def test_the_tool_through_the_stack_gives_every_label(tools_api: httpx.Client) -> None:
    calls = [
        {"name": "math_verify", "arguments": {"answer": case.answer, "reference": case.reference, **case.options}}
        for case in ALL_CASES
    ]
    results = call_all(tools_api, calls)
    # Time limits are wall-clock (the sandbox's, and the library's own alarms): on a machine busy enough
    # to stretch a 0.4 s call past them, a timeout says nothing about the case, so it is asked again.
    for _ in range(RETRIES):
        late = [index for index, result in enumerate(results) if timed_out(result)]
        for index, result in zip(late, call_all(tools_api, [calls[index] for index in late]), strict=True):
            results[index] = result
    failed = [result["execution"] for result in results if result["isError"]]
    assert failed == []
    assert all(result["structuredContent"]["status"] == "ok" for result in results)
    verdicts = [result["structuredContent"]["equivalent"] for result in results]
    assert disagreements(ALL_CASES, verdicts) == []
    rewards = {result["structuredContent"]["reward"] for result in results}
    assert rewards == {0.0, 1.0}


def test_the_answer_says_what_was_extracted_from_each_side(tools_api: httpx.Client) -> None:
    arguments = {
        "answer": "Hence \\boxed{\\begin{bmatrix}1 & 2\\\\ 3 & 4\\end{bmatrix}}",
        "reference": "$\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}$",
    }
    response = tools_api.post("/v1/tools/math_verify", json=arguments)
    assert response.status_code == 200, response.text
    verdict = response.json()["structuredContent"]
    assert verdict == {
        "status": "ok",
        "equivalent": True,
        "reward": 1.0,
        "extracted": {
            "answer": ["Matrix([[1, 2], [3, 4]])", "\\begin{bmatrix}1 & 2\\\\ 3 & 4\\end{bmatrix}"],
            "reference": ["Matrix([[1, 2], [3, 4]])", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"],
        },
    }


def test_the_librarys_own_timeout_is_status_timeout(tools_api: httpx.Client) -> None:
    response = tools_api.post("/v1/tools/math_verify", json={"answer": "\\boxed{9^{9^{9^{9}}}}", "reference": "1"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["isError"] is True
    assert answer["execution"]["status"] == "error"
    verdict = answer["structuredContent"]
    assert (verdict["status"], verdict["equivalent"], verdict["reward"]) == ("timeout", False, 0.0)
    assert "Timeout during comparison" in verdict["reason"]


@pytest.mark.parametrize(
    "arguments",
    [
        {"answer": "1", "reference": "1", "float_rounding": -1},
        {"answer": "1", "reference": "1", "strict": "yes"},
        {"answer": "1", "reference": "1", "answer_extraction": [{"type": "latex", "strings": ["A"]}]},
        {"answer": "1", "reference": "1", "reference_extraction": []},
        {"answer": "1"},
    ],
)
def test_options_outside_the_schema_are_422(tools_api: httpx.Client, arguments: dict[str, Any]) -> None:
    assert tools_api.post("/v1/tools/math_verify", json=arguments).status_code == 422


def test_the_program_runs_in_the_lean_interpreter() -> None:
    # Naming a heavy module would send it to the zygote that already imported Debian's copy.
    assert HEAVY_IMPORT.search(PROGRAM.read_text()) is None


def test_the_program_refuses_a_process_that_already_loaded_debians_copy() -> None:
    preloaded = f"import sympy, runpy; runpy.run_path({str(PROGRAM)!r}, run_name='__main__')"
    done = subprocess.run(
        ["/usr/bin/python3", "-c", preloaded],
        input=json.dumps({"answer": "1", "reference": "1"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "was loaded from /usr/lib/python3/dist-packages/" in done.stderr
    assert f"not from {LIBRARIES}" in done.stderr
