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

    def worker_slots(self, worker_id: str) -> str:
        """A worker's "busy total" sandbox slots, refreshed with its heartbeat and expiring with it."""
        return f"{self.prefix}:worker-slots:{worker_id}"

    @property
    def attempts(self) -> str:
        """Hash: job id -> deliveries beyond the first (worker died while running it)."""
        return f"{self.prefix}:attempts"

    @property
    def in_flight(self) -> str:
        """Hash: tenant -> its jobs in the stream not yet acknowledged (queued or running)."""
        return f"{self.prefix}:in-flight"

    def result(self, job_id: str) -> str:
        """The final result of one job, JSON, with a TTL."""
        return f"{self.prefix}:result:{job_id}"

    def reply_channel(self, gateway_id: str) -> str:
        """Pub/sub channel on which one gateway hears the results of the calls it waits on."""
        return f"{self.prefix}:reply:{gateway_id}"

    @property
    def reply_channel_prefix(self) -> str:
        """What `reply_channel` puts before a gateway id; the publish script builds channels from it."""
        return self.reply_channel("")

    def job(self, job_id: str) -> str:
        """A job's `JobRecord` (queued or running, who runs it), JSON, until its result exists."""
        return f"{self.prefix}:job:{job_id}"

    def watchers(self, job_id: str) -> str:
        """Set of gateway ids long-polling a job they did not submit; each hears its result."""
        return f"{self.prefix}:watchers:{job_id}"

    def cancel(self, job_id: str) -> str:
        """Flag that a job was cancelled; a worker checks it before starting the job."""
        return f"{self.prefix}:cancel:{job_id}"

    @property
    def cancel_channel(self) -> str:
        """Pub/sub channel of cancelled job ids; every worker listens and stops the ones it runs."""
        return f"{self.prefix}:cancels"

    def idempotency(self, key: str) -> str:
        """The job id a caller's `Idempotency-Key` was first used for."""
        return f"{self.prefix}:idempotency:{key}"

    def session(self, session_id: str) -> str:
        """A session's `SessionRecord` (which worker holds it), JSON, expiring when idle."""
        return f"{self.prefix}:session:{session_id}"

    def tenant_sessions(self, tenant: str) -> str:
        """Sorted set: a tenant's session ids (branches included) -> when each was last used."""
        return f"{self.prefix}:tenant-sessions:{tenant}"

    def session_commands(self, worker_id: str) -> str:
        """List of `SessionCommand`s for one worker: only that worker reads it."""
        return f"{self.prefix}:session-commands:{worker_id}"

    @property
    def runtimes(self) -> str:
        """The `Runtimes` (language versions, Python packages) a worker probed, JSON, rewritten by each worker."""
        return f"{self.prefix}:runtimes"
