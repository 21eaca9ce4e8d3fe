"""Which runs of a benchmark the targets are checked on: throughput at issue 16's 64 in flight when it was
run, CPU per call compared with an earlier run at the same concurrency."""

from __future__ import annotations

from typing import Any

from service.bench.arguments import chosen_scenarios
from service.bench.run import plan
from service.bench.targets import THROUGHPUT_IN_FLIGHT, check_targets
from tests.bench.arguments import bench_arguments


def trivial(scenario: str, concurrency: int, calls_per_s: float, cpu_s: float = 5.0, errors: int = 0) -> dict[str, Any]:
    calls = int(calls_per_s * 10)
    return {
        "scenario": scenario,
        "concurrency": concurrency,
        "calls": calls,
        "calls_per_s": calls_per_s,
        "errors": errors,
        "latency_ms": {"p50": 4.0},
        "cpu_s": {"server_total": cpu_s},
    }


def test_throughput_is_checked_at_64_in_flight_when_it_was_run() -> None:
    records = [
        trivial("trivial_python", 1, 190.0),
        trivial("trivial_python", 32, 410.0),
        trivial("trivial_python", THROUGHPUT_IN_FLIGHT, 330.0),
        trivial("sweep", 100, 420.0),
    ]
    verdict = check_targets(records)["trivial_calls_per_s"]
    assert verdict["measured"] == 330.0
    assert verdict["at_concurrency"] == 64
    assert verdict["met"] is False


def test_without_a_clean_run_at_64_the_best_loaded_run_is_reported_with_its_concurrency() -> None:
    records = [
        trivial("trivial_python", 32, 410.0),
        trivial("trivial_python", THROUGHPUT_IN_FLIGHT, 500.0, errors=3),
        trivial("sweep", 100, 380.0),
    ]
    verdict = check_targets(records)["trivial_calls_per_s"]
    assert (verdict["measured"], verdict["at_concurrency"], verdict["met"]) == (410.0, 32, True)


def test_cpu_per_call_is_set_beside_the_earlier_run_at_the_same_concurrency() -> None:
    now = [trivial("trivial_python", 1, 190.0), trivial("trivial_python", 32, 400.0, cpu_s=18.0)]
    earlier = [trivial("trivial_python", 32, 350.0, cpu_s=17.5), trivial("trivial_python", 64, 300.0, cpu_s=21.0)]
    cpu = check_targets(now, {"scenarios": earlier, "machine": {"commit": "abc"}})["server_cpu_ms_per_trivial_call"]
    # 18.0 s over 4,000 calls now, 17.5 s over 3,500 calls then: both at 32 in flight (not the 64 of then).
    assert (cpu["measured"], cpu["at_concurrency"]) == (4.5, 32)
    previous = cpu["previous"]
    assert (previous["measured"], previous["at_concurrency"], previous["commit"]) == (5.0, 32, "abc")


def test_a_full_bench_runs_trivial_calls_at_64_in_flight_and_a_quick_one_does_not() -> None:
    full = [s.concurrency for s in plan(bench_arguments(), set()) if s.name == "trivial_python"]
    quick = [s.concurrency for s in plan(bench_arguments("--quick"), set()) if s.name == "trivial_python"]
    assert full == [1, 32, THROUGHPUT_IN_FLIGHT]
    assert quick == [1, 8]


def mixed(p99_ms: float | None, shape: str = "full", errors: int = 0) -> dict[str, Any]:
    latency = {"p50": None if p99_ms is None else p99_ms / 3, "p99": p99_ms}
    return {"scenario": "mixed", "shape": shape, "calls": 800, "errors": errors, "latency_ms": latency}


def test_mixed_trivial_p99_under_2_s_on_the_full_shape_meets_the_target() -> None:
    verdict = check_targets([mixed(1350.0)])["mixed_trivial_p99_ms"]
    assert (verdict["measured"], verdict["target"], verdict["met"]) == (1350.0, 2000.0, True)


def test_mixed_trivial_p99_of_2_s_or_more_misses_the_target() -> None:
    assert check_targets([mixed(2000.0)])["mixed_trivial_p99_ms"]["met"] is False
    assert check_targets([mixed(3300.0)])["mixed_trivial_p99_ms"]["met"] is False


def test_a_wrong_or_lost_answer_misses_the_mixed_target_whatever_the_p99() -> None:
    assert check_targets([mixed(900.0, errors=1)])["mixed_trivial_p99_ms"]["met"] is False
    # Not one trivial call answered right: no p99 at all.
    assert check_targets([mixed(None, errors=400)])["mixed_trivial_p99_ms"]["met"] is False


def test_a_quick_mixed_run_reports_its_p99_but_checks_nothing() -> None:
    verdict = check_targets([mixed(300.0, shape="quick")])["mixed_trivial_p99_ms"]
    assert (verdict["measured"], verdict["met"], verdict["shape"]) == (300.0, None, "quick")


def test_without_a_mixed_run_there_is_no_mixed_verdict() -> None:
    assert "mixed_trivial_p99_ms" not in check_targets([trivial("trivial_python", 1, 190.0)])


def test_the_mixed_scenario_runs_by_default() -> None:
    assert "mixed" in chosen_scenarios(bench_arguments())
