"""The concepts every part shares: a call, the job that carries it, and its result.

The gateway validates an `ExecuteRequest`, wraps it in a `Job` for the queue, the worker turns the job
into an `ExecutionResult`, and the gateway returns that result as the HTTP body. One definition of each,
used by both ends, so the wire format cannot drift.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Language(StrEnum):
    """Every language's name; what each is lives in the registry (service/languages/definitions.py)."""

    python = "python"
    pytest = "pytest"
    bash = "bash"
    cpp = "cpp"
    c = "c"
    java = "java"
    junit = "junit"
    go = "go"
    go_test = "go_test"
    rust = "rust"
    nodejs = "nodejs"
    typescript = "typescript"
    php = "php"
    ruby = "ruby"
    lua = "lua"
    perl = "perl"
    csharp = "csharp"
    R = "R"
    scala = "scala"
    d = "d"
    sql = "sql"


class Status(StrEnum):
    ok = "ok"
    error = "error"
    timeout = "timeout"
    memory_limit = "memory_limit"
    output_limit = "output_limit"
    compile_error = "compile_error"
    sandbox_error = "sandbox_error"
    expired = "expired"
    # Stopped by `DELETE /v1/jobs/{id}` before or while it ran.
    cancelled = "cancelled"
    # The session's interpreter or the worker holding it is gone; its variables are lost.
    session_lost = "session_lost"


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"


class Verdict(StrEnum):
    """How one judged test case went; `skipped` when an earlier case failed and the caller asked to stop."""

    accepted = "accepted"
    wrong_answer = "wrong_answer"
    timeout = "timeout"
    memory_limit = "memory_limit"
    runtime_error = "runtime_error"
    compile_error = "compile_error"
    skipped = "skipped"


class Compare(StrEnum):
    exact = "exact"
    whitespace = "whitespace"
    float = "float"


MAX_PATH_LENGTH = 255


def check_workspace_path(path: str) -> str:
    """A path inside the workspace: relative, no `..`, no empty or NUL parts. Raises ValueError."""
    parts = path.split("/")
    if not path or len(path) > MAX_PATH_LENGTH or "\0" in path or path.startswith("/"):
        raise ValueError(f"{path!r} must be a relative path of at most {MAX_PATH_LENGTH} characters")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{path!r} must not contain empty, '.' or '..' parts")
    return str(PurePosixPath(path))


def check_workspace_files(files: dict[str, str]) -> None:
    """Files to write into a workspace: safe paths, base64 contents. Raises ValueError."""
    for path, content in files.items():
        check_workspace_path(path)
        try:
            base64.b64decode(content, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"content of {path!r} is not base64: {exc}") from None


def decode_files(files: dict[str, str]) -> dict[str, bytes]:
    return {path: base64.b64decode(content, validate=True) for path, content in files.items()}


class Program(BaseModel):
    """What to run: the part every kind of call shares."""

    model_config = ConfigDict(extra="forbid")

    language: Language
    code: str = Field(min_length=1, description="Program text. Must not be empty.")
    timeout_s: float | None = Field(default=None, gt=0, description="Wall-clock limit of the run.")
    memory_mb: int | None = Field(
        default=None,
        gt=0,
        description="Memory limit of the run's whole process tree: its cgroup where the host gives one, "
        "else each process's address space.",
    )
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Files written into the workspace before the run: relative path -> base64 content.",
    )

    @field_validator("files")
    @classmethod
    def _files_are_base64_at_safe_paths(cls, files: dict[str, str]) -> dict[str, str]:
        check_workspace_files(files)
        return files


class ExecuteRequest(Program):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"language": "python", "code": "print(1+1)"},
                {"language": "cpp", "code": '#include <cstdio>\nint main(){puts("hi");}', "timeout_s": 5},
                {
                    "language": "python",
                    "code": "open('out.txt','w').write(open('in.txt').read().upper())",
                    "files": {"in.txt": "aGVsbG8="},
                    "fetch_files": ["out.txt"],
                },
            ]
        },
    )

    stdin: str = Field(default="", description="Bytes fed to the program's standard input (UTF-8).")
    strict_output: bool = Field(
        default=False,
        description="Report `output_limit` instead of `ok` when stdout or stderr was truncated.",
    )
    fetch_files: list[str] = Field(
        default_factory=list,
        description="Workspace paths returned (base64) in the result's `files` after the run.",
    )

    @field_validator("fetch_files")
    @classmethod
    def _fetch_paths_are_safe(cls, paths: list[str]) -> list[str]:
        for path in paths:
            check_workspace_path(path)
        return paths


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"calls": [{"language": "python", "code": "print(1)"}, {"language": "bash", "code": "echo 2"}]}
            ]
        },
    )

    calls: list[ExecuteRequest] = Field(min_length=1, max_length=1000)


class JudgeCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stdin: str = ""
    expected_stdout: str
    timeout_s: float | None = Field(default=None, gt=0, description="This case's limit instead of the request's.")
    memory_mb: int | None = Field(default=None, gt=0, description="This case's limit instead of the request's.")


class JudgeSpec(BaseModel):
    """How to judge a program: its test cases and how outputs are compared."""

    model_config = ConfigDict(extra="forbid")

    cases: list[JudgeCase] = Field(min_length=1, max_length=1000)
    compare: Compare = Field(
        default=Compare.exact,
        description="`exact` bytes, `whitespace`-separated tokens, or tokens as `float`s within `tolerance`.",
    )
    tolerance: float = Field(default=1e-6, ge=0, description="Absolute or relative tolerance of `float`.")
    stop_on_first_failure: bool = False


class JudgeRequest(Program, JudgeSpec):
    """`timeout_s` and `memory_mb` are the limits of each test case; compilation has its own."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "language": "python",
                    "code": "a, b = map(int, input().split())\nprint(a + b)",
                    "cases": [{"stdin": "1 2\n", "expected_stdout": "3\n"}, {"stdin": "5 5", "expected_stdout": "10"}],
                    "compare": "whitespace",
                    "timeout_s": 2,
                }
            ]
        },
    )

    def program(self) -> ExecuteRequest:
        return ExecuteRequest(**self.model_dump(include=set(Program.model_fields)))

    def spec(self) -> JudgeSpec:
        return JudgeSpec(**self.model_dump(include=set(JudgeSpec.model_fields)))


class Limits(BaseModel):
    """The limits a job runs under, resolved by the gateway from the request and the settings."""

    timeout_s: float
    memory_mb: int
    output_bytes: int
    compile_timeout_s: float
    compile_memory_mb: int

    def for_case(self, case: JudgeCase) -> Limits:
        """The limits of one judged test case: its own where it sets them, else the request's."""
        timeout_s = case.timeout_s if case.timeout_s is not None else self.timeout_s
        memory_mb = case.memory_mb if case.memory_mb is not None else self.memory_mb
        return self.model_copy(update={"timeout_s": timeout_s, "memory_mb": memory_mb})


class Job(BaseModel):
    id: str
    request: ExecuteRequest
    limits: Limits
    # Set for a judging job: run the program once per case and compare outputs in the worker.
    judge: JudgeSpec | None = None
    enqueued_at: float
    # Epoch seconds after which the job must not start: its caller has given up waiting.
    start_by: float
    # The channel of the gateway waiting on this job, if one is.
    reply_to: str | None = None
    # Whose quota the job counts against until a worker acknowledges it.
    tenant: str | None = None
    # The `X-Request-ID` of the HTTP request that made the job; workers log it with the job id.
    request_id: str | None = None


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
    cpu_ms: float | None = Field(default=None, description="CPU time (user + system) of the whole process tree.")
    peak_memory_kb: int | None = Field(
        default=None, description="Peak memory the call's processes charged beyond the warm interpreter's pages."
    )


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
    cpu_ms: float | None = Field(default=None, description="CPU time (user + system) of the whole process tree.")
    peak_memory_kb: int | None = Field(
        default=None, description="Peak memory the call's processes charged beyond the warm interpreter's pages."
    )
    queued_ms: float = 0.0
    compile: StageResult | None = None
    reason: str | None = Field(default=None, description="Why, for sandbox_error, expired and limits.")
    worker: str | None = None
    files: dict[str, str] = Field(default_factory=dict, description="The `fetch_files` that could be read, base64.")
    file_errors: dict[str, str] = Field(default_factory=dict, description="Why a fetched file is not in `files`.")
    judge: JudgeReport | None = None

    @classmethod
    def from_stage(cls, job_id: str, stage: StageResult, **extra: object) -> ExecutionResult:
        return cls(id=job_id, **stage.model_dump(), **extra)


