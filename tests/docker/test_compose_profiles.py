"""Compose itself reads the compose file's Redis Cluster profile (no container is started).

Here rather than in tests/deploy: `make test-docker` installs compose, so on a fresh machine the check
runs instead of being skipped. The profile's contents are checked in tests/deploy/test_compose_config.py."""

from __future__ import annotations

import subprocess

from tests.deploy.test_compose_config import CLUSTER_SERVICES, COMPOSE
from tests.docker.conftest import compose_command


def test_compose_accepts_the_cluster_profile() -> None:
    done = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "--profile", "cluster", "config", "--services"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # The seccomp profile's path is relative to this directory, as in `make compose-up`.
        cwd=COMPOSE.parent,
    )
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) >= CLUSTER_SERVICES | {"redis", "gateway", "worker"}
