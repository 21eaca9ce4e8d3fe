"""The Python clients against the real stack, and their retries against a real flaky HTTP server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service.client import AsyncSandpitClient, Retry, SandpitClient, SandpitError
from service.stack import LocalStack, free_port


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Iterator[SandpitClient]:
    with SandpitClient(stack.url) as sandpit:
        yield sandpit


def test_execute_returns_a_typed_result(client: SandpitClient) -> None:
    result = client.execute("python", "print(6 * 7)")
    assert (result.status, result.stdout) == ("ok", "42\n")


def test_batch_and_stream_batch(client: SandpitClient) -> None:
    calls = [{"language": "python", "code": f"print({i})"} for i in range(20)]
    assert [result.stdout for result in client.execute_batch(calls)] == [f"{i}\n" for i in range(20)]
    streamed = dict(client.stream_batch(calls))
    assert sorted(streamed) == list(range(20))
    assert all(streamed[i].stdout == f"{i}\n" for i in range(20))


def test_judge(client: SandpitClient) -> None:
    cases = [{"stdin": "2 3", "expected_stdout": "5"}, {"stdin": "1 1", "expected_stdout": "3"}]
    answer = client.judge("python", "print(sum(map(int, input().split())))", cases, compare="whitespace")
    assert answer.verdict == "wrong_answer"
    assert answer.pass_ratio == 0.5


def test_jobs_submit_wait_cancel(client: SandpitClient) -> None:
    job = client.submit("python", "print('later')")
    assert client.wait_for(job.id, timeout_s=30).stdout == "later\n"
    sleeper = client.submit("python", "import time; time.sleep(30)")
    assert client.cancel(sleeper.id).result.status == "cancelled"  # type: ignore[union-attr]


def test_tools(client: SandpitClient) -> None:
    assert "calculator" in {tool["name"] for tool in client.list_tools()}
    answer = client.call_tool("calculator", {"expression": "7 * 6"})
    assert answer.structured_content == {"result": 42}
    assert answer.is_error is False


def test_errors_raise_with_the_detail(client: SandpitClient) -> None:
    with pytest.raises(SandpitError) as caught:
        client.call_tool("calculator", {"expression": 1})
    assert caught.value.status_code == 422


def test_async_client_runs_many_calls_over_one_pool(stack: LocalStack) -> None:
    async def main() -> list[str]:
        async with AsyncSandpitClient(stack.url, max_connections=50) as sandpit:
            results = await asyncio.gather(*(sandpit.execute("python", f"print({i})") for i in range(100)))
            judged = await sandpit.judge("python", "print(input())", [{"stdin": "a", "expected_stdout": "a\n"}])
            assert judged.verdict == "accepted"
            streamed = [index async for index, _ in sandpit.stream_batch([{"language": "bash", "code": "echo"}] * 3)]
            assert sorted(streamed) == [0, 1, 2]
            return [result.stdout for result in results]

    assert asyncio.run(main()) == [f"{i}\n" for i in range(100)]


class FlakyServer:
    """A real HTTP server that refuses the first `refusals` calls with a status and Retry-After."""

    def __init__(self, status: int, refusals: int, retry_after: str) -> None:
        self.keys: list[str | None] = []
        self.times: list[float] = []
        app = FastAPI()

        @app.post("/v1/execute")
        async def execute(request: Request) -> JSONResponse:
            self.keys.append(request.headers.get("idempotency-key"))
            self.times.append(time.monotonic())
            if len(self.keys) <= refusals:
                return JSONResponse({"detail": "busy"}, status_code=status, headers={"Retry-After": retry_after})
            return JSONResponse({"id": "a" * 32, "status": "ok", "stdout": "done\n"})

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FlakyServer:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@pytest.mark.parametrize("status", [429, 503])
def test_retries_honour_retry_after_with_one_idempotency_key(status: int) -> None:
    with FlakyServer(status, refusals=2, retry_after="1") as server:
        sandpit = SandpitClient(f"http://127.0.0.1:{server.port}", retry=Retry(backoff_s=0.01))
        assert sandpit.execute("python", "print(1)").stdout == "done\n"
        sandpit.close()
    assert len(server.keys) == 3
    assert len(set(server.keys)) == 1 and server.keys[0]
    assert server.times[1] - server.times[0] >= 0.95
    assert server.times[2] - server.times[1] >= 0.95


def test_gives_up_after_the_last_attempt_with_the_servers_answer() -> None:
    with FlakyServer(503, refusals=10, retry_after="0") as server:
        sandpit = SandpitClient(f"http://127.0.0.1:{server.port}", retry=Retry(attempts=3, backoff_s=0.01))
        with pytest.raises(SandpitError) as caught:
            sandpit.execute("python", "print(1)")
        sandpit.close()
    assert caught.value.status_code == 503
    assert len(server.keys) == 3


def test_connection_errors_are_retried_then_raised() -> None:
    started = time.monotonic()
    sandpit = SandpitClient(f"http://127.0.0.1:{free_port()}", retry=Retry(attempts=3, backoff_s=0.1))
    with pytest.raises(httpx.ConnectError):
        sandpit.execute("python", "print(1)")
    assert time.monotonic() - started >= 0.15


def test_sessions(client: SandpitClient) -> None:
    session = client.open_session()
    try:
        client.run_in_session(session.id, "total = 40")
        assert client.run_in_session(session.id, "total + 2").stdout == "42\n"
        assert client.run_in_session(session.id, "while True: pass", timeout_s=0.5).status == "timeout"
    finally:
        client.close_session(session.id)
    with pytest.raises(SandpitError) as caught:
        client.run_in_session(session.id, "1")
    assert caught.value.status_code == 404


def test_session_calls_are_not_resent_after_a_connection_error() -> None:
    sandpit = SandpitClient(f"http://127.0.0.1:{free_port()}", retry=Retry(attempts=5, backoff_s=0.5))
    started = time.monotonic()
    with pytest.raises(httpx.ConnectError):
        sandpit.run_in_session("a" * 32, "x += 1")
    assert time.monotonic() - started < 0.4
