"""Run the benchmark: pick the scenarios, start the local stack unless given a URL, print JSON lines.

Every scenario prints one line: calls/s, latency percentiles of correct answers, errors by kind and
the CPU seconds each server process (with its sandboxes) spent during it. Unloaded scenarios of code
that also runs bare carry the bare timings and the service's overhead. The last line compares the
figures with the targets of the design brief. The whole run is saved as JSON, with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import resource
import sys
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from service.bench import workloads
from service.bench.arguments import chosen_scenarios
from service.bench.bare import compare, measure_bare
from service.bench.hold import default_busy_s, hold_calls
from service.bench.load import Outcome, closed_loop, latency_summary, open_pool
from service.bench.machine import RESULTS_DIR, describe_machine
from service.bench.mixed import FULL, QUICK, send_mixed
from service.bench.procstat import Components, OrphanReaper, cpu_ms_per_call, cpu_spent
from service.bench.redis_stats import RedisMeter, cost_per_call
from service.bench.targets import THROUGHPUT_IN_FLIGHT, check_targets
from service.config import Settings
from service.stack import LocalStack, allow_open_files, free_port

SCRATCH_DIR = Path("benchmarks/scratch")
FULL_SWEEP = [10, 100, 1000, 10_000]
QUICK_SWEEP = [10, 100]
# Outstanding calls beyond the sockets: the gateway's connections, Redis, pipes of the sandboxes.
OPEN_FILES_MARGIN = 4096


@dataclass(frozen=True)
class Scenario:
    name: str
    workload: workloads.Workload
    concurrency: int
    duration_s: float


@dataclass(frozen=True)
class Target:
    url: str
    components: Components
    # Where to read INFO from: a single Redis or any node of a Redis Cluster (None: no Redis figures).
    redis_url: str | None = None


def plan(args: argparse.Namespace, features: set[str]) -> list[Scenario]:
    chosen = chosen_scenarios(args)
    duration = args.duration or (1.5 if args.quick else 10.0)
    loaded = 8 if args.quick else 32
    fixed: list[tuple[str, workloads.Workload, list[int]]] = [
        # Also at 64 in flight, the shape of issue 16's throughput target.
        ("trivial_python", workloads.TRIVIAL, [1, loaded] if args.quick else [1, loaded, THROUGHPUT_IN_FLIGHT]),
        ("numpy_sympy", workloads.NUMPY_SYMPY, [1, loaded]),
        ("numpy_sympy_simplify", workloads.NUMPY_SYMPY_SIMPLIFY, [1, loaded]),
        ("cpu_50ms", workloads.CPU_50MS, [1, 8]),
        ("cpp_hello", workloads.CPP_HELLO, [1, 4]),
        ("math_verify", workloads.MATH_VERIFY, [1, 4]),
    ]
    if "judge" in features:
        fixed.append(("judge", workloads.JUDGE_20, [1, 8]))
    if "batch" in features:
        fixed.append(("batch", workloads.batch_of(100 if args.quick else 1000), [1, 2]))
    scenarios = [
        Scenario(name, workload, concurrency, duration)
        for name, workload, levels in fixed
        if name in chosen
        for concurrency in levels
    ]
    if "sweep" in chosen:
        levels = args.sweep or (QUICK_SWEEP if args.quick else FULL_SWEEP)
        scenarios += [Scenario("sweep", workloads.TRIVIAL, level, duration) for level in levels]
    return scenarios


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def cpu_accounting(components: Components, into: dict[str, Any]) -> Iterator[None]:
    before, loadgen_before = components.cpu_s(), own_cpu_s()
    yield
    spent = cpu_spent(before, components.cpu_s())
    loadgen = round(own_cpu_s() - loadgen_before, 3)
    into["cpu_s"] = {**spent, "server_total": round(sum(spent.values()), 3), "loadgen": loadgen}
    into["rss_mib"] = components.rss_mib()
    into["server_cpu_s"] = spent


def scenario_record(scenario: Scenario, outcome: Outcome) -> dict[str, Any]:
    calls = len(outcome.latencies_ms) + outcome.error_count
    per_s = calls / outcome.elapsed_s if outcome.elapsed_s else 0.0
    return {
        "scenario": scenario.name,
        "workload": scenario.workload.name,
        "concurrency": scenario.concurrency,
        "duration_s": round(outcome.elapsed_s, 2),
        "calls": calls,
        # Programs run: a batch or a judge request runs several.
        "executions": calls * scenario.workload.items,
        "calls_per_s": round(per_s, 1),
        "items_per_s": round(per_s * scenario.workload.items, 1),
        "latency_ms": latency_summary(outcome.latencies_ms),
        "errors": outcome.error_count,
        "error_kinds": {**outcome.errors, **({"unfinished": outcome.unfinished} if outcome.unfinished else {})},
        "error_examples": outcome.examples,
    }


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(record).decode() + "\n")
    sys.stdout.flush()


async def server_features(url: str) -> set[str]:
    async with open_pool(url, 1, 30) as pool:
        spec = await pool.get_json("/openapi.json")
    paths = spec.get("paths", {}) if isinstance(spec, dict) else {}
    offered = (("judge", workloads.JUDGE), ("batch", workloads.BATCH), ("mixed", workloads.RUN_CODE))
    return {name for name, path in offered if path in paths}


async def with_cpu(target: Target, redis: RedisMeter | None, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Run one scenario and add what it cost: CPU of each process, and per call by role and in Redis."""
    redis_before = await redis.snapshot() if redis is not None else None
    accounting: dict[str, Any] = {}
    with cpu_accounting(target.components, accounting):
        record = await work
    executions = record.get("executions", record["calls"])
    accounting["cpu_ms_per_call"] = cpu_ms_per_call(accounting.pop("server_cpu_s"), executions)
    if redis is not None and redis_before is not None:
        cost = cost_per_call(redis_before, await redis.snapshot(), executions)
        accounting["redis"] = {"primaries": len(redis.urls), **cost}
    return {**record, **accounting}


