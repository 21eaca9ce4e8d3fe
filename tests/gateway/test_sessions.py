"""Sessions over the real stack: state survives between calls, failures are statuses, ends are clean."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest


def run(api: httpx.Client, session_id: str, code: str, **extra: object) -> dict[str, object]:
    response = api.post(f"/v1/sessions/{session_id}/execute", json={"code": code, **extra})
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


@pytest.fixture
def session(api: httpx.Client) -> Iterator[str]:
    response = api.post("/v1/sessions", json={"language": "python"})
    assert response.status_code == 201, response.text
    session_id: str = response.json()["id"]
    yield session_id
    api.delete(f"/v1/sessions/{session_id}")


def test_variables_imports_and_functions_survive_between_calls(api: httpx.Client, session: str) -> None:
    assert run(api, session, "import numpy as np\nx = np.arange(5)\ndef double(v):\n    return v * 2")["status"] == "ok"
    result = run(api, session, "print(double(x).sum())")
    assert (result["status"], result["stdout"]) == ("ok", "20\n")


def test_the_value_of_a_last_expression_is_printed(api: httpx.Client, session: str) -> None:
    assert run(api, session, "y = 6\ny * 7")["stdout"] == "42\n"
    assert run(api, session, "None")["stdout"] == ""


def test_an_exception_is_an_error_and_the_session_lives_on(api: httpx.Client, session: str) -> None:
    run(api, session, "kept = 'still here'")
    failed = run(api, session, "1 / 0")
    assert failed["status"] == "error"
    assert "ZeroDivisionError" in str(failed["stderr"])
    assert 'File "<session>"' in str(failed["stderr"])
    assert run(api, session, "kept")["stdout"] == "'still here'\n"


def test_a_call_past_its_timeout_is_interrupted_and_the_session_lives_on(api: httpx.Client, session: str) -> None:
    run(api, session, "n = 1")
    started = time.monotonic()
    assert run(api, session, "while True: pass", timeout_s=1)["status"] == "timeout"
    assert time.monotonic() - started < 4
    assert run(api, session, "n + 1")["stdout"] == "2\n"


def test_output_of_child_processes_is_captured(api: httpx.Client, session: str) -> None:
    result = run(api, session, "import subprocess\nsubprocess.run(['echo', 'from a child'])\nNone")
    assert result["stdout"] == "from a child\n"


def test_a_crashed_interpreter_is_session_lost_and_then_404(api: httpx.Client, session: str) -> None:
    lost = run(api, session, "import os\nos._exit(1)")
    assert lost["status"] == "session_lost"
    assert api.post(f"/v1/sessions/{session}/execute", json={"code": "1"}).status_code == 404


def test_code_that_ignores_the_timer_loses_the_session_not_the_worker(api: httpx.Client, session: str) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True: time.sleep(0.1)"
    started = time.monotonic()
    assert run(api, session, code, timeout_s=1)["status"] == "session_lost"
    assert time.monotonic() - started < 10
    assert api.post("/v1/execute", json={"language": "python", "code": "print(1)"}).json()["status"] == "ok"


def test_sessions_are_isolated_from_each_other(api: httpx.Client, session: str) -> None:
    other = api.post("/v1/sessions", json={}).json()["id"]
    try:
        run(api, session, "secret = 1\nopen('mine.txt', 'w').write('x')")
        assert run(api, other, "secret")["status"] == "error"
        assert run(api, other, "import os\nos.path.exists('mine.txt')")["stdout"] == "False\n"
    finally:
        api.delete(f"/v1/sessions/{other}")


def test_calls_to_one_session_run_one_at_a_time(api: httpx.Client, session: str) -> None:
    run(api, session, "count = 0")
    code = "import time\nc = count\ntime.sleep(0.05)\ncount = c + 1"
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: run(api, session, code)["status"], range(8)))
    assert statuses == ["ok"] * 8
    assert run(api, session, "count")["stdout"] == "8\n"


def test_deleted_session_is_gone(api: httpx.Client) -> None:
    session_id = api.post("/v1/sessions", json={}).json()["id"]
    assert api.delete(f"/v1/sessions/{session_id}").status_code == 204
    assert api.post(f"/v1/sessions/{session_id}/execute", json={"code": "1"}).status_code == 404
    assert api.delete(f"/v1/sessions/{session_id}").status_code == 404


def test_only_python_sessions(api: httpx.Client) -> None:
    assert api.post("/v1/sessions", json={"language": "bash"}).status_code == 422


def test_memory_limit_is_a_status_and_the_session_lives_on(api: httpx.Client) -> None:
    session_id = api.post("/v1/sessions", json={"memory_mb": 128}).json()["id"]
    try:
        run(api, session_id, "kept = 1")
        assert run(api, session_id, "big = bytearray(512 * 2**20)")["status"] == "memory_limit"
        assert run(api, session_id, "kept")["stdout"] == "1\n"
    finally:
        api.delete(f"/v1/sessions/{session_id}")


def test_ending_a_session_kills_what_it_left_running(api: httpx.Client) -> None:
    session_id = api.post("/v1/sessions", json={}).json()["id"]
    run(api, session_id, "import subprocess\nsubprocess.Popen(['setsid', 'sleep', '987654'])\nNone")
    assert "sleep 987654" in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    api.delete(f"/v1/sessions/{session_id}")
    deadline = time.monotonic() + 10
    while "sleep 987654" in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, "the session's background process outlived it"
        time.sleep(0.1)


def test_oversized_code_is_422(api: httpx.Client, session: str) -> None:
    response = api.post(f"/v1/sessions/{session}/execute", json={"code": "#" * (600 * 1024)})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "code"]
