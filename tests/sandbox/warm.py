"""A started `Sandbox` with its warm zygotes, for the tests that run calls through them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from service.config import load_settings
from service.sandbox.executor import Sandbox


@contextlib.asynccontextmanager
async def warm_sandbox(slots: int, **settings: object) -> AsyncIterator[Sandbox]:
    box = Sandbox(load_settings(worker_concurrency=slots, **settings))
    box.check()
    await box.start()
    assert box.zygotes is not None, "the warm zygotes did not start"
    try:
        yield box
    finally:
        await box.aclose()
