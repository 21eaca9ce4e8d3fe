"""What the gateway holds for its lifetime: settings, the queue and the shared result listener."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from service.config import Settings
from service.gateway.auth import Tenants
from service.queue.admission import Admission
from service.queue.jobs import JobStore
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


def gateway_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state
