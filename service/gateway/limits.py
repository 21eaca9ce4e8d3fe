"""Turn what a request asks for into the limits its job runs under, refusing what is out of range."""

from __future__ import annotations

from service.config import Settings
from service.models import ExecuteRequest, JudgeSpec, Language, Limits, decode_files

COMPILED = frozenset({Language.cpp})


class LimitError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def resolve_limits(request: ExecuteRequest, settings: Settings) -> Limits:
    timeout_s = request.timeout_s if request.timeout_s is not None else settings.default_timeout_s
    memory_mb = request.memory_mb if request.memory_mb is not None else settings.default_memory_mb
    if timeout_s > settings.max_timeout_s:
        raise LimitError("timeout_s", f"timeout_s must be at most {settings.max_timeout_s:g}")
    if memory_mb > settings.max_memory_mb:
        raise LimitError("memory_mb", f"memory_mb must be at most {settings.max_memory_mb}")
    if memory_mb < 16:
        raise LimitError("memory_mb", "memory_mb must be at least 16")
    if len(request.code.encode()) > settings.max_code_bytes:
        raise LimitError("code", f"code must be at most {settings.max_code_bytes} bytes")
    if len(request.stdin.encode()) > settings.max_stdin_bytes:
        raise LimitError("stdin", f"stdin must be at most {settings.max_stdin_bytes} bytes")
    check_files(request, settings)
    return Limits(
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        output_bytes=settings.max_output_bytes,
        compile_timeout_s=settings.compile_timeout_s,
        compile_memory_mb=settings.compile_memory_mb,
    )


def check_files(request: ExecuteRequest, settings: Settings) -> None:
    if len(request.files) + len(request.fetch_files) > settings.max_files:
        raise LimitError("files", f"at most {settings.max_files} files may be sent and fetched")
    if sum(len(content) for content in decode_files(request.files).values()) > settings.max_files_bytes:
        raise LimitError("files", f"files must be at most {settings.max_files_bytes} bytes in total")


def check_judge(spec: JudgeSpec, limits: Limits, settings: Settings) -> None:
    if len(spec.cases) * limits.timeout_s > settings.max_judge_s:
        raise LimitError("cases", f"cases times timeout_s must be at most {settings.max_judge_s:g} seconds")


def run_budget_s(request: ExecuteRequest, limits: Limits, runs: int = 1) -> float:
    """The longest a job of `runs` runs (test cases) can legitimately take once a worker has started it."""
    compile_s = limits.compile_timeout_s if request.language in COMPILED else 0.0
    return compile_s + limits.timeout_s * runs
