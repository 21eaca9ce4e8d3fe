"""Sessions on a stack of their own: idle expiry, and a worker that dies under a session."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from service.config import Settings
from service.stack import LocalStack, free_port


@pytest.fixture(scope="module")
def small_stack() -> Iterator[LocalStack]:
    settings = Settings(port=free_port(), worker_concurrency=2, session_idle_s=2, heartbeat_ttl_s=3)
    local = LocalStack(settings, workers=2, redis_url_given=False)
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="module")
def client(small_stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=small_stack.url, timeout=60) as http:
        yield http


def interpreter_running(session_id: str) -> bool:
    processes = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    return f"session-{session_id}" in processes


def test_an_idle_session_expires_and_its_interpreter_is_stopped(client: httpx.Client) -> None:
    session_id = client.post("/v1/sessions", json={}).json()["id"]
    assert client.post(f"/v1/sessions/{session_id}/execute", json={"code": "1"}).json()["status"] == "ok"
    assert interpreter_running(session_id)
    time.sleep(8)
    assert client.post(f"/v1/sessions/{session_id}/execute", json={"code": "1"}).status_code == 404
    assert not interpreter_running(session_id)


def test_a_session_whose_worker_died_answers_session_lost(client: httpx.Client, small_stack: LocalStack) -> None:
    opened = client.post("/v1/sessions", json={}).json()
    session_id, pid = opened["id"], int(opened["worker"].split("-")[-2])
    assert client.post(f"/v1/sessions/{session_id}/execute", json={"code": "x = 1"}).json()["status"] == "ok"
    body = {"code": "import time\ntime.sleep(50)", "timeout_s": 55}
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(client.post, f"/v1/sessions/{session_id}/execute", json=body)
        time.sleep(1)
        killed_at = time.monotonic()
        next(p for p in small_stack.processes("worker") if p.pid == pid).send_signal(signal.SIGKILL)
        answer = in_flight.result(timeout=30).json()
    assert answer["status"] == "session_lost"
    assert time.monotonic() - killed_at < 15
    assert client.post(f"/v1/sessions/{session_id}/execute", json={"code": "x"}).status_code == 404
    # The other worker still opens sessions.
    assert client.post("/v1/sessions", json={}).status_code == 201
