"""Start the worker's processes and run one already-sandboxed command: feed stdin, capture output under a
cap, enforce the wall clock.

This module knows nothing about namespaces; it receives the full argv (bubblewrap and the program)
and the confinement (cgroup, rlimits) the process applies to itself before it executes. It reports
what happened as a `ProcessOutcome` and never raises for anything the program does.

Processes are started by `spawn` (`subprocess.Popen`) and their exit is learnt from a pidfd watched by
the event loop, not by asyncio's subprocess machinery: uvloop, which the worker runs on, has no child
watchers and its `subprocess_exec` refuses `user`, `group` and `extra_groups`, which every sandbox
needs. The same code then runs on either loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
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


class CallPipes:
    """The call's stdin, stdout and stderr pipes; the child ends go to the zygote or to `spawn`.

    Our ends are served by plain reader and writer callbacks on the event loop, not stream transports
    and tasks: a trivial call's I/O is one write and two reads, and a transport and a task per pipe
    cost the worker more than all of that I/O. Output is read as `drain` reads it (every byte counted,
    the first `cap` kept); the program may exit without reading its input."""

    def __init__(self, stdin: bytes, stdout: CapturedStream, stderr: CapturedStream) -> None:
        self._loop = asyncio.get_running_loop()
        stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
        stdout_r, stdout_w = os.pipe2(os.O_CLOEXEC)
        stderr_r, stderr_w = os.pipe2(os.O_CLOEXEC)
        self.child_ends = [stdin_r, stdout_w, stderr_w]
        # Only our ends: O_NONBLOCK belongs to each end's open file, the program's ends stay blocking.
        for fd in (stdin_w, stdout_r, stderr_r):
            os.set_blocking(fd, False)
        self._stdin_fd: int | None = stdin_w
        self._stdin = memoryview(stdin)
        self._feeding = False
        self._readers = {stdout_r: stdout, stderr_r: stderr}
        self._all_read = self._loop.create_future()

    def start(self) -> None:
        """Once the zygote or the child holds the child ends: ours are closed (the program's output must end when the
        program does), then the output is watched and the input fed."""
        self._close_child_ends()
        for fd, captured in self._readers.items():
            self._loop.add_reader(fd, self._read, fd, captured)
        self._feed()

    async def drained(self, timeout_s: float) -> bool:
        """Whether the output is read to its end (all its writers gone) within `timeout_s`."""
        if not self._all_read.done():
            await asyncio.wait((self._all_read,), timeout=timeout_s)
        return self._all_read.done()

    def _read(self, fd: int, captured: CapturedStream) -> None:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            captured.take(chunk)
            return
        self._stop_reading(fd)
        if not self._readers and not self._all_read.done():
            self._all_read.set_result(None)

    def _stop_reading(self, fd: int) -> None:
        self._loop.remove_reader(fd)
        os.close(fd)
        del self._readers[fd]

    def _feed(self) -> None:
        assert self._stdin_fd is not None
        try:
            while self._stdin:
                written = os.write(self._stdin_fd, self._stdin)
                self._stdin = self._stdin[written:]
        except BlockingIOError:
            if not self._feeding:
                self._loop.add_writer(self._stdin_fd, self._feed)
                self._feeding = True
            return
        except OSError:
            # The program exited (or closed its input) without reading it all: its business, not an error.
            pass
        self._stop_feeding()

    def _stop_feeding(self) -> None:
        if self._stdin_fd is None:
            return
        if self._feeding:
            self._loop.remove_writer(self._stdin_fd)
            self._feeding = False
        os.close(self._stdin_fd)
        self._stdin_fd = None
        self._stdin.release()

    def _close_child_ends(self) -> None:
        for fd in self.child_ends:
            os.close(fd)
        self.child_ends = []

    def close(self) -> None:
        self._close_child_ends()
        self._stop_feeding()
        for fd in list(self._readers):
            self._stop_reading(fd)


class Child:
    """A process started by `spawn`. Its exit is learnt from a pidfd the event loop watches (any loop:
    asyncio's default one or uvloop), and it is reaped then, so it never lingers as a zombie."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._loop = asyncio.get_running_loop()
        self._exited = self._loop.create_future()
        # The pid is still this child's: nothing else reaps it (asyncio's watchers and libuv wait for their
        # own children only), `_on_exit` does.
        self._pidfd = os.pidfd_open(popen.pid)
        self._loop.add_reader(self._pidfd, self._on_exit)

    @property
    def returncode(self) -> int | None:
        """As `Popen.returncode`: the exit status, or minus the signal that killed it; None while it runs."""
        return self._popen.returncode

    def _on_exit(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._popen.poll()
        self._exited.set_result(None)

    async def wait(self, timeout_s: float | None = None) -> int | None:
        """The return code once it has exited; None if it still runs after `timeout_s`. A cancelled wait
        leaves the watch in place for the next one."""
        if not self._exited.done():
            await asyncio.wait((self._exited,), timeout=timeout_s)
        return self.returncode

    async def stop(self) -> int | None:
        """Kill it and all it started (its session), then reap it: its return code."""
        kill_tree(self.pid)
        return await self.wait()


def spawn(
    argv: list[str],
    stdio: Sequence[int | None],
    user: int | None,
    pass_fds: tuple[int, ...] = (),
    preexec_fn: Callable[[], None] | None = None,
) -> Child:
    """Start `argv` in a session of its own, so that `kill_tree` reaches all it starts. `stdio` is its
    stdin, stdout and stderr (a descriptor, `subprocess.DEVNULL`, or None for the worker's own); `user`
    is its uid and gid, with no supplementary groups."""
    stdin, stdout, stderr = stdio
    popen = subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=preexec_fn,
        # Empty: bubblewrap's own process is pid 1 inside the sandbox, and its /proc/1/environ is readable there.
        env={},
        user=user,
        group=user,
        extra_groups=[] if user is not None else None,
        pass_fds=pass_fds,
        close_fds=True,
        start_new_session=True,
    )
    try:
        return Child(popen)
    except OSError:
        kill_tree(popen.pid)
        popen.wait()
        raise


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
    pipes = CallPipes(stdin, stdout, stderr)
    try:
        child = spawn(
            argv,
            stdio=pipes.child_ends,
            user=user,
            pass_fds=pass_fds,
            preexec_fn=confinement.apply,
        )
        pipes.start()
        timed_out = True
        try:
            if await pipes.drained(timeout_s):
                timed_out = await child.wait(max(0.1, timeout_s - (time.perf_counter() - started))) is None
        finally:
            returncode = await child.stop()
            await pipes.drained(1.0)
    finally:
        pipes.close()
    duration_ms = (time.perf_counter() - started) * 1000
    if timed_out:
        return ProcessOutcome(None, signal.SIGKILL, True, stdout, stderr, duration_ms)
    exit_code, sig = _decode_status(returncode if returncode is not None else -signal.SIGKILL)
    return ProcessOutcome(exit_code, sig, False, stdout, stderr, duration_ms)


def kill_tree(pid: int) -> None:
    """Kill bubblewrap's whole session; with --die-with-parent its pid namespace dies with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
