"""`sandpit bench --quick` against the session's local stack: one well-formed JSON line per scenario, no errors.

Only the shape and the correctness of the answers are checked here; the timing targets belong in
`make bench`, never in a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.stack import LocalStack

pytest.importorskip("aiohttp", reason="the benchmark needs the `bench` extra: pip install -e '.[bench]'")

LATENCY_KEYS = {"p50", "p90", "p99", "max"}


def component_pids(stack: LocalStack) -> list[str]:
    pids = [f"gateway={stack.processes('gateway')[0].pid}", f"redis={stack.processes('redis')[0].pid}"]
    pids += [f"worker-{n}={worker.pid}" for n, worker in enumerate(stack.processes("worker"), start=1)]
    return [argument for pid in pids for argument in ("--pid", pid)]


@pytest.fixture(scope="module")
def quick_run(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Path]:
    out = tmp_path_factory.mktemp("bench")
    scenarios = ["trivial_python", "sweep", "judge", "batch"]
    argv = [sys.executable, "-m", "service.cli", "bench", "--url", stack.url, "--quick", "--duration", "1"]
    argv += ["--sweep", "10", "--bare-runs", "2", "--drain", "60", "--out", str(out), *component_pids(stack)]
    argv += ["--redis-url", stack.settings.redis_url]
    argv += [argument for name in scenarios for argument in ("--scenario", name)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()], out


def test_quick_bench_prints_wellformed_lines_with_zero_errors(quick_run: tuple[list[dict[str, Any]], Path]) -> None:
    lines, _ = quick_run
    *scenarios, targets = lines
    assert {record["scenario"] for record in scenarios} >= {"trivial_python", "sweep"}
    for record in scenarios:
        assert record["errors"] == 0, record
        assert record["calls"] > 0
        assert record["calls_per_s"] > 0
        assert set(record["latency_ms"]) == LATENCY_KEYS
        assert all(isinstance(value, float | int) for value in record["latency_ms"].values())
        assert {"gateway", "redis", "worker-1", "server_total", "loadgen"} <= set(record["cpu_s"])
        per_call = record["cpu_ms_per_call"]
        assert {"gateway", "redis", "worker", "server_total"} <= set(per_call)
        assert per_call["server_total"] == pytest.approx(
            sum(v for k, v in per_call.items() if k != "server_total"), abs=0.01
        )
        redis = record["redis"]
        assert redis["primaries"] == 1
        assert redis["calls"] == record["executions"] >= record["calls"]
        # Every request is at least enqueued (XADD) and answered (a result SET): never fewer than two commands
        # (a judge's cases share one job, so per case it can be less).
        assert redis["commands_per_call"] * record["executions"] / record["calls"] >= 2
        assert redis["cpu_us_per_call"] > 0
        assert {entry["command"] for entry in redis["top"]} >= {"xadd"}
    unloaded = next(r for r in scenarios if r["scenario"] == "trivial_python" and r["concurrency"] == 1)
    assert {"python_p50_ms", "bwrap_python_p50_ms", "overhead_ms", "ratio"} <= set(unloaded["bare"])
    assert targets["scenario"] == "targets"
    assert "trivial_p50_ms" in targets


def test_quick_bench_saves_its_run_with_the_machine(quick_run: tuple[list[dict[str, Any]], Path]) -> None:
    _, out = quick_run
    (saved,) = out.glob("bench-*.json")
    document = json.loads(saved.read_text())
    assert {"cpu", "cores", "memory_gib", "kernel", "date", "commit"} <= set(document["machine"])
    assert document["scenarios"] and document["targets"]["scenario"] == "targets"


def run_hold(stack: LocalStack, *options: str) -> tuple[dict[str, Any], dict[str, Any]]:
    argv = [sys.executable, "-m", "service.cli", "bench", "--url", stack.url, "--scenario", "hold"]
    argv += ["--drain", "120", "--no-save", *component_pids(stack), "--redis-url", stack.settings.redis_url]
    done = subprocess.run([*argv, *options], capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    hold, targets = (json.loads(line) for line in done.stdout.splitlines())
    return hold, targets


def test_hold_reports_resets_losses_and_gateway_memory(stack: LocalStack) -> None:
    hold, targets = run_hold(stack, "--hold-calls", "300", "--hold-busy-s", "0")
    assert hold["correct"] == hold["calls"] == 300
    assert hold["busy"] is None and hold["opened_before_busy_ended"] is None
    assert hold["connections_reset"] == hold["lost"] == hold["answered_wrong"] == 0
    assert hold["gateway_rss_mib"]["peak"] >= hold["gateway_rss_mib"]["before"] > 0
    assert 0 < hold["gateway_open_files"]["peak"] <= hold["gateway_open_files"]["limit"]
    assert set(hold["kernel_tcp"]["counters"]) >= {"TcpExt:ListenOverflows", "Tcp:EstabResets"}
    assert hold["redis"]["commands_per_call"] >= 2
    assert targets["hold_connections_reset"]["met"] and targets["hold_lost"]["met"]


def test_hold_behind_a_busy_pool_has_every_call_outstanding_at_once(stack: LocalStack) -> None:
    slots = stack.workers * stack.settings.worker_concurrency
    hold, targets = run_hold(stack, "--hold-calls", "2000", "--hold-busy-s", "12")
    assert hold["busy"]["sent"] == hold["busy"]["right"] == slots
    assert hold["busy"]["wrong"] == hold["busy"]["lost"] == 0
    assert hold["opened_before_busy_ended"] is True
    assert hold["peak_outstanding"] == hold["correct"] == hold["calls"] == 2000
    assert hold["lost"] == hold["answered_wrong"] == 0
    assert targets["hold_outstanding"]["met"] and targets["hold_busy_wrong_or_lost"]["met"]
