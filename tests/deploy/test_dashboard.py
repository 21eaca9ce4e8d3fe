"""The Grafana dashboard the compose monitoring profile provisions: well-formed, and every metric it
queries is one a real gateway or worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import yaml

from service.stack import LocalStack
from tests.conftest import OPS_KEY, THROTTLED_KEY
from tests.metrics_scrape import scrape, worker_urls

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose"
DASHBOARD = COMPOSE / "grafana" / "dashboards" / "sandpit.json"
METRIC_NAME = re.compile(r"\b(?:sandpit|process)_[a-z_]+\b")


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def queried_metrics() -> set[str]:
    exprs = [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])]
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


def test_dashboard_is_well_formed() -> None:
    document = dashboard()
    assert document["uid"] and document["title"]
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    for panel in document["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_compose_provisions_this_dashboard_and_scrapes_the_worker_metrics_port() -> None:
    provider = yaml.safe_load((COMPOSE / "grafana" / "provisioning" / "dashboards" / "sandpit.yaml").read_text())
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    mounted = {volume.split(":")[1] for volume in compose["services"]["grafana"]["volumes"] if "dashboards" in volume}
    assert provider["providers"][0]["options"]["path"] in mounted
    prometheus = yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    worker_job = next(job for job in prometheus["scrape_configs"] if job["job_name"] == "sandpit-worker")
    port = worker_job["dns_sd_configs"][0]["port"]
    assert str(compose["services"]["worker"]["environment"]["SANDPIT_WORKER_METRICS_PORT"]) == str(port)


def test_every_metric_the_dashboard_queries_is_exported(observed_stack: LocalStack) -> None:
    # A labelled series exists once something was counted in it: one call run, one refused.
    call = {"language": "python", "code": "print(1)"}
    for key in (OPS_KEY, THROTTLED_KEY):
        httpx.post(f"{observed_stack.url}/v1/execute", json=call, headers={"X-API-Key": key}, timeout=60)
    exported = {name for name, _ in scrape(observed_stack.url)}
    for url in worker_urls(observed_stack):
        exported |= {name for name, _ in scrape(url)}
    assert queried_metrics(), "the dashboard queries no metric"
    assert queried_metrics() <= exported, f"not exported: {sorted(queried_metrics() - exported)}"
