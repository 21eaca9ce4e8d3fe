"""`python -m service.worker.health`: exit 0 when the worker in this container is heartbeating.

Container health checks (Docker HEALTHCHECK, Kubernetes liveness) run it. A worker whose loop hangs or
that lost Redis stops heartbeating and is reported unhealthy; its jobs are reclaimed by the others.
"""

from __future__ import annotations

import socket
import sys

from redis.exceptions import RedisError

from service.config import load_settings
from service.queue.health import worker_on_host_is_live


def main() -> int:
    settings = load_settings()
    try:
        live = worker_on_host_is_live(
            settings.redis_url, settings.key_prefix, socket.gethostname(), settings.heartbeat_ttl_s
        )
    except (RedisError, OSError) as exc:
        print(f"redis unreachable: {exc}", file=sys.stderr)
        return 1
    if not live:
        print(f"no heartbeat from a worker on {socket.gethostname()}", file=sys.stderr)
    return 0 if live else 1


if __name__ == "__main__":
    sys.exit(main())
