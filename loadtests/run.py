"""`make loadtest` / `make soak`: Locust headless against a local stack it starts, bounded, with plots.

Starts Redis, a gateway and workers (`service.stack.LocalStack`) on free loopback ports, runs the
users of `locustfile.py` for the profile's fixed time (Locust's `--run-time`, and a hard kill after a
grace period), samples the RSS of every component meanwhile, waits for the queue to drain, and writes
Locust's CSV stats and HTML report, throughput and latency plots, `rss.csv` and `summary.json` into
`loadtests/reports/<profile>-<time>/`. Exit status 1 when any answer was wrong or lost, when the queue
did not drain, or (soak) when a component's memory kept growing.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis

from loadtests.plots import plot_history, plot_rss
from service.bench.procstat import rss_bytes
from service.config import Settings, load_settings
from service.queue.keys import Keys
from service.stack import LocalStack, free_port

HERE = Path(__file__).parent
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
STOP_TIMEOUT_S = 30
DRAIN_TIMEOUT_S = 120
# Memory may grow this much (MiB, or fraction) from the end of warm-up to the end and still be flat.
RSS_GROWTH_MIB = 20.0
RSS_GROWTH_FRACTION = 0.10


@dataclass(frozen=True)
class Profile:
    users: int
    spawn_rate: float
    run_time_s: int
    sample_every_s: float


PROFILES = {
    "loadtest": Profile(users=40, spawn_rate=10, run_time_s=60, sample_every_s=2),
    "soak": Profile(users=24, spawn_rate=4, run_time_s=30 * 60, sample_every_s=15),
}


class RssSampler(threading.Thread):
    """Reads the RSS of each named process every few seconds until stopped."""

    def __init__(self, pids: dict[str, int], every_s: float) -> None:
        super().__init__(daemon=True)
        self.pids, self.every_s = pids, every_s
        self.rows: list[dict[str, float]] = []
        self.done = threading.Event()
        self.start_time = time.monotonic()

    def run(self) -> None:
        while not self.done.wait(0 if not self.rows else self.every_s):
            row = {"t_s": round(time.monotonic() - self.start_time, 1)}
            row.update({name: round(rss_bytes(pid) / 2**20, 2) for name, pid in self.pids.items()})
            self.rows.append(row)

    def write(self, path: Path) -> None:
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)


def rss_growth(rows: list[dict[str, float]], names: list[str]) -> dict[str, dict[str, float | bool]]:
    """Median RSS just after warm-up (20-40% of the run) against the last 20%, per component."""
    n = len(rows)
    warm, last = rows[n // 5 : max(n // 5 + 1, 2 * n // 5)], rows[-max(1, n // 5) :]
    report: dict[str, dict[str, float | bool]] = {}
    for name in names:
        before = statistics.median(row[name] for row in warm)
        after = statistics.median(row[name] for row in last)
        allowed = max(RSS_GROWTH_MIB, before * RSS_GROWTH_FRACTION)
        report[name] = {
            "warm_mib": round(before, 1),
            "end_mib": round(after, 1),
            "peak_mib": max(row[name] for row in rows),
            "flat": after - before <= allowed,
        }
    return report


def queue_drained(settings: Settings) -> dict[str, int | bool]:
    """Wait until no job is queued or pending on a worker: every accepted call got its final result."""
    client = redis.Redis.from_url(settings.redis_url)
    keys = Keys(settings.key_prefix)
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        queued = int(client.xlen(keys.jobs))
        pending = int(client.xpending(keys.jobs, keys.group)["pending"])
        if (queued == 0 and pending == 0) or time.monotonic() > deadline:
            client.close()
            return {"queued": queued, "pending": pending, "drained": queued == 0 and pending == 0}
        time.sleep(0.5)


def run_locust(url: str, profile: Profile, out: Path) -> int:
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(HERE / "locustfile.py"),
        "--headless",
        "--host",
        url,
        "--users",
        str(profile.users),
        "--spawn-rate",
        str(profile.spawn_rate),
        "--run-time",
        f"{profile.run_time_s}s",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--csv",
        str(out / "locust"),
        "--csv-full-history",
        "--html",
        str(out / "report.html"),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    locust = subprocess.Popen(argv)
    try:
        return locust.wait(profile.run_time_s + STOP_TIMEOUT_S + 60)
    except subprocess.TimeoutExpired:
        locust.kill()
        locust.wait()
        return 1


def failures(out: Path) -> tuple[int, int]:
    with (out / "locust_stats.csv").open() as stats:
        total = next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")
    return int(total["Request Count"]), int(total["Failure Count"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="loadtest")
    parser.add_argument("--users", type=int, help="override the profile's number of users")
    parser.add_argument("--run-time", type=int, help="override the profile's seconds of load")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of the local stack")
    args = parser.parse_args(argv)
    base = PROFILES[args.profile]
    profile = Profile(args.users or base.users, base.spawn_rate, args.run_time or base.run_time_s, base.sample_every_s)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    out = HERE / "reports" / f"{args.profile}-{stamp}"
    out.mkdir(parents=True)

    settings = load_settings()
    settings.port = free_port()
    stack = LocalStack(settings, workers=args.workers, redis_url_given=False)
    stack.start()
    try:
        assert urlsplit(stack.url).hostname in LOOPBACK, "load tests target loopback only"
        pids = {"gateway": stack.processes("gateway")[0].pid, "redis": stack.processes("redis")[0].pid}
        pids |= {f"worker-{n}": worker.pid for n, worker in enumerate(stack.processes("worker"), start=1)}
        sampler = RssSampler(pids, profile.sample_every_s)
        sampler.start()
        locust_code = run_locust(stack.url, profile, out)
        drained = queue_drained(settings)
        sampler.done.set()
        sampler.join()
    finally:
        stack.stop()

    requests, failed = failures(out)
    sampler.write(out / "rss.csv")
    growth = rss_growth(sampler.rows, list(pids))
    plot_history(out / "locust_stats_history.csv", out / "throughput-latency.png", args.profile)
    plot_rss(sampler.rows, list(pids), out / "rss.png")
    memory_flat = all(component["flat"] for component in growth.values())
    ok = failed == 0 and bool(drained["drained"]) and (args.profile != "soak" or memory_flat)
    summary = {
        "profile": args.profile,
        "users": profile.users,
        "run_time_s": profile.run_time_s,
        "requests": requests,
        "failures": failed,
        "locust_exit": locust_code,
        "queue": drained,
        "rss": growth,
        "ok": ok,
        "report": str(out),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
