"""Judging: build a program once, run it on every test case, and compare outputs here, in the worker.

The sandboxed program only ever sees a case's stdin; the expected output stays in this process and the
comparison runs outside the sandbox, so nothing the program does can forge a verdict. Cases run one
after another in the job's slot, each in a fresh copy of the built workspace.
"""

from __future__ import annotations

import logging
import math

from service.models import (
    CaseResult,
    Compare,
    ExecutionResult,
    Job,
    JudgeCase,
    JudgeReport,
    JudgeSpec,
    StageResult,
    Status,
    Verdict,
)
from service.sandbox.cases import BuiltProgram
from service.sandbox.executor import Sandbox

log = logging.getLogger(__name__)

# How much of a failing case's output comes back, to help debugging without bloating results.
OUTPUT_EXCERPT = 1024
VERDICT_OF_STATUS = {
    Status.timeout: Verdict.timeout,
    Status.memory_limit: Verdict.memory_limit,
}


def outputs_match(actual: str, expected: str, spec: JudgeSpec) -> bool:
    if spec.compare == Compare.exact:
        return actual == expected
    got, want = actual.split(), expected.split()
    if spec.compare == Compare.whitespace:
        return got == want
    return len(got) == len(want) and all(tokens_close(a, b, spec.tolerance) for a, b in zip(got, want, strict=True))


def tokens_close(actual: str, expected: str, tolerance: float) -> bool:
    try:
        a, b = float(actual), float(expected)
    except ValueError:
        return actual == expected
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def verdict_of(stage: StageResult, case: JudgeCase, spec: JudgeSpec) -> Verdict:
    if stage.status in VERDICT_OF_STATUS:
        return VERDICT_OF_STATUS[stage.status]
    if stage.status != Status.ok:
        return Verdict.runtime_error
    if stage.truncated or not outputs_match(stage.stdout, case.expected_stdout, spec):
        return Verdict.wrong_answer
    return Verdict.accepted


def case_result(index: int, stage: StageResult, verdict: Verdict) -> CaseResult:
    failed = verdict != Verdict.accepted
    return CaseResult(
        index=index,
        verdict=verdict,
        status=stage.status,
        exit_code=stage.exit_code,
        duration_ms=stage.duration_ms,
        stdout=stage.stdout[:OUTPUT_EXCERPT] if failed else "",
        stderr=stage.stderr[:OUTPUT_EXCERPT] if failed else "",
    )


def report(cases: list[CaseResult]) -> JudgeReport:
    passed = sum(case.verdict == Verdict.accepted for case in cases)
    first_failure = next((case.verdict for case in cases if case.verdict != Verdict.accepted), Verdict.accepted)
    return JudgeReport(
        verdict=first_failure, passed=passed, total=len(cases), pass_ratio=passed / len(cases), cases=cases
    )


async def judge(sandbox: Sandbox, job: Job, spec: JudgeSpec, slot: int) -> ExecutionResult:
    program = BuiltProgram(sandbox, job, slot)
    try:
        compiled = await program.build()
        if compiled is not None and compiled.status != Status.ok:
            return compile_failure(job, spec, compiled)
        cases = await run_cases(program, spec)
        return ExecutionResult(
            id=job.id,
            status=Status.ok,
            compile=compiled,
            duration_ms=round(sum(case.duration_ms for case in cases), 3),
            judge=report(cases),
        )
    except Exception as exc:
        log.exception("judge failure", extra={"job_id": job.id})
        return ExecutionResult(id=job.id, status=Status.sandbox_error, reason=f"{type(exc).__name__}: {exc}")
    finally:
        program.close()


async def run_cases(program: BuiltProgram, spec: JudgeSpec) -> list[CaseResult]:
    results: list[CaseResult] = []
    stopped = False
    for index, case in enumerate(spec.cases):
        if stopped:
            results.append(CaseResult(index=index, verdict=Verdict.skipped))
            continue
        stage = await program.run(case.stdin.encode())
        results.append(case_result(index, stage, verdict_of(stage, case, spec)))
        stopped = spec.stop_on_first_failure and results[-1].verdict != Verdict.accepted
    return results


def compile_failure(job: Job, spec: JudgeSpec, compiled: StageResult) -> ExecutionResult:
    cases = [CaseResult(index=index, verdict=Verdict.compile_error) for index in range(len(spec.cases))]
    return ExecutionResult(
        id=job.id,
        status=Status.timeout if compiled.status == Status.timeout else Status.compile_error,
        exit_code=compiled.exit_code,
        stderr=compiled.stderr,
        compile=compiled,
        reason="compilation failed",
        judge=report(cases),
    )
