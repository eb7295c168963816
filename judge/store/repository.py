"""All SQL of the store. Repositories ``flush()`` and never commit: the caller owns the transaction."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from judge.samples import Sample
from judge.store.judge_ratings import (
    OverrideFilter,
    judge_names,
    judges_with_verdicts,
    newest_verdict_scores,
    override_times,
)
from judge.store.models import Base, RatingRow, RewardModelRow, RubricRow, SampleRow, VerdictRow, utcnow
from judge.verdicts import AxisResult, GroupPlacement, Usage, Verdict
from rubrics.errors import RubricConflict, RubricJudgeError
from rubrics.schema import Rubric

# Rows per statement: keeps bound parameters far below SQLite's and asyncpg's 32k limit.
IN_CHUNK = 500
INSERT_CHUNK = 1000


class RewardModelConflict(RubricJudgeError):
    """A reward model ``name@version`` that is already registered."""

    status_code = 409


class RewardModelNotFound(RubricJudgeError):
    status_code = 404


T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert(session: AsyncSession, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """A dialect INSERT that supports ON CONFLICT, for the session's backend."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"no upsert for dialect {dialect!r}")


def _to_datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


# --- verdicts -------------------------------------------------------------------------------------------------


def verdict_to_row(verdict: Verdict) -> dict[str, Any]:
    return {
        "id": verdict.id,
        "cache_key": verdict.cache_key,
        "sample_hash": verdict.sample_hash,
        "rubric_ref": verdict.rubric_ref,
        "rubric_hash": verdict.rubric_hash,
        "judge": verdict.judge,
        "profile_hash": verdict.profile_hash,
        "complete": verdict.complete,
        # One serialiser pass for all axes (not one per axis): this runs for every stored verdict.
        "axes": verdict.model_dump(mode="json", include={"axes"})["axes"],
        "calls": verdict.usage.calls,
        "prompt_tokens": verdict.usage.prompt_tokens,
        "completion_tokens": verdict.usage.completion_tokens,
        "retries": verdict.usage.retries,
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
            completion_tokens=row.completion_tokens,
            retries=row.retries,
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

    async def add_many(self, items: Sequence[tuple[Verdict, Sample]]) -> None:
        """Store verdicts with their samples in a few multi-row statements."""
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
        rows = [{"hash": h, "content": samples[h], "created_at": now} for h in sorted(samples)]
        # A parameter list on one constant statement (an executemany) rather than a VALUES list: the
        # statement compiles once and is cached, instead of once per batch with a bind per value.
        insert_samples = _insert(self._session, SampleRow).on_conflict_do_nothing(index_elements=["hash"])
        await self._session.execute(insert_samples, rows)
        await self._session.execute(
            _insert(self._session, VerdictRow), [verdict_to_row(verdict) for verdict, _ in items]
        )
        await self._session.flush()

    async def get(self, verdict_id: str) -> Verdict | None:
        row = await self._session.get(VerdictRow, verdict_id)
        return verdict_from_row(row) if row is not None else None

    async def find_complete(self, cache_keys: Sequence[str]) -> dict[str, Verdict]:
        """The newest complete verdict for each cache key that has one."""
        keys = list(dict.fromkeys(cache_keys))
        found: dict[str, Verdict] = {}
        for chunk in _chunks(keys, IN_CHUNK):
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


# --- rubrics --------------------------------------------------------------------------------------------------


class RubricRepository:
    """Rubrics by ``name@version``; a registered version never changes content."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _hash_of(self, name: str, version: int) -> str | None:
        stmt = select(RubricRow.content_hash).where(RubricRow.name == name, RubricRow.version == version)
        return await self._session.scalar(stmt)

    async def add(self, rubric: Rubric) -> None:
        """Register a rubric; a no-op if the same content is there, :class:`RubricConflict` if other content is."""
        stored = await self._hash_of(rubric.name, rubric.version)
        if stored is None:
            stmt = _insert(self._session, RubricRow).values(
                name=rubric.name,
                version=rubric.version,
                content_hash=rubric.content_hash,
                body=rubric.model_dump(mode="json"),
                created_at=utcnow(),
            )
            # A concurrent writer may win the race: then compare with what it stored.
            await self._session.execute(stmt.on_conflict_do_nothing())
            await self._session.flush()
            stored = await self._hash_of(rubric.name, rubric.version)
        if stored != rubric.content_hash:
            raise RubricConflict(
                f"rubric {rubric.ref} is already registered with other content; bump its version", field="rubric"
            )

    async def get(self, name: str, version: int | None = None) -> Rubric | None:
        """``name@version``, or the highest version of ``name`` when ``version`` is None."""
        stmt = select(RubricRow.body).where(RubricRow.name == name)
        if version is not None:
            stmt = stmt.where(RubricRow.version == version)
        stmt = stmt.order_by(RubricRow.version.desc())
        body = await self._session.scalar(stmt.limit(1))
        return Rubric.model_validate(body) if body is not None else None

    async def get_by_hash(self, content_hash: str) -> Rubric | None:
        body = await self._session.scalar(select(RubricRow.body).where(RubricRow.content_hash == content_hash))
        return Rubric.model_validate(body) if body is not None else None

    async def list_all(self) -> list[Rubric]:
        bodies = await self._session.scalars(select(RubricRow.body).order_by(RubricRow.name, RubricRow.version))
        return [Rubric.model_validate(body) for body in bodies]


# --- ratings --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rating:
    """One score on one axis by one rater; ``run`` tells repeated ratings by the same rater apart."""

    rubric_hash: str
    sample_hash: str
    rater: str
    axis: str
    score: float
    run: int = 0
    verdict_id: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return (self.rubric_hash, self.sample_hash, self.rater, self.axis, self.run)


_RATING_KEY = ["rubric_hash", "sample_hash", "rater", "axis", "run"]


class RatingRepository:
    """Ratings for agreement studies: judges, humans and reward models on the same samples."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_many(self, ratings: Iterable[Rating]) -> int:
        """Insert or update ratings (keyed by rubric, sample, rater, axis, run); returns how many were written."""
        # One statement may not touch a row twice (PostgreSQL refuses): the last rating of a key wins.
        latest = {rating.key: rating for rating in ratings}
        now = utcnow()
        rows = [
            {
                "rubric_hash": r.rubric_hash,
                "sample_hash": r.sample_hash,
                "rater": r.rater,
                "axis": r.axis,
                "score": r.score,
                "run": r.run,
                "verdict_id": r.verdict_id,
                "created_at": now,
            }
            for _, r in sorted(latest.items())
        ]
        for chunk in _chunks(rows, INSERT_CHUNK):
            stmt = _insert(self._session, RatingRow).values(list(chunk))
            stmt = stmt.on_conflict_do_update(
                index_elements=_RATING_KEY,
                set_={
                    "score": stmt.excluded.score,
                    "verdict_id": stmt.excluded.verdict_id,
                    "created_at": stmt.excluded.created_at,
                },
            )
            await self._session.execute(stmt)
        await self._session.flush()
        return len(rows)

    async def query(self, rubric_hash: str, raters: Sequence[str] | None = None) -> list[Rating]:
        """Every rating under a rubric, optionally only those of some raters, ordered by sample, axis, rater, run.

        Judges' run-0 ratings come from their newest complete verdicts (:mod:`judge.store.judge_ratings`).
        """
        selected = list(raters) if raters is not None else await self.raters(rubric_hash)
        overrides = OverrideFilter(await override_times(self._session, rubric_hash, selected))
        out: list[Rating] = []
        async for batch in newest_verdict_scores(self._session, rubric_hash, judge_names(selected)):
            for scores in batch:
                if overrides.verdict_counts(scores):
                    out += [
                        Rating(rubric_hash, scores.sample_hash, scores.rater, axis, score, 0, scores.verdict_id)
                        for axis, score in zip(scores.axes, scores.scores, strict=True)
                    ]
        stmt = select(
            RatingRow.rubric_hash,
            RatingRow.sample_hash,
            RatingRow.rater,
            RatingRow.axis,
            RatingRow.score,
            RatingRow.run,
            RatingRow.verdict_id,
        ).where(RatingRow.rubric_hash == rubric_hash)
        if raters is not None:
            stmt = stmt.where(RatingRow.rater.in_(selected))
        out += [
            Rating(*row)
            for row in await self._session.execute(stmt)
            if overrides.row_counts(row.rater, row.sample_hash, row.run)
        ]
        out.sort(key=lambda r: (r.sample_hash, r.axis, r.rater, r.run))
        return out

    async def raters(self, rubric_hash: str) -> list[str]:
        """Raters with ratings under the rubric: stored rows, and every judge with a complete verdict."""
        stmt = select(RatingRow.rater).where(RatingRow.rubric_hash == rubric_hash).distinct()
        stored = set(await self._session.scalars(stmt))
        return sorted(stored | set(await judges_with_verdicts(self._session, rubric_hash)))


# --- reward models --------------------------------------------------------------------------------------------


class RewardModelRecord(BaseModel):
    """A registered reward model."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    name: str
    version: int
    path: str
    base_model: str
    rubric_hash: str
    axis_keys: list[str]
    config: dict[str, Any]
    metrics: dict[str, Any]
    active: bool
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class RewardModelRepository:
    """The reward-model registry: versions per name, at most one active version per name."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def register(
        self,
        name: str,
        *,
        path: str,
        base_model: str,
        rubric_hash: str,
        axis_keys: Sequence[str],
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        version: int | None = None,
        active: bool = False,
    ) -> RewardModelRecord:
        """Register a model; ``version`` defaults to the next free one. ``active`` deactivates the others."""
        if version is None:
            highest = await self._session.scalar(
                select(func.max(RewardModelRow.version)).where(RewardModelRow.name == name)
            )
            version = (highest or 0) + 1
        if active:
            await self._deactivate_all(name)
        stmt = (
            _insert(self._session, RewardModelRow)
            .values(
                name=name,
                version=version,
                path=path,
                base_model=base_model,
                rubric_hash=rubric_hash,
                axis_keys=list(axis_keys),
                config=config or {},
                metrics=metrics or {},
                active=active,
                created_at=utcnow(),
            )
            # DO NOTHING + RETURNING tells a taken name@version apart without aborting the caller's transaction.
            .on_conflict_do_nothing()
            .returning(RewardModelRow.id)
        )
        new_id = (await self._session.execute(stmt)).scalar_one_or_none()
        if new_id is None:
            raise RewardModelConflict(f"reward model {name}@{version} is already registered", field="version")
        await self._session.flush()
        return await self._require(name, version)

    async def get(self, name: str, version: int | None = None) -> RewardModelRecord | None:
        """``name@version``, or the highest version of ``name`` when ``version`` is None."""
        stmt = select(RewardModelRow).where(RewardModelRow.name == name)
        if version is not None:
            stmt = stmt.where(RewardModelRow.version == version)
        row = await self._session.scalar(stmt.order_by(RewardModelRow.version.desc()).limit(1))
        return RewardModelRecord.model_validate(row) if row is not None else None

    async def get_active(self, name: str) -> RewardModelRecord | None:
        stmt = select(RewardModelRow).where(RewardModelRow.name == name, RewardModelRow.active == true())
        row = await self._session.scalar(stmt.limit(1))
        return RewardModelRecord.model_validate(row) if row is not None else None

    async def list(self, name: str | None = None) -> builtins.list[RewardModelRecord]:
        stmt = select(RewardModelRow).order_by(RewardModelRow.name, RewardModelRow.version)
        if name is not None:
            stmt = stmt.where(RewardModelRow.name == name)
        return [RewardModelRecord.model_validate(row) for row in await self._session.scalars(stmt)]

    async def set_active(self, name: str, version: int, active: bool = True) -> RewardModelRecord:
        """Activate ``name@version`` (deactivating its other versions), or deactivate it."""
        await self._require(name, version)
        if active:
            await self._deactivate_all(name)
        await self._session.execute(
            update(RewardModelRow)
            .where(RewardModelRow.name == name, RewardModelRow.version == version)
            .values(active=active)
            .execution_options(synchronize_session=False)
        )
        await self._session.flush()
        return await self._require(name, version)

    async def update_metrics(self, name: str, version: int, metrics: dict[str, Any]) -> RewardModelRecord:
        """Merge evaluation metrics into a registered model's metrics."""
        record = await self._require(name, version)
        await self._session.execute(
            update(RewardModelRow)
            .where(RewardModelRow.id == record.id)
            .values(metrics={**record.metrics, **metrics})
            .execution_options(synchronize_session=False)
        )
        await self._session.flush()
        return await self._require(name, version)

    async def _deactivate_all(self, name: str) -> None:
        await self._session.execute(
            update(RewardModelRow)
            .where(RewardModelRow.name == name, RewardModelRow.active == true())
            .values(active=False)
            .execution_options(synchronize_session=False)
        )

    async def _require(self, name: str, version: int) -> RewardModelRecord:
        # populate_existing: the UPDATEs above bypass the identity map, so reload the row from the database.
        stmt = (
            select(RewardModelRow)
            .where(RewardModelRow.name == name, RewardModelRow.version == version)
            .execution_options(populate_existing=True)
        )
        row = await self._session.scalar(stmt)
        if row is None:
            raise RewardModelNotFound(f"no reward model {name}@{version}", field="reward_model")
        return RewardModelRecord.model_validate(row)
