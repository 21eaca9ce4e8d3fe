"""`POST /v1/execute/batch` over the real stack: order, isolation of slow calls, streaming, validation."""

from __future__ import annotations

import time

import httpx
import orjson


def python(code: str, **options: object) -> dict[str, object]:
    return {"language": "python", "code": code, **options}


def test_batch_results_come_back_in_request_order(api: httpx.Client) -> None:
    calls = [python(f"print({i} * {i})") for i in range(50)]
    response = api.post("/v1/execute/batch", json={"calls": calls})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["stdout"] for result in results] == [f"{i * i}\n" for i in range(50)]
    assert all(result["status"] == "ok" for result in results)
    assert len({result["id"] for result in results}) == 50


def test_batch_mixes_languages_and_statuses(api: httpx.Client) -> None:
    calls = [
        python("print('a')"),
        {"language": "bash", "code": "exit 3"},
        python("while True: pass", timeout_s=0.5),
        {"language": "cpp", "code": "int main() { return nope; }"},
    ]
    results = api.post("/v1/execute/batch", json={"calls": calls}).json()["results"]
    assert [result["status"] for result in results] == ["ok", "error", "timeout", "compile_error"]


def test_streamed_batch_sends_fast_results_before_a_slow_one_finishes(api: httpx.Client) -> None:
    calls = [python("import time; time.sleep(3); print('slow')"), *[python(f"print({i})") for i in range(1, 6)]]
    started = time.monotonic()
    arrivals: list[tuple[float, dict[str, object]]] = []
    with api.stream("POST", "/v1/execute/batch", params={"stream": "true"}, json={"calls": calls}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        for line in response.iter_lines():
            arrivals.append((time.monotonic() - started, orjson.loads(line)))
    assert sorted(line["index"] for _, line in arrivals) == list(range(6))  # type: ignore[type-var]
    fast = [at for at, line in arrivals if line["index"] != 0]
    slow_at = next(at for at, line in arrivals if line["index"] == 0)
    assert max(fast) < 2.5 <= slow_at, arrivals
    assert arrivals[-1][1]["index"] == 0
    for _, line in arrivals:
        result = line["result"]
        assert isinstance(result, dict) and result["status"] == "ok"


def test_invalid_call_in_a_batch_is_422_naming_its_index(api: httpx.Client) -> None:
    calls = [python("print(1)"), python("print(2)", timeout_s=10_000)]
    response = api.post("/v1/execute/batch", json={"calls": calls})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "calls", 1, "timeout_s"]


def test_batch_size_is_capped_at_one_thousand(api: httpx.Client) -> None:
    response = api.post("/v1/execute/batch", json={"calls": [python("1")] * 1001})
    assert response.status_code == 422
    assert api.post("/v1/execute/batch", json={"calls": []}).status_code == 422


def test_thousand_call_batch_all_answer(api: httpx.Client) -> None:
    calls = [python(f"print({i})") for i in range(1000)]
    response = api.post("/v1/execute/batch", json={"calls": calls}, timeout=300)
    assert response.status_code == 200
    results = response.json()["results"]
    bad = [
        (i, r["status"], r.get("reason"), r["stderr"][-300:]) for i, r in enumerate(results) if r["stdout"] != f"{i}\n"
    ]
    assert not bad
