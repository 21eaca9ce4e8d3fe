"""Run one already-sandboxed command: feed stdin, capture output under a cap, enforce the wall clock.

This module knows nothing about namespaces; it receives the full argv (bubblewrap and the program)
and the confinement (cgroup, rlimits) the process applies to itself before it executes. It reports
what happened as a `ProcessOutcome` and never raises for anything the program does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import time
from dataclasses import dataclass, field

from service.sandbox.limits import Rlimit

READ_CHUNK = 256 * 1024
CALL_NICENESS = 10


@dataclass
class CapturedStream:
    cap: int
    data: bytearray
    total: int = 0

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    def take(self, chunk: bytes) -> None:
        """Count every byte; keep those up to the cap."""
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.total += len(chunk)


@dataclass
class ProcessOutcome:
    exit_code: int | None
    signal: int | None
    timed_out: bool
    stdout: CapturedStream
    stderr: CapturedStream
    duration_ms: float
    # The call's first process and the children it reaped, where the launcher could see them.
    cpu_ms: float | None = None
    max_rss_kb: int | None = None


@dataclass(frozen=True)
class Confinement:
    """What a call's first process does to itself before the program runs: join the slot's cgroup
    (through descriptors the worker opened), set its rlimits, lower its priority."""

    rlimits: list[Rlimit]
    join_fds: list[int] = field(default_factory=list)

    def apply(self) -> None:
        """Runs in the child between fork and exec; only async-signal-safe work belongs here."""
        for fd in self.join_fds:
            os.write(fd, b"0")
        for kind, soft, hard in self.rlimits:
            resource.setrlimit(kind, (soft, hard))
        # User code yields the CPU to the worker and gateway, so a busy call cannot delay its own kill.
        os.nice(CALL_NICENESS)


async def drain(stream: asyncio.StreamReader | None, captured: CapturedStream) -> None:
    if stream is None:
        return
    while chunk := await stream.read(READ_CHUNK):
        captured.take(chunk)


async def feed(stdin: asyncio.StreamWriter | None, data: bytes) -> None:
    if stdin is None:
        return
    # The program may exit without reading its input; that is its business, not an error.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        if data:
            stdin.write(data)
            await stdin.drain()
    stdin.close()


def _decode_status(returncode: int) -> tuple[int | None, int | None]:
    """bubblewrap reports a child killed by signal N as exit status 128+N: read as that death, as the
    warm path and a bare run report it (a program that exits 128+N itself is read the same way)."""
    if returncode < 0:
        return None, -returncode
    if 128 < returncode < 128 + 65:
        return None, returncode - 128
    return returncode, None


async def run_process(
    argv: list[str],
    stdin: bytes,
    timeout_s: float,
    output_cap: int,
    confinement: Confinement,
    user: int | None = None,
    pass_fds: tuple[int, ...] = (),
) -> ProcessOutcome:
    stdout = CapturedStream(output_cap, bytearray())
    stderr = CapturedStream(output_cap, bytearray())
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=confinement.apply,
        # Empty: bubblewrap's own process is pid 1 inside the call, and its /proc/1/environ is readable there.
        env={},
        user=user,
        group=user,
        extra_groups=[] if user is not None else None,
        pass_fds=pass_fds,
        close_fds=True,
        start_new_session=True,
    )
    io = asyncio.gather(feed(proc.stdin, stdin), drain(proc.stdout, stdout), drain(proc.stderr, stderr))
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(io), timeout_s)
        await asyncio.wait_for(proc.wait(), max(0.1, timeout_s - (time.perf_counter() - started)))
    except TimeoutError:
        timed_out = True
    finally:
        kill_tree(proc.pid)
        await proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(io, 1.0)
    duration_ms = (time.perf_counter() - started) * 1000
    exit_code, sig = _decode_status(proc.returncode if proc.returncode is not None else -signal.SIGKILL)
    if timed_out:
        exit_code, sig = None, signal.SIGKILL
    return ProcessOutcome(exit_code, sig, timed_out, stdout, stderr, duration_ms)


def kill_tree(pid: int) -> None:
    """Kill bubblewrap's whole session; with --die-with-parent its pid namespace dies with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
