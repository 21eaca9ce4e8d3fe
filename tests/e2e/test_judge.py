"""`POST /v1/judge` over the real stack: one build, per-case verdicts, comparison in the worker."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

SUM_PY = "a, b = map(int, input().split())\nprint(a + b)"
SUM_CPP = "#include <iostream>\nint main(){long a,b; std::cin>>a>>b; std::cout<<a+b<<'\\n';}"


def judge(api: httpx.Client, **body: object) -> dict[str, object]:
    response = api.post("/v1/judge", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def verdicts(answer: dict[str, object]) -> list[str]:
    cases = answer["cases"]
    assert isinstance(cases, list)
    return [case["verdict"] for case in cases]


@pytest.mark.parametrize(("language", "code"), [("python", SUM_PY), ("cpp", SUM_CPP)])
def test_correct_solution_is_accepted_on_every_case(api: httpx.Client, language: str, code: str) -> None:
    cases = [{"stdin": f"{i} {i * 3}\n", "expected_stdout": f"{i * 4}\n"} for i in range(10)]
    answer = judge(api, language=language, code=code, cases=cases)
    assert answer["status"] == "ok"
    assert answer["verdict"] == "accepted"
    assert (answer["passed"], answer["total"], answer["pass_ratio"]) == (10, 10, 1.0)
    assert verdicts(answer) == ["accepted"] * 10


def test_cpp_is_compiled_once(api: httpx.Client) -> None:
    cases = [{"stdin": "1 1", "expected_stdout": "2\n"}] * 5
    # A program no earlier test sent: a build kept in the worker's compile cache reports 0 ms.
    answer = judge(api, language="cpp", code=f"{SUM_CPP}\n// {uuid.uuid4()}\n", cases=cases)
    compile_stage = answer["compile"]
    assert isinstance(compile_stage, dict) and compile_stage["status"] == "ok"
    # Compiling takes far longer than running; five compilations would show in the total.
    assert float(answer["duration_ms"]) < float(compile_stage["duration_ms"])  # type: ignore[arg-type]


def test_each_failure_kind_gets_its_verdict(api: httpx.Client) -> None:
    code = (
        "import sys\n"
        "n = int(input())\n"
        "if n == 1: print(99)\n"
        "elif n == 2:\n    while True: pass\n"
        "elif n == 3: x = bytearray(512 * 2**20)\n"
        "elif n == 4: sys.exit(1)\n"
        "else: print(n)\n"
    )
    cases = [{"stdin": f"{n}\n", "expected_stdout": f"{n}\n"} for n in range(5)]
    answer = judge(api, language="python", code=code, cases=cases, timeout_s=1, memory_mb=128)
    assert verdicts(answer) == ["accepted", "wrong_answer", "timeout", "memory_limit", "runtime_error"]
    assert answer["verdict"] == "wrong_answer"
    assert (answer["passed"], answer["pass_ratio"]) == (1, 0.2)
    wrong = answer["cases"][1]  # type: ignore[index]
    assert wrong["stdout"] == "99\n"


def test_compile_error_fails_every_case(api: httpx.Client) -> None:
    answer = judge(api, language="cpp", code="int main(){ return x; }", cases=[{"expected_stdout": "1"}] * 3)
    assert answer["status"] == "compile_error"
    assert answer["verdict"] == "compile_error"
    assert verdicts(answer) == ["compile_error"] * 3
    assert answer["pass_ratio"] == 0.0


def test_stop_on_first_failure_skips_the_rest(api: httpx.Client) -> None:
    cases = [{"stdin": "1 1", "expected_stdout": "2"}, {"stdin": "1 1", "expected_stdout": "3"}] + [
        {"stdin": "2 2", "expected_stdout": "4"}
    ] * 3
    answer = judge(api, language="python", code=SUM_PY, cases=cases, compare="whitespace", stop_on_first_failure=True)
    assert verdicts(answer) == ["accepted", "wrong_answer", "skipped", "skipped", "skipped"]
    assert answer["pass_ratio"] == 0.2


@pytest.mark.parametrize(
    ("compare", "printed", "expected", "verdict"),
    [
        ("exact", "3", "3\n", "wrong_answer"),
        ("whitespace", "3", "3\n", "accepted"),
        ("float", "0.3333333", "0.333333333", "accepted"),
        ("float", "0.34", "0.33", "wrong_answer"),
    ],
)
def test_compare_modes(api: httpx.Client, compare: str, printed: str, expected: str, verdict: str) -> None:
    code = f"print({printed!r}, end='')"
    answer = judge(api, language="python", code=code, cases=[{"expected_stdout": expected}], compare=compare)
    assert verdicts(answer) == [verdict]


def test_every_case_starts_from_a_fresh_workspace(api: httpx.Client) -> None:
    code = "import os\nprint(os.path.exists('left.txt'))\nopen('left.txt', 'w').write('x')"
    answer = judge(api, language="python", code=code, cases=[{"expected_stdout": "False\n"}] * 3)
    assert verdicts(answer) == ["accepted"] * 3


def test_files_reach_every_case(api: httpx.Client) -> None:
    code = "print(open('data/n.txt').read().strip())"
    answer = judge(api, language="python", code=code, files={"data/n.txt": "NDI="}, cases=[{"expected_stdout": "42\n"}])
    assert answer["verdict"] == "accepted"


def test_too_many_case_seconds_is_422(api: httpx.Client) -> None:
    cases = [{"expected_stdout": ""}] * 1000
    response = api.post("/v1/judge", json={"language": "python", "code": "pass", "cases": cases, "timeout_s": 60})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "cases"]


def test_slow_cases_run_in_parallel_on_idle_slots(api: httpx.Client) -> None:
    code = "import time\nn = int(input())\ntime.sleep(1)\nprint(n)"
    cases = [{"stdin": f"{n}\n", "expected_stdout": f"{n}\n"} for n in range(8)]
    started = time.monotonic()
    answer = judge(api, language="python", code=code, cases=cases, timeout_s=5)
    elapsed = time.monotonic() - started
    assert verdicts(answer) == ["accepted"] * 8
    # One slot would take 8 s; the worker lends its idle slots (4 per worker in the test stack).
    assert elapsed < 5.5, elapsed


def test_stop_on_first_failure_is_deterministic_with_parallel_cases(api: httpx.Client) -> None:
    code = "import time\nn = int(input())\ntime.sleep(0.3)\nprint(n if n != 2 else -1)"
    cases = [{"stdin": f"{n}\n", "expected_stdout": f"{n}\n"} for n in range(10)]
    answer = judge(api, language="python", code=code, cases=cases, stop_on_first_failure=True)
    assert verdicts(answer) == ["accepted", "accepted", "wrong_answer"] + ["skipped"] * 7


def test_the_judged_program_cannot_find_the_expected_output(api: httpx.Client) -> None:
    marker = "expected-7f3a9c"
    # The program builds the marker at run time, so its own source does not contain it.
    code = (
        "import os\n"
        "marker = 'expected-' + '7f3a9c'\n"
        "found = False\n"
        "for root in ('/workspace', '/tmp', '/proc/self', '/proc/1'):\n"
        "    for directory, _, files in os.walk(root):\n"
        "        for name in files:\n"
        "            try:\n"
        "                found = found or marker.encode() in open(os.path.join(directory, name), 'rb').read(1 << 20)\n"
        "            except OSError:\n"
        "                pass\n"
        "print(marker if found else 'nothing')\n"
    )
    answer = judge(api, language="python", code=code, cases=[{"stdin": "", "expected_stdout": f"{marker}\n"}])
    assert verdicts(answer) == ["wrong_answer"]
    assert answer["cases"][0]["stdout"] == "nothing\n"  # type: ignore[index]


def test_a_case_may_set_its_own_limits(api: httpx.Client) -> None:
    code = "import time\nn = int(input())\nif n == 1: time.sleep(1)\nif n == 2: x = bytearray(200 * 2**20)\nprint(n)"
    cases = [
        {"stdin": "0", "expected_stdout": "0\n"},
        {"stdin": "1", "expected_stdout": "1\n", "timeout_s": 0.3},
        {"stdin": "1", "expected_stdout": "1\n"},
        {"stdin": "2", "expected_stdout": "2\n", "memory_mb": 64},
        {"stdin": "2", "expected_stdout": "2\n"},
    ]
    answer = judge(api, language="python", code=code, cases=cases, timeout_s=3, memory_mb=512)
    assert verdicts(answer) == ["accepted", "timeout", "accepted", "memory_limit", "accepted"]


def test_a_case_limit_out_of_range_is_422_naming_the_case(api: httpx.Client) -> None:
    cases = [{"expected_stdout": ""}, {"expected_stdout": "", "timeout_s": 10_000}]
    response = api.post("/v1/judge", json={"language": "python", "code": "pass", "cases": cases})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "cases", 1, "timeout_s"]
