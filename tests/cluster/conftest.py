"""Sandpit on a real local Redis Cluster: three gateways and three workers, as processes."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import Settings
from service.stack import UID_STRIDE, LocalStack, free_port
from tests.cluster_fixture import LocalCluster, local_cluster

# Sandbox uids of these workers, clear of the other test stacks' (which start at the default 60000).
UID_BASE = 70000
STACKS = 3


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A cluster for each test module: the failover test leaves its own one primary short of a replica."""
    with local_cluster() as started:
        yield started


@contextlib.contextmanager
def services_on(
    cluster: LocalCluster, shards: int, log_dir: Path | None = None, **settings: float
) -> Iterator[list[LocalStack]]:
    """Three gateways with one worker each, on `cluster`, under a key prefix of their own, with
    `settings` on top of the defaults (their output in `log_dir/<n>/`, if given)."""
    prefix = f"test{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as running:
        started: list[LocalStack] = []
        for index in range(STACKS):
            options = Settings(
                port=free_port(),
                redis_url=cluster.url,
                redis_cluster=True,
                queue_shards=shards,
                key_prefix=prefix,
                worker_concurrency=16,
                sandbox_uid_base=UID_BASE + index * UID_STRIDE,
                **settings,  # type: ignore[arg-type]
            )
            logs = log_dir / str(index) if log_dir is not None else None
            stack = LocalStack(options, workers=1, redis_url_given=True, log_dir=logs)
            started.append(running.enter_context(stack))
        yield started
