"""The concepts every part shares: a call, the job that carries it, and its result.

The gateway validates an `ExecuteRequest`, wraps it in a `Job` for the queue, the worker turns the job
into an `ExecutionResult`, and the gateway returns that result as the HTTP body. One definition of each,
used by both ends, so the wire format cannot drift.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Language(StrEnum):
    python = "python"
    bash = "bash"
    cpp = "cpp"


class Status(StrEnum):
    ok = "ok"
    error = "error"
    timeout = "timeout"
    memory_limit = "memory_limit"
    output_limit = "output_limit"
    compile_error = "compile_error"
    sandbox_error = "sandbox_error"
    expired = "expired"


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"language": "python", "code": "print(1+1)"},
                {"language": "cpp", "code": '#include <cstdio>\nint main(){puts("hi");}', "timeout_s": 5},
            ]
        },
    )

    language: Language
    code: str = Field(min_length=1, description="Program text. Must not be empty.")
    stdin: str = Field(default="", description="Bytes fed to the program's standard input (UTF-8).")
    timeout_s: float | None = Field(default=None, gt=0, description="Wall-clock limit of the run.")
    memory_mb: int | None = Field(default=None, gt=0, description="Address-space limit of the run.")
    strict_output: bool = Field(
        default=False,
        description="Report `output_limit` instead of `ok` when stdout or stderr was truncated.",
    )


class Limits(BaseModel):
    """The limits a job runs under, resolved by the gateway from the request and the settings."""

    timeout_s: float
    memory_mb: int
    output_bytes: int
    compile_timeout_s: float
    compile_memory_mb: int


class Job(BaseModel):
    id: str
    request: ExecuteRequest
    limits: Limits
    enqueued_at: float
    # Epoch seconds after which the job must not start: its caller has given up waiting.
    start_by: float
    # The channel of the gateway waiting on this job, if one is.
    reply_to: str | None = None


class StageResult(BaseModel):
    """What one process in the sandbox did: the compile step or the run."""

    status: Status
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    truncated: bool = False
    duration_ms: float = 0.0


class ExecutionResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5f0c6b1e8f6a4c39b1b9f3f1a2d4e6c8",
                    "status": "ok",
                    "exit_code": 0,
                    "stdout": "2\n",
                    "stderr": "",
                    "duration_ms": 14.2,
                }
            ]
        }
    )

    id: str
    status: Status
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    truncated: bool = False
    duration_ms: float = 0.0
    queued_ms: float = 0.0
    compile: StageResult | None = None
    reason: str | None = Field(default=None, description="Why, for sandbox_error, expired and limits.")
    worker: str | None = None

    @classmethod
    def from_stage(cls, job_id: str, stage: StageResult, **extra: object) -> ExecutionResult:
        return cls(id=job_id, **stage.model_dump(), **extra)
