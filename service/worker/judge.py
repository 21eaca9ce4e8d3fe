"""Judging: build a program once, run it on every test case, and compare outputs here, in the worker.

The sandboxed program only ever sees a case's stdin; the expected output stays in this process and the
comparison runs outside the sandbox, so nothing the program does can forge a verdict. Each case runs
in a fresh copy of the built workspace: in the job's own slot and, in parallel, in idle slots the
worker lends while cases remain.
"""

from __future__ import annotations

import asyncio
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
from service.worker.slots import Loan, SlotLender

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
        cpu_ms=stage.cpu_ms,
        peak_memory_kb=stage.peak_memory_kb,
        stdout=stage.stdout[:OUTPUT_EXCERPT] if failed else "",
        stderr=stage.stderr[:OUTPUT_EXCERPT] if failed else "",
    )


def report(cases: list[CaseResult]) -> JudgeReport:
    passed = sum(case.verdict == Verdict.accepted for case in cases)
    first_failure = next((case.verdict for case in cases if case.verdict != Verdict.accepted), Verdict.accepted)
    return JudgeReport(
        verdict=first_failure, passed=passed, total=len(cases), pass_ratio=passed / len(cases), cases=cases
    )


async def judge(sandbox: Sandbox, job: Job, spec: JudgeSpec, slot: int, lender: SlotLender) -> ExecutionResult:
    program = BuiltProgram(sandbox, job, slot)
    loan = lender.borrow(len(spec.cases) - 1)
    try:
        compiled = await program.build()
        if compiled is not None and compiled.status != Status.ok:
            return compile_failure(job, spec, compiled)
        cases = await CaseRun(program, spec).run(slot, loan)
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
        lender.give_back(loan)
        program.close()


class CaseRun:
    """The cases of one judge job, taken in order by one runner per slot: the job's own from the
    start, and one more for each idle slot the worker lends while cases remain."""

    def __init__(self, program: BuiltProgram, spec: JudgeSpec) -> None:
        self.program = program
        self.spec = spec
        self.results: list[CaseResult] = [CaseResult(index=i, verdict=Verdict.skipped) for i in range(len(spec.cases))]
        self.next_index = 0
        self.first_failure = len(spec.cases)

    async def run(self, own_slot: int, loan: Loan) -> list[CaseResult]:
        runners = {asyncio.create_task(self._drain(own_slot))}
        lent = asyncio.create_task(loan.slots.get())
        try:
            while runners:
                done, _ = await asyncio.wait({*runners, lent}, return_when=asyncio.FIRST_COMPLETED)
                for runner in done & runners:
                    runner.result()  # a runner's failure is the judge's sandbox_error
                runners -= done
                if lent in done:
                    runners.add(asyncio.create_task(self._drain(lent.result())))
                    lent = asyncio.create_task(loan.slots.get())
        finally:
            lent.cancel()
            for runner in runners:
                runner.cancel()
        # Cases after the first failure are skipped even if a parallel runner already ran them.
        if self.spec.stop_on_first_failure:
            for index in range(self.first_failure + 1, len(self.results)):
                self.results[index] = CaseResult(index=index, verdict=Verdict.skipped)
        return self.results

    def _take(self) -> int | None:
        if self.next_index >= len(self.spec.cases):
            return None
        if self.spec.stop_on_first_failure and self.next_index > self.first_failure:
            return None
        self.next_index += 1
        return self.next_index - 1

    async def _drain(self, slot: int) -> None:
        while (index := self._take()) is not None:
            case = self.spec.cases[index]
            stage = await self.program.run(case.stdin.encode(), slot, self.program.job.limits.for_case(case))
            verdict = verdict_of(stage, case, self.spec)
            self.results[index] = case_result(index, stage, verdict)
            if verdict != Verdict.accepted:
                self.first_failure = min(self.first_failure, index)


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