async def run_scenario(url: str, scenario: Scenario, drain_s: float) -> dict[str, Any]:
    async with open_pool(url, scenario.concurrency) as pool:
        outcome = await closed_loop(pool, scenario.workload, scenario.concurrency, scenario.duration_s, drain_s)
    return scenario_record(scenario, outcome)


async def measure(args: argparse.Namespace, target: Target) -> list[dict[str, Any]]:
    reaper = target.components.reaper
    reaping = asyncio.create_task(reaper.reap_forever()) if reaper is not None else None
    redis = await RedisMeter.discover(target.redis_url) if target.redis_url else None
    try:
        return await measure_scenarios(args, target, redis)
    finally:
        if reaping is not None:
            reaping.cancel()
        if redis is not None:
            await redis.close()


async def measure_bare_paused(components: Components, code: str, runs: int) -> dict[str, float | None]:
    if components.reaper is None:
        return await measure_bare(code, runs)
    with components.reaper.paused():
        return await measure_bare(code, runs)


async def measure_scenarios(args: argparse.Namespace, target: Target, redis: RedisMeter | None) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    features = await server_features(target.url)
    bare_runs = args.bare_runs or (5 if args.quick else 30)
    for scenario in plan(args, features):
        code = workloads.BARE_COMPARABLE.get(scenario.workload.name) if scenario.concurrency == 1 else None
        bare = await measure_bare_paused(target.components, code, bare_runs) if code is not None else None
        record = await with_cpu(target, redis, run_scenario(target.url, scenario, args.drain))
        if bare is not None:
            record["bare"] = compare(record["latency_ms"]["p50"], bare)
        emit(record)
        records.append(record)
    if "mixed" in chosen_scenarios(args) and "mixed" in features:
        mixed = send_mixed(target.url, QUICK if args.quick else FULL, args.drain)
        record = await with_cpu(target, redis, mixed)
        emit(record)
        records.append(record)
    if "hold" in (args.scenario or ()):
        use_batches = "batch" in features
        busy_s = args.hold_busy_s if args.hold_busy_s is not None else default_busy_s(args.hold_calls, use_batches)
        hold = hold_calls(target.url, args.hold_calls, use_batches, target.components, args.drain, busy_s)
        record = await with_cpu(target, redis, hold)
        emit(record)
        records.append(record)
    return records


