"""The hold scenario: tens of thousands of calls outstanding at one gateway, all answered correctly.

First every sandbox slot of the pool is kept busy by a call that sleeps (`busy.py`): in RL a step's
calls often arrive while the pool is still running long calls, and a pool free to answer would answer
thousands of calls while the opener is still pacing its connections, so they would never all be
outstanding at once. Then single calls each hold a connection of their own; when the server offers
batches, part of the load goes as 1,000-call batches instead, the way a training step fans out.
Connections are opened at a steady pace so the test measures holding calls, not surviving a
connection storm. The gateway's RSS is read before, at its peak and after.

`opened_in_s` is how long the opener took, and `opened_before_busy_ended` whether the pool was still
busy when it was done: only then is `peak_outstanding` every call held at once. `busy` reports the
sleeping calls apart (sent, right, wrong, lost; each must be right); they are not in `calls`,
`correct`, `peak_outstanding` or the latencies.

The line says how many connections failed under a call (`connections_reset`, one per connection, a
batch's included) and how many calls got no final result at all (`lost`: a failed connection, an
HTTP error or no answer in time; a reset batch counts all its calls); both must be 0. Calls answered
with a result that is not right (`answered_wrong`) are errors too, but not lost. A request refused
with 429 or 503 was not accepted: like a rollout client, the hold waits a second and sends it again
(`refused_and_retried`), and only a call refused every time counts as lost. Every second the
gateway's accept queue and open descriptors are sampled, and the kernel's TCP counters are read
before and after, so a failure says where it came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from service.bench import workloads
from service.bench.busy import BusyCalls, count_slots, keep_busy
from service.bench.load import (
    ANSWERED_KINDS,
    CONNECTION_FAILURES,
    Outcome,
    answered_wrong,
    call_once,
    latency_summary,
    open_pool,
    tally,
)
from service.bench.procstat import Components, peak_rss_bytes, rss_bytes
from service.bench.tcpstat import (
    accept_queue,
    counters_spent,
    open_files,
    open_files_limit,
    tcp_counters,
    tcp_settings,
)

BATCH_SIZE = 1000
# Share of the calls sent one per connection when batches are available; the rest go in batches.
SINGLE_SHARE = 0.2
# At most 1,000 new connections a second, and none while more than OPEN_WHILE_WAITING wait to be
# accepted: a connection the gateway has not accepted when the kernel's SYN-ACK retries run out (about
# a minute) is reset. A rollout client's pool opens connections as its calls need them, not faster
# than the server takes them.
OPEN_STEP = 100
OPEN_PAUSE_S = 0.1
OPEN_PER_S = OPEN_STEP / OPEN_PAUSE_S
OPEN_WHILE_WAITING = 1000
# How long the opener waits for the accept queue to drain before it opens more all the same.
OPEN_WAIT_MAX_S = 30.0
# Beyond twice the opener's time at its pace, how long the pool stays busy: the slots gauge trails the
# pool by up to ~7 s, and the opener starts only once it shows them busy.
BUSY_MARGIN_S = 10.0
SAMPLE_EVERY_S = 1.0
# A refusal says "not now": a rollout client waits (Retry-After) and sends the call again.
REFUSALS = {"http 429", "http 503"}
RETRY_AFTER_S = 1.0
MAX_REFUSALS = 60
# Descriptors the load generator needs besides one per connection (Redis, /proc, its own files).
OPEN_FILES_MARGIN = 256


def split(total: int, use_batches: bool) -> tuple[int, int]:
    """How many single calls and how many batches carry `total` calls."""
    if not use_batches:
        return total, 0
    batches = int(total * (1 - SINGLE_SHARE)) // BATCH_SIZE
    return total - batches * BATCH_SIZE, batches


def default_busy_s(total: int, use_batches: bool) -> float:
    """How long to keep the pool busy so that the opener opens every request of `total` calls first:
    twice its time at full pace (it slows down when the gateway is slow to accept), plus the margin."""
    return round(2 * sum(split(total, use_batches)) / OPEN_PER_S + BUSY_MARGIN_S, 1)


def _mib(pid: int | None, read: Any) -> float | None:
    return None if pid is None else round(read(pid) / 2**20, 1)


@dataclass
class Peaks:
    """The most seen at once while holding: accept queue, gateway descriptors, outstanding calls."""

    accept_queue: int = 0
    gateway_open_files: int = 0
    samples: list[dict[str, float]] = field(default_factory=list)


async def sample_gateway(port: int | None, gateway: int | None, peaks: Peaks, outstanding: Callable[[], int]) -> None:
    start = time.monotonic()
    while True:
        waiting = accept_queue(port) if port is not None else None
        peaks.accept_queue = max(peaks.accept_queue, waiting or 0)
        files = open_files(gateway) if gateway is not None else 0
        peaks.gateway_open_files = max(peaks.gateway_open_files, files)
        rss = _mib(gateway, rss_bytes)
        peaks.samples.append(
            {
                "t_s": round(time.monotonic() - start, 1),
                "outstanding": outstanding(),
                "open_files": files,
                "rss_mib": rss or 0.0,
            }
        )
        await asyncio.sleep(SAMPLE_EVERY_S)


def connection_failures(outcome: Outcome) -> int:
    return sum(count for kind, count in outcome.errors.items() if kind in CONNECTION_FAILURES)


def note_wrong_calls(text: str, wrong_calls: Counter[str]) -> str:
    """Count a batch answer's wrong results into `wrong_calls`; the first of them, as the example."""
    try:
        results = orjson.loads(text).get("results")
    except (orjson.JSONDecodeError, AttributeError):
        return text
    if not isinstance(results, list):
        return text
    wrong = workloads.wrong_in_batch(results)
    wrong_calls.update(problem for problem, _ in wrong)
    return orjson.dumps(wrong[0][1]).decode() if wrong else text


