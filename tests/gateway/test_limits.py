"""Unit tests: how a request's limits are resolved against the settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.config import Settings
from service.gateway.limits import LimitError, resolve_limits, run_budget_s
from service.models import ExecuteRequest, Language

SETTINGS = Settings(
    default_timeout_s=7, max_timeout_s=30, default_memory_mb=256, max_memory_mb=1024, max_code_bytes=100
)


def test_defaults_fill_in_what_the_request_leaves_out() -> None:
    limits = resolve_limits(ExecuteRequest(language=Language.python, code="pass"), SETTINGS)
    assert (limits.timeout_s, limits.memory_mb) == (7, 256)


def test_requested_limits_within_range_are_kept() -> None:
    limits = resolve_limits(ExecuteRequest(language="bash", code="true", timeout_s=2.5, memory_mb=64), SETTINGS)
    assert (limits.timeout_s, limits.memory_mb) == (2.5, 64)


@pytest.mark.parametrize(
    ("field", "request_fields"),
    [
        ("timeout_s", {"timeout_s": 31}),
        ("memory_mb", {"memory_mb": 2048}),
        ("memory_mb", {"memory_mb": 8}),
        ("code", {"code": "x" * 101}),
    ],
)
def test_out_of_range_limits_name_the_field(field: str, request_fields: dict[str, object]) -> None:
    request = ExecuteRequest(**{"language": "python", "code": "pass", **request_fields})  # type: ignore[arg-type]
    with pytest.raises(LimitError) as caught:
        resolve_limits(request, SETTINGS)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "body",
    [
        {"language": "cobol", "code": "DISPLAY 1."},
        {"language": "python", "code": ""},
        {"language": "python"},
        {"language": "python", "code": "pass", "timeout_s": 0},
        {"language": "python", "code": "pass", "memory_mb": -1},
        {"language": "python", "code": "pass", "surprise": True},
    ],
)
def test_malformed_requests_are_rejected_by_the_model(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ExecuteRequest.model_validate(body)


def test_compiled_languages_get_the_compile_time_in_their_budget() -> None:
    cpp = ExecuteRequest(language="cpp", code="int main(){}", timeout_s=2)
    python = ExecuteRequest(language="python", code="pass", timeout_s=2)
    assert run_budget_s(cpp, resolve_limits(cpp, SETTINGS)) == 2 + SETTINGS.compile_timeout_s
    assert run_budget_s(python, resolve_limits(python, SETTINGS)) == 2
