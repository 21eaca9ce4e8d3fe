"""`POST /run_code`: SandboxFusion's request and response shapes over Sandpit's own execution path.

RL frameworks that already speak SandboxFusion can point at Sandpit unchanged. The request becomes an
ordinary `ExecuteRequest` job; its `ExecutionResult` is translated back. Like SandboxFusion, the answer
is HTTP 200 with `status` Success / Failed / SandboxError for anything the code did or we failed at;
a malformed request is a 422, and keys, quotas and a queue that is down answer as on every route.
docs/api.md lists the mapping and the differences.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.gateway.calls import new_job, run_and_wait
from service.gateway.state import GatewayState, gateway_state
from service.languages import registry
from service.models import ExecuteRequest, ExecutionResult, Language, StageResult, Status

router = APIRouter(tags=["SandboxFusion compatibility"])
State = Annotated[GatewayState, Depends(gateway_state)]


class RunCodeRequest(BaseModel):
    # SandboxFusion accepts fields we do not use (`args`); ignoring them keeps clients working.
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"code": "print(input())", "language": "python", "stdin": "hi", "run_timeout": 5},
                {"code": '#include <cstdio>\nint main(){puts("ok");}', "language": "cpp", "compile_timeout": 20},
            ]
        },
    )

    code: str
    language: str
    compile_timeout: float = Field(default=10, gt=0)
    run_timeout: float = Field(default=10, gt=0)
    memory_limit_MB: int = Field(default=-1, description="-1: the service's default")
    stdin: str | None = None
    files: dict[str, str | None] = Field(default_factory=dict, description="path -> base64 content")
    fetch_files: list[str] = Field(default_factory=list)


class RunStatus(StrEnum):
    Success = "Success"
    Failed = "Failed"
    SandboxError = "SandboxError"


class CommandRunStatus(StrEnum):
    Finished = "Finished"
    Error = "Error"
    TimeLimitExceeded = "TimeLimitExceeded"


class CommandRunResult(BaseModel):
    status: CommandRunStatus
    execution_time: float | None = None
    cpu_time: float | None = Field(default=None, description="CPU seconds of the whole process tree")
    return_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None


class RunCodeResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "Success",
                    "message": "",
                    "compile_result": None,
                    "run_result": {
                        "status": "Finished",
                        "execution_time": 0.012,
                        "return_code": 0,
                        "stdout": "hi\n",
                        "stderr": "",
                    },
                    "executor_pod_name": "worker-1",
                    "files": {},
                }
            ]
        }
    )

    status: RunStatus
    message: str = ""
    compile_result: CommandRunResult | None = None
    run_result: CommandRunResult | None = None
    executor_pod_name: str | None = None
    files: dict[str, str] = Field(default_factory=dict)


@router.post(
    "/run_code",
    response_model=RunCodeResponse,
    summary="SandboxFusion-compatible: run code, answer in SandboxFusion's shape",
    responses={
        422: {"description": "Malformed request (missing code or language, bad types)"},
        503: {"description": "Queue unavailable, or no live worker; retry after `Retry-After` seconds"},
    },
)
async def run_code(request: RunCodeRequest, state: State, http: Request) -> RunCodeResponse:
    # SandboxFusion's names and aliases, as the language registry lists them for this deployment.
    names = registry(state.settings).names()
    language = names.get(request.language)
    if language is None:
        supported = ", ".join(sorted(names, key=str.lower))
        return sandbox_error(f"unsupported language {request.language!r} (supported here: {supported})")
    try:
        execute_request = to_execute_request(request, language, state)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    job = new_job(state, execute_request, state.id, state.settings.queue_wait_s)
    compile_timeout_s = min(request.compile_timeout, job.limits.compile_timeout_s)
    job = job.model_copy(update={"limits": job.limits.model_copy(update={"compile_timeout_s": compile_timeout_s})})
    try:
        raw = await run_and_wait(state, job, http)
    except HTTPException as exc:
        return sandbox_error(str(exc.detail))
    return to_response(ExecutionResult.model_validate_json(raw))


def to_execute_request(request: RunCodeRequest, language: Language, state: GatewayState) -> ExecuteRequest:
    settings = state.settings
    return ExecuteRequest(
        language=language,
        code=request.code,
        stdin=request.stdin or "",
        # SandboxFusion has no maximum; ours is a setting, so a longer ask runs at our maximum.
        timeout_s=min(request.run_timeout, settings.max_timeout_s),
        memory_mb=min(request.memory_limit_MB, settings.max_memory_mb) if request.memory_limit_MB > 0 else None,
        files={path: content or "" for path, content in request.files.items()},
        fetch_files=request.fetch_files,
    )


def to_response(result: ExecutionResult) -> RunCodeResponse:
    if result.status in (Status.sandbox_error, Status.expired, Status.cancelled):
        return sandbox_error(result.reason or result.status.value, result.worker)
    compile_result = command_result(result.compile) if result.compile is not None else None
    run_result = None if result.status == Status.compile_error or is_compile_timeout(result) else command_result(result)
    failed = result.status != Status.ok
    return RunCodeResponse(
        status=RunStatus.Failed if failed else RunStatus.Success,
        compile_result=compile_result,
        run_result=run_result,
        executor_pod_name=result.worker,
        files=result.files,
    )


def command_result(stage: StageResult | ExecutionResult) -> CommandRunResult:
    timed_out = stage.status == Status.timeout
    return_code = stage.exit_code if stage.exit_code is not None or stage.signal is None else -stage.signal
    return CommandRunResult(
        status=CommandRunStatus.TimeLimitExceeded if timed_out else CommandRunStatus.Finished,
        execution_time=round(stage.duration_ms / 1000, 6),
        cpu_time=round(stage.cpu_ms / 1000, 6) if stage.cpu_ms is not None else None,
        return_code=None if timed_out else return_code,
        stdout=stage.stdout,
        stderr=stage.stderr,
    )


def is_compile_timeout(result: ExecutionResult) -> bool:
    return result.compile is not None and result.compile.status == Status.timeout


def sandbox_error(message: str, worker: str | None = None) -> RunCodeResponse:
    return RunCodeResponse(status=RunStatus.SandboxError, message=message, executor_pod_name=worker)
