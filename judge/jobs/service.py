"""Jobs as the API (and the CLI's server mode) see them: create from a stream or a path, status, results, cancel."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judge.db.base import utcnow
from judge.errors import JudgeNotFound, JudgeUnavailable
from judge.jobs.errors import InvalidJob, JobNotFound, JobQueueUnavailable, JobSourceRejected
from judge.jobs.generator import Generator
from judge.jobs.ingest import file_blocks, ingest, max_line_bytes, split_lines
from judge.jobs.models import JobRow
from judge.jobs.repository import JobRepository
from judge.jobs.schemas import FINAL_STATES, ItemState, JobSpec, JobState
from judge.jobs.summary import Summary
from judge.pricing.prices import TokenPrices, cost
from judge.profiles import JudgeProfile
from judge.runtime import Runtime
from judge.service import resolve
from rubrics.schema import Rubric

if TYPE_CHECKING:
    from judge.jobs.queue import JobQueue

log = logging.getLogger(__name__)

RESULTS_PAGE = 1000


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_view(
    job: JobRow, *, summary: bool = True, prices: Callable[[str | None], TokenPrices | None] | None = None
) -> dict[str, Any]:
    """A job's state, counts, rate and ETA (and its summary so far).

    ``prices``: a profile name's token prices; the summary then says what the judge's and the generator's calls
    cost, at those prices (its usage counts are what the providers reported).
    """
    done = job.kept + job.dropped + job.failed + job.invalid
    judged = job.kept + job.dropped + job.failed
    rate = eta = elapsed = None
    if job.started_at is not None:
        end = job.finished_at or utcnow()
        elapsed = max(0.0, (end - job.started_at).total_seconds())
        if elapsed > 0 and judged:
            rate = judged / elapsed
            if job.finished_at is None:
                eta = (job.total - done) / rate
    body: dict[str, Any] = {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "rubric": job.rubric_ref,
        "rubric_hash": job.rubric_hash,
        "judge": job.judge,
        "generator": job.generator,
        "options": job.options,
        "source": job.source,
        "counts": {
            "total": job.total,
            "done": done,
            "pending": job.total - done,
            "kept": job.kept,
            "dropped": job.dropped,
            "failed": job.failed,
            "invalid": job.invalid,
        },
        # Items judged per second since the first chunk was claimed; ETA from that rate (None until known).
        "rate": rate,
        "eta_s": eta,
        "elapsed_s": elapsed,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "error": job.error,
    }
    if summary:
        body["summary"] = Summary.from_json(job.stats).to_json()
        if prices is not None:
            body["summary"]["cost"] = cost(prices(job.judge), body["summary"]["usage"])
            body["summary"]["generator_cost"] = cost(prices(job.generator), body["summary"]["generator_usage"])
    return body


def result_states(kept: bool | None, outcomes: Iterable[str] | None = None) -> list[ItemState]:
    """``kept=true``: kept; ``kept=false``: dropped, failed and invalid; neither: every finished item."""
    if outcomes:
        states: list[ItemState] = []
        for name in outcomes:
            try:
                state = ItemState(name)
            except ValueError:
                raise InvalidJob(
                    f"unknown outcome {name!r}; use kept, dropped, failed, invalid", field="outcome"
                ) from None
            if state is ItemState.pending:
                raise InvalidJob("pending items have no result yet", field="outcome")
            states.append(state)
        return states
    if kept is None:
        return list(FINAL_STATES)
    chosen: list[ItemState] = [ItemState.kept] if kept else [ItemState.dropped, ItemState.failed, ItemState.invalid]
    return chosen


class JobsService:
    """Owned by the API's lifespan: the queue connection (opened on first use) and running path ingests."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._queue: JobQueue | None = None
        self._queue_lock = asyncio.Lock()
        self._ingests: set[asyncio.Task[None]] = set()

    async def queue(self) -> JobQueue:
        async with self._queue_lock:
            if self._queue is None:
                if self.runtime.engine.dialect.name != "postgresql":
                    raise JobQueueUnavailable(
                        "bulk jobs need PostgreSQL (workers on other machines share it); "
                        "for a local run use `rubric-judge filter` or `curate` without --server",
                        field="database_url",
                    )
                # arq comes with the `jobs` extra: imported when a job is first asked for, not with the app.
                from judge.jobs.queue import JobQueue

                self._queue = await JobQueue.connect(self.runtime.settings)
            return self._queue

    async def aclose(self) -> None:
        for task in list(self._ingests):
            task.cancel()
        for task in list(self._ingests):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._queue is not None:
            await self._queue.aclose()
            self._queue = None

    def check_spec(self, spec: JobSpec) -> tuple[Rubric, JudgeProfile, JudgeProfile | None]:
        """The rubric, judge and generator a job names, or a 4xx/503 naming the field, before any input is read."""
        if spec.kind == "curate" and spec.generator is None:
            raise InvalidJob("a curate job needs a generator profile", field="generator")
        if spec.kind == "filter" and spec.generator is not None:
            raise InvalidJob("only curate jobs use a generator", field="generator")
        rubric, profile = resolve(self.runtime, spec.rubric, spec.judge)
        generator = None
        if spec.generator is not None:
            try:
                generator = self.runtime.profiles.get(spec.generator)
            except JudgeNotFound as exc:
                raise JudgeNotFound(exc.message, field="generator") from exc
            try:
                Generator(generator)
            except JudgeUnavailable as exc:
                raise JudgeUnavailable(exc.message, field="generator") from exc
        return rubric, profile, generator

    async def _create(self, spec: JobSpec, source: str) -> JobRow:
        rubric, profile, generator = self.check_spec(spec)
        # Redis down: a 503 before anything is made (no job row left failed behind).
        await (await self.queue()).ping()
        async with self.runtime.sessions() as session:
            row = await JobRepository(session).create(
                job_id=uuid.uuid4().hex,
                kind=spec.kind,
                rubric_ref=rubric.ref,
                rubric_hash=rubric.content_hash,
                judge=profile.name,
                profile_hash=profile.hash,
                generator=generator.name if generator is not None else None,
                options=spec.options.model_dump(mode="json"),
                source=source,
            )
            await session.commit()
        return row

    async def _ingest(self, job: JobRow, spec: JobSpec, blocks: AsyncIterable[bytes]) -> None:
        queue = await self.queue()

        async def enqueue(job_id: str, chunk: int) -> None:
            try:
                await queue.enqueue(job_id, chunk)
            except Exception as exc:
                # The chunk is stored (pending) in the database, which is the record: the workers' queue check
                # queues it again once Redis is back. Failing the job here lost a whole upload to a blip.
                log.warning("job %s chunk %d: not queued (%s: %s); the queue check will queue it",
                            job_id, chunk, type(exc).__name__, exc)  # fmt: skip

        max_bytes = max_line_bytes(self.runtime.settings.max_text_chars)
        try:
            await ingest(
                self.runtime,
                job.id,
                spec.kind,
                split_lines(blocks, max_bytes),
                chunk_size=spec.options.chunk_size,
                enqueue=enqueue,
            )
        except BaseException as exc:
            log.warning("job %s: ingest stopped (%s: %s)", job.id, type(exc).__name__, exc)
            reason = f"the input stopped before its end ({type(exc).__name__}: {exc})"
            # Shielded: a cancelled request must still leave the job marked, not ingesting forever.
            await asyncio.shield(self._fail(job.id, reason))
            raise

    async def _fail(self, job_id: str, reason: str) -> None:
        async with self.runtime.sessions() as session:
            await JobRepository(session).fail(job_id, reason)
            await session.commit()

    async def create_from_stream(self, spec: JobSpec, blocks: AsyncIterable[bytes]) -> dict[str, Any]:
        """A job whose JSONL input is the request body: read to its end here, stored and queued as it comes."""
        job = await self._create(spec, "upload")
        await self._ingest(job, spec, blocks)
        return await self.get(job.id)

    def _allowed_path(self, raw: str) -> Path:
        root = self.runtime.settings.jobs_input_dir
        if root is None:
            raise JobSourceRejected(
                "server-side input paths are disabled; upload the JSONL or set RJ_JOBS_INPUT_DIR", field="source.path"
            )
        base = root.resolve()
        path = (base / raw).resolve() if not Path(raw).is_absolute() else Path(raw).resolve()
        if not path.is_relative_to(base):
            raise JobSourceRejected(f"{raw!r} is outside the jobs input folder", field="source.path")
        if not path.is_file():
            raise JobSourceRejected(f"no such file: {raw!r}", field="source.path")
        return path

    async def create_from_path(self, spec: JobSpec, raw_path: str) -> dict[str, Any]:
        """A job whose input is a file the server reads (under RJ_JOBS_INPUT_DIR), ingested in the background."""
        path = self._allowed_path(raw_path)
        job = await self._create(spec, str(path))
        task = asyncio.create_task(self._ingest(job, spec, file_blocks(path)), name=f"ingest-{job.id}")
        self._ingests.add(task)
        task.add_done_callback(self._ingest_done)
        return await self.get(job.id)

    def _ingest_done(self, task: asyncio.Task[None]) -> None:
        self._ingests.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background ingest failed", exc_info=task.exception())

    async def get(self, job_id: str) -> dict[str, Any]:
        async with self.runtime.sessions() as session:
            job = await JobRepository(session).get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}", field="job_id")
        return job_view(job, prices=self._prices)

    def _prices(self, name: str | None) -> TokenPrices | None:
        """A profile's token prices now (None for no profile, one without prices, or one no longer configured)."""
        if name is None:
            return None
        try:
            return self.runtime.profiles.get(name).prices
        except JudgeNotFound:
            return None

    async def list(self, *, state: str | None, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        if state is not None and state not in {s.value for s in JobState}:
            raise InvalidJob(f"unknown state {state!r}", field="state")
        async with self.runtime.sessions() as session:
            jobs = await JobRepository(session).list(state=state, limit=limit, offset=offset)
        return [job_view(job, summary=False) for job in jobs]

    async def cancel(self, job_id: str) -> dict[str, Any]:
        async with self.runtime.sessions() as session:
            job = await JobRepository(session).cancel(job_id)
            await session.commit()
        if job is None:
            raise JobNotFound(f"no job {job_id!r}", field="job_id")
        return job_view(job, prices=self._prices)

    async def results(self, job_id: str, states: Sequence[ItemState]) -> AsyncIterator[bytes]:
        """The output records of finished items in line order, a page at a time (one short session per page)."""
        await self.get(job_id)

        async def stream() -> AsyncIterator[bytes]:
            after = 0
            while True:
                async with self.runtime.sessions() as session:
                    page = await JobRepository(session).results(job_id, states, after_line=after, limit=RESULTS_PAGE)
                if not page:
                    return
                yield b"".join(record.encode() + b"\n" for _, record in page)
                after = page[-1][0]

        return stream()
