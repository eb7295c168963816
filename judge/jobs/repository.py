"""All SQL of bulk jobs. Like the store's repositories it only flushes: the caller commits or rolls back.

Exactly-once rests on two rules. A chunk is worked on under a lease (``owner``, ``lease_expires``) that only a
claim can take; and a chunk's outcomes are written in one transaction that first moves the chunk from
``running`` to ``done`` *for its owner*. A worker that lost its lease (killed, or stalled past it) finds that
update matching nothing, and rolls back: its outcomes never land next to the new owner's.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, bindparam, exists, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from judge.db.base import utcnow
from judge.jobs.models import JobChunkRow, JobItemRow, JobRow
from judge.jobs.process import ItemOutcome
from judge.jobs.schemas import ACTIVE_STATES, ItemState, JobState
from judge.jobs.summary import Summary


@dataclass(frozen=True, slots=True)
class Claim:
    job_id: str
    chunk: int
    first_line: int
    last_line: int
    attempts: int
    # Why the previous attempt let go of the chunk, if it said.
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ChunkRef:
    job_id: str
    chunk: int
    attempts: int
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewItem:
    """A line as ingested: pending with its text, or invalid with its record."""

    line: int
    text: str | None
    outcome: ItemOutcome | None = None


_ITEMS: Table = JobItemRow.__table__  # type: ignore[assignment]
_ACTIVE = list(ACTIVE_STATES)


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _now(self) -> ColumnElement[datetime]:
        # The database's clock on PostgreSQL: leases compare times written by different machines.
        if self._session.get_bind().dialect.name == "postgresql":
            return func.now()
        return literal(utcnow(), JobChunkRow.lease_expires.type)

    def _later(self, seconds: float) -> ColumnElement[datetime]:
        if self._session.get_bind().dialect.name == "postgresql":
            return func.now() + timedelta(seconds=seconds)
        return literal(utcnow() + timedelta(seconds=seconds), JobChunkRow.lease_expires.type)

    # --- jobs -------------------------------------------------------------------------------------------------

    async def create(
        self,
        *,
        job_id: str,
        kind: str,
        rubric_ref: str,
        rubric_hash: str,
        judge: str,
        profile_hash: str,
        generator: str | None,
        options: dict[str, Any],
        source: str,
    ) -> JobRow:
        now = utcnow()
        row = JobRow(
            id=job_id,
            kind=kind,
            state=JobState.ingesting.value,
            rubric_ref=rubric_ref,
            rubric_hash=rubric_hash,
            judge=judge,
            profile_hash=profile_hash,
            generator=generator,
            options=options,
            source=source,
            total=0,
            kept=0,
            dropped=0,
            failed=0,
            invalid=0,
            chunks=0,
            stats={},
            created_at=now,
            heartbeat_at=now,
        )
        self._session.add(row)
        await self._session.flush()
        return row

    async def get(self, job_id: str) -> JobRow | None:
        stmt = select(JobRow).where(JobRow.id == job_id).execution_options(populate_existing=True)
        return await self._session.scalar(stmt)

    async def list(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> builtins.list[JobRow]:
        stmt = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit).offset(offset)
        if state is not None:
            stmt = stmt.where(JobRow.state == state)
        return list(await self._session.scalars(stmt))

    async def _lock(self, job_id: str) -> JobRow | None:
        stmt = select(JobRow).where(JobRow.id == job_id).with_for_update().execution_options(populate_existing=True)
        return await self._session.scalar(stmt)

    async def add_chunk(self, job_id: str, chunk: int, items: Sequence[NewItem]) -> bool:
        """Store one chunk of ingested lines; False (and nothing stored) if the job is no longer ingesting."""
        job = await self._lock(job_id)
        if job is None or job.state != JobState.ingesting.value:
            return False
        rows = []
        delta = Summary()
        invalid = 0
        for item in items:
            # Every row with the same keys: one executemany statement for the lot.
            if item.outcome is None:
                rows.append(
                    {
                        "job_id": job_id,
                        "line": item.line,
                        "state": ItemState.pending.value,
                        "input": item.text,
                        "record": None,
                        "error": None,
                    }
                )
            else:
                invalid += 1
                delta.add(item.outcome.record)
                rows.append(
                    {
                        "job_id": job_id,
                        "line": item.line,
                        "state": ItemState.invalid.value,
                        "input": None,
                        "record": item.outcome.encoded().decode(),
                        "error": item.outcome.error,
                    }
                )
        if rows:
            await self._session.execute(insert(_ITEMS), rows)
        pending = len(items) - invalid
        self._session.add(
            JobChunkRow(
                job_id=job_id,
                chunk=chunk,
                first_line=items[0].line,
                last_line=items[-1].line,
                state="pending" if pending else "done",
                attempts=0,
            )
        )
        job.total += len(items)
        job.invalid += invalid
        job.chunks += 1
        if invalid:
            job.stats = Summary.from_json(job.stats).merge(delta).to_json()
        job.heartbeat_at = utcnow()
        await self._session.flush()
        return True

    async def touch(self, job_id: str) -> bool:
        """An ingest's heartbeat; False if the job is no longer ingesting."""
        result = await self._session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.state == JobState.ingesting.value)
            .values(heartbeat_at=utcnow())
        )
        await self._session.flush()
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def finish_ingest(self, job_id: str) -> str | None:
        """The upload is complete: the job runs (or is done already, if every line was invalid or judged)."""
        job = await self._lock(job_id)
        if job is None:
            return None
        if job.state == JobState.ingesting.value:
            if _done(job) >= job.total:
                job.state = JobState.done.value
                job.finished_at = utcnow()
            else:
                job.state = JobState.running.value
            await self._session.flush()
        return job.state

    async def fail(self, job_id: str, error: str) -> None:
        """Stop an active job for good (e.g. its upload broke off); chunks not started are never claimed."""
        await self._session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.state.in_(_ACTIVE))
            .values(state=JobState.failed.value, error=error, finished_at=utcnow())
        )
        await self._session.flush()

    async def cancel(self, job_id: str) -> JobRow | None:
        await self._session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.state.in_(_ACTIVE))
            .values(state=JobState.cancelled.value, finished_at=utcnow())
        )
        await self._session.flush()
        return await self.get(job_id)

    async def stale_ingests(self, older_than_s: float) -> builtins.list[str]:
        """Jobs whose ingest stopped beating: the API process that read their input died."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        stmt = select(JobRow.id).where(JobRow.state == JobState.ingesting.value, JobRow.heartbeat_at < cutoff)
        return list(await self._session.scalars(stmt))

    # --- chunks -----------------------------------------------------------------------------------------------

    async def claim(self, job_id: str, chunk: int, *, owner: str, task_id: str, lease_s: float) -> Claim | None:
        """Take a chunk that is pending, or whose lease ran out; None if it is done, held, or its job stopped."""
        job_active = exists().where(JobRow.id == job_id, JobRow.state.in_(_ACTIVE))
        stmt = (
            update(JobChunkRow)
            .where(
                JobChunkRow.job_id == job_id,
                JobChunkRow.chunk == chunk,
                or_(
                    JobChunkRow.state == "pending",
                    and_(JobChunkRow.state == "running", JobChunkRow.lease_expires < self._now()),
                ),
                job_active,
            )
            .values(
                state="running",
                owner=owner,
                task_id=task_id,
                lease_expires=self._later(lease_s),
                attempts=JobChunkRow.attempts + 1,
            )
            .returning(JobChunkRow.first_line, JobChunkRow.last_line, JobChunkRow.attempts, JobChunkRow.error)
        )
        row = (await self._session.execute(stmt)).one_or_none()
        if row is None:
            return None
        await self._session.execute(
            update(JobRow).where(JobRow.id == job_id, JobRow.started_at.is_(None)).values(started_at=utcnow())
        )
        await self._session.flush()
        return Claim(job_id, chunk, int(row.first_line), int(row.last_line), int(row.attempts), row.error)

    async def pending_items(self, claim: Claim) -> builtins.list[tuple[int, str]]:
        stmt = (
            select(JobItemRow.line, JobItemRow.input)
            .where(
                JobItemRow.job_id == claim.job_id,
                JobItemRow.line >= claim.first_line,
                JobItemRow.line <= claim.last_line,
                JobItemRow.state == ItemState.pending.value,
            )
            .order_by(JobItemRow.line)
        )
        return [(int(line), text or "") for line, text in await self._session.execute(stmt)]

    async def heartbeat(self, owner: str, lease_s: float, chunks: Iterable[tuple[str, int]]) -> int:
        """Extend ``owner``'s leases on ``chunks`` (those it is working on); the number it still holds."""
        held = list(chunks)
        if not held:
            return 0
        result = await self._session.execute(
            update(JobChunkRow)
            .where(
                JobChunkRow.owner == owner,
                JobChunkRow.state == "running",
                tuple_(JobChunkRow.job_id, JobChunkRow.chunk).in_(held),
            )
            .values(lease_expires=self._later(lease_s))
        )
        await self._session.flush()
        return int(getattr(result, "rowcount", 0) or 0)

    async def complete(self, claim: Claim, owner: str, outcomes: Sequence[ItemOutcome]) -> bool:
        """Write a chunk's outcomes, counters and summary; False if ``owner`` no longer holds the chunk."""
        fenced = await self._session.execute(
            update(JobChunkRow)
            .where(
                JobChunkRow.job_id == claim.job_id,
                JobChunkRow.chunk == claim.chunk,
                JobChunkRow.state == "running",
                JobChunkRow.owner == owner,
            )
            .values(state="done", owner=None, lease_expires=None, error=None)
        )
        if int(getattr(fenced, "rowcount", 0) or 0) != 1:
            return False
        await self._write_outcomes(claim.job_id, outcomes)
        await self._session.flush()
        return True

    async def _write_outcomes(self, job_id: str, outcomes: Sequence[ItemOutcome]) -> None:
        if outcomes:
            stmt = (
                update(_ITEMS)
                .where(
                    _ITEMS.c.job_id == bindparam("b_job"),
                    _ITEMS.c.line == bindparam("b_line"),
                    _ITEMS.c.state == ItemState.pending.value,
                )
                .values(
                    state=bindparam("b_state"),
                    record=bindparam("b_record"),
                    input=None,
                    sample_hash=bindparam("b_hash"),
                    verdict_id=bindparam("b_verdict"),
                    error=bindparam("b_error"),
                )
            )
            params = [
                {
                    "b_job": job_id,
                    "b_line": o.line,
                    "b_state": o.state.value,
                    "b_record": o.encoded().decode(),
                    "b_hash": o.sample_hash,
                    "b_verdict": o.verdict_id,
                    "b_error": o.error,
                }
                for o in outcomes
            ]
            await self._session.execute(stmt, params)
        job = await self._lock(job_id)
        if job is None:
            return
        delta = Summary()
        for o in outcomes:
            delta.add(o.record)
            if o.state is ItemState.kept:
                job.kept += 1
            elif o.state is ItemState.dropped:
                job.dropped += 1
            elif o.state is ItemState.failed:
                job.failed += 1
            else:
                job.invalid += 1
        job.stats = Summary.from_json(job.stats).merge(delta).to_json()
        if job.state == JobState.running.value and _done(job) >= job.total:
            job.state = JobState.done.value
            job.finished_at = utcnow()

    async def fail_chunk(self, claim: Claim, owner: str, outcomes: Sequence[ItemOutcome], error: str) -> bool:
        """Give up on a chunk that failed too often: its pending items become failed, with the reason."""
        done = await self.complete(claim, owner, outcomes)
        if done:
            await self._session.execute(
                update(JobChunkRow)
                .where(JobChunkRow.job_id == claim.job_id, JobChunkRow.chunk == claim.chunk)
                .values(error=error)
            )
            await self._session.flush()
        return done

    async def release(self, claim: Claim, owner: str, error: str | None = None) -> bool:
        """Let go of a chunk (shutdown, or an error): pending again, at once, for any worker."""
        result = await self._session.execute(
            update(JobChunkRow)
            .where(
                JobChunkRow.job_id == claim.job_id,
                JobChunkRow.chunk == claim.chunk,
                JobChunkRow.state == "running",
                JobChunkRow.owner == owner,
            )
            .values(state="pending", owner=None, task_id=None, lease_expires=None, error=error)
        )
        await self._session.flush()
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def expire_leases(self, limit: int = 1000) -> builtins.list[ChunkRef]:
        """Running chunks whose lease ran out (their worker died) become pending again; each is returned once."""
        expired = (
            select(JobChunkRow.job_id, JobChunkRow.chunk)
            .where(JobChunkRow.state == "running", JobChunkRow.lease_expires < self._now())
            .limit(limit)
        )
        candidates = list(await self._session.execute(expired))
        refs: builtins.list[ChunkRef] = []
        for job_id, chunk in candidates:
            # Conditional per chunk: of two reapers racing, one gets the row, the other nothing.
            row = (
                await self._session.execute(
                    update(JobChunkRow)
                    .where(
                        JobChunkRow.job_id == job_id,
                        JobChunkRow.chunk == chunk,
                        JobChunkRow.state == "running",
                        JobChunkRow.lease_expires < self._now(),
                    )
                    .values(state="pending", owner=None, lease_expires=None)
                    .returning(JobChunkRow.attempts, JobChunkRow.task_id)
                )
            ).one_or_none()
            if row is not None:
                refs.append(ChunkRef(job_id, int(chunk), int(row.attempts), row.task_id))
        await self._session.flush()
        return refs

    async def pending_chunks(self, limit: int = 1000) -> builtins.list[ChunkRef]:
        """Pending chunks of active jobs, oldest job first (to put back on a queue that lost them)."""
        stmt = (
            select(JobChunkRow.job_id, JobChunkRow.chunk, JobChunkRow.attempts)
            .join(JobRow, JobRow.id == JobChunkRow.job_id)
            .where(JobChunkRow.state == "pending", JobRow.state.in_(_ACTIVE))
            .order_by(JobRow.created_at, JobChunkRow.chunk)
            .limit(limit)
        )
        return [
            ChunkRef(job_id, int(chunk), int(attempts)) for job_id, chunk, attempts in await self._session.execute(stmt)
        ]

    # --- results ----------------------------------------------------------------------------------------------

    async def results(
        self, job_id: str, states: Iterable[ItemState], *, after_line: int = 0, limit: int = 1000
    ) -> builtins.list[tuple[int, str]]:
        """Output records of finished items, by line, after ``after_line`` (keyset paging)."""
        stmt = (
            select(JobItemRow.line, JobItemRow.record)
            .where(
                JobItemRow.job_id == job_id,
                JobItemRow.state.in_([s.value for s in states]),
                JobItemRow.line > after_line,
            )
            .order_by(JobItemRow.line)
            .limit(limit)
        )
        return [(int(line), record or "") for line, record in await self._session.execute(stmt)]


def _done(job: JobRow) -> int:
    return job.kept + job.dropped + job.failed + job.invalid