class CaseResult(BaseModel):
    index: int
    verdict: Verdict
    status: Status | None = Field(default=None, description="How the run ended; none when skipped.")
    exit_code: int | None = None
    duration_ms: float = 0.0
    cpu_ms: float | None = None
    peak_memory_kb: int | None = None
    stdout: str = Field(default="", description="The start of what the program printed.")
    stderr: str = ""


class JudgeReport(BaseModel):
    verdict: Verdict = Field(description="`accepted` when every case was, else the verdict of the first failing one.")
    passed: int
    total: int
    pass_ratio: float
    cases: list[CaseResult]


class JudgeResult(BaseModel):
    """The answer of `POST /v1/judge`; `verdict` is null when no case could run (sandbox_error, expired)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b6f0b1c1e6d4f0e9f2f7f3f0a1b2c3d",
                    "status": "ok",
                    "verdict": "wrong_answer",
                    "passed": 1,
                    "total": 2,
                    "pass_ratio": 0.5,
                    "cases": [
                        {"index": 0, "verdict": "accepted", "status": "ok", "exit_code": 0, "duration_ms": 12.1},
                        {"index": 1, "verdict": "wrong_answer", "status": "ok", "exit_code": 0, "stdout": "9\n"},
                    ],
                }
            ]
        }
    )

    id: str
    status: Status
    verdict: Verdict | None = None
    passed: int = 0
    total: int = 0
    pass_ratio: float = 0.0
    cases: list[CaseResult] = Field(default_factory=list)
    compile: StageResult | None = None
    reason: str | None = None
    duration_ms: float = 0.0
    queued_ms: float = 0.0
    worker: str | None = None

    @classmethod
    def from_execution(cls, result: ExecutionResult) -> JudgeResult:
        report = result.judge.model_dump() if result.judge is not None else {}
        return cls(
            id=result.id,
            status=result.status,
            compile=result.compile,
            reason=result.reason,
            duration_ms=result.duration_ms,
            queued_ms=result.queued_ms,
            worker=result.worker,
            **report,
        )


class JobRecord(BaseModel):
    """What Redis holds about a job until its result exists."""

    state: JobState
    reply_to: str | None = None
    worker: str | None = None


class JobInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "5f0c6b1e8f6a4c39b1b9f3f1a2d4e6c8", "state": "running", "worker": "host-123-abc"},
                {
                    "id": "5f0c6b1e8f6a4c39b1b9f3f1a2d4e6c8",
                    "state": "done",
                    "result": {"id": "5f0c6b1e8f6a4c39b1b9f3f1a2d4e6c8", "status": "ok", "stdout": "2\n"},
                },
            ]
        }
    )

    id: str
    state: JobState
    worker: str | None = None
    result: ExecutionResult | None = None


class ToolSpec(BaseModel):
    """One entry of a tool registry (service/tools/tools.json, or a tool pack's): what `GET /v1/tools` lists."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    description: str
    input_schema: dict[str, Any] = Field(alias="inputSchema")
    language: Language
    program: str = Field(description="File of the program, relative to the registry; reads JSON args on stdin")
    timeout_s: float | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)
    files: list[str] = Field(
        default_factory=list,
        description="Files of the registry's directory written into each call's workspace at the same relative path",
    )

    @field_validator("program", "files")
    @classmethod
    def _paths_stay_inside(cls, paths: str | list[str]) -> str | list[str]:
        for path in [paths] if isinstance(paths, str) else paths:
            check_workspace_path(path)
        return paths


class TextContent(BaseModel):
    type: str = "text"
    text: str


