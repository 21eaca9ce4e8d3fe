"""`sandpit up` restarts a worker, gateway or Redis that dies, and always stops cleanly on SIGINT/SIGTERM.

Each test runs `sandpit up` as a subprocess (its output in a file) and acts on its children by pid, as
the OOM killer or an operator would. Clients retry with their `Idempotency-Key`, so a call whose
connection broke gets the first attempt's result; every one of 600 calls must come back right.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from service.client import AsyncSandpitClient
from service.client.calls import Retry
from service.stack import free_port

CALLS = 600
IN_FLIGHT = 48
# Until the restarted process answers: connection errors and 503s are retried quickly, for long enough.
PATIENT = Retry(attempts=400, backoff_s=0.05, max_backoff_s=0.5)
# Quick reclaim and heartbeats, so a killed worker's calls are redelivered within seconds.
FAST_RECOVERY = {
    "SANDPIT_RECLAIM_IDLE_S": "3",
    "SANDPIT_HEARTBEAT_INTERVAL_S": "0.5",
    "SANDPIT_HEARTBEAT_TTL_S": "3",
    "SANDPIT_WORKER_CONCURRENCY": "4",
}


class Up:
    """One `sandpit up` process, its output in a file, and its children by role."""

    def __init__(self, log: Path, extra_env: dict[str, str], ignore_sigint: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, **FAST_RECOVERY, **extra_env, "PORT": str(self.port)}
        env.pop("REDIS_URL", None)
        # A process a non-interactive shell starts in the background inherits SIGINT as ignored.
        preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "up"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def child(self, role: str) -> int:
        """The pid of the one direct child playing `role` (redis-server, or `service.cli <role>`)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, IndexError):
                continue
            if ppid == self.process.pid and role_of(argv) == role:
                return int(entry.name)
        raise AssertionError(f"no {role} child of sandpit up")

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"sandpit up was not ready within {timeout_s:g}s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def role_of(argv: list[bytes]) -> str:
    if b"redis-server" in argv[0]:  # redis-server rewrites its argv to "path host:port"
        return "redis"
    return argv[3].decode() if argv[1:3] == [b"-m", b"service.cli"] else ""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """One worker, so a killed worker's calls can only be answered once it is restarted."""
    stack = Up(tmp_path_factory.mktemp("supervised") / "up.log", {})
    try:
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()


async def run_calls(url: str, kill_after: int, kill: Callable[[], None]) -> list[str]:
    """Send CALLS `print(i)` calls, IN_FLIGHT at a time, calling `kill` once `kill_after` are answered;
    return what came back wrong."""
    answered = asyncio.Event()
    done = 0
    wrong: list[str] = []
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with AsyncSandpitClient(url, timeout_s=120, max_connections=IN_FLIGHT, retry=PATIENT) as client:

        async def one(i: int) -> None:
            nonlocal done
            async with gate:
                result = await client.execute("python", f"print({i})")
            if (result.status, result.stdout) != ("ok", f"{i}\n"):
                wrong.append(f"{i}: {result.status} {result.stdout!r} {result.reason}")
            done += 1
            if done == kill_after:
                answered.set()

        async def killer() -> None:
            await answered.wait()
            kill()

        killing = asyncio.create_task(killer())
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(CALLS))), 90)
        await killing
    return wrong


@pytest.mark.parametrize("role", ["worker", "gateway", "redis"])
def test_killed_child_is_restarted_and_every_call_is_answered(up: Up, role: str) -> None:
    up.wait_ready()
    victim = up.child(role)
    started = time.monotonic()
    wrong = asyncio.run(run_calls(up.url, 100, lambda: os.kill(victim, signal.SIGKILL)))
    print(f"{role} killed: {CALLS} calls in {time.monotonic() - started:.1f}s, wrong={len(wrong)}")
    assert wrong == []
    assert f"{role}-0 (pid {victim}) was killed by SIGKILL; restarting it in" in up.output()
    replacement = up.child(role)
    assert replacement != victim
    assert alive(replacement)
    assert up.process.poll() is None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_a_background_up_cleanly_redis_last(tmp_path: Path, signum: signal.Signals) -> None:
    up = Up(tmp_path / "up.log", {}, ignore_sigint=True)
    try:
        up.wait_ready()
        children = {role: up.child(role) for role in ("gateway", "worker", "redis")}
        up.process.send_signal(signum)
        gone_at: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while len(gone_at) < len(children) and time.monotonic() < deadline:
            for role, pid in children.items():
                if role not in gone_at and not alive(pid):
                    gone_at[role] = time.monotonic()
            time.sleep(0.005)
        code = up.process.wait(30)
    finally:
        up.stop()
    output = up.output()
    assert code == 0, output
    assert "ERROR" not in output, output
    assert "did not stop within" not in output, output
    assert sorted(gone_at) == sorted(children), output
    assert gone_at["redis"] >= max(gone_at["gateway"], gone_at["worker"]), gone_at


def test_crash_loop_stops_the_stack_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        # The worker cannot serve its metrics on a port that is in use: it exits at every start.
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics_port = taken.getsockname()[1]
        up = Up(tmp_path / "up.log", {"SANDPIT_WORKER_METRICS_PORT": str(metrics_port)})
        try:
            code = up.process.wait(60)
        finally:
            up.stop()
    output = up.output()
    assert code == 1, output
    assert "address already in use" in output
    assert "worker-0 (pid" in output
    assert "crash-looping" in output
    assert "stopping the stack" in output
