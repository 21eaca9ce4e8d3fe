"""The OpenAPI document's answers that no single route raises: declared once, from where they come from.

A body the server cannot decode is a 400 and one over the size cap a 413 on every operation that takes a
body (FastAPI's parser, `BodyLimitMiddleware`); a malformed `Idempotency-Key` is a 400 where the header
is read; the API-key dependency answers 401 and its rate limit 429 on every authenticated operation.
Every error answer gets the schema of its body (`Problem`, or FastAPI's validation error for 422) and
the headers the app's handlers send with it, so generated clients and schemathesis see what is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

PROBLEM_REF = "#/components/schemas/Problem"
METHODS = ("get", "put", "post", "delete", "patch")
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}}
HEADERS: dict[str, dict[str, Any]] = {
    "401": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    "429": RETRY_AFTER,
    "503": RETRY_AFTER,
}
BODY_ANSWERS = {
    "400": "The body is not JSON the server can decode",
    "413": "Request body too large",
}
AUTH_ANSWERS = {
    "401": "Missing or invalid API key (when keys are configured)",
    "429": "Rate limit, tenant quota or queue depth reached; retry after `Retry-After` seconds",
}
# For routes to declare where they read or write Redis: the app's handler answers 503 when it is down.
QUEUE_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "Queue unavailable; retry after `Retry-After` seconds"}
}
IDEMPOTENCY_ANSWER = "The body cannot be decoded, or `Idempotency-Key` is not 1 to 200 characters"


class Problem(BaseModel):
    """The body of every error answer but 422's."""

    detail: str | dict[str, Any] | list[dict[str, Any]] = Field(
        description="What went wrong; for 504, the job's `id` and a `message`"
    )
    reason: str | None = Field(default=None, description="For 429: `rate_limit`, `queue_full` or `tenant_quota`")


def component_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s schema for a response FastAPI does not model (another media type), its nested models
    referred to among the document's components rather than under a `$defs` no reference resolves."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def declare_shared_answers(app: FastAPI, public: Sequence[APIRouter]) -> None:
    """Make `app.openapi()` add the shared answers to the document FastAPI builds (once, then cached).

    Every operation is authenticated but those of the `public` routers.
    """
    build: Callable[[], dict[str, Any]] = app.openapi
    unauthenticated = {
        (route.path, method.lower())
        for router in public
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build(), unauthenticated)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], unauthenticated: set[tuple[str, str]]) -> dict[str, Any]:
    document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = Problem.model_json_schema()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            # The open routes (health) answer in shapes of their own, declared where they are.
            if method not in METHODS or (path, method) in unauthenticated:
                continue
            responses: dict[str, Any] = operation["responses"]
            if any(parameter["name"].lower() == "idempotency-key" for parameter in operation.get("parameters", [])):
                responses.setdefault("400", {"description": IDEMPOTENCY_ANSWER})
            if "requestBody" in operation:
                for code, description in BODY_ANSWERS.items():
                    responses.setdefault(code, {"description": description})
            for code, description in AUTH_ANSWERS.items():
                responses.setdefault(code, {"description": description})
            for code, response in responses.items():
                describe_error(code, response)
    return document


def describe_error(code: str, response: dict[str, Any]) -> None:
    if code.startswith("2"):
        return
    if "content" not in response:
        response["content"] = {"application/json": {"schema": {"$ref": PROBLEM_REF}}}
    if code in HEADERS:
        response.setdefault("headers", HEADERS[code])