@contextmanager
def children_print_to_stderr() -> Iterator[None]:
    """Processes started inside inherit stderr as their stdout (redis-server logs there): stdout is for JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@contextmanager
def local_stack(args: argparse.Namespace, settings: Settings) -> Iterator[Target]:
    settings.port = free_port()
    # Deep sweeps and the hold scenario queue calls for minutes; they should finish, not expire.
    settings.queue_wait_s = max(settings.queue_wait_s, args.drain)
    stack = LocalStack(settings, workers=args.workers, redis_url_given=False)
    OrphanReaper.become_subreaper()
    try:
        with children_print_to_stderr():
            stack.start()
        pids = {"gateway": stack.processes("gateway")[0].pid, "redis": stack.processes("redis")[0].pid}
        for number, worker in enumerate(stack.processes("worker"), start=1):
            pids[f"worker-{number}"] = worker.pid
        yield Target(stack.url, Components(pids, OrphanReaper(set(pids.values()))), stack.settings.redis_url)
    finally:
        stack.stop()


Record = dict[str, Any]


def save(args: argparse.Namespace, machine: Record, records: list[Record], summary: Record) -> Path:
    out = args.out or (SCRATCH_DIR if args.quick else RESULTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    name = "hold" if "hold" in (args.scenario or ()) else "bench"
    path = out / f"{name}-{stamp}.json"
    document: dict[str, Any] = {
        "machine": {**machine, "loadavg_1m_end": round(os.getloadavg()[0], 2)},
        "options": options_of(args),
        "scenarios": records,
        "targets": summary,
    }
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    sweep = [record for record in records if record["scenario"] == "sweep"]
    if len(sweep) > 1 and not args.quick:
        from service.bench.plot import plot_sweep

        plot_sweep(sweep, document["machine"], out / "latency-vs-concurrency.png")
    return path


def newest_saved_run() -> Record | None:
    """The newest `bench-*.json` already in the results directory, to compare this run with."""
    saved = sorted(RESULTS_DIR.glob("bench-*.json"))
    if not saved:
        return None
    document: Record = orjson.loads(saved[-1].read_bytes())
    document.setdefault("machine", {})["file"] = saved[-1].name
    return document


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    keep = (
        *("url", "redis_url", "workers", "scenario", "duration", "drain", "sweep"),
        *("hold_calls", "hold_busy_s", "bare_runs", "quick"),
    )
    return {key: getattr(args, key) for key in keep}


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    needed = max([*(args.sweep or FULL_SWEEP), args.hold_calls if "hold" in (args.scenario or ()) else 0])
    allow_open_files(2 * needed + OPEN_FILES_MARGIN)
    machine = describe_machine()
    if args.url:
        records = asyncio.run(measure(args, Target(args.url, Components(dict(args.pid)), args.redis_url)))
    else:
        with local_stack(args, settings) as target:
            records = asyncio.run(measure(args, target))
    summary = check_targets(records, newest_saved_run())
    emit(summary)
    if not args.no_save:
        print(f"saved {save(args, machine, records, summary)}", file=sys.stderr)
    return 1 if any(map(failed, records)) else 0


def failed(record: Record) -> bool:
    """A call answered wrong or not at all, the hold's calls keeping the pool busy included."""
    busy = record.get("busy") or {}
    return bool(record["errors"] or busy.get("wrong") or busy.get("lost"))
