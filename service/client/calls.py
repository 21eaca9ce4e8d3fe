"""What each client method sends and how its answer is read, shared by the sync and async clients.

A `Call` is one HTTP request (method, path, body, idempotency key) with the function that turns the
response into a typed result. `Retry` decides whether and when to send it again: after 429 or 503
(honouring `Retry-After`) and after a connection error, with exponential backoff and jitter. Every
call that runs code carries an `Idempotency-Key`, the same on every attempt, so a retry after a lost
response gets the first attempt's job instead of running the code twice.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from service.models import (
    BatchRequest,
    ExecuteRequest,
    ExecutionResult,
    JobInfo,
    JudgeRequest,
    JudgeResult,
    Language,
    SessionExecuteRequest,
    SessionForkInfo,
    SessionForkRequest,
    SessionInfo,
    SessionRequest,
    ToolCallResult,
)

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({429, 503})


class SandpitError(RuntimeError):
    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class Retry:
    attempts: int = 6
    backoff_s: float = 0.1
    max_backoff_s: float = 10.0
    # A lost connection may have lost the answer of a call that ran: safe to resend only with an
    # idempotency key (or for reads).
    retry_connection_errors: bool = True

    def delay_s(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up with what we have."""
        if attempt + 1 >= self.attempts:
            return None
        if response is None and not self.retry_connection_errors:
            return None
        if response is not None and response.status_code not in RETRYABLE_STATUS:
            return None
        backoff: float = min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
        return max(backoff, retry_after_s(response))


def retry_after_s(response: httpx.Response | None) -> float:
    value = response.headers.get("retry-after", "") if response is not None else ""
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0  # an HTTP date or nothing: fall back to our own backoff


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}


def check(response: httpx.Response) -> httpx.Response:
    if response.status_code < 300:
        return response
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text
    raise SandpitError(response.status_code, detail)


def parser(model: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    return lambda response: model.model_validate_json(check(response).content)


def new_key() -> str:
    return uuid.uuid4().hex


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True)


def as_request(call: ExecuteRequest | dict[str, Any]) -> ExecuteRequest:
    return call if isinstance(call, ExecuteRequest) else ExecuteRequest.model_validate(call)


def execute(language: Language | str, code: str, **options: Any) -> Call[ExecutionResult]:
    request = ExecuteRequest(language=Language(language), code=code, **options)
    return Call("POST", "/v1/execute", parser(ExecutionResult), dump(request), idempotency_key=new_key())


def batch_body(calls: list[ExecuteRequest | dict[str, Any]]) -> dict[str, Any]:
    return dump(BatchRequest(calls=[as_request(call) for call in calls]))


def execute_batch(calls: list[ExecuteRequest | dict[str, Any]]) -> Call[list[ExecutionResult]]:
    def parse(response: httpx.Response) -> list[ExecutionResult]:
        return [ExecutionResult.model_validate(item) for item in check(response).json()["results"]]

    return Call("POST", "/v1/execute/batch", parse, batch_body(calls))


def batch_line(line: str) -> tuple[int, ExecutionResult]:
    """One NDJSON line of a streamed batch: the call's index and its result."""
    item = BatchLineModel.model_validate_json(line)
    return item.index, item.result


class BatchLineModel(BaseModel):
    index: int
    result: ExecutionResult


def judge(language: Language | str, code: str, cases: list[dict[str, str]], **options: Any) -> Call[JudgeResult]:
    request = JudgeRequest.model_validate({"language": language, "code": code, "cases": cases, **options})
    return Call("POST", "/v1/judge", parser(JudgeResult), dump(request), idempotency_key=new_key())


def submit(language: Language | str, code: str, **options: Any) -> Call[JobInfo]:
    request = ExecuteRequest(language=Language(language), code=code, **options)
    return Call("POST", "/v1/jobs", parser(JobInfo), dump(request), idempotency_key=new_key())


def job(job_id: str, wait_s: float = 0.0) -> Call[JobInfo]:
    return Call("GET", f"/v1/jobs/{job_id}", parser(JobInfo), params={"wait": wait_s} if wait_s else {})


def cancel(job_id: str) -> Call[JobInfo]:
    return Call("DELETE", f"/v1/jobs/{job_id}", parser(JobInfo))


def list_tools() -> Call[list[dict[str, Any]]]:
    def parse(response: httpx.Response) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = check(response).json()["tools"]
        return tools

    return Call("GET", "/v1/tools", parse)


def call_tool(name: str, arguments: dict[str, Any]) -> Call[ToolCallResult]:
    return Call("POST", f"/v1/tools/{name}", parser(ToolCallResult), arguments, idempotency_key=new_key())


def open_session(**options: Any) -> Call[SessionInfo]:
    return Call("POST", "/v1/sessions", parser(SessionInfo), dump(SessionRequest(**options)))


def run_in_session(session_id: str, code: str, timeout_s: float | None = None) -> Call[ExecutionResult]:
    request = SessionExecuteRequest(code=code, timeout_s=timeout_s)
    return Call("POST", f"/v1/sessions/{session_id}/execute", parser(ExecutionResult), dump(request))


def fork_session(session_id: str, count: int = 1) -> Call[list[SessionInfo]]:
    def parse(response: httpx.Response) -> list[SessionInfo]:
        return SessionForkInfo.model_validate_json(check(response).content).sessions

    return Call("POST", f"/v1/sessions/{session_id}/fork", parse, dump(SessionForkRequest(count=count)))


def close_session(session_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/sessions/{session_id}", no_body)


def no_body(response: httpx.Response) -> None:
    check(response)
