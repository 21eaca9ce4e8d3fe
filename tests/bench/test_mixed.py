"""The mixed scenario's checks: which `/run_code` answers are right, and how wrong and lost ones are counted."""

from __future__ import annotations

from typing import Any

from service.bench.load import Outcome, tally
from service.bench.mixed import FULL, QUICK
from service.bench.workloads import RUN_CODE_LOOP, RUN_CODE_TRIVIAL


def answer(status: str, run_status: str | None, stdout: str = "") -> dict[str, Any]:
    run = None if run_status is None else {"status": run_status, "stdout": stdout, "return_code": 0}
    return {"status": status, "message": "", "run_result": run}


def test_the_full_shape_is_issue_14s_and_the_quick_one_smaller() -> None:
    assert (FULL.loops, FULL.trivial_calls, FULL.per_round / FULL.interval_s) == (400, 400, 100)
    assert (QUICK.loops, QUICK.trivial_calls) == (100, 100)
    assert RUN_CODE_LOOP.body["run_timeout"] == 2


def test_a_trivial_call_is_right_only_as_success_printing_2() -> None:
    assert RUN_CODE_TRIVIAL.check(answer("Success", "Finished", "2\n")) is None
    assert RUN_CODE_TRIVIAL.check(answer("Success", "Finished", "")) == "wrong stdout"
    assert RUN_CODE_TRIVIAL.check(answer("Failed", "TimeLimitExceeded")) == "status Failed/TimeLimitExceeded"
    assert RUN_CODE_TRIVIAL.check(answer("SandboxError", None)) == "status SandboxError/None"


def test_a_loop_is_right_only_as_failed_at_its_time_limit() -> None:
    assert RUN_CODE_LOOP.check(answer("Failed", "TimeLimitExceeded")) is None
    assert RUN_CODE_LOOP.check(answer("Failed", "Error")) == "status Failed/Error"
    assert RUN_CODE_LOOP.check("not json object") == "malformed result"


def test_tally_tells_wrong_answers_from_lost_calls_and_keeps_a_wrong_one() -> None:
    outcome = Outcome()
    outcome.record(12.0, None)
    outcome.record(5000.0, "TimeoutError", "")
    outcome.record(2500.0, "status Failed/TimeLimitExceeded", '{"status": "Failed"}')
    outcome.record(2600.0, "status Failed/TimeLimitExceeded", '{"status": "Failed", "second": true}')
    counts = tally(outcome, 4, right="right")
    assert (counts["right"], counts["wrong"], counts["lost"]) == (1, 2, 1)
    assert counts["wrong_example"] == '{"status": "Failed"}'
