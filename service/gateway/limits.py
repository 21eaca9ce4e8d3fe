"""Turn what a request asks for into the limits its job runs under, refusing what is out of range."""

from __future__ import annotations

from service.config import Settings
from service.languages import compiled_languages
from service.models import ExecuteRequest, JudgeSpec, Limits, decode_files

COMPILED = compiled_languages()


class LimitError(ValueError):
    def __init__(self, field: str, message: str, within: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.field = field
        # Where in the body the field is, for fields of list items: ("cases", 3) for cases[3].
        self.loc = (*within, field)


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
    for index, case in enumerate(spec.cases):
        case_limits = limits.for_case(case)
        if case_limits.timeout_s > settings.max_timeout_s:
            raise LimitError("timeout_s", f"timeout_s must be at most {settings.max_timeout_s:g}", ("cases", index))
        if not 16 <= case_limits.memory_mb <= settings.max_memory_mb:
            raise LimitError("memory_mb", f"memory_mb must be 16 to {settings.max_memory_mb}", ("cases", index))
    if judge_run_s(spec, limits) > settings.max_judge_s:
        raise LimitError("cases", f"the cases' time limits must add up to at most {settings.max_judge_s:g} seconds")


def judge_run_s(spec: JudgeSpec, limits: Limits) -> float:
    return sum(limits.for_case(case).timeout_s for case in spec.cases)


def run_budget_s(request: ExecuteRequest, limits: Limits, run_s: float | None = None) -> float:
    """The longest a job can legitimately take once a worker has started it (`run_s`: its runs' total)."""
    compile_s = limits.compile_timeout_s if request.language in COMPILED else 0.0
    return compile_s + (limits.timeout_s if run_s is None else run_s)
