"""Without a cgroup (the rlimit fallback), the runtimes that reserve far more address space than they use
(JVM, Go, V8, Mono) still start, and their own memory flags still hold them to the call's `memory_mb`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from service.config import Settings
from service.stack import LocalStack, free_port
from tests.languages.programs import PROBES

RESERVING = ["java", "go", "nodejs", "csharp"]


@pytest.fixture(scope="module")
def rlimit_api() -> Iterator[httpx.Client]:
    settings = Settings(port=free_port(), worker_concurrency=2, sandbox_limits="rlimit", languages=",".join(RESERVING))
    with (
        LocalStack(settings, workers=1, redis_url_given=False) as stack,
        httpx.Client(base_url=stack.url, timeout=60) as client,
    ):
        yield client


@pytest.mark.parametrize("language", RESERVING)
def test_runtimes_that_reserve_address_space_start_and_stop_at_their_memory(
    rlimit_api: httpx.Client, language: str
) -> None:
    calls = [
        {"language": language, "code": PROBES[language], "stdin": "hello", "memory_mb": 256},
        {"language": language, "code": PROBES[language], "stdin": "alloc", "memory_mb": 256, "timeout_s": 20},
    ]
    response = rlimit_api.post("/v1/execute/batch", json={"calls": calls})
    assert response.status_code == 200, response.text
    hello, alloc = response.json()["results"]
    assert (hello["status"], hello["stdout"]) == ("ok", "Hello, world!\n"), hello
    assert alloc["status"] == "memory_limit", alloc["stderr"][-2000:]
