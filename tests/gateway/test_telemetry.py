"""The gateway's /metrics and request ids, against a real stack: counters move by what was sent."""

from __future__ import annotations

import httpx

from service.stack import LocalStack
from tests.conftest import OPS_KEY, THROTTLED_KEY
from tests.metrics_scrape import scrape, total, value

OPS = {"X-API-Key": OPS_KEY}


def test_calls_move_request_and_enqueue_counters_by_route_and_language(observed_stack: LocalStack) -> None:
    url = observed_stack.url
    before = scrape(url)
    for _ in range(3):
        httpx.post(f"{url}/v1/execute", json={"language": "python", "code": "print(1)"}, headers=OPS, timeout=60)
    httpx.post(f"{url}/v1/execute", json={"language": "bash", "code": "exit 3"}, headers=OPS, timeout=60)
    after = scrape(url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("sandpit_http_requests_total", route="/v1/execute", code="200") == 4
    python = {"route": "/v1/execute", "language": "python"}
    assert moved("sandpit_http_request_duration_seconds_count", **python) == 3
    assert moved("sandpit_http_request_duration_seconds_count", route="/v1/execute", language="bash") == 1
    assert moved("sandpit_jobs_enqueued_total", language="python") == 3
    assert moved("sandpit_jobs_enqueued_total", language="bash") == 1
    # Outcomes where the results arrive: no worker metrics port needed.
    assert moved("sandpit_gateway_results_total", language="python", status="ok") == 3
    assert moved("sandpit_gateway_results_total", language="bash", status="error") == 1
    assert moved("sandpit_gateway_result_seconds_count", language="python") == 3


def test_batch_results_are_counted_by_status(observed_stack: LocalStack) -> None:
    url = observed_stack.url
    before = scrape(url)
    calls = [
        {"language": "python", "code": "print(1)"},
        {"language": "python", "code": "while True: pass", "timeout_s": 0.5},
    ]
    response = httpx.post(f"{url}/v1/execute/batch", json={"calls": calls}, headers=OPS, timeout=60)
    assert [r["status"] for r in response.json()["results"]] == ["ok", "timeout"]
    after = scrape(url)
    for status in ("ok", "timeout"):
        moved = value(after, "sandpit_gateway_results_total", language="python", status=status)
        assert moved - value(before, "sandpit_gateway_results_total", language="python", status=status) == 1


def test_refused_calls_are_counted_by_reason_and_tenant(observed_stack: LocalStack) -> None:
    url = observed_stack.url
    before = scrape(url)
    for _ in range(2):
        response = httpx.post(
            f"{url}/v1/execute", json={"language": "python", "code": "1"}, headers={"X-API-Key": THROTTLED_KEY}
        )
        assert response.status_code == 429
    after = scrape(url)
    labels = {"reason": "rate_limit", "tenant": "throttled"}
    assert value(after, "sandpit_rejected_total", **labels) - value(before, "sandpit_rejected_total", **labels) == 2
    assert total(after, "sandpit_rejected_total", tenant="ops") == total(before, "sandpit_rejected_total", tenant="ops")


def test_request_id_is_returned_and_one_is_made_when_missing(observed_stack: LocalStack) -> None:
    url = observed_stack.url
    given = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "rollout-7.step-3"})
    assert given.headers["x-request-id"] == "rollout-7.step-3"
    made = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "no spaces or\ttabs allowed"})
    assert len(made.headers["x-request-id"]) == 32


def test_queue_and_worker_gauges_are_sampled_from_redis(observed_stack: LocalStack) -> None:
    samples = scrape(observed_stack.url)
    assert value(samples, "sandpit_workers_live") == observed_stack.workers
    free_and_busy = total(samples, "sandpit_slots")
    assert free_and_busy == observed_stack.workers * observed_stack.settings.worker_concurrency
