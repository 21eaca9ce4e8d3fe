"""What "Redis is down" looks like to the code that talks to it, defined once for gateway and worker.

redis-py raises its ConnectionError and TimeoutError for a lost or refused connection; a socket error
it did not wrap surfaces as OSError. A Redis Cluster in the middle of a failover answers CLUSTERDOWN,
TRYAGAIN or MOVED to a node that is gone, or has a slot no live node covers. Callers treat all of them
the same: the queue is unreachable for now, which the gateway answers with 503 and the worker waits out.
"""

from __future__ import annotations

from redis.exceptions import ClusterError, MovedError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterError,
    TryAgainError,
    MovedError,
    # The cluster client's own: no reachable node, a slot no node covers (SlotNotCoveredError).
    RedisClusterException,
)
