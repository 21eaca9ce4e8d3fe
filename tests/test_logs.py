"""Structured logs of a real stack: JSON lines, and the request id travels from gateway to worker."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx

from service.logs import JsonFormatter, job_id, request_id
from service.stack import LocalStack
from tests.conftest import OPS_KEY

WAIT_FOR_LOG_S = 30.0


def json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def lines_about(log_dir: Path, pattern: str, key: str, wanted: str) -> list[dict[str, object]]:
    """The log lines with `key` == `wanted`; a process logs a request just after answering, so wait a little."""
    deadline = time.monotonic() + WAIT_FOR_LOG_S
    while True:
        lines = [line for path in log_dir.glob(pattern) for line in json_lines(path)]
        mine = [line for line in lines if line.get(key) == wanted]
        if mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.1)


def execute(stack: LocalStack, code: str, request_id: str) -> httpx.Response:
    headers = {"X-API-Key": OPS_KEY, "X-Request-ID": request_id}
    call = {"language": "python", "code": code}
    return httpx.post(f"{stack.url}/v1/execute", json=call, headers=headers, timeout=60)


def test_worker_logs_the_job_id_and_the_callers_request_id(observed_stack: LocalStack) -> None:
    assert observed_stack.log_dir is not None
    response = execute(observed_stack, "print(1)", "rollout-42.turn-3")
    job = response.json()["id"]
    assert response.headers["x-request-id"] == "rollout-42.turn-3"
    mine = lines_about(observed_stack.log_dir, "worker-*.log", "job_id", job)
    assert mine, f"no log line names job {job}"
    assert all(line["request_id"] == "rollout-42.turn-3" for line in mine)
    assert {"ts", "level", "logger", "msg"} <= set(mine[0])


def test_gateway_logs_one_json_object_per_line_with_the_request_and_its_job(observed_stack: LocalStack) -> None:
    assert observed_stack.log_dir is not None
    response = execute(observed_stack, "pass", "gateway-line-1")
    mine = lines_about(observed_stack.log_dir, "gateway-*.log", "request_id", "gateway-line-1")
    text = (observed_stack.log_dir / "gateway-0.log").read_text()
    assert all(isinstance(json.loads(line), dict) for line in text.splitlines())
    assert [(line["route"], line["code"], line["job_id"]) for line in mine] == [
        ("/v1/execute", 200, response.json()["id"])
    ]


def test_formatter_adds_context_ids_and_extra_fields() -> None:
    record = logging.makeLogRecord({"msg": "job %s done", "args": ("j1",), "levelname": "INFO", "status": "ok"})
    job_token, request_token = job_id.set("j1"), request_id.set("r1")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        job_id.reset(job_token)
        request_id.reset(request_token)
    assert line["msg"] == "job j1 done"
    assert (line["job_id"], line["request_id"], line["status"]) == ("j1", "r1", "ok")
