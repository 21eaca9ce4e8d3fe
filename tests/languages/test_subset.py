"""A deployment that offers some languages (`SANDPIT_LANGUAGES=python,cpp`): the others are refused by name."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from service.config import Settings
from service.stack import LocalStack, free_port
from tests.languages.programs import PROBES


@pytest.fixture(scope="module")
def subset_api() -> Iterator[httpx.Client]:
    settings = Settings(port=free_port(), worker_concurrency=1, languages="python,cpp")
    with (
        LocalStack(settings, workers=1, redis_url_given=False) as stack,
        httpx.Client(base_url=stack.url, timeout=60) as client,
    ):
        yield client


def test_an_offered_language_runs(subset_api: httpx.Client) -> None:
    body = {"language": "cpp", "code": PROBES["cpp"], "stdin": "hello"}
    result = subset_api.post("/v1/execute", json=body).json()
    assert (result["status"], result["stdout"]) == ("ok", "Hello, world!\n"), result


def test_a_language_not_offered_is_unsupported_on_every_route(subset_api: httpx.Client) -> None:
    result = subset_api.post("/v1/execute", json={"language": "java", "code": PROBES["java"]}).json()
    assert result["status"] == "sandbox_error", result
    assert "unsupported language 'java': not enabled (SANDPIT_LANGUAGES)" in result["reason"], result
    answer = subset_api.post("/run_code", json={"language": "js", "code": "console.log(1)"}).json()
    assert answer["status"] == "SandboxError", answer
    assert answer["message"].startswith("unsupported language 'js' (supported here: bash, c++, cpp, python"), answer


def test_languages_says_which_the_workers_run(subset_api: httpx.Client) -> None:
    for _ in range(100):
        report = subset_api.get("/v1/languages").json()
        if report["reported"]:
            break
        time.sleep(0.1)
    available = {entry["name"] for entry in report["languages"] if entry["available"]}
    assert available == {"python", "bash", "cpp"}, report["languages"]
