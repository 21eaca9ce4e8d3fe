"""Session fixtures: a real redis-server, and a real local stack (Redis, gateway, worker processes)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.config import Settings
from service.stack import LocalStack, free_port


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server for tests that talk to the queue directly."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sandpit-test-redis-"))
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield url
    server.terminate()
    server.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """Redis, two worker processes and a gateway, as `sandpit up` runs them, on free ports."""
    settings = Settings(port=free_port(), worker_concurrency=4, default_timeout_s=5.0, reclaim_idle_s=6.0)
    local = LocalStack(settings, workers=2, redis_url_given=False)
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=120) as client:
        yield client
