"""HTTP clients for the Sandpit API: `SandpitClient` (sync) and `AsyncSandpitClient`, on pooled httpx.

Both offer the same methods with the same arguments and typed results; what each sends is defined
once in `calls.py`. Requests are retried on 429/503 (honouring `Retry-After`) and on connection errors,
with backoff; calls that run code carry an idempotency key so a retry never runs them twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import httpx

from service.client import calls
from service.client.calls import Call, Retry, SandpitError
from service.models import (
    ExecuteRequest,
    ExecutionResult,
    JobInfo,
    JobState,
    JudgeResult,
    Language,
    SessionInfo,
    ToolCallResult,
)

__all__ = ["AsyncSandpitClient", "SandpitClient", "SandpitError"]

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_RETRY = Retry()
T = TypeVar("T")
Calls = list[ExecuteRequest | dict[str, Any]]
# One long-poll request of `wait_for`; the server caps it at max_long_poll_s anyway.
LONG_POLL_S = 30.0


def http_options(url: str, timeout_s: float, max_connections: int, api_key: str | None) -> dict[str, Any]:
    """What both clients give their httpx client: base URL, timeout, one pooled connection set, the key."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return {"base_url": url, "timeout": timeout_s, "limits": limits, "headers": auth_headers(api_key)}


def no_connection_retries(retry: Retry) -> Retry:
    """For calls that may have run before a connection broke: retried only on 429/503, which say the
    request was not taken, so nothing ran and it can be sent again."""
    return Retry(attempts=retry.attempts, backoff_s=retry.backoff_s, retry_connection_errors=False)


