"""Synchronous heartbeat look-ups for container health checks, which run as a short-lived process."""

from __future__ import annotations

import time
from typing import cast

import redis

from service.queue.keys import Keys


def worker_on_host_is_live(redis_url: str, prefix: str, hostname: str, ttl_s: float) -> bool:
    """True when a worker whose id starts with `hostname` sent a heartbeat within `ttl_s`."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
    try:
        live = cast(list[str], client.zrangebyscore(Keys(prefix).workers, time.time() - ttl_s, "+inf"))
    finally:
        client.close()
    return any(member.startswith(f"{hostname}-") for member in live)
