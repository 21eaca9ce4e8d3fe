"""The fast path answers every request exactly as the full FastAPI path does, and serves the ordinary ones.

Two real gateways (uvicorn, httptools, uvloop, as `sandpit gateway` runs) on the session stack's Redis,
whose workers run their calls: one as built, one without `FastPathMiddleware`. Each request goes to both;
status, headers and body must match (apart from the date, and in results the fields that differ from
run to run), and the fast one says whether it fell back to FastAPI.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from service.config import Settings
from service.gateway import run_code
from service.gateway.app import create_app
from service.gateway.auth import hash_key
from service.gateway.cancel import CLIENT_GONE
from service.gateway.fast_path import FastPathMiddleware
from service.gateway.run_code import CommandRunResult, CommandRunStatus, RunCodeResponse, RunStatus
from service.stack import LocalStack, free_port
from tests.e2e.test_abandoned import SLEEP, post_and_leave, results_of, sleeping_jobs

KEYS = {"open": "fp-key-open", "throttled": "fp-key-throttled", "quota": "fp-key-quota"}
# What differs between two runs of the same call.
VOLATILE = {"id", "duration_ms", "cpu_ms", "peak_memory_kb", "queued_ms", "worker", "execution_time", "cpu_time"}
VOLATILE |= {"executor_pod_name"}
MAX_BODY = 4096


class Gateway:
    """A gateway app served by uvicorn in a thread, as `sandpit gateway` serves it."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, port=self.port, loop="uvloop", http="httptools", log_level="warning", log_config=None
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Gateway:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the gateway did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def without_fast_path(app: FastAPI) -> FastAPI:
    app.user_middleware = [layer for layer in app.user_middleware if layer.cls is not FastPathMiddleware]
    return app


@dataclass
class Twins:
    fast: str
    full: str


@pytest.fixture(scope="module")
def twins(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twins]:
    """A gateway with the fast path and one without, with API keys, on the stack's Redis and workers."""
    keys_file: Path = tmp_path_factory.mktemp("fast-path") / "tenants.json"
    tenants = [
        {"name": "fp-open", "key_sha256": hash_key(KEYS["open"])},
        # Its bucket starts with a thousandth of a token: every call is over the rate.
        {"name": "fp-throttled", "key_sha256": hash_key(KEYS["throttled"]), "rate_per_s": 0.001},
        {"name": "fp-quota", "key_sha256": hash_key(KEYS["quota"]), "max_in_flight": 1},
    ]
    keys_file.write_text(json.dumps({"tenants": tenants}))
    settings = Settings(
        redis_url=stack.settings.redis_url,
        key_prefix=stack.settings.key_prefix,
        api_keys_file=keys_file,
        max_body_bytes=MAX_BODY,
        default_timeout_s=5.0,
        reclaim_idle_s=6.0,
    )
    with Gateway(create_app(settings)) as fast, Gateway(without_fast_path(create_app(settings))) as full:
        yield Twins(fast.url, full.url)


