"""Session fixtures for the container tests: a Docker engine, the images, and a compose stack on loopback.

`make test-docker` runs these; `make test` leaves them out. When no engine answers, the session starts
its own `dockerd` (root only) and stops exactly that process at the end. The images are built offline by
sandbox_images/build.sh; the compose project is taken down with its volumes whatever the outcome.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.stack import free_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "deploy" / "compose" / "compose.yaml"
SECCOMP_PROFILE = REPO / "deploy" / "seccomp" / "sandpit-worker.json"
PROJECT = "sandpit-test"
# A killed worker's calls go back to the queue after this long without a heartbeat refresh.
RECLAIM_IDLE_S = 5
WORKER_SLOTS = 4


def docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    if docker_answers():
        yield
        return
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("no Docker engine answers and this session cannot start dockerd")
    log = Path(tempfile.mkdtemp(prefix="sandpit-dockerd-")) / "dockerd.log"
    with log.open("wb") as out:
        dockerd = subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not docker_answers():
            if dockerd.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not come up; see {log}")
            time.sleep(0.5)
        yield
    finally:
        dockerd.terminate()
        try:
            dockerd.wait(60)
        except subprocess.TimeoutExpired:
            dockerd.kill()
            dockerd.wait()


@pytest.fixture(scope="session")
def images(docker_engine: None) -> None:
    subprocess.run(["bash", str(REPO / "sandbox_images" / "build.sh")], cwd=REPO, check=True)


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    # docker-compose 1.29 is Debian's python3-compose; the shim runs it under that interpreter.
    return ["/usr/bin/python3", str(REPO / "deploy" / "compose" / "compose-v1.py")]


@dataclass
class ComposeStack:
    url: str
    env: dict[str, str]

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [*compose_command(), "-p", PROJECT, "-f", str(COMPOSE_FILE), *args]
        return subprocess.run(argv, env=self.env, cwd=REPO, check=check, capture_output=True, text=True)

    def containers(self, service: str) -> list[str]:
        listed = subprocess.run(
            [
                "docker",
                "ps",
                "--quiet",
                "--filter",
                f"label=com.docker.compose.project={PROJECT}",
                "--filter",
                f"label=com.docker.compose.service={service}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return listed.stdout.split()

    def scale_workers(self, count: int) -> None:
        self.compose("up", "-d", "--no-build", "--no-recreate", "--scale", f"worker={count}")
        wait_until_ready(self.url, workers=count)


def wait_until_ready(url: str, workers: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    body: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/readyz", timeout=2)
            body = response.json()
            if response.status_code == 200 and response.json().get("workers", 0) >= workers:
                return
        except (httpx.HTTPError, ValueError) as exc:
            body = exc
        time.sleep(0.5)
    pytest.fail(f"stack at {url} not ready with {workers} workers: {body}")


@pytest.fixture(scope="session")
def compose_stack(images: None) -> Iterator[ComposeStack]:
    port = free_port()
    env = {
        **os.environ,
        "SANDPIT_HTTP_PORT": str(port),
        "SANDPIT_BIND": "127.0.0.1",
        "SANDPIT_RECLAIM_IDLE_S": str(RECLAIM_IDLE_S),
        "SANDPIT_WORKER_CONCURRENCY": str(WORKER_SLOTS),
        "SANDPIT_SECCOMP_PROFILE": str(SECCOMP_PROFILE),
    }
    stack = ComposeStack(url=f"http://127.0.0.1:{port}", env=env)
    stack.compose("down", "-v", "--remove-orphans", check=False)
    try:
        stack.compose("up", "-d", "--no-build", "--scale", "worker=1")
        wait_until_ready(stack.url, workers=1)
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--tail", "50", check=False)
        print(logs.stdout[-20000:])
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)


@pytest.fixture(scope="session")
def compose_api(compose_stack: ComposeStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=compose_stack.url, timeout=120) as client:
        yield client
