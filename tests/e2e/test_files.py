"""Files into the workspace and back out, over the real stack, including what hostile code plants."""

from __future__ import annotations

import base64

import httpx
import pytest


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def execute(api: httpx.Client, code: str, **body: object) -> dict[str, object]:
    response = api.post("/v1/execute", json={"language": "python", "code": code, **body})
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_files_go_in_and_come_back(api: httpx.Client) -> None:
    code = "data = open('in/data.bin', 'rb').read()\nopen('out/result.bin', 'wb').write(data[::-1])"
    payload = bytes(range(256))
    result = execute(
        api, f"import os\nos.mkdir('out')\n{code}", files={"in/data.bin": b64(payload)}, fetch_files=["out/result.bin"]
    )
    assert result["status"] == "ok", result
    assert result["files"] == {"out/result.bin": b64(payload[::-1])}
    assert result["file_errors"] == {}


def test_missing_file_is_reported_not_fatal(api: httpx.Client) -> None:
    result = execute(api, "open('a.txt','w').write('a')", fetch_files=["a.txt", "nope.txt"])
    assert result["files"] == {"a.txt": b64(b"a")}
    assert result["file_errors"] == {"nope.txt": "not found"}


def test_symlink_planted_by_the_program_is_not_followed(api: httpx.Client) -> None:
    code = "import os\nos.symlink('/etc/hostname', 'leak')\nos.mkdir('d')\nos.symlink('/etc', 'd/etc')"
    result = execute(api, code, fetch_files=["leak", "d/etc/hostname"])
    assert result["status"] == "ok"
    assert result["files"] == {}
    assert set(result["file_errors"]) == {"leak", "d/etc/hostname"}  # type: ignore[arg-type]


def test_fifo_and_directory_are_refused_without_blocking(api: httpx.Client) -> None:
    result = execute(api, "import os\nos.mkfifo('pipe')\nos.mkdir('dir')", fetch_files=["pipe", "dir"])
    assert result["file_errors"] == {"pipe": "not a regular file", "dir": "not a regular file"}


def test_fetched_bytes_are_capped(api: httpx.Client) -> None:
    code = "open('big', 'wb').write(b'x' * (9 * 2**20))\nopen('small', 'wb').write(b'y')"
    result = execute(api, code, fetch_files=["small", "big"])
    assert result["files"] == {"small": b64(b"y")}
    assert "larger than" in result["file_errors"]["big"]  # type: ignore[index]


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", "", "a//b", "./a"])
def test_unsafe_paths_are_422(api: httpx.Client, path: str) -> None:
    for body in ({"files": {path: b64(b"x")}}, {"fetch_files": [path]}):
        response = api.post("/v1/execute", json={"language": "python", "code": "pass", **body})
        assert response.status_code == 422, (path, body)


def test_content_that_is_not_base64_is_422(api: httpx.Client) -> None:
    response = api.post("/v1/execute", json={"language": "python", "code": "pass", "files": {"a": "not base64!"}})
    assert response.status_code == 422
    assert "base64" in response.text
