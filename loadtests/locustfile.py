"""Locust users that behave like RL rollout workers calling Sandpit, every answer checked.

Each user class is one kind of rollout: math with a Python tool (short snippets, numpy/sympy checks),
competitive programming (a C++ solution judged against test cases), agentic tool calls, batched
fan-out, multi-turn sessions, async jobs, and a small share of hostile code. An answer counts as a
failure unless it is right: HTTP 200 *and* the expected status, stdout or verdict. Endpoints are used
only when the server's /openapi.json offers them; otherwise the same work goes through /v1/execute.

Environment (all optional):
  LOADTEST_WEIGHT_<CLASS>   relative share of users: MATH, JUDGE, TOOL, BATCH, SESSION, JOB, HOSTILE
  LOADTEST_THINK_MIN_S, LOADTEST_THINK_MAX_S   pause between a user's calls (0.2 .. 1.0)
  LOADTEST_JUDGE_CASES      test cases per judge call (20)
  LOADTEST_BATCH_SIZE       calls per batch (32)
"""

from __future__ import annotations

import json
import os
import random
import urllib.request
from collections.abc import Callable
from typing import Any

from locust import FastHttpUser, between, events, task

Check = Callable[[Any], str | None]


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def weight(name: str, default: int) -> int:
    return int(os.environ.get(f"LOADTEST_WEIGHT_{name}", default))


THINK = between(env_float("LOADTEST_THINK_MIN_S", 0.2), env_float("LOADTEST_THINK_MAX_S", 1.0))
JUDGE_CASES = int(env_float("LOADTEST_JUDGE_CASES", 20))
BATCH_SIZE = int(env_float("LOADTEST_BATCH_SIZE", 32))
JOB_POLL_S = 10.0
JOB_POLLS = 6

# Paths the server offers, read once from /openapi.json when the test starts.
OFFERED: set[str] = set()


@events.test_start.add_listener
def discover_endpoints(environment: Any, **_: Any) -> None:
    with urllib.request.urlopen(f"{environment.host}/openapi.json", timeout=10) as response:
        OFFERED.update(json.load(response).get("paths", {}))


def expect_run(stdout: str, status: str = "ok") -> Check:
    def check(result: Any) -> str | None:
        if result.get("status") != status:
            return f"status {result.get('status')} (wanted {status}): {str(result.get('stderr', ''))[-200:]}"
        if status == "ok" and result.get("stdout") != stdout:
            return f"stdout {result.get('stdout')!r} (wanted {stdout!r})"
        return None

    return check


def expect_not_ok(result: Any) -> str | None:
    return "hostile code ended ok" if result.get("status") == "ok" else None


class RolloutUser(FastHttpUser):
    abstract = True
    wait_time = THINK

    def call(self, name: str, path: str, body: dict[str, Any], check: Check) -> Any:
        """POST one request; a wrong answer fails the request as surely as an HTTP error does."""
        with self.client.post(path, json=body, name=name, catch_response=True) as response:
            if not 200 <= response.status_code < 300:
                response.failure(f"http {response.status_code}: {(response.text or '')[:200]}")
                return None
            answer = response.json()
            problem = check(answer)
            if problem is None:
                response.success()
            else:
                response.failure(problem)
            return answer

    def execute(self, name: str, body: dict[str, Any], check: Check) -> Any:
        return self.call(name, "/v1/execute", body, check)


class MathRollout(RolloutUser):
    """A math rollout with a Python tool: small arithmetic, then a numpy/sympy check of the answer."""

    weight = weight("MATH", 10)

    @task(3)
    def short_python(self) -> None:
        a, b = random.randint(2, 10**6), random.randint(2, 10**6)
        self.execute("python: arithmetic", {"language": "python", "code": f"print({a}*{b})"}, expect_run(f"{a * b}\n"))

    @task(2)
    def numpy_sympy_check(self) -> None:
        n = random.randint(2, 500)
        code = (
            "import numpy as np, sympy as sp\n"
            "x = sp.Symbol('x')\n"
            f"roots = sorted(sp.solve(x**2 - {n * n}, x))\n"
            f"print(roots, int(np.arange({n}).sum()))\n"
        )
        expected = f"[{-n}, {n}] {n * (n - 1) // 2}\n"
        self.execute("python: numpy+sympy", {"language": "python", "code": code}, expect_run(expected))

    @task(1)
    def sandbox_fusion_run_code(self) -> None:
        if "/run_code" not in OFFERED:
            return
        a = random.randint(1, 1000)

        def check(answer: Any) -> str | None:
            stdout = (answer.get("run_result") or {}).get("stdout")
            return None if answer.get("status") == "Success" and stdout == f"{a + 1}\n" else f"run_code {answer}"

        self.call("run_code: python", "/run_code", {"language": "python", "code": f"print({a}+1)"}, check)


SOLUTION = "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<'\\n';}\n"
# Off by one when a is odd: a judge must say wrong_answer, not accepted.
WRONG_SOLUTION = "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b+(a&1)<<'\\n';}\n"


