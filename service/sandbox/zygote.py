"""Worker side of the warm zygotes: start them, send them calls, restart them when they fail.

Each sandbox slot has two zygotes (`zygote_server.py` in a long-lived bubblewrap sandbox of that
slot): a lean one with only the standard library loaded, and a heavy one with numpy and sympy
imported. Python code that names a heavy module goes to the heavy one, everything else (the rest of
Python, bash, C++ compile and run) to the lean one, whose forks are cheaper. A call talks to its
zygote over a SOCK_SEQPACKET socket: one JSON request carrying the three pipe ends, one JSON reply
with the exit status. A zygote that dies or stops answering is killed and started again; the call
it was running is reported as a `ProcessOutcome` all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.sandbox import zygote_protocol as protocol
from service.sandbox.bwrap import BwrapProfile
from service.sandbox.limits import Rlimit
from service.sandbox.process import CALL_NICENESS, CapturedStream, ProcessOutcome, drain, feed

log = logging.getLogger(__name__)

SERVER_DIR = "/opt/sandpit"
START_TIMEOUT_S = 120.0
# How long past a call's own timeout the worker waits for the zygote's answer before giving up on it.
ANSWER_GRACE_S = 5.0
# What the heavy zygote has loaded, and the libraries built on it (they import numpy first thing).
HEAVY_IMPORT = re.compile(r"\b(numpy|sympy|scipy|mpmath|pandas|networkx|sklearn|matplotlib)\b")


class ZygoteFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class ZygoteSpec:
    name: str
    preload: tuple[str, ...]


LEAN = ZygoteSpec("lean", ())
HEAVY = ZygoteSpec("heavy", ("numpy", "sympy"))


def wants_heavy(program: list[str], workspace: Path, python_path: str) -> bool:
    if program[0] != python_path:
        return False
    try:
        return HEAVY_IMPORT.search((workspace / program[-1]).read_text(errors="replace")) is not None
    except OSError:
        return False


class Zygote:
    def __init__(
        self,
        spec: ZygoteSpec,
        profile: BwrapProfile,
        workspace: Path,
        python_path: str,
        uid: int | None,
        tmp_bytes: int,
        join_fds: list[int],
        probe: list[Rlimit],
    ) -> None:
        self.spec = spec
        self.join_fds = join_fds
        self.probe = probe
        self.profile = profile
        self.workspace = workspace
        self.python_path = python_path
        self.uid = uid
        self.tmp_bytes = tmp_bytes
        self.process: asyncio.subprocess.Process | None = None
        self.control: socket.socket | None = None
        self.calls = 0

    async def start(self) -> None:
        control, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Not -I: calls inherit the interpreter's flags, which must be those of `python3 main.py`.
        program = [
            self.python_path,
            "-B",
            f"{SERVER_DIR}/zygote_server.py",
            str(server_end.fileno()),
            f"size={self.tmp_bytes},mode=1777",
            ",".join(map(str, self.join_fds)),
            *self.spec.preload,
        ]
        argv = self.profile.zygote_command(self.workspace, Path(__file__).parent, SERVER_DIR, program)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(server_end.fileno(), *self.join_fds),
                env={},
                user=self.uid,
                group=self.uid,
                extra_groups=[] if self.uid is not None else None,
                start_new_session=True,
            )
        finally:
            server_end.close()
        control.setblocking(False)
        self.control = control
        try:
            hello = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(control, 1 << 20), START_TIMEOUT_S)
        except TimeoutError:
            hello = b""
        if not hello:
            await self.stop()
            raise ZygoteFailed(f"{self.spec.name} zygote did not start")
        await self._probe()

    async def _probe(self) -> None:
        """One real call at start: a host that lets the zygote start but not make a call's
        namespaces (no /proc mount allowed, say) is found now, not on every user call."""
        outcome = await self.run(["/bin/true"], b"", 10.0, 1024, self.probe)
        if outcome.exit_code != 0:
            await self.stop()
            detail = outcome.stderr.data.decode(errors="replace")
            raise ZygoteFailed(f"{self.spec.name} zygote cannot run a call (exit {outcome.exit_code}): {detail}")

    async def stop(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
            self.process = None

    async def run(
        self, program: list[str], stdin: bytes, timeout_s: float, output_cap: int, rlimits: list[Rlimit]
    ) -> ProcessOutcome:
        if self.control is None:
            await self.start()
        assert self.control is not None
        self.calls += 1
        request: protocol.CallRequest = {
            "id": self.calls,
            "argv": program,
            "timeout_s": timeout_s,
            "rlimits": rlimits,
            "niceness": CALL_NICENESS,
            "shm_bytes": self.tmp_bytes,
        }
        stdout = CapturedStream(output_cap, bytearray())
        stderr = CapturedStream(output_cap, bytearray())
        started = time.perf_counter()
        async with CallPipes() as pipes:
            socket.send_fds(self.control, [protocol.encode(request)], pipes.child_ends())
            pipes.close_child_ends()
            io = asyncio.gather(
                feed(pipes.stdin_writer, stdin),
                drain(pipes.stdout_reader, stdout),
                drain(pipes.stderr_reader, stderr),
            )
            try:
                answer = await self._answer(timeout_s + ANSWER_GRACE_S)
            except asyncio.CancelledError:
                # The job was cancelled: the call must die, and its answer must not reach the next call.
                await asyncio.shield(self.stop())
                raise
            with contextlib.suppress(Exception):
                await asyncio.wait_for(io, ANSWER_GRACE_S)
        if "error" in answer:
            raise ZygoteFailed(str(answer["error"]))
        if answer.get("setup_failed"):
            raise ZygoteFailed(f"the call's sandbox could not be set up: {stderr.data[-500:].decode(errors='replace')}")
        if answer.get("id") != request["id"]:
            await self.stop()
            raise ZygoteFailed(f"answer {answer.get('id')} to request {request['id']}")
        elapsed_ms = (time.perf_counter() - started) * 1000
        return ProcessOutcome(
            exit_code=answer.get("exit_code"),
            signal=answer.get("signal"),
            timed_out=answer.get("timed_out", False),
            stdout=stdout,
            stderr=stderr,
            duration_ms=answer.get("duration_ms", elapsed_ms),
            cpu_ms=answer.get("cpu_ms"),
            max_rss_kb=answer.get("max_rss_kb"),
        )

    async def _answer(self, wait_s: float) -> protocol.CallReport:
        assert self.control is not None
        try:
            raw = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.control, 65536), wait_s)
        except TimeoutError:
            # Stuck: killing its sandbox also kills the call it was running.
            await self.stop()
            return {"timed_out": True, "signal": signal.SIGKILL}
        except OSError as exc:
            raw, reason = b"", str(exc)
        else:
            reason = "the zygote exited"
        if not raw:
            await self.stop()
            return {"error": reason}
        return protocol.decode_report(raw)


class CallPipes:
    """The call's stdin, stdout and stderr pipes; the child ends travel to the zygote."""

    async def __aenter__(self) -> CallPipes:
        loop = asyncio.get_running_loop()
        stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
        stdout_r, stdout_w = os.pipe2(os.O_CLOEXEC)
        stderr_r, stderr_w = os.pipe2(os.O_CLOEXEC)
        self._child = [stdin_r, stdout_w, stderr_w]
        self.stdout_reader = await _reader(loop, stdout_r)
        self.stderr_reader = await _reader(loop, stderr_r)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, os.fdopen(stdin_w, "wb"))
        self.stdin_writer = asyncio.StreamWriter(transport, protocol, None, loop)
        return self

    def child_ends(self) -> list[int]:
        return list(self._child)

    def close_child_ends(self) -> None:
        for fd in self._child:
            os.close(fd)
        self._child = []

    async def __aexit__(self, *_: object) -> None:
        self.close_child_ends()
        if not self.stdin_writer.transport.is_closing():
            self.stdin_writer.transport.abort()
        for reader in (self.stdout_reader, self.stderr_reader):
            transport = getattr(reader, "_transport", None)
            if transport is not None and not transport.is_closing():
                transport.close()


async def _reader(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb"))
    return reader


class ZygotePool:
    """The lean and heavy zygote of every slot."""

    def __init__(
        self,
        profile: BwrapProfile,
        workspace_of: Callable[[int], Path],
        uid_of: Callable[[int], int | None],
        slots: int,
        python_path: str,
        tmp_bytes: int,
        join_fds_of: Callable[[int, str], list[int]],
        probe: list[Rlimit],
    ) -> None:
        self.python_path = python_path
        self.zygotes = {
            (slot, spec.name): Zygote(
                spec,
                profile,
                workspace_of(slot),
                python_path,
                uid_of(slot),
                tmp_bytes,
                join_fds_of(slot, spec.name),
                probe,
            )
            for slot in range(slots)
            for spec in (LEAN, HEAVY)
        }

    async def start(self) -> None:
        await asyncio.gather(*(zygote.start() for zygote in self.zygotes.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(zygote.stop() for zygote in self.zygotes.values()))

    def pick(self, slot: int, program: list[str], workspace: Path) -> Zygote:
        spec = HEAVY if wants_heavy(program, workspace, self.python_path) else LEAN
        return self.zygotes[(slot, spec.name)]
