"""A stack with the example tool packs loaded, shared by the tool tests that call through it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.stack import LocalStack, free_port

EXAMPLE_PACKS = Path(__file__).parents[2] / "examples" / "tool_packs"
PACKS = [EXAMPLE_PACKS / "shop_sql", EXAMPLE_PACKS / "units"]


@pytest.fixture(scope="session")
def tools_api() -> Iterator[httpx.Client]:
    # Every labelled math case goes through it: no call may expire in the queue while the others run.
    settings = Settings(port=free_port(), worker_concurrency=4, queue_wait_s=600, tool_packs=":".join(map(str, PACKS)))
    with (
        LocalStack(settings, workers=1, redis_url_given=False) as local,
        httpx.Client(base_url=local.url, timeout=300) as client,
    ):
        yield client
