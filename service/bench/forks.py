"""What a branch of a session costs: fork latency next to re-running the prefix that built its state.

Starts its own local stack (one worker). For two prefixes of ten session calls, a small one and one
that leaves a 100 MB numpy array in the interpreter, it measures, `ROUNDS` times in one run: forking a
session that ran the prefix into one branch (`POST /v1/sessions/{id}/fork`), and what a branch costs
without fork, opening a fresh session and re-running the ten calls. Prints one JSON line per prefix
with medians and their ratio, and saves them under benchmarks/results/. Run by `make bench`;
loopback only, bounded.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import httpx
import orjson

from service.bench.machine import describe_machine, save_results
from service.config import load_settings
from service.stack import LocalStack, free_port

ROUNDS = 7
SMALL_PREFIX = ["import json, math", "x = 1", *(f"x = x * 3 + {step}" for step in range(7)), "state = {'x': x}"]
BIG_PREFIX = [
    "import numpy as np",
    "big = np.ones(100 * 2**20 // 8)",
    *(f"big[{step}] = {step}" for step in range(7)),
    "total = float(big.sum())",
]
PREFIXES = {"small": SMALL_PREFIX, "100mb": BIG_PREFIX}


def run(client: httpx.Client, session_id: str, code: str) -> None:
    answer = client.post(f"/v1/sessions/{session_id}/execute", json={"code": code, "timeout_s": 30}).json()
    if answer["status"] != "ok":
        raise RuntimeError(f"the prefix failed: {answer}")


def open_with_prefix(client: httpx.Client, prefix: list[str]) -> str:
    session_id: str = client.post("/v1/sessions", json={}).json()["id"]
    for code in prefix:
        run(client, session_id, code)
    return session_id


def measure(client: httpx.Client, name: str, prefix: list[str]) -> dict[str, Any]:
    parent = open_with_prefix(client, prefix)
    fork_ms, replay_ms = [], []
    try:
        for _ in range(ROUNDS):
            started = time.perf_counter()
            response = client.post(f"/v1/sessions/{parent}/fork", json={"count": 1})
            fork_ms.append((time.perf_counter() - started) * 1000)
            if response.status_code != 201:
                raise RuntimeError(f"fork failed: {response.text}")
            client.delete(f"/v1/sessions/{response.json()['sessions'][0]['id']}")
            started = time.perf_counter()
            replayed = open_with_prefix(client, prefix)
            replay_ms.append((time.perf_counter() - started) * 1000)
            client.delete(f"/v1/sessions/{replayed}")
    finally:
        client.delete(f"/v1/sessions/{parent}")
    fork_p50, replay_p50 = statistics.median(fork_ms), statistics.median(replay_ms)
    return {
        "scenario": f"session_fork_{name}",
        "rounds": ROUNDS,
        "fork_ms": {"p50": round(fork_p50, 1), "max": round(max(fork_ms), 1)},
        "replay_10_calls_ms": {"p50": round(replay_p50, 1), "max": round(max(replay_ms), 1)},
        "replay_over_fork": round(replay_p50 / fork_p50, 2),
    }


def main() -> int:
    settings = load_settings(port=free_port(), worker_concurrency=2, max_sessions_per_worker=4)
    machine = describe_machine()
    with (
        LocalStack(settings, workers=1, redis_url_given=False) as stack,
        httpx.Client(base_url=stack.url, timeout=120) as client,
    ):
        records = [measure(client, name, prefix) for name, prefix in PREFIXES.items()]
    for record in records:
        print(orjson.dumps(record).decode())
    path = save_results("forks", machine, records)
    print(f"saved {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
