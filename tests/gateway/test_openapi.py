"""The OpenAPI document covers every endpoint with a summary, and /docs renders it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

PATHS = {
    "/v1/execute",
    "/v1/execute/batch",
    "/v1/jobs",
    "/v1/jobs/{job_id}",
    "/v1/judge",
    "/v1/tools",
    "/v1/tools/{name}",
    "/run_code",
    "/v1/languages",
}


def test_every_endpoint_is_documented_with_a_summary(api: httpx.Client) -> None:
    document = api.get("/openapi.json").json()
    assert set(document["paths"]) >= PATHS
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)


def has_example(content: dict[str, Any], schemas: dict[str, Any]) -> bool:
    schema = content.get("schema", {})
    if "$ref" in schema:
        schema = schemas[schema["$ref"].split("/")[-1]]
    return any(key in holder for holder in (content, schema) for key in ("example", "examples"))


def test_every_request_and_response_body_has_an_example(api: httpx.Client) -> None:
    document = api.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                assert has_example(content, schemas), (method, path, "request")
            for code, response in operation["responses"].items():
                if code.startswith("2") and code != "204":
                    contents = response.get("content", {}).values()
                    assert any(has_example(content, schemas) for content in contents), (method, path, code)


def test_docs_page_renders(api: httpx.Client) -> None:
    response = api.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text


# The operations schemathesis found answering an undeclared 400, and what made them answer it.
SEVEN = [
    ("post", "/run_code"),
    ("post", "/v1/execute"),
    ("post", "/v1/execute/batch"),
    ("post", "/v1/jobs"),
    ("post", "/v1/judge"),
    ("post", "/v1/sessions"),
    ("post", "/v1/sessions/{session_id}/execute"),
]
# Without an API key, answering in shapes of their own.
OPEN = ("/healthz", "/readyz")
UNDECODABLE = b'{"code": "\xff\xfe"}'
SESSION = "0" * 32


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, operation) for path, ops in document["paths"].items() for method, operation in ops.items()]


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if isinstance(node.get("$ref"), str) else [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def test_every_reference_resolves(api: httpx.Client) -> None:
    document = api.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/") and ref.split("/")[-1] in schemas, ref


def test_every_answer_has_a_body_schema_and_every_error_its_headers(api: httpx.Client) -> None:
    document = api.get("/openapi.json").json()
    for method, path, operation in operations(document):
        if path in OPEN:
            continue
        for code, response in operation["responses"].items():
            if code == "204":
                continue
            assert all("schema" in content for content in response["content"].values()), (method, path, code)
            if code in ("429", "503"):
                assert "Retry-After" in response["headers"], (method, path, code)


def test_body_taking_and_authenticated_operations_declare_their_shared_answers(api: httpx.Client) -> None:
    document = api.get("/openapi.json").json()
    for method, path, operation in operations(document):
        declared = set(operation["responses"])
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= declared, (method, path)
        if path not in OPEN:
            assert {"401", "429"} <= declared, (method, path)


@pytest.mark.parametrize(("method", "path"), SEVEN)
def test_an_undecodable_body_gets_a_declared_400(api: httpx.Client, method: str, path: str) -> None:
    declared = api.get("/openapi.json").json()["paths"][path][method]["responses"]
    url = path.replace("{session_id}", SESSION)
    response = api.request(method, url, content=UNDECODABLE, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert str(response.status_code) in declared
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("path", ["/v1/execute", "/v1/jobs", "/v1/judge"])
def test_an_overlong_idempotency_key_gets_a_declared_400(api: httpx.Client, path: str) -> None:
    declared = api.get("/openapi.json").json()["paths"][path]["post"]["responses"]
    body = {"language": "python", "code": "print(1)", "cases": [{"expected_stdout": "1\n"}]}
    if path != "/v1/judge":
        body.pop("cases")
    response = api.post(path, json=body, headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 400, response.text
    assert "400" in declared and "Idempotency-Key" in declared["400"]["description"]
