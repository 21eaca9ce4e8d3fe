"""What "Redis is down" looks like to the code that talks to it, defined once for gateway and worker.

redis-py raises its ConnectionError and TimeoutError for a lost or refused connection; a socket error
it did not wrap surfaces as OSError. Callers treat all three the same: the queue is unreachable for
now, which the gateway answers with 503 and the worker waits out.
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
