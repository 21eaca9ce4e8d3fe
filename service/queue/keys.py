"""Every Redis key and channel Sandpit uses, named in one place.

All keys start with the deployment's prefix (`sandpit` by default), so two deployments can share one
Redis and `redis-cli --scan --pattern 'sandpit:*'` shows everything of one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str

    @property
    def jobs(self) -> str:
        """Stream of queued jobs; entries are deleted once their result is published."""
        return f"{self.prefix}:jobs"

    @property
    def group(self) -> str:
        """Consumer group of the workers on the jobs stream."""
        return f"{self.prefix}:workers"

    @property
    def workers(self) -> str:
        """Sorted set: worker id -> time of its last heartbeat."""
        return f"{self.prefix}:heartbeats"

    @property
    def attempts(self) -> str:
        """Hash: job id -> deliveries beyond the first (worker died while running it)."""
        return f"{self.prefix}:attempts"

    def result(self, job_id: str) -> str:
        """The final result of one job, JSON, with a TTL."""
        return f"{self.prefix}:result:{job_id}"

    def reply_channel(self, gateway_id: str) -> str:
        """Pub/sub channel on which one gateway hears the results of the calls it waits on."""
        return f"{self.prefix}:reply:{gateway_id}"
