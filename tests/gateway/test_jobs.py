"""Asynchronous jobs over the real stack: submit, state, long-poll, cancel, idempotency keys."""

from __future__ import annotations

import time
import uuid

import httpx
import redis

from service.queue.keys import Keys
from service.stack import LocalStack


def submit(api: httpx.Client, code: str, **extra: object) -> str:
    response = api.post("/v1/jobs", json={"language": "python", "code": code, **extra})
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "queued"
    job_id: str = response.json()["id"]
    return job_id


def wait_for_state(api: httpx.Client, job_id: str, state: str, timeout_s: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info: dict[str, object] = api.get(f"/v1/jobs/{job_id}").json()
        if info["state"] == state:
            return info
        time.sleep(0.05)
    raise AssertionError(f"{job_id} never reached {state}")


def test_submit_answers_at_once_and_long_poll_returns_the_result(api: httpx.Client) -> None:
    started = time.monotonic()
    job_id = submit(api, "import time; time.sleep(1); print('late')")
    assert time.monotonic() - started < 0.5
    info = api.get(f"/v1/jobs/{job_id}", params={"wait": 20}).json()
    assert info["state"] == "done"
    assert info["result"]["status"] == "ok"
    assert info["result"]["stdout"] == "late\n"
    assert 0.9 < time.monotonic() - started < 10


def test_job_is_running_while_it_runs_then_done(api: httpx.Client) -> None:
    job_id = submit(api, "import time; time.sleep(2)")
    running = wait_for_state(api, job_id, "running")
    assert isinstance(running["worker"], str)
    assert "result" not in running
    assert wait_for_state(api, job_id, "done")["result"]["status"] == "ok"  # type: ignore[index]


def test_long_poll_gives_up_after_wait_seconds_with_the_current_state(api: httpx.Client) -> None:
    job_id = submit(api, "import time; time.sleep(5)")
    started = time.monotonic()
    info = api.get(f"/v1/jobs/{job_id}", params={"wait": 1}).json()
    assert 0.9 < time.monotonic() - started < 3
    assert info["state"] in ("queued", "running")
    api.delete(f"/v1/jobs/{job_id}")


def test_cancel_a_running_job_kills_it_and_its_result_is_cancelled(api: httpx.Client) -> None:
    marker = uuid.uuid4().hex
    job_id = submit(
        api, f"import time\nfor i in range(100):\n    print('{marker}', i, flush=True)\n    time.sleep(0.1)"
    )
    wait_for_state(api, job_id, "running")
    response = api.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 200
    info = response.json()
    assert info["state"] == "done"
    assert info["result"]["status"] == "cancelled"
    # The worker's own (later) result cannot replace the first final one.
    time.sleep(1)
    assert api.get(f"/v1/jobs/{job_id}").json()["result"]["status"] == "cancelled"


def test_cancelled_running_job_frees_its_slot_quickly(api: httpx.Client) -> None:
    # 8 slots in the test stack: cancel 8 sleepers, then a new call must run at once.
    job_ids = [submit(api, "import time; time.sleep(30)") for _ in range(8)]
    for job_id in job_ids:
        wait_for_state(api, job_id, "running")
    for job_id in job_ids:
        api.delete(f"/v1/jobs/{job_id}")
    started = time.monotonic()
    result = api.post("/v1/execute", json={"language": "python", "code": "print(1)"}).json()
    assert result["status"] == "ok"
    assert time.monotonic() - started < 3


def test_cancel_of_a_queued_job_means_it_never_runs(api: httpx.Client) -> None:
    blockers = [submit(api, "import time; time.sleep(3)") for _ in range(8)]
    marker = f"/tmp/never-{uuid.uuid4().hex}"
    job_id = submit(api, f"print('ran {marker}')")
    assert api.get(f"/v1/jobs/{job_id}").json()["state"] == "queued"
    assert api.delete(f"/v1/jobs/{job_id}").json()["result"]["status"] == "cancelled"
    for blocker in blockers:
        api.get(f"/v1/jobs/{blocker}", params={"wait": 20})
    time.sleep(0.5)
    info = api.get(f"/v1/jobs/{job_id}").json()
    assert info["result"]["status"] == "cancelled"
    assert info["result"]["stdout"] == ""


def test_cancel_of_a_finished_job_keeps_its_result(api: httpx.Client) -> None:
    job_id = submit(api, "print('done')")
    api.get(f"/v1/jobs/{job_id}", params={"wait": 20})
    info = api.delete(f"/v1/jobs/{job_id}").json()
    assert info["result"]["status"] == "ok"


def test_unknown_job_is_404_and_malformed_id_is_422(api: httpx.Client) -> None:
    assert api.get(f"/v1/jobs/{uuid.uuid4().hex}").status_code == 404
    assert api.delete(f"/v1/jobs/{uuid.uuid4().hex}").status_code == 404
    assert api.get("/v1/jobs/not-an-id").status_code == 422


def test_results_of_synchronous_calls_are_queryable_by_id(api: httpx.Client) -> None:
    result = api.post("/v1/execute", json={"language": "python", "code": "print(7)"}).json()
    info = api.get(f"/v1/jobs/{result['id']}").json()
    assert info["state"] == "done"
    assert info["result"]["stdout"] == "7\n"


def test_same_idempotency_key_gives_the_same_job(api: httpx.Client) -> None:
    key = uuid.uuid4().hex
    body = {"language": "python", "code": "import random; print(random.random())"}
    first = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": key}).json()
    second = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": key}).json()
    assert first["id"] == second["id"]
    other = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}).json()
    assert other["id"] != first["id"]


def test_execute_with_a_repeated_idempotency_key_returns_the_first_result(api: httpx.Client) -> None:
    key = uuid.uuid4().hex
    body = {"language": "python", "code": "import random; print(random.random())"}
    first = api.post("/v1/execute", json=body, headers={"Idempotency-Key": key}).json()
    second = api.post("/v1/execute", json=body, headers={"Idempotency-Key": key}).json()
    assert first["status"] == "ok"
    assert second == first


def test_a_key_left_by_a_caller_that_died_before_enqueuing_is_taken_over(api: httpx.Client, stack: LocalStack) -> None:
    # As a gateway killed between binding the key and enqueuing leaves it: bound to a job that never was.
    key = uuid.uuid4().hex
    keys = Keys(stack.settings.key_prefix)
    redis.Redis.from_url(stack.settings.redis_url).set(keys.idempotency(key), uuid.uuid4().hex, ex=60)
    body = {"language": "python", "code": "print('ran')", "timeout_s": 5}
    started = time.monotonic()
    result = api.post("/v1/execute", json=body, headers={"Idempotency-Key": key}).json()
    assert (result["status"], result["stdout"]) == ("ok", "ran\n"), result
    assert time.monotonic() - started < 5
    again = api.post("/v1/execute", json=body, headers={"Idempotency-Key": key}).json()
    assert again["id"] == result["id"]
