"""The command line of `sandpit bench`, kept apart so `sandpit --help` does not import aiohttp."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

SCENARIOS = (
    *("trivial_python", "numpy_sympy", "numpy_sympy_simplify", "cpu_50ms", "cpp_hello", "math_verify"),
    *("sweep", "judge", "batch", "mixed", "hold"),
)
DEFAULT_SCENARIOS = tuple(name for name in SCENARIOS if name != "hold")


def chosen_scenarios(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(args.scenario or DEFAULT_SCENARIOS)


def concurrency_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def seconds_or_zero(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"seconds must be 0 or more, not {text}")
    return seconds


def named_pid(text: str) -> tuple[str, int]:
    name, _, pid = text.partition("=")
    if not name or not pid.isdigit():
        raise argparse.ArgumentTypeError("expected NAME=PID, e.g. gateway=1234")
    return name, int(pid)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="server to measure; without it a local stack is started on a free port")
    parser.add_argument(
        "--pid",
        action="append",
        type=named_pid,
        default=[],
        metavar="NAME=PID",
        help="with --url: a process of that server on this host whose CPU and memory to report (repeatable)",
    )
    parser.add_argument(
        "--redis-url",
        help="with --url: that server's Redis (any node of a Redis Cluster), to report Redis commands and CPU per call",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes of the local stack")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help=f"run only these (repeatable); default: all but hold. Choices: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--duration", type=float, help="seconds of load per scenario (default 10, quick 1.5)")
    parser.add_argument("--drain", type=float, default=300.0, help="seconds calls still running may take to finish")
    parser.add_argument(
        "--sweep",
        type=concurrency_list,
        help="outstanding calls of the concurrency sweep (default 10,100,1000,10000; quick 10,100)",
    )
    parser.add_argument("--hold-calls", type=int, default=50_000, help="outstanding calls of the hold scenario")
    parser.add_argument(
        "--hold-busy-s",
        type=seconds_or_zero,
        metavar="SECONDS",
        help="before the hold opens its calls, keep every sandbox slot busy with a call that sleeps this long"
        " (default: twice the opener's time at its pace, plus 10 s; 0: no busy pool). It must fit the server's"
        " max_timeout_s (60 s by default) less 10 s",
    )
    parser.add_argument("--bare-runs", type=int, help="runs of the bare baselines (default 30, quick 5)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: short scenarios, small sweep, no plot")
    parser.add_argument("--out", type=Path, help="directory for the results JSON and plot (default benchmarks/results)")
    parser.add_argument("--no-save", action="store_true", help="print the JSON lines only")
