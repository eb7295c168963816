"""The job queue: arq on Redis. One task per chunk; the database, not the queue, says what is done.

A task id names the chunk and its attempt (``job:chunk:attempt``), so enqueuing the same attempt twice is a
no-op (arq refuses a second job with a live id) and a chunk taken back from a dead worker gets a fresh task.
"""

from __future__ import annotations

from datetime import timedelta

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from judge.jobs.errors import JobQueueUnavailable
from judge.settings import Settings

TASK = "rj_chunk"
# A queued task outlives any plausible backlog; the reaper re-queues chunks whose task was lost anyway.
TASK_EXPIRES = timedelta(days=7)


def queue_name(settings: Settings) -> str:
    return f"{settings.redis_prefix}jobs"


def redis_settings(settings: Settings) -> RedisSettings:
    if not settings.redis_url:
        raise JobQueueUnavailable("bulk jobs need Redis for their queue: set RJ_REDIS_URL", field="redis_url")
    return RedisSettings.from_dsn(settings.redis_url)


def task_id(job_id: str, chunk: int, attempt: int) -> str:
    return f"{job_id}:{chunk}:{attempt}"


class JobQueue:
    """Puts chunk tasks on the queue and takes dead workers' tasks off it."""

    def __init__(self, pool: ArqRedis, name: str, *, owns_pool: bool) -> None:
        self._pool = pool
        self.name = name
        self._owns_pool = owns_pool

    @classmethod
    async def connect(cls, settings: Settings) -> JobQueue:
        try:
            pool = await create_pool(redis_settings(settings), default_queue_name=queue_name(settings))
        except JobQueueUnavailable:
            raise
        except Exception as exc:
            raise JobQueueUnavailable(f"cannot reach the job queue's Redis: {exc}", field="redis_url") from exc
        return cls(pool, queue_name(settings), owns_pool=True)

    async def enqueue(self, job_id: str, chunk: int, attempt: int = 0, *, defer_s: float | None = None) -> bool:
        """Queue a chunk's task; False if that task is already queued (or running)."""
        job = await self._pool.enqueue_job(
            TASK,
            job_id,
            chunk,
            _job_id=task_id(job_id, chunk, attempt),
            _queue_name=self.name,
            _defer_by=defer_s,
            _expires=TASK_EXPIRES,
        )
        return job is not None

    async def drop_task(self, task: str) -> None:
        """Take a dead worker's task off the queue, so that it does not sit there until arq's own timeout."""
        async with self._pool.pipeline(transaction=True) as pipe:
            pipe.zrem(self.name, task)
            pipe.delete(job_key_prefix + task, in_progress_key_prefix + task, retry_key_prefix + task)
            await pipe.execute()

    async def ping(self) -> None:
        """JobQueueUnavailable (503) unless Redis answers now: checked before a job row is made."""
        try:
            await self._pool.ping()
        except Exception as exc:
            raise JobQueueUnavailable(f"the job queue's Redis is unreachable ({exc}); retry shortly",
                                      field="redis_url") from exc  # fmt: skip

    async def unattended(self, tasks: list[str]) -> set[str]:
        """Of ``tasks``, those no worker will run as things stand: not on the queue, or marked running by arq.

        A pending chunk's task is either waiting on the queue (fine) or missing from it, or arq marks it running
        while the database says no worker claimed the chunk. Both are normal for an instant (a task being queued
        again, a worker between taking a task and claiming its chunk) and wrong if they last: a task lost, or a
        worker killed between the two steps, whose task arq keeps "in progress" for the task timeout (hours).
        """
        if not tasks:
            return set()
        async with self._pool.pipeline(transaction=False) as pipe:
            for task in tasks:
                pipe.zscore(self.name, task)
                pipe.exists(in_progress_key_prefix + task)
            replies = await pipe.execute()
        return {
            task
            for task, queued, running in zip(tasks, replies[::2], replies[1::2], strict=True)
            if queued is None or running
        }

    async def size(self) -> int:
        """Tasks queued or running (arq keeps a running task in the queue until it ends)."""
        return int(await self._pool.zcard(self.name))

    async def aclose(self) -> None:
        if self._owns_pool:
            await self._pool.aclose()
