"""`sandpit up` starts the whole stack with one command, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import redis

from service.config import Settings
from service.stack import LocalStack, free_port


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_up_serves_calls_and_ctrl_c_stops_everything() -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    env.pop("REDIS_URL", None)
    up = subprocess.Popen([sys.executable, "-m", "service.cli", "up"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        body = {"language": "python", "code": "print(1+1)"}
        result = httpx.post(f"{url}/v1/execute", json=body, timeout=60).json()
        assert (result["status"], result["stdout"]) == ("ok", "2\n")
        spawned = descendants(up.pid)
        assert len(spawned) >= 3  # redis-server, a worker, the gateway
        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0
        time.sleep(0.2)
        assert [pid for pid in spawned if alive(pid)] == []
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


@pytest.mark.parametrize("depth", [0, 100], ids=["socket", "too-deep-for-a-socket"])
def test_the_embedded_redis_is_reached_by_its_socket_where_the_path_allows(
    depth: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over a Unix socket only this user may open; over TCP where the temporary directory is so deep
    that the socket's path would not fit in a socket address."""
    base = tmp_path / ("d" * depth) if depth else tmp_path
    base.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    stack = LocalStack(Settings(port=free_port()), workers=1, redis_url_given=False)
    try:
        stack._start_redis()
        url = stack.settings.redis_url
        if depth:
            assert url == f"redis://127.0.0.1:{stack.redis_port}/0"
        else:
            assert url.startswith(f"unix://{base}/")
            assert stack.redis_socket is not None
            assert stack.redis_socket.stat().st_mode & 0o777 == 0o700
        assert redis.Redis.from_url(url).ping()
    finally:
        stack.stop()