def result_of(info: JobInfo) -> ExecutionResult | None:
    return info.result if info.state == JobState.done else None


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class SandpitClient:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        timeout_s: float = 300.0,
        max_connections: int = 100,
        retry: Retry = DEFAULT_RETRY,
        api_key: str | None = None,
    ) -> None:
        self._http = httpx.Client(**http_options(url, timeout_s, max_connections, api_key))
        self.retry = retry
        self.no_retry = no_connection_retries(retry)

    def send(self, call: Call[T], retry: Retry | None = None) -> T:
        retry = retry or self.retry
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, json=call.body, params=call.params, headers=call.headers
                )
            except httpx.TransportError:
                if (delay := retry.delay_s(attempt, None)) is None:
                    raise
            else:
                if (delay := retry.delay_s(attempt, response)) is None:
                    return call.parse(response)
            time.sleep(delay)
            attempt += 1

    def execute(self, language: Language | str, code: str, **options: Any) -> ExecutionResult:
        return self.send(calls.execute(language, code, **options))

    def execute_batch(self, batch: Calls) -> list[ExecutionResult]:
        return self.send(calls.execute_batch(batch))

    def stream_batch(self, batch: Calls) -> Iterator[tuple[int, ExecutionResult]]:
        """(index, result) pairs as the calls finish. Not retried: a stream cannot be replayed."""
        body = calls.batch_body(batch)
        with self._http.stream("POST", "/v1/execute/batch", json=body, params={"stream": "true"}) as response:
            if response.status_code != 200:
                response.read()
                calls.check(response)
            for line in response.iter_lines():
                if line:
                    yield calls.batch_line(line)

    def judge(self, language: Language | str, code: str, cases: list[dict[str, str]], **options: Any) -> JudgeResult:
        return self.send(calls.judge(language, code, cases, **options))

    def submit(self, language: Language | str, code: str, **options: Any) -> JobInfo:
        return self.send(calls.submit(language, code, **options))

    def job(self, job_id: str, wait_s: float = 0.0) -> JobInfo:
        return self.send(calls.job(job_id, wait_s))

    def wait_for(self, job_id: str, timeout_s: float = 300.0) -> ExecutionResult:
        """Long-poll a job until it is done; TimeoutError if it is not within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            result = result_of(self.job(job_id, wait_s=min(LONG_POLL_S, left)))
            if result is not None:
                return result
        raise TimeoutError(f"job {job_id} not done within {timeout_s:g}s")

    def cancel(self, job_id: str) -> JobInfo:
        return self.send(calls.cancel(job_id))

    def list_tools(self) -> list[dict[str, Any]]:
        return self.send(calls.list_tools())

    def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolCallResult:
        return self.send(calls.call_tool(name, arguments))

    def open_session(self, **options: Any) -> SessionInfo:
        """A persistent Python interpreter; not retried (a retry could open a second one)."""
        return self.send(calls.open_session(**options), self.no_retry)

    def run_in_session(self, session_id: str, code: str, timeout_s: float | None = None) -> ExecutionResult:
        """Run code in a session; not retried (the session's state would see the code twice)."""
        return self.send(calls.run_in_session(session_id, code, timeout_s), self.no_retry)

    def fork_session(self, session_id: str, count: int = 1) -> list[SessionInfo]:
        """`count` branches of a session, each an exact copy of it now; not retried (a retry could make
        more branches than asked for)."""
        return self.send(calls.fork_session(session_id, count), self.no_retry)

    def close_session(self, session_id: str) -> None:
        self.send(calls.close_session(session_id))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandpitClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncSandpitClient:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        timeout_s: float = 300.0,
        max_connections: int = 1000,
        retry: Retry = DEFAULT_RETRY,
        api_key: str | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(**http_options(url, timeout_s, max_connections, api_key))
        self.retry = retry
        self.no_retry = no_connection_retries(retry)

    async def send(self, call: Call[T], retry: Retry | None = None) -> T:
        retry = retry or self.retry
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method, call.path, json=call.body, params=call.params, headers=call.headers
                )
            except httpx.TransportError:
                if (delay := retry.delay_s(attempt, None)) is None:
                    raise
            else:
                if (delay := retry.delay_s(attempt, response)) is None:
                    return call.parse(response)
            await asyncio.sleep(delay)
            attempt += 1

    async def execute(self, language: Language | str, code: str, **options: Any) -> ExecutionResult:
        return await self.send(calls.execute(language, code, **options))

    async def execute_batch(self, batch: Calls) -> list[ExecutionResult]:
        return await self.send(calls.execute_batch(batch))

    async def stream_batch(self, batch: Calls) -> AsyncIterator[tuple[int, ExecutionResult]]:
        """(index, result) pairs as the calls finish. Not retried: a stream cannot be replayed."""
        body = calls.batch_body(batch)
        async with self._http.stream("POST", "/v1/execute/batch", json=body, params={"stream": "true"}) as response:
            if response.status_code != 200:
                await response.aread()
                calls.check(response)
            async for line in response.aiter_lines():
                if line:
                    yield calls.batch_line(line)

    async def judge(
        self, language: Language | str, code: str, cases: list[dict[str, str]], **options: Any
    ) -> JudgeResult:
        return await self.send(calls.judge(language, code, cases, **options))

    async def submit(self, language: Language | str, code: str, **options: Any) -> JobInfo:
        return await self.send(calls.submit(language, code, **options))

    async def job(self, job_id: str, wait_s: float = 0.0) -> JobInfo:
        return await self.send(calls.job(job_id, wait_s))

    async def wait_for(self, job_id: str, timeout_s: float = 300.0) -> ExecutionResult:
        """Long-poll a job until it is done; TimeoutError if it is not within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            result = result_of(await self.job(job_id, wait_s=min(LONG_POLL_S, left)))
            if result is not None:
                return result
        raise TimeoutError(f"job {job_id} not done within {timeout_s:g}s")

    async def cancel(self, job_id: str) -> JobInfo:
        return await self.send(calls.cancel(job_id))

    async def list_tools(self) -> list[dict[str, Any]]:
        return await self.send(calls.list_tools())

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolCallResult:
        return await self.send(calls.call_tool(name, arguments))

    async def open_session(self, **options: Any) -> SessionInfo:
        """A persistent Python interpreter; not retried (a retry could open a second one)."""
        return await self.send(calls.open_session(**options), self.no_retry)

    async def run_in_session(self, session_id: str, code: str, timeout_s: float | None = None) -> ExecutionResult:
        """Run code in a session; not retried (the session's state would see the code twice)."""
        return await self.send(calls.run_in_session(session_id, code, timeout_s), self.no_retry)

    async def fork_session(self, session_id: str, count: int = 1) -> list[SessionInfo]:
        """`count` branches of a session, each an exact copy of it now; not retried (a retry could make
        more branches than asked for)."""
        return await self.send(calls.fork_session(session_id, count), self.no_retry)

    async def close_session(self, session_id: str) -> None:
        await self.send(calls.close_session(session_id))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSandpitClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
