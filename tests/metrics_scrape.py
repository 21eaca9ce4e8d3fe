"""Reading a real `/metrics`: one sample's value, and the metric names a scrape exports."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from service.stack import LocalStack

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(f"{url}/metrics", timeout=10).raise_for_status().text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, series), v in samples.items() if n == name and wanted <= series)


def worker_urls(stack: LocalStack) -> list[str]:
    base = stack.settings.worker_metrics_port
    return [f"http://127.0.0.1:{base + index}" for index in range(stack.workers)]


def scrape_workers(stack: LocalStack) -> Samples:
    """Every worker's samples, summed series by series."""
    summed: Samples = {}
    for url in worker_urls(stack):
        for key, v in scrape(url).items():
            summed[key] = summed.get(key, 0.0) + v
    return summed