def busy_record(busy: BusyCalls) -> dict[str, Any] | None:
    """How the calls that kept the pool busy were answered; every one must be right."""
    if not busy.sent:
        return None
    return {
        "seconds": busy.seconds,
        "sent": busy.sent,
        **tally(busy.outcome, busy.sent),
        "filled_in_s": busy.filled_in_s,
        "error_examples": busy.outcome.examples,
    }


def check_open_files(connections: int) -> None:
    """Refuse to start a hold this process cannot carry: past its descriptor limit connections fail,
    and the run would measure the load generator, not the gateway."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and connections + OPEN_FILES_MARGIN > soft:
        raise SystemExit(
            f"hold: {connections} connections need {connections + OPEN_FILES_MARGIN} open files, but"
            f" RLIMIT_NOFILE is {soft}: raise it (ulimit -n) or hold fewer calls per connection (batches)"
        )


async def wait_for_accepts(port: int | None) -> None:
    if port is None:
        return
    deadline = time.monotonic() + OPEN_WAIT_MAX_S
    for _ in range(int(OPEN_WAIT_MAX_S / OPEN_PAUSE_S)):
        if (accept_queue(port) or 0) <= OPEN_WHILE_WAITING or time.monotonic() >= deadline:
            return
        await asyncio.sleep(OPEN_PAUSE_S)


def rss_per_call_kib(before: float | None, peak: float | None, outstanding: int) -> float | None:
    """Gateway memory per outstanding call: its growth to the peak over the most calls held at once
    (an upper bound: the peak may come after some calls were answered)."""
    if before is None or peak is None or not outstanding:
        return None
    return round((peak - before) * 1024 / outstanding, 2)


def thin(samples: list[dict[str, float]], keep: int = 60) -> list[dict[str, float]]:
    step = max(1, len(samples) // keep)
    return samples[::step]


async def hold_calls(
    url: str, total: int, use_batches: bool, components: Components, drain_s: float, busy_s: float
) -> dict[str, Any]:
    """Hold `total` calls; first, for `busy_s` seconds (0: not at all), every slot of the pool busy."""
    singles, batches = split(total, use_batches)
    slots = await count_slots(url) if busy_s > 0 else 0
    check_open_files(singles + batches + slots)
    async with keep_busy(url, slots, busy_s, request_timeout_s=busy_s + drain_s) as busy:
        record = await hold_open(url, singles, batches, components, drain_s, busy)
    # Only now: the busy calls are answered once the context is left.
    record["busy"] = busy_record(busy)
    return record


async def hold_open(
    url: str, singles: int, batches: int, components: Components, drain_s: float, busy: BusyCalls
) -> dict[str, Any]:
    total = singles + batches * BATCH_SIZE
    gateway = components.pids.get("gateway")
    # The accept queue is readable only when the gateway listens on this host.
    port = urlsplit(url).port if urlsplit(url).hostname in {"127.0.0.1", "localhost"} else None
    rss_before = _mib(gateway, rss_bytes)
    outcome, batch_outcome = Outcome(), Outcome()
    in_flight = 0
    peak = 0
    refusals = 0
    # Wrong results inside batches, by kind (a batch's error counts the batch once).
    wrong_calls: Counter[str] = Counter()

    async def one(index: int, workload: workloads.Workload, into: Outcome) -> None:
        nonlocal in_flight, peak, refusals
        in_flight += workload.items
        peak = max(peak, in_flight)
        for _ in range(MAX_REFUSALS):
            answer = await call_once(pool, index, workload)
            if answer[1] not in REFUSALS:
                break
            refusals += 1
            await asyncio.sleep(RETRY_AFTER_S)
        latency_ms, problem, text = answer
        if into is batch_outcome and problem is not None and problem.startswith(ANSWERED_KINDS):
            text = note_wrong_calls(text, wrong_calls)
        into.record(latency_ms, problem, text)
        in_flight -= workload.items

    start = time.monotonic()
    counters_before = tcp_counters()
    peaks = Peaks()
    sampling = asyncio.create_task(sample_gateway(port, gateway, peaks, lambda: in_flight))
    async with open_pool(url, singles + batches, request_timeout_s=drain_s) as pool:
        tasks: list[asyncio.Task[None]] = []
        batch = workloads.batch_of(BATCH_SIZE)
        jobs = [(workloads.TRIVIAL, outcome)] * singles + [(batch, batch_outcome)] * batches
        for index, (workload, into) in enumerate(jobs):
            tasks.append(asyncio.create_task(one(index, workload, into)))
            if index % OPEN_STEP == OPEN_STEP - 1:
                await asyncio.sleep(OPEN_PAUSE_S)
                await wait_for_accepts(port)
        opened_at = time.monotonic()
        _, pending = await asyncio.wait(tasks, timeout=max(1.0, drain_s - (time.monotonic() - start)))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    elapsed = time.monotonic() - start
    rss_peak = _mib(gateway, peak_rss_bytes)
    sampling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampling
    # Still waiting, connection open and no error, when the time bound hit: not answered in time.
    unfinished = in_flight
    errors = outcome.error_count + batch_outcome.error_count * BATCH_SIZE
    correct = len(outcome.latencies_ms) + len(batch_outcome.latencies_ms) * BATCH_SIZE
    wrong = answered_wrong(outcome) + answered_wrong(batch_outcome) * BATCH_SIZE
    return {
        "scenario": "hold",
        "calls": total,
        "via_connections": singles,
        "via_batches": batches * BATCH_SIZE,
        "peak_outstanding": peak,
        "duration_s": round(elapsed, 1),
        "opened_in_s": round(opened_at - start, 1),
        # Whether the pool was still busy when the last request was sent: only then did the opener not race
        # the pool, and can `peak_outstanding` reach `calls` (None: the pool was not kept busy).
        "opened_before_busy_ended": busy.asleep_at(opened_at),
        # Filled in by `hold_calls` once the calls keeping the pool busy are answered.
        "busy": None,
        "calls_per_s": round((total - unfinished) / elapsed, 1),
        # Programs run: the calls that kept the pool busy too.
        "executions": total + busy.sent,
        "correct": correct,
        "connections_reset": connection_failures(outcome) + connection_failures(batch_outcome),
        # Calls that came back with results that were not right (a whole batch counts when one is not).
        "answered_wrong": wrong,
        # Of those, the batches' calls whose own results were not right, by why.
        "batch_calls_answered_wrong": dict(wrong_calls),
        # Requests the gateway refused (429/503: not accepted, so not lost) and the client sent again.
        "refused_and_retried": refusals,
        # Calls with no final result at all: connection failed, HTTP error, or unanswered in time.
        "lost": total - correct - wrong,
        "errors": errors,
        "error_kinds": {**outcome.errors, **{f"batch {kind}": n for kind, n in batch_outcome.errors.items()}},
        "error_examples": {**outcome.examples, **{f"batch {kind}": e for kind, e in batch_outcome.examples.items()}},
        "unfinished": unfinished,
        "latency_ms": latency_summary(outcome.latencies_ms),
        "batch_latency_ms": latency_summary(batch_outcome.latencies_ms),
        "gateway_rss_mib": {
            "before": rss_before,
            "peak": rss_peak,
            "after": _mib(gateway, rss_bytes),
            "per_outstanding_call_kib": rss_per_call_kib(rss_before, rss_peak, peak),
        },
        "gateway_open_files": {
            "peak": peaks.gateway_open_files,
            "limit": open_files_limit(gateway) if gateway is not None else None,
        },
        # Its length is the gateway's listen backlog capped at net.core.somaxconn (in kernel_tcp).
        "accept_queue_peak": peaks.accept_queue,
        "kernel_tcp": {"settings": tcp_settings(), "counters": counters_spent(counters_before, tcp_counters())},
        "samples": thin(peaks.samples),
    }
