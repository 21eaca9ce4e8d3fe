"""Session fixtures: a real redis-server, and real local stacks (Redis, gateway, worker processes)."""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.config import Settings
from service.gateway.auth import hash_key
from service.stack import LocalStack, free_port


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Path]:
    """A private redis-server for tests that talk to the queue directly, on a loopback port and a Unix
    socket; yields its directory, which holds `port` and `redis.sock`."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sandpit-test-redis-"))
    unix_socket = workdir / "redis.sock"
    server = subprocess.Popen(
        [
            *("redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir), "--save", ""),
            *("--unixsocket", str(unix_socket), "--unixsocketperm", "700"),
        ],
        stdout=subprocess.DEVNULL,
    )
    (workdir / "port").write_text(str(port))
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield workdir
    server.terminate()
    server.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(redis_server: Path) -> str:
    return f"redis://127.0.0.1:{(redis_server / 'port').read_text()}/0"


@pytest.fixture(scope="session")
def redis_unix_url(redis_server: Path) -> str:
    return f"unix://{redis_server / 'redis.sock'}?db=0"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """Redis, two worker processes and a gateway, as `sandpit up` runs them, on free ports."""
    settings = Settings(port=free_port(), worker_concurrency=4, default_timeout_s=5.0, reclaim_idle_s=6.0)
    with LocalStack(settings, workers=2, redis_url_given=False) as local:
        yield local


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=120) as client:
        yield client


OPS_KEY = "sp-test-ops"
THROTTLED_KEY = "sp-test-throttled"


def free_port_pair() -> int:
    """A port p with p + 1 also free: `sandpit up` gives its second worker's metrics p + 1.

    Picked below the kernel's ephemeral range, so no outgoing connection takes p + 1 meanwhile.
    """
    while True:
        port = random.randrange(20000, 32000)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


@pytest.fixture(scope="session")
def observed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack with worker metrics, debug JSON logs in files, fast queue sampling and two tenants.

    Tenant `ops` (key OPS_KEY) is unlimited; `throttled` (THROTTLED_KEY) is refused by its rate limit.
    """
    directory = tmp_path_factory.mktemp("observed")
    keys = [
        {"name": "ops", "key_sha256": hash_key(OPS_KEY)},
        {"name": "throttled", "key_sha256": hash_key(THROTTLED_KEY), "rate_per_s": 0.001},
    ]
    (directory / "keys.json").write_text(json.dumps({"tenants": keys}))
    settings = Settings(
        port=free_port(),
        worker_concurrency=2,
        worker_metrics_port=free_port_pair(),
        log_level="DEBUG",
        metrics_sample_interval_s=0.2,
        api_keys_file=directory / "keys.json",
    )
    with LocalStack(settings, workers=2, redis_url_given=False, log_dir=directory / "logs") as local:
        yield local