class JudgeRollout(RolloutUser):
    """A competitive-programming rollout: a C++ solution against test cases, right or wrong."""

    weight = weight("JUDGE", 3)

    def cases(self, count: int) -> list[dict[str, str]]:
        pairs = [(random.randint(0, 10**9), random.randint(0, 10**9)) for _ in range(count)]
        pairs[0] = (1, pairs[0][1])  # an odd `a`, so the wrong solution always fails somewhere
        return [{"stdin": f"{a} {b}\n", "expected_stdout": f"{a + b}\n"} for a, b in pairs]

    @task
    def judge_cpp(self) -> None:
        wrong = random.random() < 0.25
        code = WRONG_SOLUTION if wrong else SOLUTION
        if JUDGE_PATH in OFFERED:
            self.judge(code, wrong)
        else:
            self.judge_case_by_case(code, wrong)

    def judge(self, code: str, wrong: bool) -> None:
        cases = self.cases(JUDGE_CASES)
        expected = "wrong_answer" if wrong else "accepted"

        def check(answer: Any) -> str | None:
            if answer.get("verdict") != expected:
                why = first_failure(answer)
                return f"verdict {answer.get('verdict')} (wanted {expected}), status {answer.get('status')}: {why}"
            if not wrong and answer.get("passed") != len(cases):
                return f"passed {answer.get('passed')} of {len(cases)}"
            return None

        body = {"language": "cpp", "code": code, "cases": cases, "timeout_s": 2}
        self.call(f"judge: cpp {len(cases)} cases", JUDGE_PATH, body, check)

    def judge_case_by_case(self, code: str, wrong: bool) -> None:
        """Without /v1/judge: one /v1/execute per case (each compiles), so only three cases."""
        for case in self.cases(3)[:1] if wrong else self.cases(3):
            a = int(case["stdin"].split()[0])
            stdout = case["expected_stdout"] if not (wrong and a & 1) else f"{int(case['expected_stdout']) + 1}\n"
            body = {"language": "cpp", "code": code, "stdin": case["stdin"], "timeout_s": 2}
            self.execute("judge (fallback): cpp case", body, expect_run(stdout))


JUDGE_PATH = "/v1/judge"


def first_failure(answer: Any) -> str:
    """What went wrong in a judged run: the compiler's or the first failing case's stderr."""
    compiled = answer.get("compile") or {}
    if compiled.get("status") not in (None, "ok"):
        return str(compiled.get("stderr", ""))[-160:]
    failing = [case for case in answer.get("cases", []) if case.get("verdict") not in ("accepted", "skipped")]
    return str(failing[0].get("stderr", ""))[-160:] if failing else ""


# A tool as RL agents call it: JSON arguments in on stdin, JSON result out.
CALCULATOR_TOOL = (
    "import json, sys, math\n"
    "args = json.load(sys.stdin)\n"
    "ops = {'add': lambda a, b: a + b, 'mul': lambda a, b: a * b, 'hypot': math.hypot}\n"
    "print(json.dumps({'result': ops[args['op']](args['a'], args['b'])}))\n"
)


class ToolRollout(RolloutUser):
    """An agentic rollout: several tool calls with JSON arguments, each result used by the next."""

    weight = weight("TOOL", 3)

    @task(3)
    def calculator_chain(self) -> None:
        value = random.randint(1, 1000)
        for op, operand in (("+", random.randint(1, 100)), ("*", random.randint(2, 9))):
            expected = value + operand if op == "+" else value * operand
            if not self.calculator(value, op, operand, expected):
                return
            value = expected

    @task(1)
    def math_verify(self) -> None:
        if TOOL_PATH not in OFFERED:
            return
        n = random.randint(2, 50)
        same = random.random() < 0.5
        answer = f"so the answer is \\boxed{{\\frac{{1}}{{{n}}}}}"
        arguments = {"answer": answer, "reference": f"1/{n if same else n + 1}"}
        self.call("tool: math_verify", "/v1/tools/math_verify", arguments, tool_output({"equivalent": same}))

    def calculator(self, value: int, op: str, operand: int, expected: int) -> bool:
        name = f"tool: calculator {op}"
        if TOOL_PATH in OFFERED:
            arguments = {"expression": f"{value} {op} {operand}"}
            return self.call(name, "/v1/tools/calculator", arguments, tool_output({"result": expected})) is not None
        stdin = json.dumps({"op": "add" if op == "+" else "mul", "a": value, "b": operand})
        body = {"language": "python", "code": CALCULATOR_TOOL, "stdin": stdin}
        return self.execute(f"{name} (fallback)", body, expect_run(json.dumps({"result": expected}) + "\n")) is not None


TOOL_PATH = "/v1/tools/{name}"


