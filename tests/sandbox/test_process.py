"""`spawn`, `Child` and `run_process` on both event loops the service runs on, asyncio's own and uvloop (the
worker's): exit codes, deaths by signal, output under a cap, stdin, the wall clock, early-closed output.
Real processes (`/bin/sh`), no sandbox around them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from service.sandbox.process import Confinement, ProcessOutcome, run_process, spawn

pytestmark = pytest.mark.timeout(60)

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.fixture(params=sorted(LOOPS))
def run_on_loop(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:
            assert isinstance(runner.get_loop(), uvloop.Loop) == (request.param == "uvloop")
            return runner.run(coroutine)

    return run


def shell(
    script: str, stdin: bytes = b"", timeout_s: float = 10.0, output_cap: int = 1024, user: int | None = None
) -> Coroutine[Any, Any, ProcessOutcome]:
    return run_process(["/bin/sh", "-c", script], stdin, timeout_s, output_cap, Confinement([]), user=user)


def test_exit_code_and_output_are_reported(run_on_loop: Callable[..., Any]) -> None:
    outcome = run_on_loop(shell("echo out; echo err >&2; exit 3"))
    assert (outcome.exit_code, outcome.signal, outcome.timed_out) == (3, None, False)
    assert outcome.stdout.data == b"out\n"
    assert outcome.stderr.data == b"err\n"


def test_a_death_by_signal_is_reported_as_that_signal(run_on_loop: Callable[..., Any]) -> None:
    outcome = run_on_loop(shell("echo before; kill -TERM $$; echo after"))
    assert (outcome.exit_code, outcome.signal, outcome.timed_out) == (None, signal.SIGTERM, False)
    assert outcome.stdout.data == b"before\n"


def test_output_past_the_cap_is_cut_and_counted_whole(run_on_loop: Callable[..., Any]) -> None:
    # 3 MB on stdout (many times a pipe's buffer), 20 bytes on stderr, a cap of 100,000 bytes.
    script = "head -c 3000000 /dev/zero | tr '\\0' x; printf '%020d' 0 >&2"
    outcome = run_on_loop(shell(script, output_cap=100_000))
    assert outcome.exit_code == 0
    assert outcome.stdout.data == b"x" * 100_000
    assert outcome.stdout.total == 3_000_000
    assert outcome.stdout.truncated
    assert outcome.stderr.data == b"0" * 20
    assert not outcome.stderr.truncated


def test_stdin_larger_than_a_pipe_is_fed_whole(run_on_loop: Callable[..., Any]) -> None:
    data = b"".join(b"%d\n" % n for n in range(100_000))
    outcome = run_on_loop(shell("wc -c", stdin=data))
    assert outcome.exit_code == 0
    assert int(outcome.stdout.data) == len(data)


def test_stdin_the_program_never_reads_does_not_hold_it_up(run_on_loop: Callable[..., Any]) -> None:
    outcome = run_on_loop(shell("echo done", stdin=b"y" * 1_000_000))
    assert (outcome.exit_code, outcome.timed_out) == (0, False)
    assert outcome.stdout.data == b"done\n"


def test_a_program_past_its_timeout_is_killed_with_its_children(run_on_loop: Callable[..., Any]) -> None:
    started = time.perf_counter()
    outcome = run_on_loop(shell("sleep 30 & echo $!; echo started; sleep 30", timeout_s=0.5))
    assert time.perf_counter() - started < 5
    assert (outcome.exit_code, outcome.signal, outcome.timed_out) == (None, signal.SIGKILL, True)
    background, started_line = outcome.stdout.data.decode().split()
    assert started_line == "started"
    # Its background child went with it: the whole session is killed.
    assert not _running(int(background))


def test_a_program_that_closes_its_output_early_is_waited_for(run_on_loop: Callable[..., Any]) -> None:
    outcome = run_on_loop(shell("echo early; exec >&- 2>&-; sleep 0.3; exit 4", timeout_s=10.0))
    assert (outcome.exit_code, outcome.signal, outcome.timed_out) == (4, None, False)
    assert outcome.stdout.data == b"early\n"
    assert outcome.duration_ms >= 300


def test_a_program_that_closes_its_output_and_outlives_its_timeout_times_out(
    run_on_loop: Callable[..., Any],
) -> None:
    outcome = run_on_loop(shell("exec >&- 2>&-; sleep 30", timeout_s=0.5))
    assert (outcome.exit_code, outcome.signal, outcome.timed_out) == (None, signal.SIGKILL, True)
    assert outcome.duration_ms < 5000


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a process as another user needs root")
def test_the_program_runs_as_the_given_user_without_other_groups(run_on_loop: Callable[..., Any]) -> None:
    outcome = run_on_loop(shell("id -u; id -g; id -G", user=65534))
    assert outcome.exit_code == 0, outcome.stderr.data
    assert outcome.stdout.data.decode().split() == ["65534", "65534", "65534"]


def test_a_spawned_child_is_reaped_when_it_exits(run_on_loop: Callable[..., Any]) -> None:
    async def scenario() -> tuple[int | None, int | None, bool]:
        child = spawn(["/bin/sh", "-c", "exit 7"], (subprocess.DEVNULL, None, None), user=None)
        returncode = await child.wait(10.0)
        return child.pid, returncode, Path(f"/proc/{child.pid}").exists()

    pid, returncode, still_there = run_on_loop(scenario())
    assert returncode == 7
    assert not still_there, f"pid {pid} was left as a zombie"


def test_a_wait_that_times_out_or_is_cancelled_leaves_the_child_waitable(run_on_loop: Callable[..., Any]) -> None:
    async def scenario() -> tuple[int | None, int | None]:
        child = spawn(["/bin/sh", "-c", "sleep 0.5; exit 5"], (subprocess.DEVNULL, None, None), user=None)
        early = await child.wait(0.05)
        cancelled = asyncio.create_task(child.wait())
        await asyncio.sleep(0.05)
        cancelled.cancel()
        return early, await child.wait(10.0)

    assert run_on_loop(scenario()) == (None, 5)


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is dead, waiting for its parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_stop_kills_the_child_and_what_it_started_and_reaps_it(run_on_loop: Callable[..., Any]) -> None:
    async def scenario() -> tuple[int | None, int, int]:
        readable, writable = os.pipe()
        script = "sleep 30 & echo $!; sleep 30"
        child = spawn(["/bin/sh", "-c", script], (subprocess.DEVNULL, writable, None), user=None)
        os.close(writable)
        background = int(os.read(readable, 64))
        os.close(readable)
        return await child.stop(), child.pid, background

    returncode, pid, background = run_on_loop(scenario())
    assert returncode == -signal.SIGKILL
    assert not Path(f"/proc/{pid}").exists()
    assert not _running(background)
