"""SQL for verdicts and the samples they judge.

Repositories ``flush()`` and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from judge.db.base import utcnow
from judge.samples import Sample
from judge.store.models import SampleRow, VerdictRow
from judge.store.statements import IN_CHUNK, chunks, dialect_insert
from judge.verdict_json import axes_json
from judge.verdicts import AxisResult, GroupPlacement, Usage, Verdict


def _to_datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def verdict_to_row(verdict: Verdict, axes: bytes | None = None) -> dict[str, Any]:
    """The verdict's ``verdicts`` row; ``axes``: ``axes_json(verdict)`` when the caller has it already."""
    return {
        "id": verdict.id,
        "cache_key": verdict.cache_key,
        "sample_hash": verdict.sample_hash,
        "rubric_ref": verdict.rubric_ref,
        "rubric_hash": verdict.rubric_hash,
        "judge": verdict.judge,
        "profile_hash": verdict.profile_hash,
        "complete": verdict.complete,
        # Serialised by pydantic-core straight to JSON and bound as is (the engines' JSON serialisers pass an
        # orjson.Fragment through): a dict in between cost as much again, and then had to be serialised itself.
        "axes": orjson.Fragment(axes if axes is not None else axes_json(verdict)),
        "calls": verdict.usage.calls,
        "prompt_tokens": verdict.usage.prompt_tokens,
        "cached_tokens": verdict.usage.cached_tokens,
        "completion_tokens": verdict.usage.completion_tokens,
        "retries": verdict.usage.retries,
        "hedges": verdict.usage.hedges,
        "error": verdict.error,
        "latency_ms": verdict.latency_ms,
        "clipped": verdict.clipped,
        "created_at": _to_datetime(verdict.created_at),
        "group_hash": verdict.group.hash if verdict.group is not None else None,
        "group_position": verdict.group.position if verdict.group is not None else None,
        "group_size": verdict.group.size if verdict.group is not None else None,
        "reward": verdict.reward,
        "passed": verdict.passed,
    }


def verdict_from_row(row: VerdictRow) -> Verdict:
    return Verdict(
        id=row.id,
        cache_key=row.cache_key,
        sample_hash=row.sample_hash,
        rubric_ref=row.rubric_ref,
        rubric_hash=row.rubric_hash,
        judge=row.judge,
        profile_hash=row.profile_hash,
        axes={key: AxisResult.model_validate(axis) for key, axis in row.axes.items()},
        usage=Usage(
            calls=row.calls,
            prompt_tokens=row.prompt_tokens,
            # NULL is "not recorded" (stored before migration 0010). Usage counts are numbers, so it reads as 0
            # here; exports read the columns themselves and keep the NULL.
            cached_tokens=row.cached_tokens or 0,
            completion_tokens=row.completion_tokens,
            retries=row.retries,
            hedges=row.hedges or 0,
        ),
        error=row.error,
        latency_ms=row.latency_ms,
        clipped=row.clipped,
        created_at=row.created_at.timestamp(),
        group=_group_placement(row),
        reward=row.reward,
        passed=row.passed,
    )


def _group_placement(row: VerdictRow) -> GroupPlacement | None:
    if row.group_hash is None or row.group_position is None or row.group_size is None:
        return None
    return GroupPlacement(hash=row.group_hash, position=row.group_position, size=row.group_size)


