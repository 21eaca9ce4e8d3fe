"""The mixed scenario (issue 14): trivial calls sent among hundreds of looping calls still answer at once.

In RL many calls loop until their timeout, and a batch of them must not starve the calls that do not.
Through `/run_code`, as a SandboxFusion client sends them: `loops` calls of `while True: pass` (run
timeout 2 s) at once, then, while they run, rounds of 10 `print(1+1)` every 0.1 s (100 calls/s, well
under what the service takes, so the trivial calls' latency is not queueing behind one another). Every
answer is checked: a trivial call must be `Success` with stdout `2\\n`, a loop `Failed` with its run
`TimeLimitExceeded`; a wrong answer or none at all is an error. The line's `latency_ms` is the trivial
calls'; `targets.py` checks their p99 against issue 14's 2 s on the full shape (400 loops, 400 trivial
calls). `--quick` sends 100 of each.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from service.bench import workloads
from service.bench.load import Outcome, call_once, latency_summary, open_pool, tally


@dataclass(frozen=True)
class Shape:
    name: str
    loops: int
    rounds: int
    per_round: int = 10
    interval_s: float = 0.1

    @property
    def trivial_calls(self) -> int:
        return self.rounds * self.per_round


FULL = Shape("full", loops=400, rounds=40)
QUICK = Shape("quick", loops=100, rounds=10)


def prefixed(prefix: str, by_kind: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix} {kind}": value for kind, value in by_kind.items()}


async def send_mixed(url: str, shape: Shape, drain_s: float) -> dict[str, Any]:
    """Send the loops at once and the trivial calls in timed rounds among them; wait for every answer
    (a call unanswered after `drain_s` ends as a timeout error)."""
    loops, trivial = Outcome(), Outcome()
    calls = shape.loops + shape.trivial_calls

    async def one(index: int, workload: workloads.Workload, into: Outcome) -> None:
        into.record(*await call_once(pool, index, workload))

    start = time.monotonic()
    async with open_pool(url, calls, request_timeout_s=drain_s) as pool:
        tasks = [asyncio.create_task(one(i, workloads.RUN_CODE_LOOP, loops)) for i in range(shape.loops)]
        for round_number in range(shape.rounds):
            # Rounds on a fixed clock, so a slow round does not lower the rate of the next.
            await asyncio.sleep(max(0.0, start + round_number * shape.interval_s - time.monotonic()))
            first = shape.loops + round_number * shape.per_round
            round_calls = range(first, first + shape.per_round)
            tasks += [asyncio.create_task(one(i, workloads.RUN_CODE_TRIVIAL, trivial)) for i in round_calls]
        await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    return {
        "scenario": "mixed",
        "shape": shape.name,
        "trivial_per_s": round(shape.per_round / shape.interval_s, 1),
        "loop_run_timeout_s": workloads.RUN_CODE_LOOP.body["run_timeout"],
        "duration_s": round(elapsed, 2),
        "calls": calls,
        "executions": calls,
        "calls_per_s": round(calls / elapsed, 1),
        # The trivial calls' right answers: what issue 14's target is about.
        "latency_ms": latency_summary(trivial.latencies_ms),
        "trivial": {"calls": shape.trivial_calls, **tally(trivial, shape.trivial_calls)},
        "loops": {
            "calls": shape.loops,
            **tally(loops, shape.loops, right="time_limit_exceeded"),
            "latency_ms": latency_summary(loops.latencies_ms),
        },
        "errors": trivial.error_count + loops.error_count,
        "error_kinds": {**prefixed("trivial", trivial.errors), **prefixed("loop", loops.errors)},
        "error_examples": {**prefixed("trivial", trivial.examples), **prefixed("loop", loops.examples)},
    }