class ToolCallResult(BaseModel):
    """MCP's `CallToolResult` shape, plus the run that produced it."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "content": [{"type": "text", "text": '{"result": 7}'}],
                    "structuredContent": {"result": 7},
                    "isError": False,
                    "execution": {"id": "5f0c6b1e8f6a4c39b1b9f3f1a2d4e6c8", "status": "ok", "stdout": '{"result": 7}'},
                }
            ]
        },
    )

    content: list[TextContent]
    structured_content: dict[str, Any] | None = Field(default=None, alias="structuredContent")
    is_error: bool = Field(alias="isError")
    execution: ExecutionResult


class SessionAction(StrEnum):
    open = "open"
    execute = "execute"
    close = "close"
    fork = "fork"


class SessionCommand(BaseModel):
    """What the gateway asks a session's worker to do, on that worker's own command list."""

    id: str = Field(description="The id of this command's result, like a job id")
    session_id: str
    action: SessionAction
    code: str = ""
    timeout_s: float = 0.0
    memory_mb: int = 0
    output_bytes: int = 0
    reply_to: str | None = None
    # fork: the ids the new branches get, one per branch.
    branch_ids: list[str] = Field(default_factory=list)


class SessionRecord(BaseModel):
    """Where a session lives; expires when the session has been idle too long."""

    worker: str
    memory_mb: int


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"language": "python"}]})

    language: Language = Field(default=Language.python, description="Sessions run Python only.")
    memory_mb: int | None = Field(
        default=None, gt=0, description="Address-space limit of the interpreter (sessions use rlimits)."
    )


class SessionInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"id": "9d2c5f0e0c0b4e3c8a1f2b3c4d5e6f70", "worker": "host-123-abc", "idle_timeout_s": 300}]
        }
    )

    id: str
    worker: str
    idle_timeout_s: float


class SessionExecuteRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"code": "x = 21"}, {"code": "x * 2", "timeout_s": 5}]},
    )

    code: str = Field(min_length=1, description="Python run in the session; the value of a last expression is printed.")
    timeout_s: float | None = Field(default=None, gt=0)


class SessionForkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {"count": 4}]})

    count: int = Field(default=1, ge=1, description="Branches to make, each an exact copy of the session now.")


class SessionForkInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sessions": [
                        {"id": "0b8f4c1d2e3a4b5c6d7e8f9001122334", "worker": "host-123-abc", "idle_timeout_s": 300}
                    ]
                }
            ]
        }
    )

    sessions: list[SessionInfo] = Field(description="The branches: full sessions of their own, on the parent's worker")


class LanguageRuntime(BaseModel):
    """One language as the workers run it: its toolchain's version and, for Python, what it can import."""

    name: Language
    available: bool | None = Field(
        default=None,
        description="Whether the reporting worker runs it (enabled and its toolchain installed); null until probed",
    )
    aliases: list[str] = Field(default_factory=list, description="Other names `/run_code` accepts for it")
    compile: list[str] | None = Field(default=None, description="Compile command (for 512 MB), if compiled")
    run: list[str] = Field(default_factory=list, description="Run command (for 512 MB)")
    version: str | None = Field(default=None, description="First line of the toolchain's `--version`; null if unknown")
    packages: dict[str, str] = Field(
        default_factory=dict, description="Python: every installed distribution and its version; empty otherwise"
    )


class Runtimes(BaseModel):
    """What `GET /v1/languages` answers: the runtimes a worker probed at start, or every language unprobed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reported": True,
                    "worker": "host-4242-1a2b3c",
                    "probed_at": 1767225600.0,
                    "sandbox_limits": "cgroup_v2",
                    "languages": [
                        {
                            "name": "python",
                            "version": "Python 3.11.2",
                            "packages": {"numpy": "1.24.2", "scikit-learn": "1.2.1", "scipy": "1.10.1"},
                        },
                        {"name": "bash", "version": "GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)"},
                        {"name": "cpp", "version": "g++ (Debian 12.2.0-14) 12.2.0"},
                    ],
                }
            ]
        }
    )

    reported: bool = Field(description="False until a worker has probed its runtimes; every version is null until then")
    worker: str | None = Field(default=None, description="The worker whose probe this is")
    probed_at: float | None = Field(default=None, description="When it probed, Unix seconds")
    sandbox_limits: str | None = Field(
        default=None,
        description="How that worker limits each call's memory and processes: cgroup_v2, cgroup_v1, or rlimit "
        "(the fallback where no cgroup can be had)",
    )
    languages: list[LanguageRuntime]

    @classmethod
    def unreported(cls) -> Runtimes:
        return cls(reported=False, languages=[LanguageRuntime(name=language) for language in Language])
