"""One session's long-lived interpreter: a Python process in its own bubblewrap sandbox.

The sandbox is built like every call's (`BwrapProfile.command`, the seccomp filter, rlimits, its own
uid) around a workspace that lives as long as the session (given by the caller, emptied by it). The interpreter runs
`session_server.py` and answers one JSON line per call. If it does not answer within the call's
timeout plus a grace period, or answers nonsense, or exits, the whole sandbox is killed and the
session is lost: `run` returns None and the caller reports `session_lost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from pathlib import Path

from pydantic import ValidationError

from service.models import StageResult
from service.sandbox.executor import MB, Sandbox, SeccompFd
from service.sandbox.limits import Budget, RlimitLimiter
from service.sandbox.process import Confinement, kill_tree

SERVER_SOURCE = Path(__file__).with_name("session_server.py").read_text()
# Beyond a call's own timeout: the server's own timer fires first; this is for code that ignores it.
ANSWER_GRACE_S = 2.0
START_TIMEOUT_S = 30.0
# One answer line carries stdout and stderr, each up to the output cap, JSON-escaped.
LINE_LIMIT = 32 * MB
# CPU seconds over the interpreter's whole life; each call's wall-clock timer does the real limiting.
SESSION_CPU_S = 3600


class SessionProcess:
    def __init__(self, sandbox: Sandbox, workspace: Path, uid: int | None, memory_mb: int) -> None:
        self.sandbox = sandbox
        self.workspace = workspace
        self.uid = uid
        self.memory_mb = memory_mb
        # Sessions stay on rlimits whatever the calls use (one interpreter for many calls, no cgroup
        # of their own yet): with the fallback's environment, so that their threads work too.
        self.limiter = RlimitLimiter("sessions")
        self.profile = dataclasses.replace(sandbox.profile, extra_env=self.limiter.env())
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> bool:
        settings = self.sandbox.settings
        budget = Budget(
            memory_bytes=self.memory_mb * MB,
            cpu_seconds=SESSION_CPU_S,
            max_processes=settings.max_processes,
            max_open_files=settings.max_open_files,
            max_file_bytes=settings.workspace_max_bytes,
        )
        confinement = Confinement(self.limiter.rlimits(budget))
        program = [settings.python_path, "-I", "-B", "-c", SERVER_SOURCE]
        with SeccompFd(self.sandbox.seccomp_bpf) as fd:
            self.process = await asyncio.create_subprocess_exec(
                *self.profile.command(self.workspace, program, fd),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                preexec_fn=confinement.apply,
                user=self.uid,
                group=self.uid,
                extra_groups=[] if self.uid is not None else None,
                pass_fds=(fd,),
                start_new_session=True,
                limit=LINE_LIMIT,
            )
        return await self._answer(START_TIMEOUT_S) is not None

    async def run(self, code: str, timeout_s: float, output_bytes: int) -> StageResult | None:
        """Run `code` in the session; None when the interpreter is gone (killed here if need be)."""
        if self.process is None or self.process.stdin is None or self.process.returncode is not None:
            return None
        request = {"code": code, "timeout_s": timeout_s, "output_bytes": output_bytes}
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return None
        answer = await self._answer(timeout_s + ANSWER_GRACE_S)
        try:
            return StageResult.model_validate(answer) if answer is not None else None
        except ValidationError:
            return None

    async def _answer(self, wait_s: float) -> dict[str, object] | None:
        assert self.process is not None and self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), wait_s)
            answer = json.loads(line) if line else None
        except (TimeoutError, ValueError):
            answer = None
        if not isinstance(answer, dict):
            await self.stop()
            return None
        return answer

    async def stop(self) -> None:
        if self.process is not None:
            kill_tree(self.process.pid)
            with contextlib.suppress(ProcessLookupError):
                await self.process.wait()
