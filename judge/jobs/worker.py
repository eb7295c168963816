"""``rubric-judge worker``: an arq worker that scores chunks of jobs; run as many as wanted, anywhere.

A task claims its chunk (a lease in the database), scores the chunk's pending items through the Scorer, and
writes their outcomes in one transaction that checks the lease is still its own. A heartbeat keeps the
worker's leases alive; a reaper (in every worker) hands the chunks of a dead worker back to the queue when
their lease runs out, and re-queues pending chunks if Redis lost the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from arq.worker import Worker, func
from redis.exceptions import RedisError

from judge import event_loop, heap
from judge.errors import RubricJudgeError
from judge.jobs.generator import Generator
from judge.jobs.models import JobRow
from judge.jobs.process import ItemOutcome, JobPlan, process_items
from judge.jobs.queue import TASK, JobQueue, queue_name, redis_settings, task_id
from judge.jobs.repository import ChunkRef, Claim, JobRepository
from judge.jobs.schemas import ItemState, JobOptions
from judge.outage import OutageLog
from judge.runtime import Runtime
from judge.settings import Settings
from judge.store.rubrics_repository import RubricRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    # How long a chunk stays ours without a heartbeat: a killed worker's chunks go elsewhere after this.
    lease_s: float = 30.0
    # Chunks scored at once; together they keep the judge's concurrency busy across chunk boundaries.
    max_chunks: int = 4
    # Claims of one chunk before its pending items are failed with the last error (a poison chunk).
    max_attempts: int = 5
    poll_delay_s: float = 0.1
    # Ingests that have not beaten for this long died with their API process.
    stale_ingest_s: float = 600.0
    # A task never legitimately runs this long; arq cancels it then (the lease, not this, detects dead workers).
    task_timeout_s: float = 6 * 3600.0
    # How often a worker checks that the queue still holds the pending chunks (Redis restarted empty).
    queue_check_s: float = 30.0
    # Longest pause between polls while Redis is unreachable (the backoff doubles up to this).
    redis_backoff_max_s: float = 5.0
    name: str | None = None


class ChunkWorker:
    """One worker process's state: the runtime, the queue, job plans, and its lease-keeping tasks."""

    def __init__(self, runtime: Runtime, queue: JobQueue, config: WorkerConfig) -> None:
        self.runtime = runtime
        self.queue = queue
        self.config = config
        self.owner = config.name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._plans: OrderedDict[str, JobPlan] = OrderedDict()
        self._generators: dict[str, Generator] = {}
        self._background: list[asyncio.Task[None]] = []
        self._held: set[tuple[str, int]] = set()
        # Tasks of pending chunks that no worker will run as things stand, and since when (time.monotonic()).
        self._unattended: dict[str, float] = {}
        self.chunks_done = 0

    async def start(self) -> None:
        self._background = [
            asyncio.create_task(self._every(self.config.lease_s / 3, self.heartbeat), name="rj-heartbeat"),
            asyncio.create_task(self._every(max(0.5, self.config.lease_s / 2), self.reap), name="rj-reaper"),
            asyncio.create_task(self._every(self.config.queue_check_s, self.recover_queue), name="rj-queue-check"),
        ]

    async def aclose(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for generator in self._generators.values():
            await generator.aclose()

    async def _every(self, seconds: float, action: Any) -> None:
        while True:
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; trying again in %.1f s", getattr(action, "__name__", action), seconds)
            await asyncio.sleep(seconds)

    # --- leases -----------------------------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        # Only chunks a task is working on now: a chunk whose task died without letting go must expire.
        if not self._held:
            return
        async with self.runtime.sessions() as session:
            await JobRepository(session).heartbeat(self.owner, self.config.lease_s, set(self._held))
            await session.commit()

    async def reap(self) -> None:
        """Chunks whose lease ran out go back on the queue (under a new task); their dead tasks come off it."""
        async with self.runtime.sessions() as session:
            expired = await JobRepository(session).expire_leases()
            await session.commit()
        for ref in expired:
            log.warning("chunk %s/%d: lease expired (worker gone); queued again", ref.job_id, ref.chunk)
            if ref.task_id:
                await self.queue.drop_task(ref.task_id)
            await self.queue.enqueue(ref.job_id, ref.chunk, ref.attempts)

    async def recover_queue(self) -> None:
        """Queue again the pending chunks no worker will run: all of them if the queue is empty (Redis restarted
        or was flushed), and any whose task stayed lost, or stayed "running" in arq while no worker claimed the
        chunk (a worker killed between taking the task and claiming: arq would keep it for the task timeout)."""
        async with self.runtime.sessions() as session:
            repo = JobRepository(session)
            for job_id in await repo.stale_ingests(self.config.stale_ingest_s):
                log.warning("job %s: its upload stopped (API process gone?); failing it", job_id)
                await repo.fail(job_id, "the upload stopped before the end of the input")
            await session.commit()
            pending = await repo.pending_chunks()
        if await self.queue.size() == 0:
            self._unattended.clear()
            await self._queue_again(pending)
            if pending:
                log.warning("queue was empty with %d chunks pending; queued them again", len(pending))
            return
        by_task = {task_id(ref.job_id, ref.chunk, ref.attempts): ref for ref in pending}
        now = time.monotonic()
        seen, self._unattended = self._unattended, {}
        stuck: list[ChunkRef] = []
        for task in await self.queue.unattended(list(by_task)):
            since = seen.get(task, now)
            # Seen so at an earlier check at least a lease ago: not a task between two steps, a stuck one.
            if now - since >= self.config.lease_s:
                stuck.append(by_task[task])
            else:
                self._unattended[task] = since
        for ref in stuck:
            log.warning("chunk %s/%d: pending, and its task lost or left running by a dead worker; queued again",
                        ref.job_id, ref.chunk)  # fmt: skip
        await self._queue_again(stuck)

    async def _queue_again(self, refs: list[ChunkRef]) -> None:
        for ref in refs:
            # No worker holds the chunk, so any task record left for it is stale: it would block the enqueue (arq
            # refuses a live task id). Should a live worker still run the old task, the claim lets one of them in.
            await self.queue.drop_task(task_id(ref.job_id, ref.chunk, ref.attempts))
            await self.queue.enqueue(ref.job_id, ref.chunk, ref.attempts)

    # --- chunks -----------------------------------------------------------------------------------------------

    async def plan(self, job: JobRow) -> JobPlan:
        """How to process a job's lines on this worker (its rubric, judge and generator), cached per job."""
        plan = self._plans.get(job.id)
        if plan is not None:
            self._plans.move_to_end(job.id)
            return plan
        runtime = self.runtime
        rubric = runtime.rubrics.get_by_hash(job.rubric_hash)
        if rubric is None:
            async with runtime.sessions() as session:
                rubric = await RubricRepository(session).get_by_hash(job.rubric_hash)
            if rubric is None:
                raise RubricJudgeError(f"rubric {job.rubric_ref} ({job.rubric_hash[:12]}) is unknown to this worker")
            runtime.rubrics.register(rubric)
        profile = runtime.profiles.get(job.judge)
        if profile.hash != job.profile_hash:
            log.warning("judge %r differs on this worker from the job's (profile hash); using this one", job.judge)
        runtime.scorer.backend(profile)
        generator = None
        if job.generator is not None:
            generator = self._generators.get(job.generator)
            if generator is None:
                generator = self._generators[job.generator] = Generator(runtime.profiles.get(job.generator))
        plan = JobPlan(
            kind="curate" if job.kind == "curate" else "filter",
            rubric=rubric,
            profile=profile,
            options=JobOptions.model_validate(job.options),
            generator=generator,
            scope=job.id,
        )
        self._plans[job.id] = plan
        if len(self._plans) > 64:
            self._plans.popitem(last=False)
        return plan

    async def process_chunk(self, task: str, job_id: str, chunk: int) -> str:
        """One queue task: claim, score, commit. Exactly once: only the lease holder's commit can land."""
        sessions = self.runtime.sessions
        async with sessions() as session:
            repo = JobRepository(session)
            claim = await repo.claim(job_id, chunk, owner=self.owner, task_id=task, lease_s=self.config.lease_s)
            job = await repo.get(job_id) if claim is not None else None
            await session.commit()
        if claim is None or job is None:
            return "not claimable (done, held by a live worker, or its job stopped)"
        self._held.add((job_id, chunk))
        try:
            async with sessions() as session:
                items = await JobRepository(session).pending_items(claim)
            if claim.attempts > self.config.max_attempts:
                last = claim.error or "the worker holding it stopped without a word (killed?)"
                reason = f"chunk given up after {claim.attempts - 1} attempts; last error: {last}"
                return await self._give_up(claim, items, reason)
            outcomes = await process_items(self.runtime, await self.plan(job), items)
            async with sessions() as session:
                if await JobRepository(session).complete(claim, self.owner, outcomes):
                    await session.commit()
                    self.chunks_done += 1
                    return f"{len(outcomes)} items"
                await session.rollback()
            log.warning("chunk %s/%d: lease lost before commit; another worker has it", job_id, chunk)
            return "lease lost"
        except asyncio.CancelledError:
            # Shutting down: let the chunk go at once rather than after its lease (arq re-queues the task).
            await asyncio.shield(self._release(claim, "worker stopped"))
            raise
        except Exception as exc:
            log.exception("chunk %s/%d failed (attempt %d)", job_id, chunk, claim.attempts)
            if await self._release(claim, f"{type(exc).__name__}: {exc}"):
                await self.queue.enqueue(job_id, chunk, claim.attempts, defer_s=min(60.0, 2.0**claim.attempts))
            return "failed; queued again"
        finally:
            self._held.discard((job_id, chunk))

    async def _release(self, claim: Claim, error: str) -> bool:
        """Let go of a chunk; if even that fails (database down), its lease runs out and the reaper re-queues it."""
        try:
            async with self.runtime.sessions() as session:
                released = await JobRepository(session).release(claim, self.owner, error)
                await session.commit()
        except Exception:
            log.exception("could not let go of chunk %s/%d; its lease will run out", claim.job_id, claim.chunk)
            return False
        return released

    async def _give_up(self, claim: Claim, items: list[tuple[int, str]], reason: str) -> str:
        outcomes = [
            ItemOutcome(line, ItemState.failed, {"line": line, "outcome": "failed", "error": reason}, error=reason)
            for line, _ in items
        ]
        async with self.runtime.sessions() as session:
            if await JobRepository(session).fail_chunk(claim, self.owner, outcomes, reason):
                await session.commit()
        return "given up"


# What an unreachable Redis raises: redis-py's errors (a connection lost mid-WATCH surfaces as WatchError), and
# the socket's underneath.
REDIS_DOWN = (RedisError, OSError)


class QuietWorker(Worker):
    """arq's Worker, closing its Redis pool with ``aclose()``: arq 0.26-0.28 still calls redis-py's deprecated
    ``close()``, a DeprecationWarning at every worker shutdown."""

    async def close(self) -> None:
        pool = self._pool
        if pool is not None:
            # arq's close ends with pool.close(...); hand it the non-deprecated coroutine of the same meaning.
            pool.close = pool.aclose
        await super().close()


class ResilientWorker(QuietWorker):
    """arq's worker, whose poll loop outlives a Redis outage instead of exiting with ``ConnectionError``.

    A failed poll is logged once per outage and retried with doubling pauses (up to ``redis_backoff_max_s``);
    redis-py reconnects on the next command. Leases live in the database, so the heartbeat keeps them through
    the outage; chunks whose queue entry Redis lost are queued again by the queue check.
    """

    def __init__(self, *args: Any, redis_backoff_max_s: float = 5.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._redis_backoff_max_s = redis_backoff_max_s
        self._redis_backoff_s = 0.0
        self._redis_log = OutageLog(log, "job queue (Redis)")

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_DOWN as exc:
            self._redis_log.failed("poll failed; retrying with backoff", exc)
            self._redis_backoff_s = min(self._redis_backoff_max_s, max(0.1, self._redis_backoff_s * 2))
            await asyncio.sleep(self._redis_backoff_s)
            return
        self._redis_backoff_s = 0.0
        self._redis_log.succeeded()

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        except REDIS_DOWN as exc:
            # The chunk's outcome is in the database (the record); only arq's bookkeeping in Redis failed. Its
            # queue entry comes back with Redis (or not at all): a claim of a done chunk is a no-op either way.
            self._redis_log.failed(f"task {job_id}: could not record its start or end", exc)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # arq takes a slot (semaphore and counter) before its Redis round trip; if that trip fails, give the slot
        # back, or every outage would leak one until the worker took no chunks at all.
        for job_id in job_ids:
            counter, started = self.job_counter, len(self.tasks)
            try:
                await super().start_jobs([job_id])
            except REDIS_DOWN:
                if self.job_counter > counter and len(self.tasks) == started:
                    self._release_sem_dec_counter_on_complete()
                raise


async def _run_chunk(ctx: dict[str, Any], job_id: str, chunk: int) -> str:
    worker: ChunkWorker = ctx["rj"]
    return await worker.process_chunk(str(ctx["job_id"]), job_id, chunk)


def build_worker(
    settings: Settings,
    config: WorkerConfig,
    *,
    handle_signals: bool = True,
    burst: bool = False,
    runtime_options: dict[str, Any] | None = None,
) -> Worker:
    """An arq worker whose startup opens the Runtime (database, cache, judges) and the lease keepers."""

    async def startup(ctx: dict[str, Any]) -> None:
        runtime = await Runtime.open(settings, **(runtime_options or {}))
        queue = JobQueue(ctx["redis"], queue_name(settings), owns_pool=False)
        worker = ChunkWorker(runtime, queue, config)
        ctx["rj"] = worker
        await worker.start()
        heap.settle()  # start-up done: freeze what lives as long as the process
        log.info("worker %s serving queue %s", worker.owner, queue.name)

    async def shutdown(ctx: dict[str, Any]) -> None:
        worker: ChunkWorker | None = ctx.get("rj")
        if worker is not None:
            await worker.aclose()
            await worker.runtime.aclose()

    return ResilientWorker(
        functions=[func(_run_chunk, name=TASK)],
        queue_name=queue_name(settings),
        redis_settings=redis_settings(settings),
        burst=burst,
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=handle_signals,
        max_jobs=config.max_chunks,
        job_timeout=config.task_timeout_s,
        keep_result=0,
        poll_delay=config.poll_delay_s,
        max_tries=1000,
        health_check_interval=60,
        log_results=False,
        redis_backoff_max_s=config.redis_backoff_max_s,
    )


async def close_worker(worker: Worker) -> None:
    """Close a worker whose run was cancelled: arq gathers its job tasks, which the cancel also cancelled."""
    with contextlib.suppress(asyncio.CancelledError):
        await worker.close()


def run_worker(settings: Settings, config: WorkerConfig) -> None:
    """Serve the queue until SIGINT/SIGTERM (chunks in hand are let go for others to take)."""
    if settings.log_level.upper() != "DEBUG":
        # arq logs every task at INFO; thousands of chunks a job would drown the log.
        logging.getLogger("arq").setLevel(logging.WARNING)

    async def main() -> None:
        worker = build_worker(settings, config)
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            pass
        finally:
            await close_worker(worker)

    event_loop.run(main())
