"""What a benchmark ran on, saved next to its numbers: CPU, cores, memory, kernel, date, commit."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import orjson

RESULTS_DIR = Path("benchmarks/results")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def _git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "service")
    return f"{commit}+dirty" if dirty else commit


def describe_machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        # Other work on the machine skews every figure; the load average says how much there was.
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "commit": _git_commit(),
    }


def save_results(kind: str, machine: dict[str, Any], records: list[dict[str, Any]]) -> Path:
    """Write `{machine, scenarios}` to benchmarks/results/<kind>-<UTC time>.json and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"{kind}-{stamp}.json"
    path.write_bytes(orjson.dumps({"machine": machine, "scenarios": records}, option=orjson.OPT_INDENT_2))
    return path
