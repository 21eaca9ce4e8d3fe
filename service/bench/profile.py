"""Where the CPU of one trivial call goes: py-spy on the gateway and the worker; /proc for every process.

`python -m service.bench.profile [--concurrency 32] [--duration 20]` starts the local stack, keeps
`print(1+1)` calls in flight, and meanwhile samples the gateway and the worker with `py-spy record`,
counting only running threads, so a sample is CPU time, not waiting. The line it prints has the CPU
per call of each process from `/proc` (gateway, worker, its zygotes, Redis), split into user and
system time, Redis's own count of commands per call, and for the gateway and the worker the
functions that took the largest share of their samples, both inclusive (the function and what it
called) and own (its own code only). The zygotes are not sampled: inside the sandbox's pid namespace
py-spy cannot tell a waiting thread from a running one, so it would count idle time as work.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from service.bench import workloads
from service.bench.load import closed_loop, latency_summary, open_pool
from service.bench.procstat import (
    Components,
    OrphanReaper,
    children_by_parent,
    cpu_ms_per_call,
    cpu_spent,
    tree_user_system_s,
    zygote_roots,
)
from service.bench.redis_stats import RedisMeter, cost_per_call
from service.bench.run import children_print_to_stderr
from service.config import load_settings
from service.stack import LocalStack, free_port

SAMPLES_PER_S = 250
PY_SPY_GRACE_S = 15.0
TOP = 15
# `function (file:line)`; py-spy may put the process and the thread before the frames.
FRAME = re.compile(r" \(.+:\d+\)$")


def frame_name(frame: str) -> str:
    """`handle (service/gateway/calls.py:42)` -> `handle (service/gateway/calls.py)`: one entry per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarize(collapsed: str, top: int = TOP) -> dict[str, Any]:
    """Shares of the samples by function from py-spy's raw (collapsed-stack) output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # Outermost to innermost.
        frames = [frame_name(frame) for frame in stack.split(";") if FRAME.search(frame)]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": name, "share": round(n / total, 3)} for name, n in counter.most_common(top)]

    return {"samples": total, "inclusive": shares(inclusive), "own": shares(own)}


def user_and_system_s(components: Components) -> dict[str, dict[str, float]]:
    """User and system CPU seconds of each named process tree, its zygotes apart (as `Components.cpu_s`)."""
    tree = children_by_parent()
    split: dict[str, dict[str, float]] = {}
    for name, pid in components.pids.items():
        roots = zygote_roots(pid, tree)
        zygotes = [tree_user_system_s(root, tree) for root in roots]
        whole = tree_user_system_s(pid, tree)
        split[name] = {kind: whole[kind] - sum(z[kind] for z in zygotes) for kind in whole}
        if roots:
            split[f"{name}/zygotes"] = {kind: sum(z[kind] for z in zygotes) for kind in whole}
    return split


def start_py_spy(pid: int, duration_s: float, output: Path, native: bool) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [py_spy, "record", "--pid", str(pid), "--duration", str(int(duration_s)), "--rate", str(SAMPLES_PER_S)]
    # py-spy unwinds C frames only from a stopped process: --native samples pause it, costing it some time.
    argv += ["--format", "raw", "--output", str(output), *(["--native"] if native else ["--nonblocking"])]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def stop_py_spy(sampler: subprocess.Popen[bytes], duration_s: float) -> None:
    """Wait for py-spy to finish; one that is still following children after its duration is told to
    stop (SIGINT: it then writes what it has), and killed if it does not."""
    for _ in range(int((duration_s + PY_SPY_GRACE_S) / 0.2)):
        if sampler.poll() is not None:
            return
        await asyncio.sleep(0.2)
    if sampler.poll() is None:
        sampler.send_signal(signal.SIGINT)
        for _ in range(50):
            if sampler.poll() is not None:
                return
            await asyncio.sleep(0.2)
        sampler.kill()
        sampler.wait()


async def drive(url: str, concurrency: int, duration_s: float) -> dict[str, Any]:
    async with open_pool(url, concurrency) as pool:
        outcome = await closed_loop(pool, workloads.TRIVIAL, concurrency, duration_s, 60.0)
    calls = len(outcome.latencies_ms)
    return {
        "calls": calls,
        "errors": outcome.error_count,
        "calls_per_s": round(calls / outcome.elapsed_s, 1),
        "latency_ms": latency_summary(outcome.latencies_ms),
    }


async def profile(stack: LocalStack, components: Components, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    redis = await RedisMeter.discover(stack.settings.redis_url)
    assert components.reaper is not None
    reaping = asyncio.create_task(components.reaper.reap_forever())
    try:
        await drive(stack.url, args.concurrency, 3.0)  # warm up: zygotes, slot namespaces, pools
        redis_before, cpu_before = await redis.snapshot(), components.cpu_s()
        split_before = user_and_system_s(components)
        targets = {name: components.pids[name] for name in ("gateway", "worker-1")}
        samplers = {
            name: start_py_spy(pid, args.duration, scratch / f"{name}.txt", args.native)
            for name, pid in targets.items()
        }
        # Our own children: the orphan reaper must leave them (and their CPU) to us.
        components.reaper.own_children |= {sampler.pid for sampler in samplers.values()}
        load = await drive(stack.url, args.concurrency, args.duration)
        spent = cpu_spent(cpu_before, components.cpu_s())
        split = {name: cpu_spent(split_before[name], after) for name, after in user_and_system_s(components).items()}
        redis_cost = cost_per_call(redis_before, await redis.snapshot(), load["calls"])
        for sampler in samplers.values():
            await stop_py_spy(sampler, args.duration)
    finally:
        reaping.cancel()
        await redis.close()
    profiles = {}
    for name in samplers:
        path = scratch / f"{name}.txt"
        profiles[name] = summarize(path.read_text()) if path.exists() else {"error": "py-spy wrote nothing"}
        if args.keep is not None and path.exists():
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, args.keep / path.name)
    return {
        "scenario": "profile_trivial_python",
        "concurrency": args.concurrency,
        **load,
        "cpu_s": spent,
        "cpu_ms_per_call": cpu_ms_per_call(spent, load["calls"]),
        # The kernel's share: forks, namespaces, mounts, sockets and pipes are system time.
        "user_system_ms_per_call": {
            name: {kind: round(seconds * 1000 / load["calls"], 3) for kind, seconds in times.items()}
            for name, times in split.items()
        },
        "redis": redis_cost,
        "py_spy": profiles,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument(
        "--native", action="store_true", help="also sample C frames (uvloop, httptools, the kernel's share)"
    )
    parser.add_argument("--keep", type=Path, help="copy py-spy's raw stacks here (collapsed format, for flame graphs)")
    args = parser.parse_args()
    settings = load_settings()
    settings.port = free_port()
    stack = LocalStack(settings, workers=1, redis_url_given=False)
    OrphanReaper.become_subreaper()
    with tempfile.TemporaryDirectory(prefix="sandpit-profile-") as scratch:
        try:
            with children_print_to_stderr():
                stack.start()
            pids = {"gateway": stack.processes("gateway")[0].pid, "redis": stack.processes("redis")[0].pid}
            pids["worker-1"] = stack.processes("worker")[0].pid
            components = Components(pids, OrphanReaper(set(pids.values())))
            record = asyncio.run(profile(stack, components, args, Path(scratch)))
        finally:
            stack.stop()
    sys.stdout.write(orjson.dumps(record).decode() + "\n")
    return 0 if record["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
