"""Synchronous heartbeat look-ups for container health checks, which run as a short-lived process.

The check is given one Redis URL. On a Redis Cluster that node may not hold the heartbeats: its MOVED
answer says so, and the look-up is asked again through a cluster client.
"""

from __future__ import annotations

import time
from typing import cast

import redis
import redis.cluster
from redis.exceptions import MovedError

from service.queue.keys import Keys

TIMEOUTS = {"socket_timeout": 2, "socket_connect_timeout": 2}


def worker_on_host_is_live(redis_url: str, prefix: str, hostname: str, ttl_s: float) -> bool:
    """True when a worker whose id starts with `hostname` sent a heartbeat within `ttl_s`."""
    key, since = Keys(prefix).workers, time.time() - ttl_s
    client = redis.Redis.from_url(redis_url, decode_responses=True, **TIMEOUTS)
    try:
        live = cast(list[str], client.zrangebyscore(key, since, "+inf"))
    except MovedError:
        cluster = redis.cluster.RedisCluster.from_url(redis_url, decode_responses=True, **TIMEOUTS)
        try:
            live = cast(list[str], cluster.zrangebyscore(key, since, "+inf"))
        finally:
            cluster.close()
    finally:
        client.close()
    return any(member.startswith(f"{hostname}-") for member in live)
