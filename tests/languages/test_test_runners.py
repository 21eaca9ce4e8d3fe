"""Test-runner modes (SandboxFusion's `pytest`, `go_test`): the code is a test file, success means it passed."""

from __future__ import annotations

import base64

import httpx
import pytest

PYTEST = """
def add(a, b):
    return a + b

def test_adds():
    assert add(1, 2) == 3

def test_adds_negatives():
    assert add(-1, -2) == {expected}
"""

GO_SOLUTION = "package main\n\nfunc add(a, b int) int { return a + b }\n\nfunc main() {}\n"
GO_TEST = """package main

import "testing"

func TestAdd(t *testing.T) {
\tif got := add(1, 2); got != {expected} {
\t\tt.Fatalf("add(1, 2) = %d", got)
\t}
}
"""


def run_code(api: httpx.Client, **body: object) -> dict[str, object]:
    response = api.post("/run_code", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


@pytest.mark.parametrize(("expected", "status"), [("-3", "Success"), ("-4", "Failed")])
def test_pytest_succeeds_only_when_every_test_passes(api: httpx.Client, expected: str, status: str) -> None:
    answer = run_code(api, language="pytest", code=PYTEST.replace("{expected}", expected))
    assert answer["status"] == status, answer
    run = answer["run_result"]
    assert isinstance(run, dict)
    assert ("2 passed" if status == "Success" else "1 failed, 1 passed") in run["stdout"], answer


@pytest.mark.parametrize(("expected", "status"), [("3", "Success"), ("4", "Failed")])
def test_go_test_runs_the_test_file_against_the_calls_files(api: httpx.Client, expected: str, status: str) -> None:
    files = {"main.go": base64.b64encode(GO_SOLUTION.encode()).decode()}
    answer = run_code(api, language="go_test", code=GO_TEST.replace("{expected}", expected), files=files)
    assert answer["status"] == status, answer
    run = answer["run_result"]
    assert isinstance(run, dict)
    assert ("ok" if status == "Success" else "add(1, 2) = 3") in str(run["stdout"]), answer


JUNIT = """import org.junit.jupiter.api.Test;
import static org.junit.jupiter.api.Assertions.assertEquals;

public class CalculatorTest {
    @Test
    void adds() {
        assertEquals({expected}, Calculator.add(1, 2));
    }
}
"""
CALCULATOR = "public class Calculator {\n    static int add(int a, int b) { return a + b; }\n}\n"


@pytest.mark.parametrize(("expected", "status"), [("3", "Success"), ("4", "Failed")])
def test_junit_compiles_the_test_class_with_the_calls_sources(api: httpx.Client, expected: str, status: str) -> None:
    files = {"Calculator.java": base64.b64encode(CALCULATOR.encode()).decode()}
    answer = run_code(api, language="junit", code=JUNIT.replace("{expected}", expected), files=files)
    assert answer["status"] == status, answer
    run = answer["run_result"]
    assert isinstance(run, dict)
    assert ("1 tests successful" if status == "Success" else "1 tests failed") in str(run["stdout"]), answer
