"""Every language of the registry over the real stack: /v1/execute, /run_code (SandboxFusion's shape)
and /v1/judge, for hello world, stdin, exit status, syntax or compile errors, crashes, timeouts and memory.

Each language's behaviours go out together (one batch, or concurrent /run_code calls) and its probe
compiles once: the slow toolchains (JVM, rustc, scalac) then cost one build per test, not seven.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from service.models import Language
from tests.languages.programs import COMPILED, PROBES, SQL, SYNTAX_ERRORS

LOOP_TIMEOUT_S = 1.0
ALLOC_MEMORY_MB = 128
RUN_TIMEOUT_S = 15.0
ECHOED = "sandpit-42"


def behaviours(language: str) -> dict[str, dict[str, Any]]:
    """The calls of one language, by behaviour: the code, stdin and limits each one is sent with."""
    if language == "sql":
        calls = {mode: {"code": code} for mode, code in SQL.items()}
    else:
        calls = {mode: {"code": PROBES[language], "stdin": f"{mode} x\n"} for mode in ("hello", "exit", "crash")}
        calls["echo"] = {"code": PROBES[language], "stdin": f"echo {ECHOED}\n"}
        calls["loop"] = {"code": PROBES[language], "stdin": "loop\n"}
        calls["alloc"] = {"code": PROBES[language], "stdin": "alloc\n"}
    calls["syntax"] = {"code": SYNTAX_ERRORS[language]}
    for mode, call in calls.items():
        call["timeout_s"] = LOOP_TIMEOUT_S if mode == "loop" else RUN_TIMEOUT_S
        if mode == "alloc":
            call["memory_mb"] = ALLOC_MEMORY_MB
    return calls


def expect_execute(language: str, mode: str, result: dict[str, Any]) -> None:
    where = f"{language}/{mode}: {result}"
    if mode == "hello":
        assert (result["status"], result["stdout"]) == ("ok", "Hello, world!\n"), where
    elif mode == "echo":
        assert (result["status"], result["stdout"]) == ("ok", f"{ECHOED}\n"), where
    elif mode == "exit":
        assert (result["status"], result["exit_code"]) == ("error", 3), where
    elif mode == "crash":
        assert result["status"] == "error" and (result["exit_code"] or result["signal"]), where
        assert result["stderr"] or result["signal"], where
    elif mode == "loop":
        assert result["status"] == "timeout", where
    elif mode == "alloc":
        assert result["status"] == "memory_limit", where
    elif language in COMPILED:
        assert result["status"] == "compile_error", where
        assert result["compile"]["exit_code"] != 0 and result["stderr"].strip(), where
    else:
        assert result["status"] == "error" and result["exit_code"] != 0, where
        # The interpreter's own message (PHP prints it on stdout).
        assert (result["stderr"] + result["stdout"]).strip(), where


LANGUAGES = [language.value for language in Language if language.value in PROBES or language == Language.sql]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_behaviour_through_execute(api: httpx.Client, language: str) -> None:
    calls = behaviours(language)
    response = api.post("/v1/execute/batch", json={"calls": [{"language": language, **c} for c in calls.values()]})
    assert response.status_code == 200, response.text
    for mode, result in zip(calls, response.json()["results"], strict=True):
        expect_execute(language, mode, result)


def expect_run_code(language: str, mode: str, answer: dict[str, Any]) -> None:
    where = f"{language}/{mode}: {answer}"
    run = answer["run_result"]
    if mode in ("hello", "echo"):
        assert answer["status"] == "Success", where
        assert run["stdout"] == ("Hello, world!\n" if mode == "hello" else f"{ECHOED}\n"), where
        return
    assert answer["status"] == "Failed", where
    if mode == "exit":
        assert run["return_code"] == 3, where
    elif mode == "loop":
        assert run["status"] == "TimeLimitExceeded", where
    elif mode == "syntax" and language in COMPILED:
        assert run is None and answer["compile_result"]["return_code"] != 0, where
    elif mode != "alloc":
        assert run["return_code"] != 0, where


def run_code(api: httpx.Client, language: str, call: dict[str, Any]) -> dict[str, Any]:
    body = {"language": language, "code": call["code"], "stdin": call.get("stdin"), "run_timeout": call["timeout_s"]}
    if "memory_mb" in call:
        body["memory_limit_MB"] = call["memory_mb"]
    response = api.post("/run_code", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_behaviour_through_run_code(api: httpx.Client, language: str) -> None:
    calls = behaviours(language)
    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(lambda call: run_code(api, language, call), calls.values()))
    for mode, answer in zip(calls, answers, strict=True):
        expect_run_code(language, mode, answer)


@pytest.mark.parametrize("language", COMPILED)
def test_a_ten_case_judge_builds_once_and_compares_every_case(api: httpx.Client, language: str) -> None:
    cases = [{"stdin": f"echo case{i}\n", "expected_stdout": f"case{i}\n"} for i in range(10)]
    cases[7]["expected_stdout"] = "not what it prints\n"
    response = api.post(
        "/v1/judge", json={"language": language, "code": PROBES[language], "cases": cases, "timeout_s": RUN_TIMEOUT_S}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "ok", answer
    assert (answer["verdict"], answer["passed"], answer["total"]) == ("wrong_answer", 9, 10), answer
    assert [case["verdict"] for case in answer["cases"]] == ["accepted"] * 7 + ["wrong_answer"] + ["accepted"] * 2


@pytest.mark.parametrize(("alias", "language"), [("js", "nodejs"), ("javascript", "nodejs"), ("ts", "typescript")])
def test_sandboxfusion_aliases_run_their_language(api: httpx.Client, alias: str, language: str) -> None:
    answer = run_code(api, alias, {"code": PROBES[language], "stdin": "hello\n", "timeout_s": RUN_TIMEOUT_S})
    assert answer["status"] == "Success" and answer["run_result"]["stdout"] == "Hello, world!\n", answer


def test_an_unknown_language_is_refused_by_name(api: httpx.Client) -> None:
    answer = api.post("/run_code", json={"language": "cobol", "code": "x"}).json()
    assert answer["status"] == "SandboxError" and "unsupported language 'cobol'" in answer["message"]
    assert api.post("/v1/execute", json={"language": "cobol", "code": "x"}).status_code == 422


def test_sql_queries_the_database_sent_with_the_call(api: httpx.Client, tmp_path: Any) -> None:
    import base64
    import sqlite3

    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE items (name TEXT, price INTEGER)")
        connection.executemany("INSERT INTO items VALUES (?, ?)", [("pen", 2), ("book", 12), ("lamp", 30)])
    files = {"shop.db": base64.b64encode(database.read_bytes()).decode()}
    query = "SELECT name FROM items WHERE price > 10 ORDER BY price DESC;"
    answer = api.post("/run_code", json={"language": "sql", "code": query, "files": files}).json()
    assert answer["status"] == "Success" and answer["run_result"]["stdout"] == "lamp\nbook\n", answer


def test_languages_lists_every_registry_language_with_its_version(api: httpx.Client) -> None:
    listed = {entry["name"]: entry for entry in api.get("/v1/languages").json()["languages"]}
    assert set(listed) == {language.value for language in Language}
    for name in LANGUAGES:
        assert listed[name]["available"] is True and listed[name]["version"], listed[name]
    assert listed["java"]["compile"][0] == "/usr/bin/javac" and "-Xmx448m" in listed["java"]["run"]
    assert listed["nodejs"]["aliases"] == ["javascript", "js", "node"]


def test_a_group_of_identical_programs_compiles_once_per_worker(api: httpx.Client) -> None:
    # A fresh program (no earlier test compiled it), sent as a GRPO group would: eight copies at once.
    code = PROBES["c"].replace("Hello, world!", "Hello, group!")
    calls = [{"language": "c", "code": code, "stdin": "hello"} for _ in range(8)]
    response = api.post("/v1/execute/batch", json={"calls": calls})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert all(result["stdout"] == "Hello, group!\n" for result in results), results
    compiled = [result for result in results if result["compile"]["duration_ms"] > 0]
    # Two workers in the test stack: at most one real compile each; every other call got a kept build.
    assert 1 <= len(compiled) <= 2, [result["compile"] for result in results]
