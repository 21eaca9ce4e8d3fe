"""Bad requests over real HTTP get a clear 4xx, never a 500, and never reach a worker."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"language": "cobol", "code": "DISPLAY 1."}, "language"),
        ({"language": "python", "code": ""}, "code"),
        ({"code": "print(1)"}, "language"),
        ({"language": "python", "code": "pass", "timeout_s": 10_000}, "timeout_s"),
        ({"language": "python", "code": "pass", "timeout_s": -1}, "timeout_s"),
        ({"language": "python", "code": "pass", "memory_mb": 10**6}, "memory_mb"),
        ({"language": "python", "code": "pass", "memory_mb": "lots"}, "memory_mb"),
        ({"language": "python", "code": "pass", "extra": 1}, "extra"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(api: httpx.Client, body: dict[str, object], field: str) -> None:
    response = api.post("/v1/execute", json=body)
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert any(field in detail["loc"] for detail in details), details
    assert all(detail["msg"] for detail in details)


def test_malformed_json_is_422(api: httpx.Client) -> None:
    response = api.post(
        "/v1/execute", content=b'{"language": "python", "code": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_body_over_the_cap_is_413(api: httpx.Client) -> None:
    response = api.post("/v1/execute", json={"language": "python", "code": "#" + "x" * (3 * 2**20)})
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def test_streamed_body_over_the_cap_is_413(api: httpx.Client) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"language": "python", "code": "'
        for _ in range(40):
            yield b"x" * 100_000
        yield b'"}'

    response = api.post("/v1/execute", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_unknown_route_is_404_and_wrong_method_405(api: httpx.Client) -> None:
    assert api.get("/v1/nope").status_code == 404
    assert api.get("/v1/execute").status_code == 405


def test_service_still_answers_after_bad_requests(api: httpx.Client) -> None:
    api.post("/v1/execute", content=b"\xff\xfe garbage", headers={"content-type": "application/json"})
    response = api.post("/v1/execute", json={"language": "python", "code": "print('fine')"})
    assert response.json()["stdout"] == "fine\n"
