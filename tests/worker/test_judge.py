"""How the worker compares a program's output with the expected one (outside the sandbox)."""

from __future__ import annotations

import pytest

from service.models import Compare, JudgeSpec
from service.worker.judge import outputs_match


def spec(compare: Compare, tolerance: float = 1e-6) -> JudgeSpec:
    return JudgeSpec(cases=[{"expected_stdout": ""}], compare=compare, tolerance=tolerance)


@pytest.mark.parametrize(
    ("actual", "expected", "compare", "match"),
    [
        ("3\n", "3\n", Compare.exact, True),
        ("3", "3\n", Compare.exact, False),
        ("3 4\n", "3  4", Compare.whitespace, True),
        ("3\n4\n\n", "3 4", Compare.whitespace, True),
        ("3 4 5", "3 4", Compare.whitespace, False),
        ("0.3333333", "0.33333333", Compare.float, True),
        ("0.34", "0.33", Compare.float, False),
        ("1e9", "1000000000.0000001", Compare.float, True),
        ("yes 2.0000001", "yes 2", Compare.float, True),
        ("no 2", "yes 2", Compare.float, False),
        ("nan", "nan", Compare.float, True),
        ("nan", "1", Compare.float, False),
        ("1 2", "1", Compare.float, False),
    ],
)
def test_outputs_match(actual: str, expected: str, compare: Compare, match: bool) -> None:
    assert outputs_match(actual, expected, spec(compare)) is match


def test_float_tolerance_is_the_callers(actual: str = "1.05", expected: str = "1.0") -> None:
    assert not outputs_match(actual, expected, spec(Compare.float, 1e-3))
    assert outputs_match(actual, expected, spec(Compare.float, 0.1))
