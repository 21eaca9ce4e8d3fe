"""Turn one job into one `ExecutionResult`: workspace, compile, run, classify, clean up.

The worker calls `Sandbox.execute` for every job. A fresh host directory becomes the call's
`/workspace`; compiled languages compile in one sandboxed process and run in a second one that sees
the same workspace; the directory is deleted afterwards whatever happened. Failures of user code are
statuses; failures of ours become `sandbox_error` with a reason.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import subprocess
from pathlib import Path

from service.config import Settings
from service.languages import LanguageSpec, language_specs
from service.models import ExecutionResult, Job, StageResult, Status
from service.sandbox.bwrap import BwrapProfile, write_etc
from service.sandbox.process import ProcessOutcome, ResourceLimits, run_process

log = logging.getLogger(__name__)

MB = 1024 * 1024
COMPILE_OUTPUT_CAP = 64 * 1024
# What a program prints when the address-space limit refused it memory (Python, C++, bash/glibc).
MEMORY_MARKERS = (b"MemoryError", b"std::bad_alloc", b"Cannot allocate memory", b"cannot allocate memory")


class SandboxUnavailable(RuntimeError):
    pass


def classify(outcome: ProcessOutcome, strict_output: bool) -> Status:
    if outcome.timed_out or outcome.signal == signal.SIGXCPU:
        return Status.timeout
    if outcome.exit_code != 0 and any(m in outcome.stderr.data[-4096:] for m in MEMORY_MARKERS):
        return Status.memory_limit
    if strict_output and (outcome.stdout.truncated or outcome.stderr.truncated):
        return Status.output_limit
    return Status.ok if outcome.exit_code == 0 and outcome.signal is None else Status.error


def to_stage(outcome: ProcessOutcome, status: Status) -> StageResult:
    return StageResult(
        status=status,
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        stdout=outcome.stdout.data.decode("utf-8", errors="replace"),
        stderr=outcome.stderr.data.decode("utf-8", errors="replace"),
        stdout_bytes=outcome.stdout.total,
        stderr_bytes=outcome.stderr.total,
        truncated=outcome.stdout.truncated or outcome.stderr.truncated,
        duration_ms=round(outcome.duration_ms, 3),
    )


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.specs = language_specs(settings)
        self.root = settings.workspace_root / f"worker-{os.getpid()}"
        self.root.mkdir(parents=True, exist_ok=True)
        # Slot users must be able to reach their own workspace, but not list the others.
        settings.workspace_root.chmod(0o711)
        self.root.chmod(0o711)
        write_etc(self.root / "etc")
        self.profile = BwrapProfile(settings.bwrap_path, self.root / "etc", settings.workspace_max_bytes)
        self.drop_to_slot_uid = os.geteuid() == 0

    def check(self) -> None:
        """Fail at start-up, not on the first call, when namespaces cannot be created here."""
        argv = self.profile.command(self.root, ["/bin/true"])
        user = self.slot_uid(0)
        probe = subprocess.run(argv, capture_output=True, timeout=30, user=user, group=user)
        if probe.returncode != 0:
            raise SandboxUnavailable(f"bubblewrap cannot start a sandbox: {probe.stderr.decode(errors='replace')}")

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def slot_uid(self, slot: int) -> int | None:
        return self.settings.sandbox_uid_base + slot if self.drop_to_slot_uid else None

    async def execute(self, job: Job, slot: int) -> ExecutionResult:
        workspace = self.root / job.id
        try:
            self._make_workspace(workspace, slot)
            return await self._execute_in(workspace, job, slot)
        except Exception as exc:
            log.exception("sandbox failure", extra={"job_id": job.id})
            return ExecutionResult(id=job.id, status=Status.sandbox_error, reason=f"{type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(workspace, ignore_errors=True)

    def _make_workspace(self, workspace: Path, slot: int) -> None:
        workspace.mkdir(mode=0o700)
        uid = self.slot_uid(slot)
        if uid is not None:
            os.chown(workspace, uid, uid)

    async def _execute_in(self, workspace: Path, job: Job, slot: int) -> ExecutionResult:
        request, limits = job.request, job.limits
        spec: LanguageSpec = self.specs[request.language]
        source = workspace / spec.source_file
        source.write_text(request.code)
        compiled: StageResult | None = None
        if spec.compile is not None:
            compiled = await self._stage(
                workspace,
                slot,
                spec.compile,
                b"",
                limits.compile_timeout_s,
                limits.compile_memory_mb,
                COMPILE_OUTPUT_CAP,
                strict_output=False,
            )
            if compiled.status != Status.ok:
                status = Status.timeout if compiled.status == Status.timeout else Status.compile_error
                return ExecutionResult(
                    id=job.id,
                    status=status,
                    exit_code=compiled.exit_code,
                    stderr=compiled.stderr,
                    compile=compiled,
                    reason="compilation failed",
                )
        ran = await self._stage(
            workspace,
            slot,
            spec.run,
            request.stdin.encode(),
            limits.timeout_s,
            limits.memory_mb,
            limits.output_bytes,
            strict_output=request.strict_output,
        )
        return ExecutionResult.from_stage(job.id, ran, compile=compiled)

    async def _stage(
        self,
        workspace: Path,
        slot: int,
        program: list[str],
        stdin: bytes,
        timeout_s: float,
        memory_mb: int,
        output_cap: int,
        *,
        strict_output: bool,
    ) -> StageResult:
        rlimits = ResourceLimits(
            memory_bytes=memory_mb * MB,
            cpu_seconds=math.ceil(timeout_s) + 1,
            max_processes=self.settings.max_processes,
            max_open_files=self.settings.max_open_files,
            max_file_bytes=self.settings.workspace_max_bytes,
        )
        outcome = await run_process(
            self.profile.command(workspace, program), stdin, timeout_s, output_cap, rlimits, user=self.slot_uid(slot)
        )
        return to_stage(outcome, classify(outcome, strict_output))
