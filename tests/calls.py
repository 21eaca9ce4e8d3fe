"""Helpers the tests share for sending calls over HTTP."""

from __future__ import annotations

import httpx


def execute(api: httpx.Client, **body: object) -> dict[str, object]:
    """POST /v1/execute, expect 200, return the result."""
    response = api.post("/v1/execute", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result
