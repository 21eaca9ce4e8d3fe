"""What each scenario sends, and how to tell a correct answer from a wrong one.

A `Workload` is one HTTP request body with a checker. Every response of a benchmark is checked:
a non-200 answer, a status other than `ok` or the wrong stdout counts as an error, never as a call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

Checker = Callable[[Any], str | None]

EXECUTE = "/v1/execute"
BATCH = "/v1/execute/batch"
JUDGE = "/v1/judge"
RUN_CODE = "/run_code"


@dataclass(frozen=True)
class Workload:
    name: str
    body: dict[str, Any]
    check: Checker
    path: str = EXECUTE
    # Calls carried by one request: 1 for /v1/execute, the batch size or case count otherwise.
    items: int = 1
    payload: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", orjson.dumps(self.body))


def result_problem(result: Any, stdout: str) -> str | None:
    """Why one execution result is not an `ok` run that printed `stdout`, or None if it is."""
    if not isinstance(result, dict):
        return "malformed result"
    if result.get("status") != "ok":
        return f"status {result.get('status')}"
    if result.get("stdout") != stdout:
        return "wrong stdout"
    return None


def expect_stdout(stdout: str) -> Checker:
    return lambda result: result_problem(result, stdout)


def python(name: str, code: str, stdout: str) -> Workload:
    return Workload(name, {"language": "python", "code": code}, expect_stdout(stdout))


TRIVIAL_CODE = "print(1+1)"
NUMPY_SYMPY_CODE = (
    "import numpy, sympy\nx = sympy.Symbol('x')\nprint(int(numpy.arange(10).sum()), sympy.factor(x**2 - 1))\n"
)
# The design brief's heavy call: numpy and sympy imported, sympy.simplify on a parsed string.
NUMPY_SYMPY_SIMPLIFY_CODE = "import numpy as np, sympy as sp; print(int(np.arange(10).sum()), sp.simplify('x+x'))\n"
# Busy for 50 ms of CPU time, not wall time, so a loaded machine does not shorten the work.
CPU_50MS_CODE = (
    "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.05:\n    pass\nprint('done')\n"
)
CPP_HELLO_CODE = '#include <cstdio>\nint main() { std::puts("hello"); }\n'
LOOP_CODE = "while True:\n    pass\n"

TRIVIAL = python("trivial_python", TRIVIAL_CODE, "2\n")
NUMPY_SYMPY = python("numpy_sympy", NUMPY_SYMPY_CODE, "45 (x - 1)*(x + 1)\n")
NUMPY_SYMPY_SIMPLIFY = python("numpy_sympy_simplify", NUMPY_SYMPY_SIMPLIFY_CODE, "45 2*x\n")
CPU_50MS = python("cpu_50ms", CPU_50MS_CODE, "done\n")
CPP_HELLO = Workload("cpp_hello", {"language": "cpp", "code": CPP_HELLO_CODE}, expect_stdout("hello\n"))

# Code that the bare baseline runs too, to compare the service with `python3 -c CODE`.
BARE_COMPARABLE = {
    workload.name: workload.body["code"] for workload in (TRIVIAL, NUMPY_SYMPY, NUMPY_SYMPY_SIMPLIFY, CPU_50MS)
}

# A C++ solution judged against 20 cases: the shape of a competitive-programming reward call.
JUDGE_CODE = "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a + b << '\\n'; }\n"


def judge_problem(answer: Any, cases: int) -> str | None:
    if not isinstance(answer, dict):
        return "malformed result"
    if answer.get("verdict") != "accepted":
        return f"verdict {answer.get('verdict') or answer.get('status')}"
    if answer.get("passed") != cases:
        return "wrong case count"
    return None


def judge_of(cases: int) -> Workload:
    body = {
        "language": "cpp",
        "code": JUDGE_CODE,
        "cases": [{"stdin": f"{i} {i * i}\n", "expected_stdout": f"{i + i * i}\n"} for i in range(cases)],
        "timeout_s": 2,
    }
    return Workload(f"judge_cpp_{cases}_cases", body, lambda answer: judge_problem(answer, cases), JUDGE, cases)


def batch_problem(answer: Any, size: int) -> str | None:
    results = answer.get("results") if isinstance(answer, dict) else answer
    if not isinstance(results, list) or len(results) != size:
        return "wrong result count"
    wrong = wrong_in_batch(results)
    return wrong[0][0] if wrong else None


def wrong_in_batch(results: list[Any]) -> list[tuple[str, Any]]:
    """Each result of a `batch_of` answer that is not right, with why."""
    checked = ((result_problem(result, f"{index * index}\n"), result) for index, result in enumerate(results))
    return [(problem, result) for problem, result in checked if problem is not None]


def batch_of(size: int) -> Workload:
    """`size` distinct trivial calls in one request; each result must come back in its own place."""
    body = {"calls": [{"language": "python", "code": f"print({index}*{index})"} for index in range(size)]}
    return Workload(f"batch_{size}_python", body, lambda answer: batch_problem(answer, size), BATCH, size)


JUDGE_20 = judge_of(20)

# Beyond its sleep, the time an asleep call may take to start and answer on a loaded machine.
ASLEEP_TIMEOUT_MARGIN_S = 10.0


def asleep(seconds: float) -> Workload:
    """A call that holds its sandbox slot for `seconds` of wall time without using a core, then answers."""
    body = {
        "language": "python",
        "code": f"import time; time.sleep({seconds!r}); print(1+1)",
        "timeout_s": seconds + ASLEEP_TIMEOUT_MARGIN_S,
    }
    return Workload(f"asleep_{seconds:g}s_python", body, expect_stdout("2\n"))


def tool_problem(answer: Any, expected: dict[str, Any]) -> str | None:
    """Why a tool call's answer is not a successful run whose structured content holds `expected`."""
    if not isinstance(answer, dict) or not isinstance(answer.get("structuredContent"), dict):
        return "malformed tool result"
    if answer.get("isError"):
        return f"tool error ({answer.get('execution', {}).get('status')})"
    content = answer["structuredContent"]
    if any(content.get(key) != value for key, value in expected.items()):
        return "wrong tool answer"
    return None


