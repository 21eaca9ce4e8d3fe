"""Each worker's own /metrics, scraped from a real stack: jobs by language and status, timings, slots."""

from __future__ import annotations

import httpx

from service.stack import LocalStack
from tests.conftest import OPS_KEY
from tests.metrics_scrape import Samples, scrape, scrape_workers, total, value, worker_urls


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_finished_jobs_are_counted_by_language_and_status(observed_stack: LocalStack) -> None:
    url = observed_stack.url
    calls = [("python", "print(2)")] * 3 + [("python", "raise SystemExit(1)"), ("bash", "echo hi")]
    before = scrape_workers(observed_stack)
    for language, code in calls:
        response = httpx.post(
            f"{url}/v1/execute", json={"language": language, "code": code}, headers={"X-API-Key": OPS_KEY}, timeout=60
        )
        assert response.status_code == 200
    after = scrape_workers(observed_stack)

    assert moved(before, after, "sandpit_worker_jobs_total", language="python", status="ok") == 3
    assert moved(before, after, "sandpit_worker_jobs_total", language="python", status="error") == 1
    assert moved(before, after, "sandpit_worker_jobs_total", language="bash", status="ok") == 1
    assert moved(before, after, "sandpit_worker_queue_wait_seconds_count", language="python") == 4
    assert moved(before, after, "sandpit_worker_execution_seconds_count", language="bash") == 1
    launches = "sandpit_sandbox_launch_seconds_count"
    assert total(after, launches) - total(before, launches) == len(calls)


def test_each_worker_reports_its_slots_and_no_redeliveries_when_none_died(observed_stack: LocalStack) -> None:
    for url in worker_urls(observed_stack):
        samples = scrape(url)
        assert value(samples, "sandpit_worker_slots") == observed_stack.settings.worker_concurrency
        assert value(samples, "sandpit_worker_reclaimed_jobs_total") == 0
        assert value(samples, "sandpit_worker_exhausted_jobs_total") == 0


def test_worker_metrics_port_answers_only_metrics(observed_stack: LocalStack) -> None:
    assert httpx.get(f"{worker_urls(observed_stack)[0]}/").status_code == 404
