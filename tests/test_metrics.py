"""`per_labels`: the remembered child is the one `labels()` gives, so what it counts is what a scrape shows."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from service.metrics import exposition, per_labels
from service.models import Language, Status


def test_a_remembered_child_is_the_labelled_child_and_its_counts_are_exposed() -> None:
    registry = CollectorRegistry()
    jobs = Counter("jobs", "Jobs by language and status", ["language", "status"], registry=registry)
    jobs_by = per_labels(jobs)

    jobs_by(Language.python, Status.ok).inc()
    jobs_by("python", "ok").inc()
    jobs_by(Language.python, Status.error).inc()

    assert jobs_by(Language.python, Status.ok) is jobs.labels("python", "ok")
    text = exposition(registry).decode()
    assert 'jobs_total{language="python",status="ok"} 2.0' in text
    assert 'jobs_total{language="python",status="error"} 1.0' in text