def tool_output(expected: dict[str, Any]) -> Check:
    """An MCP-shaped tool result whose structured content has (at least) `expected`."""

    def check(answer: Any) -> str | None:
        if answer.get("isError"):
            return f"tool error: {str(answer.get('content'))[:200]}"
        structured = answer.get("structuredContent") or {}
        wrong = {key: structured.get(key) for key, value in expected.items() if structured.get(key) != value}
        return f"tool answered {wrong}, wanted {expected}" if wrong else None

    return check


class BatchRollout(RolloutUser):
    """A training step's fan-out: many small calls in one request, results in request order."""

    weight = weight("BATCH", 1)

    @task
    def batch(self) -> None:
        seed = random.randint(1, 10**6)
        calls = [{"language": "python", "code": f"print({seed}+{i})"} for i in range(BATCH_SIZE)]
        if "/v1/execute/batch" not in OFFERED:
            for i, call in enumerate(calls[:4]):
                self.execute("batch (fallback): python", call, expect_run(f"{seed + i}\n"))
            return

        def check(answer: Any) -> str | None:
            results = answer.get("results") or []
            if len(results) != len(calls):
                return f"{len(results)} results for {len(calls)} calls"
            for i, result in enumerate(results):
                problem = expect_run(f"{seed + i}\n")(result)
                if problem is not None:
                    return f"call {i}: {problem}"
            return None

        self.call(f"batch: {len(calls)} python", "/v1/execute/batch", {"calls": calls}, check)


class SessionRollout(RolloutUser):
    """A multi-turn rollout: each turn builds on the last, in a live interpreter when the server has sessions."""

    weight = weight("SESSION", 2)

    @task
    def three_turns(self) -> None:
        steps = [random.randint(1, 100) for _ in range(3)]
        if "/v1/sessions" in OFFERED:
            self.in_session(steps)
        else:
            self.replayed(steps)

    def in_session(self, steps: list[int]) -> None:
        opened = self.call("session: open", "/v1/sessions", {"language": "python"}, session_id)
        if opened is None:
            return
        path = f"/v1/sessions/{opened['id']}/execute"
        total = 0
        for turn, step in enumerate(steps):
            total += step
            body = {"code": f"total = {'total + ' if turn else ''}{step}\nprint(total)"}
            if self.call(f"session: turn {turn + 1}", path, body, expect_run(f"{total}\n")) is None:
                break
        with self.client.delete(f"/v1/sessions/{opened['id']}", name="session: close", catch_response=True) as response:
            if response.status_code in (200, 204):
                response.success()
            else:
                response.failure(f"http {response.status_code}")

    def replayed(self, steps: list[int]) -> None:
        history: list[str] = []
        total = 0
        for turn, step in enumerate(steps):
            total += step
            history.append(f"total = {'total + ' if turn else ''}{step}")
            body = {"language": "python", "code": "\n".join([*history, "print(total)"])}
            if self.execute(f"session (replay): turn {turn + 1}", body, expect_run(f"{total}\n")) is None:
                return


def session_id(answer: Any) -> str | None:
    return None if isinstance(answer.get("id"), str) else f"no session id: {answer}"


class JobRollout(RolloutUser):
    """Fire-and-collect: queue a call with POST /v1/jobs, long-poll its result."""

    weight = weight("JOB", 1)

    @task
    def submit_and_poll(self) -> None:
        if "/v1/jobs" not in OFFERED:
            return
        a = random.randint(1, 10**6)
        submitted = self.call("job: submit", "/v1/jobs", {"language": "python", "code": f"print({a}-1)"}, job_id)
        if submitted is None:
            return
        for poll in range(JOB_POLLS):
            path = f"/v1/jobs/{submitted['id']}?wait={JOB_POLL_S}"
            with self.client.get(path, name="job: poll", catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(f"http {response.status_code}")
                    return
                info = response.json()
                if info.get("state") == "done":
                    problem = expect_run(f"{a - 1}\n")(info.get("result") or {})
                elif poll == JOB_POLLS - 1:
                    problem = f"still {info.get('state')} after {JOB_POLLS * JOB_POLL_S:g} s"
                else:
                    response.success()
                    continue
                if problem is None:
                    response.success()
                else:
                    response.failure(problem)
                return


def job_id(answer: Any) -> str | None:
    return None if isinstance(answer.get("id"), str) else f"no job id: {answer}"


INFINITE_LOOP = "while True:\n    pass\n"
FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"


class HostileRollout(RolloutUser):
    """What models write by accident: an infinite loop must time out, a fork bomb must not end ok."""

    weight = weight("HOSTILE", 1)
    wait_time = between(2.0, 5.0)

    @task(2)
    def infinite_loop(self) -> None:
        body = {"language": "python", "code": INFINITE_LOOP, "timeout_s": 1}
        self.execute("hostile: infinite loop", body, expect_run("", status="timeout"))

    @task(1)
    def fork_bomb(self) -> None:
        body = {"language": "python", "code": FORK_BOMB, "timeout_s": 2}
        self.execute("hostile: fork bomb", body, expect_not_ok)
