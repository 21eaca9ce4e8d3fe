"""The queue fixtures (a fresh queue on the session's redis-server; a sharded one on it and on a local
Redis Cluster) for the tests of the worker's Redis side."""

from tests.queue.conftest import cluster, queue, sharded_queue

__all__ = ["cluster", "queue", "sharded_queue"]