# The reward call of a math RL step: HuggingFace Math-Verify on a boxed answer, in the sandbox.
MATH_VERIFY = Workload(
    "math_verify_tool",
    {"answer": "So the probability is $\\boxed{\\dfrac{3}{6}}$.", "reference": "$\\frac{1}{2}$"},
    lambda answer: tool_problem(answer, {"status": "ok", "equivalent": True, "reward": 1.0}),
    "/v1/tools/math_verify",
)


def run_code_problem(answer: Any, status: str, run_status: str, stdout: str | None = None) -> str | None:
    """Why a `/run_code` answer is not `status` with a run of `run_status` (and `stdout`), or None if it is."""
    if not isinstance(answer, dict):
        return "malformed result"
    run = answer.get("run_result")
    if not isinstance(run, dict):
        run = {}
    if (answer.get("status"), run.get("status")) != (status, run_status):
        return f"status {answer.get('status')}/{run.get('status')}"
    if stdout is not None and run.get("stdout") != stdout:
        return "wrong stdout"
    return None


def run_code(name: str, code: str, check: Checker, run_timeout: float = 2) -> Workload:
    """A SandboxFusion-style call: the body an RL framework's client sends to `/run_code`."""
    body = {"code": code, "language": "python", "run_timeout": run_timeout, "compile_timeout": 10}
    return Workload(name, body, check, RUN_CODE)


# Issue 14's mixed load: a looping program that must end at its 2 s run timeout, and a trivial call.
RUN_CODE_LOOP = run_code(
    "run_code_loop", LOOP_CODE, lambda answer: run_code_problem(answer, "Failed", "TimeLimitExceeded")
)
RUN_CODE_TRIVIAL = run_code(
    "run_code_trivial", TRIVIAL_CODE, lambda answer: run_code_problem(answer, "Success", "Finished", "2\n")
)