class VerdictRepository:
    """Verdicts and the samples they judge."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, verdict: Verdict, sample: Sample) -> None:
        """Store a verdict, and its sample unless already stored."""
        await self.add_many([(verdict, sample)])

    async def add_many(self, items: Sequence[tuple[Verdict, Sample]], *, axes: Sequence[bytes] | None = None) -> None:
        """Store verdicts with their samples in a few multi-row statements.

        ``axes``: each verdict's ``axes_json``, in order, when the caller has them already (the writer caches them too).
        """
        samples: dict[str, dict[str, Any]] = {}
        for verdict, sample in items:
            if verdict.sample_hash != sample.hash:
                raise ValueError(f"verdict {verdict.id} is for sample {verdict.sample_hash}, not {sample.hash}")
            samples.setdefault(sample.hash, sample.canonical())
        if not items:
            return
        now = utcnow()
        # ON CONFLICT DO NOTHING (not INSERT OR IGNORE, which would also swallow NOT NULL violations) makes
        # concurrent writers of one sample safe; inserting in hash order keeps PostgreSQL's row locks in one
        # order across transactions, so overlapping batches cannot deadlock.
        sample_rows = [{"hash": h, "content": samples[h], "created_at": now} for h in sorted(samples)]
        # A parameter list on one constant statement (an executemany) rather than a VALUES list: the
        # statement compiles once and is cached, instead of once per batch with a bind per value.
        insert_samples = dialect_insert(self._session, SampleRow).on_conflict_do_nothing(index_elements=["hash"])
        await self._session.execute(insert_samples, sample_rows)
        # A verdict id is a fresh uuid: a conflict on it is the same verdict written again (a spool replayed
        # after a commit whose acknowledgement was lost), which must be a no-op rather than an error.
        insert_verdicts = dialect_insert(self._session, VerdictRow).on_conflict_do_nothing(index_elements=["id"])
        if axes is None:
            verdict_rows = [verdict_to_row(verdict) for verdict, _ in items]
        else:
            verdict_rows = [verdict_to_row(v, json) for (v, _), json in zip(items, axes, strict=True)]
        await self._session.execute(insert_verdicts, verdict_rows)
        await self._session.flush()

    async def get(self, verdict_id: str) -> Verdict | None:
        row = await self._session.get(VerdictRow, verdict_id)
        return verdict_from_row(row) if row is not None else None

    async def find_complete(self, cache_keys: Sequence[str]) -> dict[str, Verdict]:
        """The newest complete verdict for each cache key that has one."""
        keys = list(dict.fromkeys(cache_keys))
        found: dict[str, Verdict] = {}
        for chunk in chunks(keys, IN_CHUNK):
            newest_first = func.row_number().over(
                partition_by=VerdictRow.cache_key, order_by=(VerdictRow.created_at.desc(), VerdictRow.id.desc())
            )
            ranked = (
                select(VerdictRow, newest_first.label("rank"))
                # "= true" rather than "IS true", so PostgreSQL can use the (cache_key, complete) index.
                .where(VerdictRow.cache_key.in_(chunk), VerdictRow.complete == true())
                .subquery()
            )
            newest = aliased(VerdictRow, ranked)
            result = await self._session.scalars(select(newest).where(ranked.c.rank == 1))
            for row in result:
                found[row.cache_key] = verdict_from_row(row)
        return found

    async def count(self, *, complete: bool | None = None) -> int:
        stmt = select(func.count()).select_from(VerdictRow)
        if complete is not None:
            stmt = stmt.where(VerdictRow.complete == complete)
        return int(await self._session.scalar(stmt) or 0)

    async def get_sample(self, sample_hash: str) -> dict[str, Any] | None:
        """The canonical content (messages, reasoning, response, reference) of a stored sample."""
        row = await self._session.get(SampleRow, sample_hash)
        return dict(row.content) if row is not None else None

    async def iter_complete(
        self, rubric_hash: str, *, judges: Sequence[str] | None = None, batch_size: int = 1000
    ) -> AsyncIterator[builtins.list[tuple[Verdict, dict[str, Any]]]]:
        """Complete verdicts for a rubric with their sample content, in batches (keyset-paged by id)."""
        after = ""
        while True:
            stmt = (
                select(VerdictRow, SampleRow.content)
                .join(SampleRow, SampleRow.hash == VerdictRow.sample_hash)
                .where(VerdictRow.rubric_hash == rubric_hash, VerdictRow.complete == true(), VerdictRow.id > after)
                .order_by(VerdictRow.id)
                .limit(batch_size)
            )
            if judges is not None:
                stmt = stmt.where(VerdictRow.judge.in_(list(judges)))
            batch = [(verdict_from_row(row), dict(content)) for row, content in (await self._session.execute(stmt))]
            if not batch:
                return
            yield batch
            after = batch[-1][0].id
