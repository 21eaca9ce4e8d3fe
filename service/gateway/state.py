"""What the gateway holds for its lifetime: settings, the queue, the shared result listener, shard turns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from fastapi import Request

from service.config import Settings
from service.gateway.auth import Tenants
from service.queue.admission import Admission
from service.queue.jobs import JobStore
from service.queue.keys import ShardTurns
from service.queue.listener import ResultListener
from service.queue.redis_queue import RedisQueue
from service.tools.registry import Tool


@dataclass
class GatewayState:
    settings: Settings
    queue: RedisQueue
    listener: ResultListener
    id: str
    jobs: JobStore
    tenants: Tenants
    admission: Admission
    tools: dict[str, Tool] = field(default_factory=dict)
    # The shard each new job goes to: runs of jobs on each shard in turn (see `ShardTurns`).
    shard_turns: Iterator[int] = field(default_factory=lambda: ShardTurns(1))


async def gateway_state(request: Request) -> GatewayState:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop on every request.
    state: GatewayState = request.app.state.gateway
    return state
