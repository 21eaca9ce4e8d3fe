"""Stopping the background tasks that talk to Redis, without hanging on them.

redis-py does not always give up a command whose task is cancelled (seen with BRPOP and during
shutdown: a worker that ignored SIGTERM until it was killed, a gateway whose lifespan never ended).
Whatever stops must wait for such tasks a bounded time, then go on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from service.queue.errors import REDIS_DOWN

log = logging.getLogger(__name__)

STOP_WAIT_S = 3.0


async def wait_briefly(*tasks: asyncio.Task[Any]) -> None:
    """Wait a bounded time for background tasks that were told to stop (cancelled or flagged)."""
    done, pending = await asyncio.wait(tasks, timeout=STOP_WAIT_S)
    for task in pending:
        log.warning("%s still running %g s after it was told to stop; leaving it", task.get_name(), STOP_WAIT_S)
    for task in done:
        if not task.cancelled() and not isinstance(task.exception(), (type(None), *REDIS_DOWN)):
            log.error("%s failed while stopping", task.get_name(), exc_info=task.exception())
