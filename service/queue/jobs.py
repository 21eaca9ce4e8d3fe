"""Job state beyond the stream: records (queued/running), cancels, long-poll watchers, idempotency keys.

Only tracked jobs (`/v1/jobs` and calls with an `Idempotency-Key`, marked in their id) have a record:
written `queued` when enqueued, `running` by the worker that starts it (a job submitted through
`/v1/jobs`), and deleted with its watchers when the result is published; the result key is then the
truth. A synchronous call's gateway holds its job, so nothing else is written for it. A cancel is a flag
(read before a tracked job starts) plus a message on its shard's cancel channel (heard by every worker:
the one running the job stops it, the others remember it in case they claim it later). An idempotency
key names the first job it was used for until it expires or that job's caller goes away
(`release_idempotency_key`). Every key is named in `keys.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from service.models import ExecutionResult, Job, JobInfo, JobRecord, JobState
from service.queue.keys import is_tracked
from service.queue.redis_queue import RedisQueue

# KEYS: cancel flag, job record. ARGV: running record JSON, TTL seconds.
# Checking the flag and marking the job running in one step means a cancel is either seen here or
# finds the job running (and is then delivered on the cancel channel).
BEGIN_JOB = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 1
"""

# KEYS: idempotency key. ARGV: the job it names, the job to bind it to, TTL seconds.
TAKE_OVER_IDEMPOTENCY_KEY = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

# KEYS: idempotency key. ARGV: job id. Deletes the key only if it is still bound to that job.
RELEASE_IDEMPOTENCY_KEY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class JobSnapshot:
    record: JobRecord | None
    raw_result: bytes | None

    def info(self, job_id: str) -> JobInfo | None:
        if self.raw_result is not None:
            result = ExecutionResult.model_validate_json(self.raw_result)
            return JobInfo(id=job_id, state=JobState.done, worker=result.worker, result=result)
        if self.record is not None:
            return JobInfo(id=job_id, state=self.record.state, worker=self.record.worker)
        return None


class JobStore:
    def __init__(self, queue: RedisQueue) -> None:
        self.queue = queue
        self.redis = queue.redis
        self.keys = queue.keys
        self._begin = self.redis.register_script(BEGIN_JOB)
        self._release = self.redis.register_script(RELEASE_IDEMPOTENCY_KEY)
        self._take_over = self.redis.register_script(TAKE_OVER_IDEMPOTENCY_KEY)

    async def snapshot(self, job_id: str) -> JobSnapshot:
        # One transaction: the publish script cannot run between the two reads and hide both.
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(self.keys.job(job_id))
            pipe.get(self.keys.result(job_id))
            raw_record, raw_result = await pipe.execute()
        record = JobRecord.model_validate_json(raw_record) if raw_record else None
        return JobSnapshot(record, cast(bytes | None, raw_result))

    async def watch(self, job_id: str, gateway_id: str, ttl_s: float) -> None:
        """Ask the publish script to notify this gateway too; expires if the job never finishes."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self.keys.watchers(job_id), gateway_id)
            pipe.expire(self.keys.watchers(job_id), max(1, int(ttl_s)))
            await pipe.execute()

    async def request_cancel(self, job_ids: list[str], ttl_s: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.set(self.keys.cancel(job_id), b"1", ex=ttl_s)
                self.queue.add_publish(pipe, self.keys.shard_of(job_id).cancel_channel, job_id)
            await pipe.execute()

    async def begin(self, job: Job, worker_id: str, ttl_s: int) -> bool:
        """Mark a tracked job running on this worker; False if it was cancelled and must not start."""
        if not is_tracked(job.id):
            return True
        record = JobRecord(state=JobState.running, reply_to=job.reply_to, worker=worker_id)
        keys = [self.keys.cancel(job.id), self.keys.job(job.id)]
        started = await self._begin(keys=keys, args=[record.model_dump_json(exclude_none=True), ttl_s])
        return bool(started)

    async def cancelled_among(self, job_ids: list[str]) -> set[str]:
        if not job_ids:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.get(self.keys.cancel(job_id))
            flags = await pipe.execute()
        return {job_id for job_id, flag in zip(job_ids, flags, strict=True) if flag}

    async def claim_idempotency_key(self, key: str, job_id: str, ttl_s: int) -> str | None:
        """Bind `key` to `job_id` unless it is bound already; return the job id it was bound to before."""
        previous: Any = await self.redis.set(self.keys.idempotency(key), job_id, nx=True, get=True, ex=ttl_s)
        return previous.decode() if previous else None

    async def take_over_idempotency_key(self, key: str, earlier: str, job_id: str, ttl_s: int) -> bool:
        """Bind `key` to `job_id` if it still names `earlier`; False if someone else changed it."""
        return bool(await self._take_over(keys=[self.keys.idempotency(key)], args=[earlier, job_id, ttl_s]))

    async def idempotency_job(self, key: str) -> str | None:
        """The job id `key` is bound to now, if any."""
        bound: Any = await self.redis.get(self.keys.idempotency(key))
        return bound.decode() if bound else None

    async def release_idempotency_key(self, key: str, job_id: str) -> None:
        """Unbind `key` if it still names `job_id`, so the next call with it starts a new job."""
        await self._release(keys=[self.keys.idempotency(key)], args=[job_id])
