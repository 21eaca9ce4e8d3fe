"""Helpers the tests share for sending calls over HTTP."""

from __future__ import annotations

import os

import httpx

from service.sandbox.limits import V1_CONTROLLERS, cgroup_mounts

# Root on a host with the cgroup v1 memory, pids and cpuacct hierarchies: where workers must use them.
HOST_HAS_CGROUP_V1 = os.geteuid() == 0 and all(name in cgroup_mounts() for name in V1_CONTROLLERS)


def execute(api: httpx.Client, **body: object) -> dict[str, object]:
    """POST /v1/execute, expect 200, return the result."""
    response = api.post("/v1/execute", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result