@pytest.fixture
def fell_back(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The request ids of the requests the fast path handed to FastAPI."""
    handed_over: set[str] = set()
    original = FastPathMiddleware.fall_back

    async def noting(self: FastPathMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        handed_over.update(value.decode() for name, value in scope["headers"] if name == b"x-request-id")
        await original(self, scope, receive, send)

    monkeypatch.setattr(FastPathMiddleware, "fall_back", noting)
    return handed_over


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: Any


def normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: "<varies>" if key in VOLATILE else normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [normalized(item) for item in value]
    return value


def answer_of(response: httpx.Response) -> Answer:
    """The response without its date; a result's run-dependent fields (and so its length) masked."""
    headers = [(name, value) for name, value in response.headers.multi_items() if name != "date"]
    if response.status_code != 200:
        return Answer(response.status_code, headers, response.content)
    headers = [(name, value) for name, value in headers if name != "content-length"]
    return Answer(response.status_code, headers, normalized(json.loads(response.content)))


def send_to(url: str, method: str, path: str, content: Any, headers: dict[str, str]) -> httpx.Response:
    # One Host for both gateways, as a redirect names it.
    with httpx.Client(base_url=url, timeout=60, headers={"Host": "gateway.test"}) as client:
        return client.request(method, path, content=content, headers=headers)


def both(
    twins: Twins, method: str, path: str, content: Any = None, headers: dict[str, str] | None = None, key: str = "open"
) -> tuple[str, Answer]:
    """Send one request to both gateways; the fast one's answer, after checking the full one's is the same."""
    request_id = f"fp-{uuid.uuid4().hex}"
    sent = {"X-Request-ID": request_id, "Authorization": f"Bearer {KEYS[key]}", **(headers or {})}
    fast = answer_of(send_to(twins.fast, method, path, content, sent))
    full = answer_of(send_to(twins.full, method, path, content, sent))
    assert fast == full
    return request_id, fast


JSON = {"content-type": "application/json"}


def as_json(body: object) -> bytes:
    return json.dumps(body).encode()


SERVED = [
    ("/v1/execute", {"language": "python", "code": "print(1+1)"}, 200),
    ("/v1/execute", {"language": "python", "code": "import sys; print('é', file=sys.stderr); sys.exit(3)"}, 200),
    ("/v1/execute", {"language": "python", "code": "print(input())", "stdin": "hi", "timeout_s": 2}, 200),
    ("/v1/execute", {"language": "python", "code": "pass", "timeout_s": 10_000}, 422),
    ("/v1/execute", {"language": "python", "code": "pass", "memory_mb": 8}, 422),
    ("/run_code", {"language": "python", "code": "print(1+1)"}, 200),
    ("/run_code", {"language": "python", "code": "while True: pass", "run_timeout": 0.3}, 200),
    ("/run_code", {"language": "python", "code": "print(1)", "compile_timeout": 3, "args": ["ignored"]}, 200),
    ("/run_code", {"language": "cobol", "code": "DISPLAY 1."}, 200),
    ("/run_code", {"language": "python", "code": "print(1)", "files": {"../x": "aGk="}}, 422),
]


@pytest.mark.parametrize(("path", "body", "status"), SERVED)
def test_ordinary_calls_are_served_as_fastapi_serves_them(
    twins: Twins, fell_back: set[str], path: str, body: object, status: int
) -> None:
    request_id, answer = both(twins, "POST", path, as_json(body), JSON)
    assert answer.status == status, answer.body
    assert request_id not in fell_back


def test_run_code_answers_are_serialized_byte_for_byte_alike(
    twins: Twins, fell_back: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Floats whose text differs between serializers, and text that some escape.
    run_result = CommandRunResult(
        status=CommandRunStatus.Finished, execution_time=1e-06, cpu_time=0.1 + 0.2, return_code=0, stdout="é ✓ \u2028"
    )
    fixed = RunCodeResponse(status=RunStatus.Success, run_result=run_result, executor_pod_name="w", files={"a": "aGk="})
    monkeypatch.setattr(run_code, "to_response", lambda _: fixed)
    request_id = f"fp-{uuid.uuid4().hex}"
    headers = {"X-Request-ID": request_id, "Authorization": f"Bearer {KEYS['open']}", **JSON}
    body = as_json({"language": "python", "code": "print(1)"})
    fast, full = (send_to(url, "POST", "/run_code", body, headers) for url in (twins.fast, twins.full))
    assert (fast.status_code, fast.content) == (full.status_code, full.content)
    assert b"1e-06" in fast.content or b"1e-6" in fast.content
    assert request_id not in fell_back


FALLS_BACK: list[tuple[str, str, bytes | None, dict[str, str]]] = [
    ("POST", "/v1/execute", b'{"language": "python", "code": ', JSON),
    ("POST", "/v1/execute", b"\xff\xfe not utf-8", JSON),
    ("POST", "/v1/execute", b"[1, 2]", JSON),
    ("POST", "/v1/execute", b"", JSON),
    ("POST", "/v1/execute", as_json({"language": "python", "code": 5}), JSON),
    ("POST", "/v1/execute", as_json({"language": "cobol", "code": "x"}), JSON),
    ("POST", "/v1/execute", as_json({"language": "python", "code": ""}), JSON),
    ("POST", "/v1/execute", as_json({"language": "python", "code": "x", "extra": 1}), JSON),
    ("POST", "/v1/execute", as_json({"language": "python", "code": "x", "timeout_s": -1}), JSON),
    ("POST", "/v1/execute", as_json({"language": "python", "code": "x", "memory_mb": "lots"}), JSON),
    ("POST", "/v1/execute", as_json({"language": "python", "code": "print(1)"}), {"content-type": "text/plain"}),
    ("POST", "/v1/execute", as_json({"language": "python", "code": "print(1)"}), {}),
    ("POST", "/v1/execute", as_json({"language": "python", "code": "#" + "x" * MAX_BODY}), JSON),
    ("POST", "/run_code", as_json({"code": "print(1)"}), JSON),
    ("POST", "/run_code", as_json({"language": "python", "code": "x", "run_timeout": 0}), JSON),
    ("POST", "/run_code", b"null", JSON),
]


@pytest.mark.parametrize(("method", "path", "content", "headers"), FALLS_BACK)
def test_refused_requests_fall_back_to_fastapi_and_answer_alike(
    twins: Twins, fell_back: set[str], method: str, path: str, content: bytes | None, headers: dict[str, str]
) -> None:
    request_id, answer = both(twins, method, path, content, headers)
    assert answer.status in (400, 413, 422), answer.body
    assert request_id in fell_back


def test_a_charset_in_the_content_type_falls_back_and_is_served_alike(twins: Twins, fell_back: set[str]) -> None:
    headers = {"content-type": "application/json; charset=utf-8"}
    body = as_json({"language": "python", "code": "print(2)"})
    request_id, answer = both(twins, "POST", "/v1/execute", body, headers)
    assert (answer.status, answer.body["stdout"]) == (200, "2\n")
    assert request_id in fell_back


def test_a_body_over_the_cap_without_a_length_is_413(twins: Twins, fell_back: set[str]) -> None:
    chunks = [b'{"language": "python", "code": "#', b"x" * MAX_BODY, b'"}']
    request_id = f"fp-{uuid.uuid4().hex}"
    answers = []
    for url in (twins.fast, twins.full):
        headers = {"X-Request-ID": request_id, "Authorization": f"Bearer {KEYS['open']}", **JSON}
        # A generator body goes chunked, with no Content-Length for the gateway to refuse up front.
        answers.append(answer_of(send_to(url, "POST", "/v1/execute", iter(chunks), headers)))
    assert answers[0] == answers[1]
    assert answers[0].status == 413
    assert request_id in fell_back


@pytest.mark.parametrize("key", [None, "Bearer wrong", "Basic nothing"])
def test_a_missing_or_wrong_key_falls_back_to_the_same_401(twins: Twins, fell_back: set[str], key: str | None) -> None:
    for path in ("/v1/execute", "/run_code"):
        request_id = f"fp-{uuid.uuid4().hex}"
        headers = {"X-Request-ID": request_id, **JSON, **({"Authorization": key} if key else {})}
        body = as_json({"language": "python", "code": "print(1)"})
        fast, full = (answer_of(send_to(url, "POST", path, body, headers)) for url in (twins.fast, twins.full))
        assert fast == full
        assert fast.status == 401
        assert request_id in fell_back


def test_the_key_may_come_as_x_api_key(twins: Twins, fell_back: set[str]) -> None:
    request_id = f"fp-{uuid.uuid4().hex}"
    headers = {"X-Request-ID": request_id, "X-API-Key": KEYS["open"], **JSON}
    body = as_json({"language": "python", "code": "print(3)"})
    fast, full = (answer_of(send_to(url, "POST", "/v1/execute", body, headers)) for url in (twins.fast, twins.full))
    assert fast == full
    assert fast.body["stdout"] == "3\n"
    assert request_id not in fell_back


@pytest.mark.parametrize("path", ["/v1/execute", "/run_code"])
def test_a_tenant_over_its_rate_gets_the_same_429(twins: Twins, fell_back: set[str], path: str) -> None:
    body = as_json({"language": "python", "code": "print(1)"})
    request_id, answer = both(twins, "POST", path, body, JSON, key="throttled")
    assert answer.status == 429
    assert ("retry-after", "999") in answer.headers
    assert request_id not in fell_back


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_a_malformed_idempotency_key_gets_the_same_400(twins: Twins, fell_back: set[str], key: str) -> None:
    body = as_json({"language": "python", "code": "print(1)"})
    request_id, answer = both(twins, "POST", "/v1/execute", body, {**JSON, "Idempotency-Key": key})
    assert answer.status == 400
    assert request_id not in fell_back


def test_a_repeated_idempotency_key_gets_the_first_calls_result_on_either_path(
    twins: Twins, fell_back: set[str]
) -> None:
    key = f"fp-{uuid.uuid4().hex}"
    body = as_json({"language": "python", "code": "import uuid; print(uuid.uuid4())"})
    headers = {"Authorization": f"Bearer {KEYS['open']}", "Idempotency-Key": key, **JSON}
    first = send_to(twins.fast, "POST", "/v1/execute", body, {**headers, "X-Request-ID": "fp-first"})
    again = send_to(twins.fast, "POST", "/v1/execute", body, {**headers, "X-Request-ID": "fp-again"})
    elsewhere = send_to(twins.full, "POST", "/v1/execute", body, {**headers, "X-Request-ID": "fp-again"})
    assert first.status_code == 200
    assert first.content == again.content == elsewhere.content
    assert answer_of(again) == answer_of(elsewhere)
    assert not {"fp-first", "fp-again"} & fell_back


def test_other_methods_and_paths_fall_back(twins: Twins, fell_back: set[str]) -> None:
    for method, path in (("GET", "/v1/execute"), ("POST", "/v1/execute/"), ("PUT", "/run_code")):
        request_id, answer = both(twins, method, path)
        assert answer.status in (307, 405)
        assert request_id in fell_back


def test_a_tenant_at_its_quota_gets_the_same_429_and_a_caller_that_leaves_cancels_its_job(
    twins: Twins, stack: LocalStack, fell_back: set[str]
) -> None:
    body = {"language": "python", "code": SLEEP, "timeout_s": 30}
    request_id = f"fp-leaves-{uuid.uuid4().hex}"

    async def hold_the_quota_then_leave() -> list[str]:
        headers = {"Authorization": f"Bearer {KEYS['quota']}"}
        async with httpx.AsyncClient(base_url=twins.fast, headers=headers) as client:
            leaving = asyncio.create_task(post_and_leave(client, "/v1/execute", body, request_id))
            job_ids = await sleeping_jobs(stack, {request_id}, 1)
            refused = await asyncio.to_thread(
                both, twins, "POST", "/v1/execute", as_json({"language": "python", "code": "print(1)"}), JSON, "quota"
            )
            await leaving
        _, answer = refused
        assert answer.status == 429
        assert b"tenant_quota" in answer.body
        return job_ids

    job_ids = asyncio.run(hold_the_quota_then_leave())
    results = asyncio.run(results_of(stack, job_ids))
    assert [(result.get("status"), result.get("reason")) for result in results] == [("cancelled", CLIENT_GONE)]
    assert request_id not in fell_back
