"""Sessions on a stack of their own: idle expiry, and a worker that dies under a session."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from service.config import Settings
from service.stack import LocalStack, free_port

IDLE_S = 6


@pytest.fixture(scope="module")
def small_stack() -> Iterator[LocalStack]:
    settings = Settings(
        port=free_port(),
        worker_concurrency=2,
        # Longer than a worker's graceful stop takes (about 2 s: its claim loops finish their blocking reads), so
        # a session on a stopping worker is still on record when its next call arrives.
        session_idle_s=IDLE_S,
        heartbeat_ttl_s=3,
        max_sessions_per_worker=1,
        workspace_max_bytes=16 * 2**20,
    )
    with LocalStack(settings, workers=3, redis_url_given=False) as local:
        yield local


@pytest.fixture(scope="module")
def client(small_stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=small_stack.url, timeout=60) as http:
        yield http


def session_interpreters(stack: LocalStack) -> int:
    """Session sandboxes of this stack alive on the host (bubblewrap runs as two processes per sandbox)."""
    processes = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    pids = "|".join(str(worker.pid) for worker in stack.processes("worker"))
    return len(set(re.findall(rf"worker-(?:{pids})/sessions/slot-\d+", processes)))


def test_an_idle_session_expires_and_its_interpreter_is_stopped(client: httpx.Client, small_stack: LocalStack) -> None:
    session_id = client.post("/v1/sessions", json={}).json()["id"]
    assert client.post(f"/v1/sessions/{session_id}/execute", json={"code": "1"}).json()["status"] == "ok"
    assert session_interpreters(small_stack) == 1
    idle_from = time.monotonic()
    # Watched from the host, not through the API: any call would reset the session's idle clock.
    while session_interpreters(small_stack) and time.monotonic() - idle_from < IDLE_S + 15:
        time.sleep(0.5)
    assert session_interpreters(small_stack) == 0
    assert time.monotonic() - idle_from >= IDLE_S
    assert client.post(f"/v1/sessions/{session_id}/execute", json={"code": "1"}).status_code == 404


def test_a_session_workspace_is_capped(client: httpx.Client) -> None:
    session_id = client.post("/v1/sessions", json={}).json()["id"]
    code = "for i in range(40):\n    open(f'f{i}', 'wb').write(b'x' * 2**20)"
    result = client.post(f"/v1/sessions/{session_id}/execute", json={"code": code}).json()
    assert result["status"] == "error"
    assert "No space left on device" in result["stderr"]
    client.delete(f"/v1/sessions/{session_id}")


def test_sessions_go_to_workers_with_room_until_none_has_any(client: httpx.Client) -> None:
    opened = [client.post("/v1/sessions", json={}) for _ in range(3)]
    assert [response.status_code for response in opened] == [201] * 3
    assert len({response.json()["worker"] for response in opened}) == 3
    full = client.post("/v1/sessions", json={})
    assert full.status_code == 503
    assert "already holds 1 sessions" in full.json()["detail"]
    for response in opened:
        assert client.delete(f"/v1/sessions/{response.json()['id']}").status_code == 204
    again = client.post("/v1/sessions", json={})
    assert again.status_code == 201
    client.delete(f"/v1/sessions/{again.json()['id']}")


def test_a_fork_past_the_worker_room_is_429_and_the_session_lives_on(client: httpx.Client) -> None:
    session_id = client.post("/v1/sessions", json={}).json()["id"]
    client.post(f"/v1/sessions/{session_id}/execute", json={"code": "x = 7"})
    refused = client.post(f"/v1/sessions/{session_id}/fork", json={"count": 1})
    assert refused.status_code == 429
    assert "room for 0 more sessions" in refused.json()["detail"]
    assert refused.headers["Retry-After"] == "5"
    assert client.post(f"/v1/sessions/{session_id}/execute", json={"code": "x"}).json()["stdout"] == "7\n"
    assert client.delete(f"/v1/sessions/{session_id}").status_code == 204


def worker_process(stack: LocalStack, worker_id: str) -> subprocess.Popen[bytes]:
    pid = int(worker_id.split("-")[-2])
    return next(process for process in stack.processes("worker") if process.pid == pid)


def test_a_session_on_a_stopped_worker_answers_session_lost(client: httpx.Client, small_stack: LocalStack) -> None:
    opened = client.post("/v1/sessions", json={}).json()
    process = worker_process(small_stack, opened["worker"])
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    answer = client.post(f"/v1/sessions/{opened['id']}/execute", json={"code": "1"})
    assert answer.status_code == 200 and answer.json()["status"] == "session_lost", answer.text
    assert client.post(f"/v1/sessions/{opened['id']}/execute", json={"code": "1"}).status_code == 404


def test_a_session_whose_worker_died_answers_session_lost(client: httpx.Client, small_stack: LocalStack) -> None:
    opened = client.post("/v1/sessions", json={}).json()
    session_id = opened["id"]
    assert client.post(f"/v1/sessions/{session_id}/execute", json={"code": "x = 1"}).json()["status"] == "ok"
    body = {"code": "import time\ntime.sleep(50)", "timeout_s": 55}
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(client.post, f"/v1/sessions/{session_id}/execute", json=body)
        time.sleep(1)
        killed_at = time.monotonic()
        worker_process(small_stack, opened["worker"]).send_signal(signal.SIGKILL)
        answer = in_flight.result(timeout=30).json()
    assert answer["status"] == "session_lost"
    assert time.monotonic() - killed_at < 15
    assert client.post(f"/v1/sessions/{session_id}/execute", json={"code": "x"}).status_code == 404
    # The worker left still opens sessions.
    assert client.post("/v1/sessions", json={}).status_code == 201
