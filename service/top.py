"""`sandpit top`: a live terminal view of one gateway's `/metrics`.

Queue depth and ages, live workers and their busy slots are what the gateway last sampled from Redis
(every `metrics_sample_interval_s`); throughput, 429s and latency quantiles are computed from the
difference between two scrapes of its counters and histogram buckets. Only HTTP: no Redis
credentials are needed to watch a deployment. Plain ANSI: clear the screen, print, sleep.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from service.config import Settings

CLEAR = "\x1b[H\x1b[2J"
BAR_WIDTH = 20


@dataclass
class Scrape:
    at: float
    gauges: dict[str, float] = field(default_factory=dict)
    # Calls that ran code, over all routes and languages: cumulative count per `le` bucket bound.
    buckets: dict[float, float] = field(default_factory=dict)
    calls: float = 0.0
    rejected: float = 0.0
    # worker id -> {"busy": n, "free": n}
    workers: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))


def parse(text: str, at: float) -> Scrape:
    scrape = Scrape(at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "sandpit_http_request_duration_seconds_bucket" and labels.get("language") != "none":
                bound = float(labels["le"])
                scrape.buckets[bound] = scrape.buckets.get(bound, 0.0) + value
            elif name == "sandpit_http_request_duration_seconds_count" and labels.get("language") != "none":
                scrape.calls += value
            elif name == "sandpit_rejected_total":
                scrape.rejected += value
            elif name == "sandpit_live_worker_slots":
                scrape.workers[labels["worker"]][labels["state"]] = value
            elif not labels:
                scrape.gauges[name] = value
    return scrape


def quantile(q: float, before: Scrape, after: Scrape) -> float | None:
    """The q-quantile of the calls between two scrapes, from their histogram buckets (upper bound)."""
    counts = sorted((bound, after.buckets[bound] - before.buckets.get(bound, 0.0)) for bound in after.buckets)
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return None
    for bound, cumulative in counts:
        if cumulative >= q * total:
            return bound
    return None


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return "> 120 s" if math.isinf(seconds) else f"≤ {seconds * 1000:g} ms"


def render(url: str, before: Scrape, after: Scrape) -> str:
    elapsed = max(after.at - before.at, 1e-9)
    g = after.gauges
    slots_busy = sum(worker.get("busy", 0.0) for worker in after.workers.values())
    slots_free = sum(worker.get("free", 0.0) for worker in after.workers.values())
    lines = [
        f"sandpit top  {url}  {time.strftime('%H:%M:%S')}",
        "",
        f"queue       depth {g.get('sandpit_queue_depth', 0):.0f}   waiting {g.get('sandpit_queue_waiting', 0):.0f}"
        f"   running {g.get('sandpit_queue_running', 0):.0f}",
        f"oldest job  {g.get('sandpit_queue_oldest_age_seconds', 0):.1f} s"
        f"   oldest waiting {g.get('sandpit_queue_oldest_waiting_age_seconds', 0):.1f} s",
        f"throughput  {(after.calls - before.calls) / elapsed:.1f} calls/s"
        f"   rejected {(after.rejected - before.rejected) / elapsed:.1f}/s"
        f"   waiting here {g.get('sandpit_gateway_waiting_calls', 0):.0f}",
        f"latency     p50 {fmt_ms(quantile(0.5, before, after))}   p99 {fmt_ms(quantile(0.99, before, after))}",
        f"workers     {g.get('sandpit_workers_live', 0):.0f} live"
        f"   slots {slots_busy:.0f} busy / {slots_busy + slots_free:.0f}",
    ]
    for worker_id in sorted(after.workers):
        busy, free = after.workers[worker_id].get("busy", 0.0), after.workers[worker_id].get("free", 0.0)
        filled = round(BAR_WIDTH * busy / (busy + free)) if busy + free else 0
        lines.append(f"  {worker_id:<40} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {busy:.0f}/{busy + free:.0f}")
    return "\n".join(lines)


def scrape(client: httpx.Client) -> Scrape:
    response = client.get("/metrics")
    response.raise_for_status()
    return parse(response.text, time.monotonic())


def run_top(args: argparse.Namespace, _: Settings) -> int:
    with httpx.Client(base_url=args.url, timeout=5) as client:
        try:
            before = scrape(client)
            while True:
                time.sleep(args.interval)
                after = scrape(client)
                view = render(args.url, before, after)
                if args.once:
                    print(view)
                    return 0
                sys.stdout.write(CLEAR + view + "\n")
                sys.stdout.flush()
                before = after
        except httpx.HTTPError as exc:
            print(f"cannot read {args.url}/metrics: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
