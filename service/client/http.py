"""HTTP clients for the Sandpit API, built on httpx with one pooled connection set per client."""

from __future__ import annotations

from typing import Any

import httpx

from service.models import ExecuteRequest, ExecutionResult, Language

DEFAULT_URL = "http://127.0.0.1:8080"


class SandpitError(RuntimeError):
    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


def _request_body(language: Language | str, code: str, **options: Any) -> dict[str, Any]:
    request = ExecuteRequest(language=Language(language), code=code, **options)
    return request.model_dump(exclude_none=True, mode="json")


def _parse(response: httpx.Response) -> ExecutionResult:
    if response.status_code != 200:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        raise SandpitError(response.status_code, detail)
    return ExecutionResult.model_validate_json(response.content)


class SandpitClient:
    def __init__(self, url: str = DEFAULT_URL, timeout_s: float = 300.0) -> None:
        self._http = httpx.Client(base_url=url, timeout=timeout_s)

    def execute(self, language: Language | str, code: str, **options: Any) -> ExecutionResult:
        return _parse(self._http.post("/v1/execute", json=_request_body(language, code, **options)))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandpitClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncSandpitClient:
    def __init__(self, url: str = DEFAULT_URL, timeout_s: float = 300.0, max_connections: int = 1000) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits)

    async def execute(self, language: Language | str, code: str, **options: Any) -> ExecutionResult:
        return _parse(await self._http.post("/v1/execute", json=_request_body(language, code, **options)))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSandpitClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
